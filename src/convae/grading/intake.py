"""Turn a class's submissions (a folder or an LMS zip) into grading jobs, losing nothing.

Accepted layouts (see grading/README.md):

* nbgrader's submitted layout: ``<student>/<chapter-id>/<chapter-id>.ipynb`` (in a folder, or in a
  zip, optionally inside one top folder);
* an LMS download zip of flat files named ``<student>_<anything>_<chapter-id>.ipynb`` — Canvas
  writes ``<name>_<userid>_<fileid>_<original name>``, with ``_LATE_`` for late work and ``-1``,
  ``-2`` appended to resubmitted names. The student id is the text before the first ``_``.

Every file seen ends up either in a job or in a problem line; a wrongly named notebook in the right
folder is graded (and the name reported), since a rename should not cost a student their grade.

Only regular files are read, and only inside the submissions root: wherever students can write into
the collected folder (a shared exchange on JupyterHub), a symbolic link to ``solutions/`` would
otherwise be graded as the file it points to. A link (to a file or a folder), a fifo, a socket or a
device is refused with a line naming it, and never opened or followed; so is a file with more than
one hard link, and, in a zip, any entry whose Unix mode is not a regular file or a folder. The walk
holds each folder open (``os.fwalk``) and every file is opened with ``O_NOFOLLOW`` relative to its
folder and copied from that descriptor after ``fstat`` says it is regular, so swapping a path for a
link between the check and the read changes nothing.

nbgrader's ``collect`` also leaves ``timestamp.txt`` and ``submission_secret.txt`` beside each
notebook; ``release_feedback`` needs both beside the feedback page (the secret names the released
page, so that only its student finds it). They are read like notebooks, from the held folder, and
only when each is a short line of printable ASCII; anything else is refused with a line.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MAX_FILE_BYTES = 100 * 2**20
MAX_ZIP_BYTES = 2 * 2**30
#: the files nbgrader's exchange puts beside a collected notebook, carried to its feedback
SIDECARS = ("timestamp.txt", "submission_secret.txt")
MAX_SIDECAR_BYTES = 256


@dataclass
class Job:
    student: str
    chapter: str
    notebook: Path | None  # None: the student handed in files, but no notebook for this chapter
    origin: str
    problems: list[str] = field(default_factory=list)
    sidecars: dict[str, Path] = field(default_factory=dict)  # name -> staged copy (see SIDECARS)


@dataclass
class Intake:
    jobs: list[Job] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # files that could not become a job
    files: list[str] = field(default_factory=list)     # every file seen


def lms_name(name: str, chapters: list[str]):
    """(student, chapter) from an LMS file name, or None."""
    for chapter in sorted(chapters, key=len, reverse=True):
        match = re.match(rf"^([^_]+)_(?:.*_)?{re.escape(chapter)}(?:-\d+)?\.ipynb$", name)
        if match:
            return match.group(1), chapter
    return None


def not_regular(mode: int) -> str | None:
    """What a file of this mode is, in words, when it is not a regular file (None when it is)."""
    for test, name in ((stat.S_ISREG, None), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "of an unknown kind"


ONLY_REGULAR = "only regular files are graded"


def refused(rel: Path, chapters: list[str], why: str, folder: bool = False) -> str:
    """The intake problem line for a file that is not read, with student and chapter where the path tells."""
    parts = rel.parts
    student = parts[0] if len(parts) > 1 or folder else "?"
    chapter = parts[1] if (len(parts) > 2 or folder) and len(parts) > 1 and parts[1] in chapters else "?"
    return f"{student}\t{chapter}\t- refused, not read: {rel} ({why})"


def regular_files(root: Path, chapters: list[str], intake: Intake, staging: Path) -> list[tuple[Path, Path | None]]:
    """(relative path, staged copy or None) for every regular file under ``root``, in name order.

    Notebooks and the exchange's sidecar files are copied into ``staging`` while their folder is held
    open; other files are only named, never opened. Everything else is refused in ``intake.problems``; all count in ``intake.files``.
    """
    staging.mkdir(parents=True, exist_ok=True)
    found = []
    for top, dirs, files, top_fd in os.fwalk(root, follow_symlinks=False):
        here = Path(top).relative_to(root)
        for name in sorted(dirs + files):
            rel = here / name
            try:
                mode = os.stat(name, dir_fd=top_fd, follow_symlinks=False).st_mode
            except OSError as err:  # removed while we looked
                intake.files.append(str(rel))
                intake.problems.append(refused(rel, chapters, err.strerror))
                continue
            if stat.S_ISDIR(mode):
                continue
            intake.files.append(str(rel))
            if name in dirs:  # fwalk lists a link to a folder among the folders, and does not enter it
                dirs.remove(name)
                intake.problems.append(refused(rel, chapters, f"a symbolic link to a folder, not followed; {ONLY_REGULAR}",
                                                     folder=True))
                continue
            if not_regular(mode):
                intake.problems.append(refused(rel, chapters, f"{not_regular(mode)}; {ONLY_REGULAR}"))
                continue
            copy, problem = None, None
            if name.endswith(".ipynb") and not any(part.startswith(".") for part in rel.parts):
                copy, problem = stage(name, top_fd, staging / f"{len(found):06d}.ipynb")
            elif name in SIDECARS and len(rel.parts) == 3:
                copy, problem = stage(name, top_fd, staging / f"{len(found):06d}.txt", MAX_SIDECAR_BYTES)
                if copy and not sidecar_text(copy.read_bytes()):
                    copy.unlink()
                    copy, problem = None, "not one short line of printable text"
            if problem:
                intake.problems.append(refused(rel, chapters, problem))
                continue
            found.append((rel, copy))
        dirs.sort()
    return sorted(found)


def sidecar_text(data: bytes) -> bool:
    """Whether an exchange sidecar's bytes are what nbgrader writes: one line of printable ASCII."""
    text = data.rstrip(b"\n")
    return 0 < len(text) and all(32 <= byte < 127 for byte in text)


def stage(name: str, dir_fd: int, copy: Path, max_bytes: int = MAX_FILE_BYTES) -> tuple[Path | None, str | None]:
    """Copy one file, opened without following links, if it is (still) a regular file of sane size:
    (the copy, None), or (None, why not)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as err:  # ELOOP: it became a link after the walk looked at it
        return None, f"could not be opened without following links: {err.strerror}"
    with os.fdopen(fd, "rb") as src:
        info = os.fstat(src.fileno())
        if not_regular(info.st_mode):
            return None, f"{not_regular(info.st_mode)}; {ONLY_REGULAR}"
        if info.st_nlink > 1:
            # another name of a file that may lie outside the submissions (a solution, another
            # student's work); nbgrader's collect and zips give every file one name of its own
            return None, f"a hard link, one of {info.st_nlink} names of one file; hand in a copy"
        if info.st_size > max_bytes:
            return None, f"too large to grade: {info.st_size:,} bytes (at most {max_bytes:,})"
        data = src.read(max_bytes + 1)  # bounded: the file may grow after fstat
    if len(data) > max_bytes:
        return None, f"too large to grade: more than {max_bytes:,} bytes"
    copy.write_bytes(data)
    return copy, None


def unpack(archive: Path, dest: Path, chapters: list[str], intake: Intake) -> Path:
    """Extract a zip safely: no absolute or ``..`` paths, no zip bombs."""
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir() or info.filename.startswith("__MACOSX/"):
                continue
            mode = info.external_attr >> 16  # the Unix mode; its file type is 0 when the zip was made elsewhere
            if stat.S_IFMT(mode) and not_regular(mode):
                intake.files.append(info.filename)
                intake.problems.append(f"?\t?\t- {not_regular(mode)} in the zip, ignored: {info.filename} "
                                       f"({ONLY_REGULAR})")
                continue
            parts = Path(info.filename).parts
            if info.filename.startswith("/") or ".." in parts:
                intake.files.append(info.filename)
                intake.problems.append(f"?\t?\t- unsafe path in the zip, ignored: {info.filename}")
                continue
            total += info.file_size
            if info.file_size > MAX_FILE_BYTES or total > MAX_ZIP_BYTES:
                intake.files.append(info.filename)
                intake.problems.append(f"?\t?\t- too large to grade, ignored: {info.filename} ({info.file_size:,} bytes)")
                continue
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        inner = list(entries[0].iterdir())
        # a wrapping folder holds student folders or LMS files, not chapter folders: step inside
        if inner and not any(p.is_dir() and p.name in chapters for p in inner):
            return entries[0]
    return dest


def collect(source: Path, chapters: list[str], scratch: Path) -> Intake:
    intake = Intake()
    source = Path(source).resolve()  # the root the instructor named may itself be a link; nothing inside it may
    if not source.exists():
        raise FileNotFoundError(f"no submissions at {source}")
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise ValueError(f"{source} is neither a folder nor a zip file")
        source = unpack(source, scratch / "unzipped", chapters, intake)
    candidates: dict[tuple[str, str], list[tuple[Path, str]]] = {}
    others: dict[tuple[str, str], list[str]] = {}  # files that are not notebooks
    sidecars: dict[tuple[str, str], dict[str, Path]] = {}
    for rel, staged in regular_files(source, chapters, intake, scratch / "staged"):
        origin = str(rel)
        parts = rel.parts
        if any(part.startswith(".") for part in parts):  # .ipynb_checkpoints, .DS_Store
            intake.problems.append(f"?\t?\t- hidden file ignored: {origin}")
            continue
        if len(parts) == 3:
            student, chapter, name = parts
        elif len(parts) == 1 and lms_name(parts[0], chapters):
            (student, chapter), name = lms_name(parts[0], chapters), parts[0]
        else:
            intake.problems.append(f"?\t?\t- cannot tell student and chapter from the path, ignored: {origin} "
                                   "(expected <student>/<chapter>/<chapter>.ipynb or <student>_..._<chapter>.ipynb)")
            continue
        if chapter not in chapters:
            intake.problems.append(f"{student}\t{chapter}\t- unknown chapter, ignored: {origin} (chapters: {', '.join(chapters)})")
            continue
        if not STUDENT_ID.match(student):
            intake.problems.append(f"?\t{chapter}\t- unusable student id {student!r}, ignored: {origin}")
            continue
        if staged and name in SIDECARS:
            sidecars.setdefault((student, chapter), {})[name] = staged
            continue
        if not name.endswith(".ipynb"):
            others.setdefault((student, chapter), []).append(origin)
            continue
        candidates.setdefault((student, chapter), []).append((staged, origin))
    for (student, chapter), files in sorted(candidates.items()):
        exact = [f for f in files if Path(f[1]).name == f"{chapter}.ipynb"]
        chosen = exact[-1] if exact else files[-1]
        problems = []
        if len(files) > 1:
            names = ", ".join(origin for _, origin in files)
            problems.append(f"{len(files)} notebooks for one chapter ({names}): graded {chosen[1]}")
        elif not exact and len(Path(chosen[1]).parts) == 3:
            problems.append(f"wrong file name {Path(chosen[1]).name!r} (expected {chapter}.ipynb): graded anyway")
        if (student, chapter) in others:
            problems.append(f"not a notebook, ignored: {', '.join(others.pop((student, chapter)))}")
        copy = scratch / "notebooks" / student / f"{chapter}.ipynb"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(chosen[0], copy)
        intake.jobs.append(Job(student, chapter, copy, chosen[1], problems, sidecars.get((student, chapter), {})))
    # a student who sent no notebook (other files, or only the exchange's sidecars) still gets a grade
    for student, chapter in sorted((set(others) | set(sidecars)) - set(candidates)):
        files = others.get((student, chapter), []) + [f"{student}/{chapter}/{name}" for name in sidecars.get((student, chapter), {})]
        intake.jobs.append(Job(student, chapter, None, files[0],
                               [f"no notebook submitted (only {', '.join(files)}): graded as blank, 0 points"],
                               sidecars.get((student, chapter), {})))
    return intake
