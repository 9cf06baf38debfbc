"""Grading a whole class: intake, sandboxed parallel workers, a judge outside the sandbox, merge.

``make grade SUBMISSIONS=...`` runs :mod:`convae.grading.run`; each student and chapter is one
:mod:`convae.grading.worker` process; see grading/README.md for the design and what each limit
guards against.
"""
