"""nbgrader preprocessors that the course adds to nbgrader's own (see nbgrader_config.py)."""
from __future__ import annotations

import re

from nbgrader.preprocessors import NbGraderPreprocessor

ANSI = re.compile(r"\x1b\[[0-9;]*m")
BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def hidden_lines(source: str) -> list[str]:
    """The stripped, non-empty lines of every hidden-test region of a cell, markers included."""
    lines, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            inside = True
        if inside and stripped:
            lines.append(stripped)
        if stripped == END:
            inside = False
    return lines


class ScrubHiddenTestsFromOutputs(NbGraderPreprocessor):
    """Remove hidden-test code from tracebacks before feedback is rendered.

    nbgrader's ClearHiddenTests clears the hidden region from a cell's *source*, but IPython's
    traceback in the cell's *output* quotes the source lines around the failing line, so the
    feedback HTML would still show hidden test code. This drops every traceback line that quotes a
    hidden line. Run it before ClearHiddenTests, which still needs the markers to find the region.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        secret = hidden_lines(cell.source)
        if not secret:
            return cell, resources
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [
                    line for line in output.get("traceback", [])
                    if not any(s in ANSI.sub("", line) for s in secret)
                ]
        return cell, resources
