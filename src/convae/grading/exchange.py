"""nbgrader's ``collect`` for a shared exchange, copying only what the student really handed in.

nbgrader 0.9.6's collect copies each submission out of ``<exchange>/<course>/inbound`` with
``shutil.copytree``, which follows symbolic links: inbound is writable by every student (mode 2733)
and each submission folder there belongs to its student, so a link planted in it (to
``solutions/``, to another student's work) arrives in ``submitted/`` as the file it points to, read
with the instructor's rights. Its size checks also abort the whole batch on one student's
oversized folder (``RuntimeError: Directory size is too big``), and a folder named after another
student is collected as theirs with only a warning (``check_owner``).

:class:`SafeCollect` keeps nbgrader's collect (same options, timestamps, ``--update``, due dates)
and changes three things, each logged in a line that names the file and why:

* an inbound entry that is not a real folder owned by the student it names is refused (another
  user's folder named after a classmate, a link to a folder);
* inside a submission only regular files with one name are copied, each from a descriptor opened
  with ``O_NOFOLLOW`` once ``fstat`` says it is regular; links, hard links, fifos, sockets and
  devices are refused, never opened or followed;
* a file over ``CourseDirectory.max_file_size`` or past ``max_dir_size`` is refused, the rest of
  that submission and of the class is still collected.

Used by setting, in the exchange's nbgrader config (grading/README.md, "A real class"):
``c.ExchangeFactory.collect = "convae.grading.exchange.SafeCollect"``.
"""
from __future__ import annotations

import fnmatch
import glob
import os
import pwd
import stat

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default.collect import ExchangeCollect, groupby

CHUNK = 1 << 20
#: what nbgrader's submit writes beside the notebook; collected whatever ``include`` says (the course's
#: ``include = ["*.ipynb"]`` would drop them, and release_feedback needs both)
NBGRADER_FILES = ("timestamp.txt", "submission_secret.txt")


def kind(mode: int) -> str | None:
    """What a non-regular, non-folder entry is, in words; None for a regular file."""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def copy_regular(src: str, dest: str, include=None, exclude=None, max_file_bytes=None,
                 max_dir_bytes=None) -> list[str]:
    """Copy the regular files of folder ``src`` into ``dest`` (created), never following a link.

    ``include``/``exclude`` are nbgrader's globs on file names (``CourseDirectory.include`` /
    ``ignore``). Returns one line per entry refused: '<relative path>: <why>'.
    """
    refused, total = [], 0
    top_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.makedirs(dest, exist_ok=True)
        stack = [(top_fd, "")]
        while stack:
            dir_fd, rel_dir = stack.pop()
            try:
                for name in sorted(os.listdir(dir_fd)):
                    rel = os.path.join(rel_dir, name)
                    if exclude and any(fnmatch.fnmatch(name, g) for g in exclude):
                        continue
                    mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
                    if stat.S_ISDIR(mode):
                        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                        os.makedirs(os.path.join(dest, rel), exist_ok=True)
                        stack.append((sub, rel))
                        continue
                    if kind(mode):
                        refused.append(f"{rel}: {kind(mode)}, not followed; only regular files are collected")
                        continue
                    if (include and not any(fnmatch.fnmatch(name, g) for g in include)
                            and not (rel_dir == "" and name in NBGRADER_FILES)):
                        continue
                    try:
                        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
                    except OSError as err:  # ELOOP: swapped for a link after the stat
                        refused.append(f"{rel}: could not be opened without following links ({err.strerror})")
                        continue
                    with os.fdopen(fd, "rb") as fh:
                        info = os.fstat(fh.fileno())
                        if kind(info.st_mode):
                            refused.append(f"{rel}: {kind(info.st_mode)}, not read; only regular files are collected")
                            continue
                        if info.st_nlink > 1:
                            refused.append(f"{rel}: a hard link, one of {info.st_nlink} names of one file; not collected")
                            continue
                        if max_file_bytes and info.st_size > max_file_bytes:
                            refused.append(f"{rel}: too large, {info.st_size:,} bytes "
                                           f"(CourseDirectory.max_file_size is {max_file_bytes:,} bytes)")
                            continue
                        if max_dir_bytes and total + info.st_size > max_dir_bytes:
                            refused.append(f"{rel}: not collected, the submission would pass "
                                           f"{max_dir_bytes:,} bytes (CourseDirectory.max_dir_size)")
                            continue
                        limit = max_file_bytes or info.st_size
                        written = 0
                        with open(os.path.join(dest, rel), "wb") as out:
                            while written <= limit:  # bounded: the file may grow after fstat
                                chunk = fh.read(min(CHUNK, limit + 1 - written))
                                if not chunk:
                                    break
                                out.write(chunk)
                                written += len(chunk)
                        total += written
            finally:
                if dir_fd != top_fd:
                    os.close(dir_fd)
    finally:
        os.close(top_fd)
    return refused


class SafeCollect(ExchangeCollect):
    """``nbgrader collect`` that never follows a link and never lets one student stop the batch."""

    def owner_problem(self, path: str, username: str) -> str | None:
        """Why the inbound entry ``path`` cannot be ``username``'s submission, or None."""
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            return f"{kind(info.st_mode) or 'not a folder'}, not followed"
        if self.check_owner:
            try:
                owner = pwd.getpwuid(info.st_uid).pw_name
            except KeyError:
                owner = f"user id {info.st_uid}"
            if owner != username:
                return f"named after {username} but owned by {owner}"
        return None

    def init_src(self):
        # nbgrader's init_src, with entries that are not the named student's own folder left out
        if self.coursedir.course_id == '':
            self.fail("No course id specified. Re-run with --course flag.")
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        self.inbound_path = os.path.join(self.course_path, 'inbound')
        if not os.path.isdir(self.inbound_path):
            self.fail("Course not found: {}".format(self.inbound_path))
        student_id = self.coursedir.student_id if self.coursedir.student_id else '*'
        pattern = os.path.join(self.inbound_path, '{}+{}+*'.format(student_id, self.coursedir.assignment_id))
        records = []
        for path in sorted(glob.glob(pattern)):
            record = self._path_to_record(path)
            problem = self.owner_problem(path, record['username'])
            if problem:
                self.log.warning("refused, not collected: %s (%s)", os.path.basename(path), problem)
                continue
            records.append(record)
        usergroups = groupby(records, lambda item: item['username'])
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                self.duedate = gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                self.duedate = None
        self.src_records = []
        for group in usergroups.values():
            ordered = self._sort_by_timestamp(group)
            if self.duedate is not None and self.before_duedate:
                ordered = [r for r in ordered if r['timestamp'] <= self.duedate] or ordered
            self.src_records.append(ordered[0])

    def do_copy(self, src, dest, log=None):
        refused = copy_regular(src, dest, include=self.coursedir.include, exclude=self.coursedir.ignore,
                               max_file_bytes=1000 * self.coursedir.max_file_size if self.coursedir.max_file_size else None,
                               max_dir_bytes=1000 * self.coursedir.max_dir_size if self.coursedir.max_dir_size else None)
        for line in refused:
            self.log.warning("refused, not collected: %s/%s", os.path.basename(src), line)
