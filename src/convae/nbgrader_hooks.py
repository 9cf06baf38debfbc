"""nbgrader preprocessors that the course adds to nbgrader's own (see nbgrader_config.py)."""
from __future__ import annotations

import json
import re

import nbformat
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer

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


class LimitedExecute(Execute):
    """nbgrader's Execute with a cap on how much output one cell may produce.

    nbgrader's LimitOutput trims outputs only *after* the notebook ran, so a cell that prints in a
    loop first fills the grader's memory until the cell times out. This drops output beyond
    ``max_output_chars`` per cell as it arrives, and says so once in the cell's output.
    """

    max_output_chars = Integer(200_000, help="characters of output kept per cell").tag(config=True)

    def preprocess(self, nb, resources=None, *args, **kwargs):
        self._chars_per_cell: dict[int, int] = {}  # one instance may run several notebooks
        return super().preprocess(nb, resources, *args, **kwargs)

    def output(self, outs, msg, display_id, cell_index):
        before = self._chars_per_cell.get(cell_index, 0)
        after = self._chars_per_cell[cell_index] = before + len(json.dumps(msg.get("content", {})))
        if after <= self.max_output_chars:
            return super().output(outs, msg, display_id, cell_index)
        if before <= self.max_output_chars:  # the first message over the cap: say so, once
            outs.append(nbformat.v4.new_output(
                "stream", name="stdout",
                text=f"\n[output truncated by the grader: more than {self.max_output_chars:,} characters]\n"))
        return None
