"""Feedback pages cannot run student code (issue 9, item 2).

The page is read back with BeautifulSoup (not with convae.feedback's own reader) and checked for
everything that could run: scripts other than the template's two MathJax ones, event-handler
attributes, javascript:/data: URLs, frames, objects, forms, meta refresh, base, student styles; and
the student's harmless content (text, a table, a plain image, bold HTML output) must still show.
tests/test_grading.py applies the same checks to a page the real pipeline wrote.
"""
from __future__ import annotations

import re

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbgrader.converters import GenerateFeedback
from nbgrader.coursedir import CourseDirectory

from convae.feedback import SafeFeedbackExporter, UnsafeFeedbackError, clean, page_problems
from convae.grading.corpus import HARMLESS_MARKDOWN, MARKDOWN_PAYLOADS, OUTPUT_PAYLOADS, PNG_1PX

MATHJAX = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"
IMAGE_DATA = re.compile(r"^data:image/(png|jpeg|gif|svg\+xml);base64,", re.I)


def active_content(page: str) -> list[str]:
    """Everything in a page that could run code or navigate, in words; [] for an inert page."""
    soup = BeautifulSoup(page, "html.parser")
    found = []
    for script in soup.find_all("script"):
        text = (script.string or "").strip()
        known = (script.attrs == {"src": MATHJAX} and not text) or (
            script.attrs == {"type": "text/x-mathjax-config"} and text.startswith("init_mathjax = function() {")
            and text.endswith("init_mathjax();") and "PWNED" not in text and "document.title" not in text)
        if not known:
            found.append(f"script {script.attrs} {text[:60]!r}")
    for tag in soup.find_all(True):
        if tag.name in {"iframe", "frame", "object", "embed", "applet", "form", "base", "svg", "math", "link"}:
            found.append(f"<{tag.name}>")
        if tag.name == "meta" and set(tag.attrs) != {"charset"}:
            found.append(f"<meta {tag.attrs}>")
        if tag.name == "style" and tag.find_parent("head") is None:
            found.append("a <style> outside the template's head")
        for name, value in tag.attrs.items():
            value = " ".join(value) if isinstance(value, list) else value
            plain = re.sub(r"[\x00-\x20]", "", value).lower()  # entities are decoded once, as a browser does
            if name.lower().startswith("on"):
                found.append(f"{name}= on <{tag.name}>")
            if "javascript:" in plain or "vbscript:" in plain:
                found.append(f"javascript: in {name}= on <{tag.name}>")
            if plain.startswith("data:") and not (tag.name == "img" and name == "src" and IMAGE_DATA.match(plain)):
                found.append(f"data: URL in {name}= on <{tag.name}>")
            if name in {"srcdoc", "http-equiv", "formaction"}:
                found.append(f"{name}= on <{tag.name}>")
            if name in {"id", "name"} and value.lower() in {"mathjax", "root", "init_mathjax"}:
                found.append(f"{name}={value} on <{tag.name}> (clobbers the template's script)")
    return found


def harmless_content_shows(page: str) -> list[str]:
    """What of the student's harmless content is missing from the page."""
    soup = BeautifulSoup(page, "html.parser")
    text = soup.get_text(" ")
    missing = [what for what in ("The mean image looks like a blurred seven.", "digit", "1028")
               if what not in text]
    if not any(b.get_text() == "harmless bold output" for b in soup.find_all("b")):
        missing.append("the bold HTML output")
    if not any(td.get_text() == "1028" for td in soup.find_all("td")):
        missing.append("the table")
    if not any(img.get("src") == f"data:image/png;base64,{PNG_1PX}" and img.get("alt") == "a plain image"
               for img in soup.find_all("img")):
        missing.append("the plain image")
    return missing


def page_text(page: str) -> str:
    """A page's text as a reader sees it, whitespace collapsed: nbconvert highlights code into
    <span>s, so a line of code is found in the page only in its text, never in its HTML."""
    return " ".join(BeautifulSoup(page, "html.parser").get_text("").split())


def leaked_hidden_lines(page: str, source) -> list[str]:
    """The hidden-test lines of the author's notebook ``source`` that a page shows (import lines
    excluded: a visible cell may import the same names)."""
    from convae.nbgrader_hooks import hidden_lines

    text = page_text(page)
    lines = {" ".join(line.split()) for cell in source.cells for line in hidden_lines(cell.source)}
    return sorted(line for line in lines if not line.startswith(("from ", "import ")) and line in text)


def test_a_leaked_hidden_line_is_found_in_a_highlighted_page(exporter):
    """Rendered by the feedback template, a hidden test's code is split into spans (the HTML never
    contains the line) and its text still shows it: the leak checks read the text."""
    from convae.grading.corpus import load

    _, source = load("01-pixels")
    cell = next(c for c in source.cells if "BEGIN HIDDEN TESTS" in c.source)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell.source)])
    page, _ = exporter.from_notebook_node(nb, RESOURCES)
    hidden = [line for line in cell.source.splitlines() if "hidden_check(" in line][0].strip()
    assert hidden not in page, "the template no longer highlights code: the text check is not needed"
    assert hidden in leaked_hidden_lines(page, source)
    assert leaked_hidden_lines(exporter.from_notebook_node(nbformat.v4.new_notebook(), RESOURCES)[0], source) == []


def test_the_course_feedback_preprocessors_remove_every_hidden_line(exporter, tmp_path):
    """nbgrader_config.py's feedback preprocessors (all but GetGrades, which reads a gradebook) on
    every graded cell of chapter 01, its hidden tests and a traceback quoting one included: the
    rendered page's text shows none of them."""
    import copy

    from traitlets.config import PyFileConfigLoader

    from conftest import ROOT
    from convae.grading.corpus import load

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    _, source = load("01-pixels")
    nb = nbformat.v4.new_notebook(cells=[copy.deepcopy(c) for c in source.cells if "BEGIN HIDDEN TESTS" in c.source])
    quoted = nb.cells[0].source.splitlines()
    nb.cells[0].outputs = [nbformat.v4.new_output("error", ename="CheckFailed", evalue="wrong",
                                                  traceback=["Traceback", *quoted])]
    for cell in nb.cells:  # what GetGrades would have read from the gradebook
        cell.metadata.nbgrader.update(score=0, max_score=cell.metadata.nbgrader.get("points", 0))
    resources = dict(RESOURCES, config_dir=str(tmp_path))  # as nbconvert gives it (a custom CSS folder)
    for preprocessor in config.GenerateFeedback.preprocessors:
        if preprocessor.__name__ != "GetGrades":
            nb, resources = preprocessor(config=config).preprocess(nb, resources)
    page, _ = exporter.from_notebook_node(nb, RESOURCES)
    assert "Traceback" in page_text(page), "the traceback itself is still shown"
    assert leaked_hidden_lines(page, source) == []


@pytest.fixture(scope="module")
def exporter():
    """The exporter as nbgrader's generate_feedback builds it (its feedback template and paths)."""
    app = GenerateFeedback(coursedir=CourseDirectory())
    return SafeFeedbackExporter(config=app.config)


RESOURCES = {"nbgrader": {"notebook": "01-pixels", "score": 12, "max_score": 12, "late_penalty": 0}}


def payload_notebook():
    nb = nbformat.v4.new_notebook()
    outputs = [nbformat.v4.new_output("display_data", data=data, metadata=metadata) for data, metadata in OUTPUT_PAYLOADS]
    outputs.append(nbformat.v4.new_output("display_data", data={"application/javascript": "document.title='PWNED-js'"}))
    outputs.append(nbformat.v4.new_output("stream", name="stdout", text="<script>document.title='PWNED-stdout'</script>"))
    attachment = nbformat.v4.new_markdown_cell("![evil](attachment:evil.svg)")
    attachment.attachments = {"evil.svg": {"text/html": "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="}}
    injected = nbformat.v4.new_markdown_cell("a cell whose grade id breaks out of its attribute")
    injected.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "schema_version": 3,
                                     "grade_id": "x\"><script>document.title='PWNED-grade-id'</script>"}
    raw = nbformat.v4.new_raw_cell(f"<img src=x onerror=\"document.title='PWNED-raw'\">")
    raw.metadata["raw_mimetype"] = "text/html"
    nb.cells = [nbformat.v4.new_markdown_cell(HARMLESS_MARKDOWN + "\n" + MARKDOWN_PAYLOADS),
                nbformat.v4.new_code_cell("print('<script>')  # code is shown highlighted", outputs=outputs),
                attachment, injected, raw]
    return nb


def test_plain_nbgrader_feedback_would_run_the_payloads():
    """The payloads are live in nbgrader's own exporter: the checks below can fail."""
    from nbconvert.exporters import HTMLExporter
    app = GenerateFeedback(coursedir=CourseDirectory())
    page, _ = HTMLExporter(config=app.config).from_notebook_node(payload_notebook(), RESOURCES)
    found = active_content(page)
    assert len(found) > 10 and any("PWNED-script" in f for f in found), found


def test_no_payload_survives_and_harmless_content_shows(exporter):
    page, _ = exporter.from_notebook_node(payload_notebook(), RESOURCES)
    assert active_content(page) == []
    assert harmless_content_shows(page) == []
    text = BeautifulSoup(page, "html.parser").get_text(" ")
    assert "<IPython.core.display.Javascript object>" in text and "a widget" in text, "their plain-text form"
    assert "[not shown in feedback: application/javascript]" in text, "an output with no other form says why"


def test_the_templates_mathjax_is_still_there(exporter):
    page, _ = exporter.from_notebook_node(payload_notebook(), RESOURCES)
    scripts = BeautifulSoup(page, "html.parser").find_all("script")
    assert [s.attrs for s in scripts] == [{"src": MATHJAX}, {"type": "text/x-mathjax-config"}]
    assert "$x^2$" in clean("<p>$x^2$</p>"), "maths text reaches MathJax untouched"


def test_a_page_with_active_content_left_is_refused(exporter, monkeypatch):
    """The last line of defence: the exporter reads its page back and refuses to return one that
    still holds active content. Forced here by switching off the scrub before rendering, so that an
    image's width metadata reaches the template, which writes it unquoted (``width=1 onerror=...``)."""
    import convae.feedback
    assert page_problems("<p>fine</p>", exporter.template_scripts({})) == []
    monkeypatch.setattr(convae.feedback, "scrub", lambda nb: None)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("", outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": PNG_1PX}, metadata={"image/png": {"width": "1 onerror=alert(1)"}})])]
    with pytest.raises(UnsafeFeedbackError, match="an event handler onerror= on <img>"):
        exporter.from_notebook_node(nb, RESOURCES)


def test_the_course_config_writes_feedback_with_this_exporter():
    from traitlets.config import PyFileConfigLoader

    from conftest import ROOT
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    app = GenerateFeedback(coursedir=CourseDirectory(config=config), config=config)
    assert app.exporter_class is SafeFeedbackExporter
