"""nbgrader preprocessors that the course adds to nbgrader's own (see nbgrader_config.py)."""
from __future__ import annotations

import json
import re
import time

import nbformat
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer, Unicode

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
    # The grading worker reads it for the chapter limits (convae.grading.limits) and to say where a
    # slow or stopped job spent its time: a line when a code cell starts, another when it ends.
    timings_file = Unicode("", help="append per-cell timings here as JSON lines; empty: none").tag(config=True)

    def preprocess(self, nb, resources=None, *args, **kwargs):
        self._chars_per_cell: dict[int, int] = {}  # one instance may run several notebooks
        self._started = time.monotonic()
        return super().preprocess(nb, resources, *args, **kwargs)

    def _timing(self, **record):
        if self.timings_file:
            with open(self.timings_file, "a") as fh:
                fh.write(json.dumps(record) + "\n")

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return super().preprocess_cell(cell, resources, index)
        name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id") or f"#{index}"
        start = time.monotonic()
        self._timing(cell=index, name=name, at=round(start - self._started, 3))
        result = super().preprocess_cell(cell, resources, index)
        self._timing(cell=index, name=name, seconds=round(time.monotonic() - start, 3))
        return result

    def output(self, outs, msg, display_id, cell_index):
        before = self._chars_per_cell.get(cell_index, 0)
        after = self._chars_per_cell[cell_index] = before + len(json.dumps(msg.get("content", {})))
        if after <= self.max_output_chars:
            return super().output(outs, msg, display_id, cell_index)
        if before <= self.max_output_chars:  # the first message over the cap: say so, once
            # display data, not a stream: nbgrader's LimitOutput trims streams and would cut this
            outs.append(nbformat.v4.new_output("display_data", data={
                "text/plain": f"[output truncated by the grader: more than {self.max_output_chars:,} characters]"}))
        return None


class StderrIsNotAnError(NbGraderPreprocessor):
    """Keep a graded cell's stderr output, but not as a failure.

    nbgrader gives 0 points to a test cell with *any* stderr output, so a correct answer that logs
    a warning (a Keras UserWarning, a debug print) would be zeroed. Correctness is what the checks
    and the judge decide; this relabels stderr as stdout, marked ``[stderr]``, before scores are
    saved. Errors still fail.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("name") == "stderr":
                    output["name"] = "stdout"
                    text = output.get("text", "")
                    text = "".join(text) if isinstance(text, list) else text
                    output["text"] = "".join(f"[stderr] {line}" for line in text.splitlines(keepends=True))
        return cell, resources
