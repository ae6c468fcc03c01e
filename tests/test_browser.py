"""Real-browser test: a hub's igv.html in headless Chromium, judged from igv.js's own state.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``$CHROMIUM``), ``node``, and the npm
packages of ``tests/browser/package.json`` (``npm ci --prefix tests/browser``: igv, the page
under test, and playwright-core, which drives Chromium). The test skips, saying why, only when
one of those is missing or Chromium cannot start at all.

The screenshot is written under the test's tmp folder and its path printed; with
``REGTRACKS_TEST_ARTIFACTS=DIR`` it is also copied to ``DIR/igv_browser.png``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from _hub_data import make_hub, writer_2bit

from regtracks.tracks.hub import build_hub
from regtracks.tracks.hubcheck import check_hub
from regtracks.tracks.manifest import load_manifest

BROWSER_DIR = Path(__file__).parent / "browser"
IGV_JS = BROWSER_DIR / "node_modules" / "igv" / "dist" / "igv.min.js"
DRIVER = BROWSER_DIR / "igv_state.cjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
_LAUNCH_FAILURE = re.compile(
    r"Failed to launch|error while loading shared libraries|Executable doesn't exist|"
    r"spawn .* ENOENT|Target page, context or browser has been closed|crashed",
    re.I,
)


def _requirements() -> str | None:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y --no-install-recommends chromium)"
    if shutil.which("node") is None:
        return "node is not installed"
    if not IGV_JS.is_file() or not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return "npm packages missing: npm ci --prefix tests/browser"
    return None


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP Range and CORS: what igv.js needs of a server.

    Stands in for :mod:`regtracks.tracks.serve` (``make_server``) where that module is absent.
    """

    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def send_head(self):
        path = self.translate_path(self.path)
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if not m or not os.path.isfile(path) or not (m.group(1) or m.group(2)):
            return super().send_head()
        size = os.path.getsize(path)
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        else:
            start, end = max(0, size - int(m.group(2))), size - 1
        if start >= size or end < start:
            self.send_error(416)
            return None
        fh = open(path, "rb")  # noqa: SIM115 - closed by copyfile's caller
        fh.seek(start)
        import io

        body = io.BytesIO(fh.read(end - start + 1))
        fh.close()
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return body

    def log_message(self, *args):
        pass


@pytest.fixture
def served_hub(tmp_path):
    missing = _requirements()  # before the hub is built: it copies igv.js from node_modules
    if missing:
        pytest.skip(missing)
    hub = make_hub(tmp_path)
    build_hub(hub, igv_js=IGV_JS, write_2bit=writer_2bit())
    try:  # the project's server (`regtracks serve`)
        from regtracks.tracks.serve import make_server

        server = make_server(hub, "127.0.0.1", 0)
    except ImportError:  # not in this checkout yet: the stand-in below
        handler = functools.partial(_RangeHandler, directory=str(hub))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _track_colour_pixels(png: Path, rgb: tuple[int, int, int]) -> int:
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))[..., :3]
    if img.dtype != np.uint8:
        img = np.round(img * 255).astype(np.int16)
    return int((np.abs(img.astype(np.int16) - np.array(rgb)).max(axis=-1) <= 8).sum())


def test_igv_html_in_headless_chromium(served_hub, tmp_path):
    hub, base = served_hub
    assert check_hub(hub).problems == ()
    shot = tmp_path / "igv_browser.png"
    env = dict(os.environ, CHROMIUM=CHROMIUM)
    proc = subprocess.run(
        ["node", str(DRIVER), f"{base}/igv.html", str(shot), "20000"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    if proc.returncode == 2 and _LAUNCH_FAILURE.search(proc.stderr):
        pytest.skip(f"Chromium cannot run here: {proc.stderr.strip().splitlines()[0][:300]}")
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nscreenshot: {shot}  (Chromium {state.get('chromium')}, igv.js {state['igvVersion']})")
    art = os.environ.get("REGTRACKS_TEST_ARTIFACTS")
    if art:
        Path(art).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(art) / "igv_browser.png")

    # the page and igv.js report no error, and every request succeeded
    assert state["errors"] == [] and state["pageErrors"] == []
    assert state["consoleErrors"] == [] and state["failedRequests"] == []
    assert state["igvVersion"].startswith("3.")
    # every manifest track is in igv.js, loaded, with data in view
    manifest = load_manifest(hub)
    files = {t["file"]: t for t in manifest["tracks"]}
    by_url = {t["url"]: t for t in state["tracks"]}
    assert set(by_url) == set(files)
    for url, t in by_url.items():
        assert t["loaded"] and t["message"] is None, t
        assert t["nFeatures"] > 0 and t["nNonzero"] > 0, t
        if files[url]["kind"] == "prediction":
            assert t["dataRange"] == {"min": 0, "max": 1} and not t["autoscale"], t
            assert 0 < t["maxValue"] <= 1
        else:  # saliency: scaled to its data, shared across the saliency tracks
            assert t["autoscaleGroup"] == "Saliency", t
    assert state["locus"] in ("chr1:1-60,000", ["chr1:1-60,000"], "chr1:1-60000")
    # the screenshot shows the tracks: pixels in the TFBS blue and the Histone red
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _track_colour_pixels(shot, (0, 90, 200)) > 2000
    assert _track_colour_pixels(shot, (200, 60, 0)) > 1000
