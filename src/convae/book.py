"""Build the course website (Jupyter Book 1, offline) from the author notebooks in ``solutions/``.

Flow of ``python -m convae.book``:

1. :func:`chapters` lists ``solutions/NN-topic/`` (sorted by name): every chapter folder is a page,
   so a new chapter needs no edit anywhere.
2. :func:`execute_chapter` runs each author notebook with nbclient, in its own folder, so the site
   shows real outputs. Jupyter Book itself never executes (``execute_notebooks: "off"``).
   :func:`build_book` accepts notebooks a test suite has already executed.
3. :func:`prepare_for_book` folds worked solutions behind "Show solution" / "Show answer" and
   deletes nbgrader's hidden tests (and mark schemes); the visible checks stay for self-learners.
4. :func:`stage` writes ``book/_build/src/``: the pages and ``_config.yml`` from ``book/``, each
   chapter as ``<id>/<id>.ipynb`` (with the pictures of its folder) and a generated ``_toc.yml``.
5. ``jupyter-book build --all -W -n --keep-going`` turns any Sphinx warning into a failed build.

Chapters are staged as ``<id>/<id>.ipynb`` (not flat) so that the Binder button, which links to
``<path_to_book>/<page>.ipynb``, opens the student version ``notebooks/<id>/<id>.ipynb``.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

from convae.config import headless_env
from convae.judge import CHAPTER_ID  # one definition of a chapter id

REPO_ROOT = Path(__file__).resolve().parents[2]
CELL_TIMEOUT_S = 600

SOLUTION_MARKERS = {"### BEGIN SOLUTION", "### END SOLUTION"}
HIDDEN_TESTS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
MARK_SCHEME = ("=== BEGIN MARK SCHEME ===", "=== END MARK SCHEME ===")  # grader notes in task cells
SHOW_SOLUTION, HIDE_SOLUTION = "Show solution", "Hide solution"
SHOW_ANSWER = "Show answer"
# Pictures a chapter's markdown may link to; they are staged next to the chapter's notebook.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}


def chapters(root: Path = REPO_ROOT) -> list[str]:
    """Chapter ids: the ``solutions/NN-topic`` folders, in course order (sorted by name)."""
    ids = sorted(p.name for p in (Path(root) / "solutions").iterdir()
                 if p.is_dir() and CHAPTER_ID.fullmatch(p.name))
    for chapter_id in ids:
        if not notebook_path(chapter_id, root).is_file():
            raise FileNotFoundError(f"chapter folder without its notebook: {notebook_path(chapter_id, root)}")
    return ids


def notebook_path(chapter_id: str, root: Path = REPO_ROOT) -> Path:
    return Path(root) / "solutions" / chapter_id / f"{chapter_id}.ipynb"


def execute_chapter(chapter_id: str, root: Path = REPO_ROOT) -> nbformat.NotebookNode:
    """Run the author notebook top to bottom in its chapter folder and return it with outputs.

    The kernel inherits this process's environment, so ``CONVAE_FAST`` is used exactly as set;
    training reports one line per epoch (:func:`convae.config.headless_env`), not a progress bar.
    """
    path = notebook_path(chapter_id, root)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=headless_env())
    return nb


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _is_solution(cell) -> bool:
    return bool(_nbgrader(cell).get("solution", False))


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def _drop_solution_markers(source: str) -> str:
    return "\n".join(line for line in source.split("\n") if line.strip() not in SOLUTION_MARKERS)


def _has_region(source: str, markers: tuple[str, str]) -> bool:
    return any(line.strip() == markers[0] for line in source.split("\n"))


def _drop_region(source: str, markers: tuple[str, str]) -> str:
    """Delete every block from a ``markers[0]`` line through a ``markers[1]`` line, both included."""
    kept, inside = [], False
    for line in source.split("\n"):
        if line.strip() == markers[0]:
            inside = True
        elif line.strip() == markers[1]:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join(kept)


def _dropdown(text: str, title: str) -> str:
    # The fence must be longer than any colon fence inside the answer, or it would close early.
    inner = [len(m.group(0)) for m in re.finditer(r"^\s*:{3,}", text, flags=re.M)]
    fence = ":" * max([3] + [n + 1 for n in inner])
    return f"{fence}{{dropdown}} {title}\n{text.strip()}\n{fence}"


def _add_tag(cell, tag: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def _unique_ids(nb) -> None:
    seen = set()
    for index, cell in enumerate(nb.cells):
        if "id" in cell:
            if cell.id in seen:  # a copied cell keeps its id, and Sphinx needs distinct ones
                cell.id = next(f"cell-{n}" for n in itertools.count(index) if f"cell-{n}" not in seen)
            seen.add(cell.id)


def prepare_for_book(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The web version of an author notebook: solutions folded, hidden tests gone, outputs kept
    (except in cells that had hidden tests: see below).

    Pure: returns a new notebook and leaves ``nb`` untouched.
    """
    nb = copy.deepcopy(nb)
    # Saved widget state makes myst-nb load require.js and the widget manager from CDNs; the book
    # shows static figures instead of live widgets, so it needs none of it.
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        source = _text(cell.source)
        if cell.cell_type == "code":
            if _has_region(source, HIDDEN_TESTS):
                source = _drop_region(source, HIDDEN_TESTS)
                # What the hidden tests printed is merged into the same output stream as the
                # visible checks' lines and cannot be told apart: show no output rather than
                # output that the code on the page did not produce.
                cell.outputs = []
                if not source.strip():  # a cell of hidden tests only would render as an empty box
                    _add_tag(cell, "remove-cell")
            if _is_solution(cell):
                source = _drop_solution_markers(source)
                _add_tag(cell, "hide-input")  # outputs (plots, numbers) stay visible
                # myst-nb reads per-cell render settings from the "mystnb" metadata key.
                cell.metadata["mystnb"] = {**cell.metadata.get("mystnb", {}),
                                           "code_prompt_show": SHOW_SOLUTION,
                                           "code_prompt_hide": HIDE_SOLUTION}
        elif cell.cell_type == "markdown" and _nbgrader(cell):
            source = _drop_region(source, MARK_SCHEME)
            if _is_solution(cell):
                source = _dropdown(_drop_solution_markers(source), SHOW_ANSWER)
        cell.source = source
    _unique_ids(nb)
    return nb


def stage(root: Path, notebooks: dict[str, nbformat.NotebookNode]) -> Path:
    """Write the Jupyter Book source folder ``book/_build/src`` and return it."""
    book = Path(root) / "book"
    staging = book / "_build" / "src"
    if staging.exists():
        shutil.rmtree(staging)  # a chapter removed from solutions/ must leave the site too
    staging.mkdir(parents=True)
    for entry in book.iterdir():
        if entry.name.startswith((".", "_build")) or entry.name == "_toc.yml":
            continue
        copy_entry = shutil.copytree if entry.is_dir() else shutil.copy2
        copy_entry(entry, staging / entry.name)
    for chapter_id, nb in notebooks.items():
        chapter_src, chapter_dst = Path(root) / "solutions" / chapter_id, staging / chapter_id
        chapter_dst.mkdir()
        for image in chapter_src.rglob("*"):
            if image.suffix.lower() in IMAGE_SUFFIXES and ".ipynb_checkpoints" not in image.parts:
                (chapter_dst / image.relative_to(chapter_src)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(image, chapter_dst / image.relative_to(chapter_src))
        nbformat.write(prepare_for_book(nb), chapter_dst / f"{chapter_id}.ipynb")
    toc = {"format": "jb-book", "root": "intro",
           "chapters": [{"file": f"{chapter_id}/{chapter_id}"} for chapter_id in notebooks]}
    (staging / "_toc.yml").write_text(
        "# Generated by convae.book from solutions/ at every build: do not edit.\n"
        + yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    return staging


def build_book(root: Path = REPO_ROOT,
               executed: dict[str, nbformat.NotebookNode] | None = None) -> Path:
    """Build the HTML site and return the path of its ``index.html``.

    ``executed`` maps chapter ids to notebooks that already ran; the others are executed here.
    Raises ``subprocess.CalledProcessError`` when jupyter-book fails, warnings included.
    """
    root = Path(root)
    executed = executed or {}
    notebooks = {cid: executed[cid] if cid in executed else execute_chapter(cid, root)
                 for cid in chapters(root)}
    staging = stage(root, notebooks)
    output = root / "book" / "_build"
    # The jupyter-book next to this Python, so the build uses this environment's packages.
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    if not jupyter_book.exists():
        jupyter_book = shutil.which("jupyter-book") or "jupyter-book"
    subprocess.run([str(jupyter_book), "build", str(staging), "--all", "-W", "-n", "--keep-going",
                    "--path-output", str(output)], check=True)
    return output / "_build" / "html" / "index.html"


def _drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep the first of identical scripts: sphinx-thebe 0.3.1 adds its inline configuration twice
    under Jupyter Book 1, and the second ``const THEBE_JS_URL`` is a console error on every page."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # an inline script's file name is None from one extension and "" from another
        key = (getattr(script, "filename", script) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    """Sphinx extension (``book/_config.yml`` lists it): fixes to the generated pages."""
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)  # after the themes add theirs
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convae.book", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root (default: %(default)s)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        index = build_book(args.root)
    except subprocess.CalledProcessError as error:
        print(f"book build failed (exit {error.returncode}); see the Sphinx warnings above", file=sys.stderr)
        return 1
    print(f"book built in {time.perf_counter() - start:.0f} s: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
