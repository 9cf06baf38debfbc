"""nbgrader's course directory, mapped onto this repository (see grading/README.md).

Loaded by every `nbgrader ...` command run from the repository root and by the nbgrader
extensions of a JupyterLab started there (`make lab`). Paths are relative to this file, so a copy of
the repository elsewhere (a test's temporary course) is a course of its own.
"""
import os

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, GetGrades,
                                    IgnorePattern, LimitOutput, SaveAutoGrades)

from convae.feedback import SafeFeedbackExporter
from convae.nbgrader_hooks import LimitedExecute, ScrubHiddenTestsFromOutputs, StderrIsNotAnError
from convae.paths import release_only_notebooks

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
# Only the notebook is released: nothing else in a chapter folder (a checkpoint, a cache) travels.
# `include` is read by nbgrader's exchange only (release, fetch, submit, collect); generate_assignment
# copies every file of the source folder that `ignore` does not name, so the hook removes the rest
# from the release (keeping assets a notebook lists under "convae": {"assets": [...]}) and says so.
c.CourseDirectory.include = ["*.ipynb"]
# The instructor's `nbgrader collect` from a shared exchange (JupyterHub): nbgrader's own follows a
# link a student plants in inbound and lets one oversized file stop the batch; this one refuses both
# with a line and keeps the exchange's timestamp.txt and submission_secret.txt (grading/README.md, "Collect").
c.ExchangeFactory.collect = "convae.grading.exchange.SafeCollect"
c.GenerateAssignment.post_convert_hook = release_only_notebooks(os.path.join(here, "notebooks"))

# Cells that train a network need far more than nbgrader's default 30 s.
c.Execute.timeout = 600
# nbgrader's own autograde steps, with Execute swapped for one that caps output as it arrives (a
# print loop must not fill the grader's memory), and stderr in a graded cell no longer a failure
# (nbgrader would give a correct answer that logs a warning 0 points).
c.Autograde.autograde_preprocessors = [
    LimitedExecute, StderrIsNotAnError, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
    AssignLatePenalties, CheckCellMetadata,
]
# A student who deletes a graded cell gets it back (scored as the release scores it) instead of a
# silent "needs manual grading".
c.OverwriteCells.add_missing_cells = True
# Feedback must never show hidden tests: not in the cell (ClearHiddenTests), nor quoted in a
# traceback (ScrubHiddenTestsFromOutputs, which needs the markers, so it runs first).
c.GenerateFeedback.preprocessors = [
    GetGrades, ScrubHiddenTestsFromOutputs, ClearHiddenTests, CSSHTMLHeaderPreprocessor,
]
# The instructor opens feedback in the browser that holds their JupyterHub session: nothing the
# student wrote or displayed may run there (no script, event handler, javascript: URL, frame, form).
c.GenerateFeedback.exporter_class = SafeFeedbackExporter
