"""Contract 5: the book builds from solutions/ with warnings as errors, and shows no hidden test."""
from __future__ import annotations

import nbformat
import pytest

from conftest import CHAPTERS, ROOT, notebook_path
from convae.book import build_book
from test_feedback import leaked_hidden_lines

pytestmark = pytest.mark.slow


def test_book_builds_with_warnings_as_errors(executed):
    index = build_book(ROOT, executed={chapter: executed(chapter) for chapter in CHAPTERS})
    assert index.exists()
    html_dir = index.parent
    for chapter in CHAPTERS:
        page = (html_dir / chapter / f"{chapter}.html").read_text()
        source = nbformat.read(notebook_path("solutions", chapter), as_version=4)
        assert leaked_hidden_lines(page, source) == [], "the book shows hidden tests"
        assert "Show solution" in page, "solutions are folded behind a toggle"
        assert page.count("<img") >= 3, "the chapter's figures are on the page"
