"""Checks of a self-contained HTML page: well formed (every element closed in order), every image
embedded as a ``data:`` URI, nothing that would make a request; and a headless-Chromium check
that every figure rendered with a non-zero size."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

#: Elements without a closing tag in HTML5.
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
#: Attributes that load a resource.
LOADING = {"src", "href", "srcset", "data", "poster", "action", "formaction", "background"}
CHROMIUM = "/usr/bin/chromium"


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.images: list[dict] = []
        self.tags: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attributes = dict(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "img":
            self.images.append(attributes)
        if tag in ("script", "iframe", "object", "embed", "link", "base"):
            self.problems.append(f"<{tag}> present")
        if tag == "style":
            self._in_style = True
        for name, value in attrs:
            value = value or ""
            if name in LOADING and not (value.startswith("data:image/") or value.startswith("#")):
                self.problems.append(f"<{tag} {name}={value[:60]!r}> loads a resource")
            if name == "style" and re.search(r"url\s*\(", value):
                self.problems.append(f"<{tag} style> has url()")
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}> event handler")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def check_self_contained(page: str) -> list[dict]:
    """Assert ``page`` is well-formed HTML5 with every image embedded and nothing loaded from
    anywhere; return the images' attributes."""
    assert page.startswith("<!DOCTYPE html>"), "no HTML5 doctype"
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert not checker.problems, checker.problems[:5]
    assert checker.stack == [], f"unclosed elements {checker.stack}"
    assert checker.tags[0] == "html" and "head" in checker.tags and "body" in checker.tags
    css = "".join(checker.styles)
    assert "url(" not in css and "@import" not in css, "the style sheet loads a resource"
    for image in checker.images:
        source = image.get("src", "")
        assert source.startswith("data:image/png;base64,"), source[:40]
        data = base64.b64decode(source.split(",", 1)[1], validate=True)
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), "embedded image is not a PNG"
        assert image.get("alt"), "image without alt text"
    return checker.images


_MEASURE = """<script>
window.addEventListener('load', function () {
  var rows = [];
  document.querySelectorAll('img').forEach(function (img) {
    var box = img.getBoundingClientRect();
    rows.push([img.complete, img.naturalWidth, img.naturalHeight, Math.round(box.width), Math.round(box.height)].join(','));
  });
  var out = document.createElement('pre');
  out.id = 'psmsim-measure';
  out.textContent = rows.join(';');
  document.body.appendChild(out);
});
</script>"""


def rendered_image_sizes(page: str) -> list[tuple[bool, int, int, int, int]]:
    """Open ``page`` in headless Chromium with every network request failing and return, per
    image, (loaded, natural width, natural height, drawn width, drawn height). Skips when
    Chromium is not installed (CI machines may lack it; install Debian's ``chromium``)."""
    chromium = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if chromium is None:
        pytest.skip("headless Chromium not installed (apt-get install chromium): the rendering check needs it")
    with tempfile.TemporaryDirectory(prefix="psmsim-chromium-") as folder:
        path = Path(folder) / "page.html"
        path.write_text(page.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-extensions",
                   f"--user-data-dir={folder}/profile", "--host-resolver-rules=MAP * ~NOTFOUND",
                   "--proxy-server=127.0.0.1:9", "--window-size=1280,2000", "--virtual-time-budget=10000",
                   "--dump-dom", path.as_uri()]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail("headless Chromium did not finish within 180 s")
    match = re.search(r'<pre id="psmsim-measure">([^<]*)</pre>', result.stdout)
    assert match, f"Chromium did not report the images (exit {result.returncode}): {result.stderr[-500:]}"
    sizes = []
    for row in filter(None, match.group(1).split(";")):
        loaded, *numbers = row.split(",")
        sizes.append((loaded == "true", *(int(n) for n in numbers)))
    return sizes
