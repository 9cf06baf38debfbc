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
