"""nbgrader's course directory, mapped onto this repository (see grading/README.md).

Loaded by every `nbgrader ...` command run from the repository root and by the nbgrader
extensions of a JupyterLab started there (`make lab`). Paths are relative to this file, so a copy of
the repository elsewhere (a test's temporary course) is a course of its own.
"""
import os

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from convae.nbgrader_hooks import ScrubHiddenTestsFromOutputs

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)
here = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "convae"
c.CourseDirectory.root = here
c.CourseDirectory.source_directory = "solutions"        # the author's notebooks
c.CourseDirectory.release_directory = "notebooks"       # the student versions (committed)
c.CourseDirectory.submitted_directory = "grading/submitted"
c.CourseDirectory.autograded_directory = "grading/autograded"
c.CourseDirectory.feedback_directory = "grading/feedback"
c.CourseDirectory.solution_directory = "grading/solution"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(here, "grading", "gradebook.db")
# Only the notebook is released: nothing else in a chapter folder (checkpoints, caches) travels.
c.CourseDirectory.include = ["*.ipynb"]

# Cells that train a network need far more than nbgrader's default 30 s.
c.Execute.timeout = 600
# A student who deletes a graded cell gets it back (scored as the release scores it) instead of a
# silent "needs manual grading".
c.OverwriteCells.add_missing_cells = True
# Feedback must never show hidden tests: not in the cell (ClearHiddenTests), nor quoted in a
# traceback (ScrubHiddenTestsFromOutputs, which needs the markers, so it runs first).
c.GenerateFeedback.preprocessors = [
    GetGrades, ScrubHiddenTestsFromOutputs, ClearHiddenTests, CSSHTMLHeaderPreprocessor,
]
