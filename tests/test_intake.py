"""Intake: which files become grading jobs, and every other file is named in a problem line."""
import zipfile

from convae.grading.intake import collect, lms_name

CHAPTERS = ["01-pixels", "02-convolution"]


def test_lms_names_give_student_and_chapter():
    assert lms_name("smithjane_1234_5678_01-pixels.ipynb", CHAPTERS) == ("smithjane", "01-pixels")
    assert lms_name("smithjane_LATE_1234_5678_02-convolution-2.ipynb", CHAPTERS) == ("smithjane", "02-convolution")
    assert lms_name("01-pixels.ipynb", CHAPTERS) is None
    assert lms_name("smithjane_1234_notes.ipynb", CHAPTERS) is None


def test_folder_layout_counts_every_file(tmp_path):
    subs = tmp_path / "subs"
    for rel in ["amy/01-pixels/01-pixels.ipynb", "amy/01-pixels/old try.ipynb", "bo/01-pixels/draft.ipynb",
                "cy/01-pixels/.ipynb_checkpoints/01-pixels-checkpoint.ipynb", "cy/01-pixels/01-pixels.ipynb",
                "dee/03-nope/03-nope.ipynb", "stray.txt", "bad id!/01-pixels/01-pixels.ipynb"]:
        (subs / rel).parent.mkdir(parents=True, exist_ok=True)
        (subs / rel).write_text("{}")
    intake = collect(subs, CHAPTERS, tmp_path / "scratch")
    jobs = {(j.student, j.chapter): j for j in intake.jobs}
    assert set(jobs) == {("amy", "01-pixels"), ("bo", "01-pixels"), ("cy", "01-pixels")}
    assert jobs[("amy", "01-pixels")].origin == "amy/01-pixels/01-pixels.ipynb"
    assert "2 notebooks for one chapter" in jobs[("amy", "01-pixels")].problems[0]
    assert jobs[("bo", "01-pixels")].problems == [
        "wrong file name 'draft.ipynb' (expected 01-pixels.ipynb): graded anyway"]
    assert len(intake.files) == 8
    used = 2 + 1 + 1  # amy's two files (one graded, one named), bo's, cy's notebook
    assert len(intake.problems) == len(intake.files) - used == 4
    assert any("unknown chapter" in p for p in intake.problems)
    assert any("hidden file ignored" in p for p in intake.problems)
    assert any("unusable student id" in p for p in intake.problems)


def test_a_zip_with_one_wrapping_folder_and_unsafe_paths(tmp_path):
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("class/amy/01-pixels/01-pixels.ipynb", "{}")
        zf.writestr("class/bo_77_88_01-pixels.ipynb", "{}")
        zf.writestr("/etc/evil.ipynb", "{}")
        zf.writestr("__MACOSX/class/._amy", "x")
    intake = collect(archive, CHAPTERS, tmp_path / "scratch")
    assert sorted((j.student, j.chapter) for j in intake.jobs) == [("amy", "01-pixels"), ("bo", "01-pixels")]
    assert intake.problems == ["?\t?\t- unsafe path in the zip, ignored: /etc/evil.ipynb"]


def test_links_and_special_files_are_refused_and_named(tmp_path):
    """Only regular files inside the submissions are read: a symbolic link to the solution (the file
    or a folder above it), a fifo, a socket or a hard link is refused with a line naming it."""
    import os
    import socket
    outside = tmp_path / "solutions" / "01-pixels"
    outside.mkdir(parents=True)
    secret = outside / "01-pixels.ipynb"
    secret.write_text('{"the": "solution"}')
    subs = tmp_path / "subs"
    for student in ("amy", "bo", "cy", "dee", "eve", "fay"):
        (subs / student / "01-pixels").mkdir(parents=True)
    (subs / "amy" / "01-pixels" / "01-pixels.ipynb").write_text("{}")  # the one honest student
    (subs / "bo" / "01-pixels" / "01-pixels.ipynb").symlink_to(secret)
    os.rmdir(subs / "cy" / "01-pixels")
    (subs / "cy" / "01-pixels").symlink_to(outside, target_is_directory=True)
    (subs / "mal").symlink_to(tmp_path / "solutions", target_is_directory=True)  # a whole student folder
    os.mkfifo(subs / "dee" / "01-pixels" / "01-pixels.ipynb")
    os.link(secret, subs / "eve" / "01-pixels" / "01-pixels.ipynb")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(subs / "fay" / "01-pixels" / "01-pixels.ipynb"))
        intake = collect(subs, CHAPTERS, tmp_path / "scratch")
    assert [(j.student, j.chapter, j.origin) for j in intake.jobs] == [("amy", "01-pixels", "amy/01-pixels/01-pixels.ipynb")]
    only = "only regular files are graded"
    assert intake.problems == [  # in the order of the walk: the top folder first
        f"mal\t?\t- refused, not read: mal (a symbolic link to a folder, not followed; {only})",
        f"bo\t01-pixels\t- refused, not read: bo/01-pixels/01-pixels.ipynb (a symbolic link; {only})",
        f"cy\t01-pixels\t- refused, not read: cy/01-pixels (a symbolic link to a folder, not followed; {only})",
        f"dee\t01-pixels\t- refused, not read: dee/01-pixels/01-pixels.ipynb (a fifo; {only})",
        "eve\t01-pixels\t- refused, not read: eve/01-pixels/01-pixels.ipynb "
        "(a hard link, one of 2 names of one file; hand in a copy)",
        f"fay\t01-pixels\t- refused, not read: fay/01-pixels/01-pixels.ipynb (a socket; {only})",
    ]
    assert len(intake.files) == 7, "every refused entry is counted as a file in"
    copied = [p.read_text() for p in (tmp_path / "scratch").rglob("*") if p.is_file()]
    assert copied == ["{}"], "nothing from outside the submissions was copied"


def test_a_file_swapped_for_a_link_after_the_walk_is_not_followed(tmp_path):
    """The copy opens the name with O_NOFOLLOW in the folder the walk holds open: a path replaced by
    a link between looking and reading (a race the student can run) is refused, not read."""
    import os

    from convae.grading.intake import stage
    (tmp_path / "secret.ipynb").write_text("solution")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nb.ipynb").symlink_to(tmp_path / "secret.ipynb")
    fd = os.open(tmp_path / "sub", os.O_RDONLY | os.O_DIRECTORY)
    try:
        copy, problem = stage("nb.ipynb", fd, tmp_path / "copy.ipynb")
    finally:
        os.close(fd)
    assert copy is None and problem.startswith("could not be opened without following links")
    assert not (tmp_path / "copy.ipynb").exists()


def test_a_zip_entry_that_is_a_link_or_device_is_refused(tmp_path):
    import stat
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("amy/01-pixels/01-pixels.ipynb", "{}")
        for name, mode in (("bo/01-pixels/01-pixels.ipynb", stat.S_IFLNK | 0o777),
                           ("cy/01-pixels/01-pixels.ipynb", stat.S_IFIFO | 0o644),
                           ("dee/01-pixels/01-pixels.ipynb", stat.S_IFCHR | 0o644)):
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.create_system = 3  # Unix
            zf.writestr(info, "../../../../solutions/01-pixels/01-pixels.ipynb")  # a link's target is its content
    intake = collect(archive, CHAPTERS, tmp_path / "scratch")
    assert [(j.student, j.chapter) for j in intake.jobs] == [("amy", "01-pixels")]
    only = "(only regular files are graded)"
    assert intake.problems == [
        f"?\t?\t- a symbolic link in the zip, ignored: bo/01-pixels/01-pixels.ipynb {only}",
        f"?\t?\t- a fifo in the zip, ignored: cy/01-pixels/01-pixels.ipynb {only}",
        f"?\t?\t- a character device in the zip, ignored: dee/01-pixels/01-pixels.ipynb {only}",
    ]
    assert not any(p.is_symlink() for p in (tmp_path / "scratch").rglob("*")), "no link was created"


def test_the_exchanges_sidecars_travel_with_the_job_and_anything_else_is_refused(tmp_path):
    """timestamp.txt and submission_secret.txt beside a collected notebook (release_feedback needs
    them) are staged with the job, not reported as stray files; a link, an oversized or a binary
    one is refused with a line and never copied."""
    import os
    subs = tmp_path / "subs"
    for student in ("amy", "bo"):
        (subs / student / "01-pixels").mkdir(parents=True)
        (subs / student / "01-pixels" / "01-pixels.ipynb").write_text("{}")
    (subs / "amy/01-pixels/timestamp.txt").write_text("2026-12-02 10:15:00.123456 UTC")
    (subs / "amy/01-pixels/submission_secret.txt").write_text("4f2c9a0e81b7d3e6\n")
    secret = tmp_path / "instructor-secret.txt"
    secret.write_text("the instructor's")
    os.symlink(secret, subs / "bo/01-pixels/submission_secret.txt")
    (subs / "bo/01-pixels/timestamp.txt").write_text("x" * 1000)
    (subs / "bo/01-pixels/notes.txt").write_text("not a sidecar")
    (subs / "timestamp.txt").write_text("2026-12-02")  # not beside a notebook: a stray file
    intake = collect(subs, CHAPTERS, tmp_path / "scratch")
    jobs = {j.student: j for j in intake.jobs}
    assert {name: path.read_text() for name, path in jobs["amy"].sidecars.items()} == {
        "timestamp.txt": "2026-12-02 10:15:00.123456 UTC", "submission_secret.txt": "4f2c9a0e81b7d3e6\n"}
    assert jobs["amy"].problems == []
    assert jobs["bo"].sidecars == {}
    assert jobs["bo"].problems == ["not a notebook, ignored: bo/01-pixels/notes.txt"]
    assert sorted(intake.problems) == sorted([
        "bo\t01-pixels\t- refused, not read: bo/01-pixels/submission_secret.txt (a symbolic link; only regular files are graded)",
        "bo\t01-pixels\t- refused, not read: bo/01-pixels/timestamp.txt (too large to grade: 1,000 bytes (at most 256))",
        "?\t?\t- cannot tell student and chapter from the path, ignored: timestamp.txt (expected "
        "<student>/<chapter>/<chapter>.ipynb or <student>_..._<chapter>.ipynb)"]), intake.problems
    assert not any(secret.read_text() in p.read_text() for p in (tmp_path / "scratch").rglob("*.txt"))


def test_a_student_with_only_the_exchanges_sidecars_is_graded_as_blank(tmp_path):
    """A collected folder whose notebook was refused (a link) still holds the sidecars: the student
    gets a blank job (0 points, and feedback that can be released), not silence."""
    folder = tmp_path / "subs" / "amy" / "01-pixels"
    folder.mkdir(parents=True)
    (folder / "timestamp.txt").write_text("2026-12-02 10:15:00.123456 UTC")
    (folder / "submission_secret.txt").write_text("4f2c9a0e81b7d3e6")
    (folder / "01-pixels.ipynb").symlink_to(tmp_path / "elsewhere.ipynb")
    intake = collect(tmp_path / "subs", CHAPTERS, tmp_path / "scratch")
    [job] = intake.jobs
    assert (job.student, job.chapter, job.notebook) == ("amy", "01-pixels", None)
    assert sorted(job.sidecars) == ["submission_secret.txt", "timestamp.txt"]
    assert job.problems == ["no notebook submitted (only amy/01-pixels/submission_secret.txt, "
                            "amy/01-pixels/timestamp.txt): graded as blank, 0 points"]
    assert any("01-pixels.ipynb (a symbolic link" in p for p in intake.problems)
