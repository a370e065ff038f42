"""Open a report in headless Chromium: check that every image decodes and no script error
occurs, and take screenshots. A development and CI tool (tests, docs/report_screenshot.png);
Chromium is found as ``chromium``, ``chromium-browser``, ``google-chrome`` or ``$CHROMIUM``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import SnnOnnxError

# flags for a machine without network: without them Chromium waits on connections
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
]

_HEAD = """<script>window.__snnErrors = [];
window.addEventListener("error", function (e) { window.__snnErrors.push(String(e.message || e)); });
window.addEventListener("unhandledrejection", function (e) { window.__snnErrors.push(String(e.reason)); });
</script>"""

# runs in the load event, when every image has loaded or failed: synchronous, so the DOM that
# --dump-dom prints already holds its result
_CHECK = """<script>
window.addEventListener("load", function () {
  var res = Array.prototype.map.call(document.images, function (img) {
    var box = img.getBoundingClientRect();
    return {alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
            shown: box.width, shown_height: box.height, src: img.src.slice(0, 22)};
  });
  var pre = document.createElement("pre");
  pre.id = "snn-check";
  var root = document.documentElement;
  pre.textContent = JSON.stringify({images: res, errors: window.__snnErrors, title: document.title,
                                    figures: document.querySelectorAll("figure").length,
                                    page_width: root.scrollWidth, page_height: root.scrollHeight,
                                    viewport: window.innerWidth,
                                    open_sections: document.querySelectorAll("details[open]").length,
                                    folded_sections: document.querySelectorAll("details:not([open])").length});
  document.body.appendChild(pre);
});
</script>"""


@dataclass
class BrowserCheck:
    images: list[dict]
    errors: list[str]
    console_errors: list[str]
    title: str
    figures: int
    page_width: int = 0  # the page's full scroll size in CSS pixels (before the checker's own output)
    page_height: int = 0
    viewport: int = 0
    open_sections: int = 0
    folded_sections: int = 0

    @property
    def fits_width(self) -> bool:
        """No horizontal scrolling at the window width the page was checked at."""
        return self.page_width <= self.viewport

    @property
    def ok(self) -> bool:
        return (not self.errors and not self.console_errors and bool(self.images)
                and all(i.get("complete") and i.get("width", 0) > 0 and i.get("height", 0) > 0 and i.get("shown", 0) > 0
                        for i in self.images))


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env:
        return env if shutil.which(env) or Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise SnnOnnxError("Chromium not found (apt-get install chromium, or set $CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="snn-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SnnOnnxError(f"Chromium did not finish within {timeout:.0f} s: {' '.join(cmd)}") from None


def check_html(path: str | Path, timeout: float = 90, width: int = 1400) -> BrowserCheck:
    """Load a test-only copy of the page with a checker script added in a ``width``-pixel
    window, dump the DOM after load, and read what the script wrote: each image's decoded
    size (0 if it failed to decode), its size on the page, the page's size, folded sections
    and any script errors."""
    src = Path(path).read_text(encoding="utf-8")
    if "</body>" not in src or "<head>" not in src:
        raise SnnOnnxError(f"{path} is not a complete HTML page")
    page = src.replace("<head>", "<head>" + _HEAD, 1).replace("</body>", _CHECK + "</body>", 1)
    with tempfile.TemporaryDirectory(prefix="snn-check-") as tmp:
        copy = Path(tmp) / "check.html"
        copy.write_text(page, encoding="utf-8")
        proc = _chromium(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000", "--dump-dom",
                          f"--window-size={width},1000", copy.as_uri()], timeout)
    m = re.search(r'<pre id="snn-check">(.*?)</pre>', proc.stdout, re.S)
    if m is None:
        raise SnnOnnxError(f"the checker did not report (Chromium exit {proc.returncode}); stderr: {proc.stderr[-2000:]}")
    import html

    data = json.loads(html.unescape(m.group(1)))
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and ("Uncaught" in ln or "Error" in ln)]
    return BrowserCheck(data["images"], data["errors"], console, data["title"], data["figures"],
                        data["page_width"], data["page_height"], data["viewport"], data["open_sections"],
                        data["folded_sections"])


def screenshot(path: str | Path, out: str | Path, width: int = 1280, height: int = 3000, timeout: float = 90) -> Path:
    """A PNG of the page as Chromium renders it (``width`` x ``height`` pixels from the top)."""
    out = Path(out).resolve()
    proc = _chromium([f"--window-size={width},{height}", "--virtual-time-budget=15000", f"--screenshot={out}",
                      Path(path).resolve().as_uri()], timeout)
    if not out.exists():
        raise SnnOnnxError(f"Chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return out
