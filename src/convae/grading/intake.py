"""Turn a class's submissions (a folder or an LMS zip) into grading jobs, losing nothing.

Accepted layouts (see grading/README.md):

* nbgrader's submitted layout: ``<student>/<chapter-id>/<chapter-id>.ipynb`` (in a folder, or in a
  zip, optionally inside one top folder);
* an LMS download zip of flat files named ``<student>_<anything>_<chapter-id>.ipynb`` — Canvas
  writes ``<name>_<userid>_<fileid>_<original name>``, with ``_LATE_`` for late work and ``-1``,
  ``-2`` appended to resubmitted names. The student id is the text before the first ``_``.

Every file seen ends up either in a job or in a problem line; a wrongly named notebook in the right
folder is graded (and the name reported), since a rename should not cost a student their grade.
"""
from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MAX_FILE_BYTES = 100 * 2**20
MAX_ZIP_BYTES = 2 * 2**30


@dataclass
class Job:
    student: str
    chapter: str
    notebook: Path | None  # None: the student handed in files, but no notebook for this chapter
    origin: str
    problems: list[str] = field(default_factory=list)


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


def unpack(archive: Path, dest: Path, chapters: list[str], intake: Intake) -> Path:
    """Extract a zip safely: no absolute or ``..`` paths, no zip bombs."""
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir() or info.filename.startswith("__MACOSX/"):
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
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no submissions at {source}")
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise ValueError(f"{source} is neither a folder nor a zip file")
        source = unpack(source, scratch / "unzipped", chapters, intake)
    candidates: dict[tuple[str, str], list[tuple[Path, str]]] = {}
    others: dict[tuple[str, str], list[str]] = {}  # files that are not notebooks
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source)
        origin = str(rel)
        intake.files.append(origin)
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
        if not name.endswith(".ipynb"):
            others.setdefault((student, chapter), []).append(origin)
            continue
        candidates.setdefault((student, chapter), []).append((path, origin))
    for (student, chapter), files in sorted(candidates.items()):
        exact = [f for f in files if f[0].name == f"{chapter}.ipynb"]
        chosen = exact[-1] if exact else files[-1]
        problems = []
        if len(files) > 1:
            names = ", ".join(origin for _, origin in files)
            problems.append(f"{len(files)} notebooks for one chapter ({names}): graded {chosen[1]}")
        elif not exact and len(Path(chosen[1]).parts) == 3:
            problems.append(f"wrong file name {chosen[0].name!r} (expected {chapter}.ipynb): graded anyway")
        if (student, chapter) in others:
            problems.append(f"not a notebook, ignored: {', '.join(others.pop((student, chapter)))}")
        copy = scratch / "notebooks" / student / f"{chapter}.ipynb"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(chosen[0], copy)
        intake.jobs.append(Job(student, chapter, copy, chosen[1], problems))
    for (student, chapter), files in sorted(others.items()):  # a student who sent no notebook still gets a grade
        intake.jobs.append(Job(student, chapter, None, files[0],
                               [f"no notebook submitted (only {', '.join(files)}): graded as blank, 0 points"]))
    return intake
