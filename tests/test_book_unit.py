"""Unit tests of convae.book.prepare_for_book: the web version of an author notebook.

Fast: a hand-made notebook, no kernel and no jupyter-book run.
"""
import copy

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from convae.book import prepare_for_book


def nbgrader(grade_id, *, solution=False, grade=False):
    return {"nbgrader": {"schema_version": 3, "grade_id": grade_id, "solution": solution,
                         "grade": grade, "locked": not solution, "task": False,
                         **({"points": 1} if grade else {})}}


SOLUTION = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION"
VISIBLE_TEST = "assert square(3) == 9\nprint('check passes')"
HIDDEN = "### BEGIN HIDDEN TESTS\nassert square(4) == 16  # hidden\n### END HIDDEN TESTS"


def author_notebook():
    plot_output = new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    return new_notebook(cells=[
        new_markdown_cell("# A chapter"),
        new_code_cell(SOLUTION, metadata=nbgrader("square", solution=True), outputs=[plot_output]),
        new_code_cell(f"{VISIBLE_TEST}\n  {HIDDEN}\nprint('after')", metadata=nbgrader("check", grade=True),
                      outputs=[new_output("stream", text="check passes\n4 hidden cases passed\n")]),
        new_code_cell(HIDDEN, metadata=nbgrader("hidden-only", grade=True)),
        new_code_cell(VISIBLE_TEST, metadata=nbgrader("plain-check", grade=True),
                      outputs=[new_output("stream", text="check passes\n")]),
        new_markdown_cell("Because it **grows**.", metadata=nbgrader("why", solution=True, grade=True)),
    ])


def test_solution_cell_is_folded_without_markers():
    original = author_notebook()
    cell = prepare_for_book(original).cells[1]
    assert cell.source == "def square(x):\n    return x * x"
    assert "hide-input" in cell.metadata["tags"]
    assert cell.metadata["mystnb"] == {"code_prompt_show": "Show solution", "code_prompt_hide": "Hide solution"}
    assert cell.outputs == original.cells[1].outputs  # the plot stays visible


def test_hidden_tests_are_removed_and_visible_checks_kept():
    original = author_notebook()
    book = prepare_for_book(original)
    check, hidden_only, plain_check = book.cells[2], book.cells[3], book.cells[4]
    assert check.source == f"{VISIBLE_TEST}\nprint('after')"
    assert "tags" not in check.metadata  # a test cell stays visible and unfolded
    assert check.outputs == []  # they mixed what the hidden tests printed with the visible checks
    assert plain_check == original.cells[4]  # a test cell without hidden tests keeps its outputs
    assert hidden_only.source == "" and "remove-cell" in hidden_only.metadata["tags"]
    assert not any("HIDDEN" in c.source or "square(4)" in c.source for c in book.cells)


def test_markdown_answer_goes_into_a_dropdown():
    answer = prepare_for_book(author_notebook()).cells[5]
    assert answer.source == ":::{dropdown} Show answer\nBecause it **grows**.\n:::"


def test_dropdown_fence_outgrows_a_fence_inside_the_answer():
    nb = new_notebook(cells=[new_markdown_cell(":::{note}\nx\n:::", metadata=nbgrader("a", solution=True))])
    assert prepare_for_book(nb).cells[0].source == "::::{dropdown} Show answer\n:::{note}\nx\n:::\n::::"


def test_mark_scheme_is_removed_from_a_task_cell():
    task = new_markdown_cell("Describe the plot.\n=== BEGIN MARK SCHEME ===\n2 points for\n=== END MARK SCHEME ===",
                             metadata=nbgrader("task"))
    assert prepare_for_book(new_notebook(cells=[task])).cells[0].source == "Describe the plot."


def test_input_notebook_is_not_modified():
    original = author_notebook()
    before = copy.deepcopy(original)
    prepare_for_book(original)
    assert original == before


def test_notebook_without_nbgrader_metadata_is_unchanged():
    plain = new_notebook(cells=[new_markdown_cell("# Title\n\n### BEGIN SOLUTION is just text here"),
                                new_code_cell("x = 1\nprint(x)", outputs=[new_output("stream", text="1\n")])])
    assert prepare_for_book(plain) == plain


def test_duplicate_cell_ids_are_made_unique():
    nb = new_notebook(cells=[new_code_cell("a = 1"), new_code_cell("b = 2"), new_code_cell("c = 3")])
    nb.cells[1].id = nb.cells[0].id
    nb.cells[2].id = "cell-1"  # a later cell already has the id the renamed one gets
    book = prepare_for_book(nb)
    assert len({cell.id for cell in book.cells}) == 3
    assert book.cells[0].id == nb.cells[0].id
    nbformat.validate(book)
