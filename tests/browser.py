"""Headless Chromium for the tests of the review page: load a page, run a probe in it,
read back what the probe found and every console message; take a screenshot.

Debian's `chromium` (`make test` installs it when missing). It runs without a
sandbox (CI runs as root) and with everything that reaches out to Google switched
off, so it needs no network. A probe script is added to a copy of the page, after
the page's own script; it writes its findings as JSON into the DOM, which
`--dump-dom` prints. Console messages, uncaught errors among them, come from
Chromium's log on stderr.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
# "INFO:CONSOLE:12] ..." (newer Chromium) or "INFO:CONSOLE(12)] ..." (older).
_CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)$", re.MULTILINE)
_RESULT = re.compile(r'<pre id="probe-result">(.*?)</pre>', re.DOTALL)


@dataclass(frozen=True)
class Loaded:
    #: What the probe wrote, decoded from JSON.
    probe: Any
    #: Every console message the page (or the probe) produced.
    console: list[str]


def chromium() -> str:
    """The browser; a clear failure, never a skip, where the test setup did not install it."""
    found = shutil.which("chromium")
    assert found, "chromium is missing: `make test` installs it (Debian's chromium package)"
    return found


def load_with_probe(page: Path, probe_js: str, scratch: Path, timeout: float = 120) -> Loaded:
    """Load a copy of `page` with `probe_js` run after its own scripts. The probe ends by
    calling `report(value)`, which puts `value` as JSON into the DOM."""
    scratch.mkdir(parents=True, exist_ok=True)
    html = page.read_text(encoding="utf-8")
    assert html.count("</body>") == 1
    probe = (
        "<script>function report(value) {"
        " var out = document.createElement('pre'); out.id = 'probe-result';"
        " out.textContent = JSON.stringify(value); document.body.appendChild(out); }\n"
        f"{probe_js}</script>"
    )
    probed = scratch / f"probed-{page.name}"
    probed.write_text(html.replace("</body>", probe + "</body>"), encoding="utf-8")
    completed = _run(
        ["--enable-logging=stderr", "--v=0", "--dump-dom", probed.as_uri()], scratch, timeout
    )
    found = _RESULT.search(completed.stdout)
    assert found, f"the probe wrote no result; stderr:\n{completed.stderr[-2000:]}"
    return Loaded(json.loads(unescape(found.group(1))), _CONSOLE.findall(completed.stderr))


def screenshot(page: Path, picture: Path, scratch: Path, size: str = "1200,3000") -> None:
    _run([f"--screenshot={picture}", f"--window-size={size}", page.as_uri()], scratch, 120)
    assert picture.stat().st_size > 0


def _run(args: list[str], scratch: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    profile = scratch / "chromium-profile"
    completed = subprocess.run(
        [chromium(), *_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed


#: What the review tests ask of asyncpipe's review page, run in the page after its script.
REVIEW_PAGE_PROBE = """
var list = function (nodes) { return Array.prototype.slice.call(nodes); };
var articles = list(document.querySelectorAll("article.puzzle"));
function visible() {
  return articles.filter(function (a) { return !a.hidden && a.offsetHeight > 0; }).length;
}
function tick(name, on) {
  var box = document.querySelector('input[data-filter="' + name + '"]');
  box.checked = on;
  box.dispatchEvent(new Event("change"));
}
var all = visible();
tick("flagged", true);
var flagged = visible();
var shown = document.getElementById("shown").textContent;
tick("flagged", false);
tick("ambiguous", true);
var ambiguous = visible();
tick("ambiguous", false);
var firstGrid = document.querySelector(".grid");
report({
  puzzles: articles.length,
  gridsPerPuzzle: articles.map(function (a) { return a.querySelectorAll(".grid").length; }),
  tilesPerGrid: list(document.querySelectorAll(".grid")).map(function (g) {
    return g.querySelectorAll(".tile").length; }),
  gridWords: list(document.querySelectorAll(".grid")).map(function (g) {
    return list(g.querySelectorAll(".tile")).map(function (t) { return t.textContent; }); }),
  rowsInFirstGrid: firstGrid ? new Set(list(firstGrid.children).map(function (t) {
    return t.offsetTop; })).size : 0,
  heatmapCells: list(document.querySelectorAll("figure.heat svg")).map(function (s) {
    return s.querySelectorAll("rect[fill]").length; }),
  visibleAll: all, visibleFlagged: flagged, visibleAmbiguous: ambiguous, shownFlagged: shown,
  themes: list(document.querySelectorAll(".theme")).map(function (t) { return t.textContent; }),
  decoys: list(document.querySelectorAll(".tile.decoy")).map(function (t) { return t.textContent; }),
  scripts: document.scripts.length,
  resources: performance.getEntriesByType("resource").length
});
"""
