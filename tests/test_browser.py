"""The course as its users meet it, in a real browser: Playwright drives a headless Chromium.

- student: `make lab`'s JupyterLab (fast mode), a chapter's release, Run All, Validate, one exercise
  typed into its cell, Validate again;
- instructor: nbgrader's Create Assignment cell roles on an author notebook, and the formgrader;
- self-learner: the built book, offline (every request to another host is blocked).

Chromium: Debian's /usr/bin/chromium where it exists, else the one `playwright install chromium`
downloads. Without either the tests are skipped with one line, except under CI=true, where they fail.
Screenshots go to the folder printed at the start of the run; look at them.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from conftest import CHAPTERS, ROOT, notebook_path
from test_lab import TOKEN, free_port, graded_cells, wait_for_jupyterlab

pytestmark = pytest.mark.slow
# Chapter 01 (the first a student opens) and chapter 04 (the first that trains Keras models), and
# the autoencoder chapters, where a check judges a rebuilt model: 20-50 s each in fast mode.
STUDENT_CHAPTERS = [c for c in CHAPTERS if c[:2] in ("01", "04", "05", "06", "07")]
INSTRUCTOR_CHAPTER = CHAPTERS[0]
MISSING = ("no Chromium for the browser tests: install one with `apt-get install chromium` "
           "(Debian/Ubuntu) or `.venv/bin/playwright install chromium`")
NOT_WRITTEN = " is not written yet"


def chromium_path(playwright) -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), playwright.chromium.executable_path):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        path = chromium_path(playwright)
        if path is None:
            if os.environ.get("CI") == "true":
                pytest.fail(MISSING)
            pytest.skip(MISSING)
        # --no-sandbox: CI runs as root, where Chromium refuses its sandbox.
        chromium = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(request, tmp_path_factory):
    """shots(page, name): a full-page screenshot into a folder named once, at the start."""
    folder = tmp_path_factory.mktemp("browser-screenshots")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nbrowser screenshots: {folder}")

    def shot(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=path, full_page=False)
        return path

    return shot


@pytest.fixture(scope="class")  # stopped before the book tests, so that they do not share the CPU with it
def lab(tmp_path_factory):
    """`make lab` exactly as the README starts it (fast mode), with a token and no browser window.

    JupyterLab's workspace (the tabs it reopens) and user settings go to a fresh folder: a workspace
    left by an earlier session would reopen, run and autosave the committed notebooks."""
    state = tmp_path_factory.mktemp("lab-state")
    # every cell in the page, not only those in view, so that the test can find a cell's output
    tracker = state / "user-settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    port = free_port()
    args = (f"--no-browser --port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={TOKEN} "
            "--allow-root")
    # its own process group: stopping make must stop the JupyterLab it started
    proc = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=dict(os.environ, CONVAE_FAST="1", JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"),
                                     JUPYTERLAB_SETTINGS_DIR=str(state / "user-settings")))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_jupyterlab(base, proc, seconds=120, what="make lab's JupyterLab")
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def new_page(browser, **context_args):
    """A page that records the browser console's errors and the page's uncaught exceptions."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, **context_args)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


# ---------------------------------------------------------------------------------------------- student

@pytest.fixture(scope="class")
def work():
    """Copies of the chapter folders the tests open, under the lab's root: Validate saves the notebook,
    and the committed release and author notebooks must stay as they are. Returns the folder."""
    folder = ROOT / "tests" / "browser-work"
    shutil.rmtree(folder, ignore_errors=True)
    for chapter in STUDENT_CHAPTERS:
        shutil.copytree(ROOT / "notebooks" / chapter, folder / "notebooks" / chapter)
    shutil.copytree(ROOT / "solutions" / INSTRUCTOR_CHAPTER, folder / "solutions" / INSTRUCTOR_CHAPTER)
    yield folder
    shutil.rmtree(folder)


def open_notebook(page, lab: str, path: str):
    """Open a notebook and wait until all its cells are on the page and its kernel is idle (a busy
    machine first shows an empty placeholder notebook, where Run All would run nothing)."""
    cells = len(nbformat.read(ROOT / path, as_version=4).cells)
    # a workspace of its own: the default one would reopen the notebooks earlier tests opened
    workspace = re.sub(r"[^A-Za-z0-9-]", "-", path)
    page.goto(f"{lab}/lab/workspaces/{workspace}/tree/{path}?token={TOKEN}")
    page.wait_for_function("n => document.querySelectorAll('.jp-Notebook .jp-Cell').length === n",
                           arg=cells, timeout=120_000)
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).first.wait_for(timeout=120_000)


def run_all(page):
    """Run > Run All Cells; in a release it stops at the first check, which fails: return that output."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    failure = page.locator(".jp-OutputArea-output", has_text="CheckFailed").first
    failure.wait_for(timeout=120_000)
    wait_idle(page)
    failure.scroll_into_view_if_needed()
    return failure


def wait_idle(page, timeout_s: float = 300):
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('[*]'))",
        timeout=timeout_s * 1000)


def validate(page) -> list[dict]:
    """Press Validate; return each failure the dialog lists: its text and whether it overflows."""
    page.get_by_role("button", name="Validate").click()
    dialog = page.locator(".jp-Dialog", has_text="Validation Results")
    dialog.wait_for(timeout=300_000)
    failures = dialog.locator("#validation-message .jp-RenderedText pre").evaluate_all(
        """pres => pres.filter(p => p.textContent.includes('CheckFailed')).map(p => ({
               text: p.textContent, overflows: p.scrollWidth > p.clientWidth + 1,
               right: p.getBoundingClientRect().right,
               dialogRight: p.closest('.jp-Dialog-content').getBoundingClientRect().right}))""")
    for failure in failures:  # the checks wrap their messages for the dialog: compare words, not lines
        failure["text"] = " ".join(failure["text"].split())
    return failures


def shut_down_sessions(lab: str):
    """Stop every kernel the page started (closing a tab leaves its kernel running on the server):
    each chapter's fast-mode kernel holds several hundred MB."""
    def call(method, path):
        request = urllib.request.Request(f"{lab}/api/{path}", method=method,
                                         headers={"Authorization": f"token {TOKEN}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    for session in call("GET", "sessions"):
        call("DELETE", f"sessions/{session['id']}")


def close_dialog(page):
    page.locator(".jp-Dialog").get_by_role("button", name="Ok").click()
    page.locator(".jp-Dialog").wait_for(state="detached")


def exercise_names(failures) -> set[str]:
    """The functions the failures name: "rgb_to_gray(red, ...) is not written yet" -> rgb_to_gray."""
    return {f["text"].split("CheckFailed: ", 1)[1].split("(")[0] for f in failures if NOT_WRITTEN in f["text"]}


def solution_source(chapter: str, grade_id: str) -> str:
    nb = nbformat.read(notebook_path("solutions", chapter), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "\n".join(line for line in cell.source.split("\n") if "### BEGIN SOLUTION" not in line
                     and "### END SOLUTION" not in line)


def first_exercise(chapter: str) -> tuple[int, str]:
    """Index and grade id of the release's first code cell to write."""
    nb = nbformat.read(notebook_path("notebooks", chapter), as_version=4)
    return next((i, c.metadata.nbgrader["grade_id"]) for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))


# ------------------------------------------------------------------------------------------- instructor

def cell_role(cell) -> str:
    """The role nbgrader's Create Assignment panel shows for a cell, from its metadata."""
    meta = cell.metadata.get("nbgrader", {})
    if meta.get("task"):
        return "Manually graded task"
    if meta.get("solution"):
        return "Manually graded answer" if meta.get("grade") else "Autograded answer"
    if meta.get("grade"):
        return "Autograded tests"
    return "Read-only" if meta.get("locked") else "-"


class TestInJupyterLab:
    """The student and the instructor, in one `make lab` server."""

    @pytest.mark.parametrize("chapter", STUDENT_CHAPTERS)
    def test_student_validates_a_release_then_writes_an_exercise_and_it_passes(self, browser, lab, work, shots,
                                                                               chapter):
        page = new_page(browser)
        try:
            self.student_works(page, lab, work, shots, chapter)
        finally:
            page.context.close()
            shut_down_sessions(lab)

    def student_works(self, page, lab, work, shots, chapter):
        open_notebook(page, lab, (work / "notebooks" / chapter / f"{chapter}.ipynb").relative_to(ROOT).as_posix())
        first_failure = run_all(page)
        shots(page, f"student-1-{chapter}-after-run-all")
        assert NOT_WRITTEN in " ".join(first_failure.inner_text().split()), first_failure.inner_text()
        # JupyterLab asks about its news feed a few seconds after start, unless the course turned it off
        assert not page.get_by_text("official Jupyter news").count(), "the news popup greets the student"

        failures = validate(page)
        shots(page, f"student-2-{chapter}-validate-unwritten")
        assert len(failures) == graded_cells(chapter), [f["text"] for f in failures]
        assert all(NOT_WRITTEN in f["text"] for f in failures), [f["text"] for f in failures]
        cut = [f["text"] for f in failures if f["overflows"] or f["right"] > f["dialogRight"]]
        assert not cut, f"failures wider than the Validate dialog: {cut}"
        names = exercise_names(failures)
        close_dialog(page)

        index, grade_id = first_exercise(chapter)
        assert grade_id in names, (grade_id, names)
        editor = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".cm-content")
        editor.click()
        page.keyboard.press("Control+A")
        # insert_text: as a paste, so the editor's auto-indent and bracket closing leave the code as written
        page.keyboard.insert_text(solution_source(chapter, grade_id))
        page.keyboard.press("Shift+Enter")  # run the exercise; the focus moves to its check, run that too
        page.keyboard.press("Shift+Enter")
        wait_idle(page)
        check = page.locator(".jp-Notebook .jp-Cell").nth(index + 1)
        check.scroll_into_view_if_needed()
        shots(page, f"student-3-{chapter}-{grade_id}-written")
        assert check.locator(".jp-OutputArea-output").count() and not check.locator(".jp-OutputArea-output", has_text="CheckFailed").count(), \
            check.inner_text()
        failures = validate(page)
        shots(page, f"student-4-{chapter}-validate-again")
        assert len(failures) == graded_cells(chapter) - 1, [f["text"] for f in failures]
        assert exercise_names(failures) == names - {grade_id}
        close_dialog(page)

    def test_instructor_sees_cell_roles_and_the_formgrader_lists_the_chapters(self, browser, lab, work, shots):
        page = new_page(browser)
        chapter = INSTRUCTOR_CHAPTER
        open_notebook(page, lab, (work / "solutions" / chapter / f"{chapter}.ipynb").relative_to(ROOT).as_posix())
        page.locator(".jp-SideBar .lm-TabBar-tab", has_text="Create Assignment").click()
        roles = page.locator(".nbgrader-CellType select")
        roles.first.wait_for(timeout=120_000)
        shown = roles.evaluate_all("sels => sels.map(s => s.options[s.selectedIndex].text)")
        roles.nth(shown.index("Autograded answer")).scroll_into_view_if_needed()
        shots(page, "instructor-1-create-assignment")
        expected = [cell_role(c) for c in nbformat.read(notebook_path("solutions", chapter), as_version=4).cells]
        assert shown == expected, (shown, expected)
        assert {"Autograded answer", "Autograded tests"} <= set(shown), shown

        page.goto(f"{lab}/formgrader?token={TOKEN}")
        page.get_by_text(CHAPTERS[-1]).first.wait_for(timeout=120_000)
        shots(page, "instructor-2-formgrader")
        listed = page.locator("body").inner_text()
        assert all(chapter in listed for chapter in CHAPTERS), listed[:2000]


# ------------------------------------------------------------------------------------------ self-learner

@pytest.fixture(scope="module")
def book_site(executed):
    """The built book served over HTTP on 127.0.0.1: its base URL."""
    from convae.book import build_book

    index = build_book(ROOT, executed={chapter: executed(chapter) for chapter in CHAPTERS})
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(index.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def offline_page(browser):
    """A page on which every request to a host other than the book's is blocked and recorded."""
    page = new_page(browser)
    page.blocked = []

    def route(request_route):
        if urllib.parse.urlsplit(request_route.request.url).hostname == "127.0.0.1":
            request_route.continue_()
        else:
            page.blocked.append(request_route.request.url)
            request_route.abort()

    page.context.route("**/*", route)
    return page


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_book_chapter_reads_offline(browser, book_site, shots, chapter):
    page = offline_page(browser)
    page.goto(f"{book_site}/{chapter}/{chapter}.html", wait_until="load")
    broken = page.evaluate("""async () => Promise.all([...document.images].map(async img => {
        img.loading = 'eager';
        try { await img.decode(); return img.naturalWidth > 0 ? null : img.src; } catch (e) { return img.src; }
    })).then(all => all.filter(Boolean))""")
    assert page.locator("img").count() >= 3 and not broken, f"broken images: {broken}"

    maths = page.locator(".math").count()
    if maths:
        try:
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=15_000)
        except PlaywrightTimeout:
            pytest.fail(f"MathJax did not start on the page; requests to other hosts (blocked): {page.blocked}")
        page.evaluate("() => MathJax.startup.promise")
        raw = page.evaluate("() => [...document.querySelectorAll('.math')]"
                            ".filter(m => !m.querySelector('mjx-container')).map(m => m.textContent)")
        assert not raw, f"{len(raw)} of {maths} equations not typeset: {raw[:3]}"
        source = page.evaluate("() => [...document.scripts].map(s => s.src).filter(s => /mathjax/i.test(s))")
        assert source and all(s.startswith(book_site) for s in source), source
        page.locator(".math").first.scroll_into_view_if_needed()
        shots(page, f"book-{chapter}-maths")

    toggle = page.locator("details summary", has_text="Show solution").first
    toggle.scroll_into_view_if_needed()
    toggle.click()
    assert toggle.locator("xpath=..").get_attribute("open") is not None, "Show solution did not open"
    page.wait_for_timeout(300)
    shots(page, f"book-{chapter}")
    assert not page.blocked, f"the page asked other hosts for: {page.blocked}"
    assert not page.errors, f"browser console errors: {page.errors}"


def test_book_search_finds_a_word_from_chapter_02(browser, book_site, shots):
    chapter = next(c for c in CHAPTERS if c.startswith("02-"))
    word = "correlation"
    page = offline_page(browser)
    page.goto(f"{book_site}/search.html?q={urllib.parse.quote(word)}")
    hits = page.locator("ul.search li a")
    hits.first.wait_for(timeout=30_000)
    shots(page, "book-search")
    assert any(chapter in (href or "") for href in hits.evaluate_all("links => links.map(a => a.href)"))
    assert not page.blocked and not page.errors, (page.blocked, page.errors)
