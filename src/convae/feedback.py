"""Feedback pages that cannot run student code.

The grader writes one HTML page per student and chapter (nbgrader's ``generate_feedback``), and the
instructor opens it in the browser that holds their JupyterHub session. Everything in it that the
student controls — markdown cells, the outputs their code displayed (``text/html``, ``text/markdown``,
SVG, JavaScript, widgets), attachments, output and cell metadata — is made inert here:

* :class:`SafeFeedbackExporter` (``c.GenerateFeedback.exporter_class`` in ``nbgrader_config.py``)
  is nbgrader's HTML exporter with ``sanitize_html`` on (no JavaScript or widget output is written),
  markdown cells cleaned after rendering (nbgrader's feedback template renders them raw), a stricter
  :func:`clean` for every HTML fragment, and the notebook scrubbed before rendering (:func:`scrub`);
* after rendering, :func:`page_problems` reads the page back and the export fails if anything
  active is left that the template itself did not put there: the grader then writes its plain
  failure page, and the log says the feedback could not be generated.

A Content-Security-Policy against inline script is not an option: the template's own MathJax
configuration is an inline script. MathJax itself is loaded with its ``Safe`` extension (nbconvert's
default URL), which keeps ``\\href{javascript:...}`` and friends out of rendered maths.
"""
from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import bleach
import nbformat
from bleach.css_sanitizer import CSSSanitizer
from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from traitlets import default

# What student HTML may use: text formatting, lists, tables, images, links. No script, style, form,
# iframe, object, embed, base, meta, svg or math elements; no id or name (they can clobber the page's
# globals, e.g. ``window.MathJax`` that the template's script reads).
TAGS = frozenset("""a abbr b blockquote br caption cite code col colgroup dd del details dfn div dl dt em
figcaption figure h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strong sub
summary sup table tbody td tfoot th thead tr tt u ul var""".split())
GLOBAL_ATTRIBUTES = frozenset({"class", "title", "style", "align", "lang", "dir"})
ATTRIBUTES = {"a": {"href"}, "img": {"src", "alt", "width", "height"}, "td": {"colspan", "rowspan"},
              "th": {"colspan", "rowspan", "scope"}, "ol": {"start", "type"}, "col": {"span"},
              "colgroup": {"span"}, "details": {"open"}}
IMAGE_DATA = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml)[;,]", re.I)
IMAGE_MIME = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"})
# output mime types the template may render; everything else (JavaScript, widgets, PDFs...) is dropped
OUTPUT_MIME = frozenset({"text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg",
                         "image/svg+xml", "application/json"})
GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


CSS_ACTIVE = re.compile(r"expression\s*\(|url\s*\(|javascript:|behavior\s*:|binding\s*:", re.I)


def _allowed(tag: str, name: str, value: str) -> bool:
    if name == "style" and CSS_ACTIVE.search(value):
        return False  # old browsers ran expression() and url(javascript:); bleach would keep width: expression(...)
    if name in GLOBAL_ATTRIBUTES or name in ATTRIBUTES.get(tag, ()):
        # data: only for an image's own picture (the embedded plots and attachments); bleach has
        # already refused every other scheme but http, https and mailto
        return not (value.strip().lower().startswith("data:") and not (tag == "img" and name == "src"
                                                                          and IMAGE_DATA.match(value.strip())))
    return False


_CLEANER = bleach.Cleaner(tags=TAGS, attributes=_allowed, protocols={"http", "https", "mailto", "data"},
                          strip=True, strip_comments=True, css_sanitizer=CSSSanitizer())


def clean(fragment) -> str:
    """A student's HTML fragment with only inert content left (see :data:`TAGS`)."""
    fragment = fragment.decode() if isinstance(fragment, bytes) else str(fragment)
    return _CLEANER.clean(fragment)


def _number(value):
    """A width or height, as the template writes it unquoted into an attribute: digits only."""
    return value if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) else None


def scrub(nb) -> None:
    """Make the parts of a notebook that the template writes without cleaning them safe, in place:
    output metadata (``width=`` and ``height=`` are written unquoted, ``isolated`` wraps HTML in an
    iframe), output mime types the template would run, attachment mime types, grade ids."""
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta and "grade_id" in meta and not GRADE_ID.match(str(meta["grade_id"])):
            meta["grade_id"] = re.sub(r"[^A-Za-z0-9_-]", "_", str(meta["grade_id"]))
        for name, bundle in list(cell.get("attachments", {}).items()):
            # an attachment becomes a data: URL of its own mime type; one that is no image is shown
            # as an empty one (removing it would make nbconvert fail on the reference)
            cell.attachments[name] = {k: v for k, v in bundle.items() if k in IMAGE_MIME} or {"image/png": ""}
        for output in cell.get("outputs", []):
            if "data" in output:
                kept = {k: v for k, v in output["data"].items() if k in OUTPUT_MIME}
                dropped = sorted(set(output["data"]) - set(kept))
                output["data"] = kept or {"text/plain": f"[not shown in feedback: {', '.join(dropped)}]"}
            if "metadata" in output:
                kept = {}
                for mime, entry in output["metadata"].items():
                    if mime in ("image/png", "image/jpeg") and isinstance(entry, dict):
                        sizes = {k: _number(entry.get(k)) for k in ("width", "height")}
                        kept[mime] = {k: v for k, v in sizes.items() if v is not None}
                output["metadata"] = nbformat.from_dict(kept)


# ---------------------------------------------------------------- reading a page back

ACTIVE_TAGS = frozenset({"script", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "base",
                         "portal", "link", "meta", "svg", "math", "input", "button", "textarea", "select"})
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background",
                            "srcset", "lowsrc", "dynsrc", "ping", "cite"})
_SCHEME_NOISE = re.compile(r"[\x00-\x20]+")


class _Page(HTMLParser):
    """Every element of a page: (tag, attributes, text inside) for scripts, (tag, attributes) for the rest."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.scripts: list[tuple[tuple, str]] = []
        self._script = None

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attrs))
        if tag == "script":
            self._script = (tuple(sorted(attrs.items())), [])

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "script":
            self.handle_endtag(tag)

    def handle_data(self, data):
        if self._script:
            self._script[1].append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._script:
            self.scripts.append((self._script[0], "".join(self._script[1]).strip()))
            self._script = None


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def page_problems(page: str, template_scripts: set) -> list[str]:
    """What in a rendered page could run code, other than the template's own scripts
    (``template_scripts``: the (attributes, text) of each script an empty notebook's page holds)."""
    found = []
    parsed = parse(page)
    for attrs, text in parsed.scripts:
        if (attrs, text) not in template_scripts:
            found.append(f"a script the template did not write: {html.escape(text[:80]) or dict(attrs)}")
    meta_or_link_ok = {("meta", "charset")}
    for tag, attrs in parsed.elements:
        if tag in ACTIVE_TAGS and tag != "script" and not any((tag, k) in meta_or_link_ok for k in attrs):
            found.append(f"a <{tag}> element")
        for name, value in attrs.items():
            if name.startswith("on"):
                found.append(f"an event handler {name}= on <{tag}>")
            if name in ("srcdoc", "http-equiv"):
                found.append(f"a {name}= attribute on <{tag}>")
            if name in URL_ATTRIBUTES or name == "style":
                url = _SCHEME_NOISE.sub("", value).lower()  # the parser has decoded entities once, as a browser does
                for scheme in ("javascript:", "vbscript:", "data:text/html", "livescript:"):
                    if scheme in url:
                        found.append(f"a {scheme} URL in {name}= on <{tag}>")
                if name != "style" and url.startswith("data:") and not (tag == "img" and IMAGE_DATA.match(url)):
                    found.append(f"a data: URL in {name}= on <{tag}>")
            if name == "style" and ("expression(" in value.lower() or "url(" in value.lower()):
                found.append(f"a style with expression() or url() on <{tag}>")
    return found


class UnsafeFeedbackError(RuntimeError):
    """The rendered page still holds something active; it is not written."""


class SafeFeedbackExporter(HTMLExporter):
    """nbgrader's feedback exporter, for pages that cannot run student code (see the module docstring)."""

    @default("sanitize_html")
    def _sanitize_default(self):
        return True

    @pass_context
    def safe_markdown2html(self, context, source):
        return clean(HTMLExporter.markdown2html(self, context, source))

    def default_filters(self):
        yield from super().default_filters()
        # replace the markdown filter (nbgrader's template does not clean markdown cells) and
        # nbconvert's clean_html (it escapes headings, paragraphs and images into visible tags)
        yield ("markdown2html", self.safe_markdown2html)
        yield ("clean_html", clean)

    def from_notebook_node(self, nb, resources=None, **kw):
        nb = nbformat.from_dict(nb)  # a copy: the autograded notebook itself stays as it was
        scrub(nb)
        output, resources = super().from_notebook_node(nb, resources, **kw)
        problems = page_problems(output, self.template_scripts(resources))
        if problems:
            raise UnsafeFeedbackError("the feedback page would hold active content, so it was not written: "
                                      + "; ".join(sorted(set(problems))))
        return output, resources

    def template_scripts(self, resources) -> set:
        """The scripts the template writes itself: nbgrader's feedback header calls nbconvert's
        ``mathjax()`` macro (the MathJax loader and its inline configuration), nothing else."""
        macro = self.environment.get_template("mathjax.html.j2").module.mathjax
        return set(parse(str(macro())).scripts)
