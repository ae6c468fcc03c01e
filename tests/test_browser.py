"""Real-browser test: a hub's igv.html in headless Chromium, judged from igv.js's own state.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``$CHROMIUM``), ``node``, and the npm
packages of ``tests/browser/package.json`` (``npm ci --prefix tests/browser``: playwright-core,
which drives Chromium; igv, the same release as the igv.js regtracks bundles). The hubs use the
bundled igv.js, which ``build_hub`` copies into them, and nothing from the network: the page
is judged offline. The tests skip, saying why, only when one of those is missing or Chromium
cannot start at all.

The screenshot is written under the test's tmp folder and its path printed; with
``REGTRACKS_TEST_ARTIFACTS=DIR`` it is also copied to ``DIR/igv_browser.png``.
"""

from __future__ import annotations

import contextlib
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

from regtracks.config import DEFAULT_HUB
from regtracks.tracks.hub import build_hub
from regtracks.tracks.hubcheck import check_hub
from regtracks.tracks.manifest import load_manifest

BROWSER_DIR = Path(__file__).parent / "browser"
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
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
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
    missing = _requirements()  # before the hub is built
    if missing:
        pytest.skip(missing)
    hub = make_hub(tmp_path)
    build_hub(hub, write_2bit=writer_2bit())  # copies the bundled igv.js into the hub
    assert (hub / "igv.min.js").is_file()
    with _serve(hub) as base:
        yield hub, base


@contextlib.contextmanager
def _serve(hub: Path):
    """The hub served on a free local port (``regtracks serve``'s server); yields its URL."""
    try:  # the project's server (`regtracks serve`)
        from regtracks.tracks.serve import make_server

        server = make_server(hub, "127.0.0.1", 0)
    except ImportError:  # not in this checkout yet: the stand-in below
        handler = functools.partial(_RangeHandler, directory=str(hub))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _track_colour_pixels(png: Path, rgb: tuple[int, int, int]) -> int:
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))[..., :3]
    if img.dtype != np.uint8:
        img = np.round(img * 255).astype(np.int16)
    return int((np.abs(img.astype(np.int16) - np.array(rgb)).max(axis=-1) <= 8).sum())


def _page_state(url: str, shot: Path, loci: list[str] | None = None) -> dict:
    """igv_state.cjs's report of the page at ``url`` (and at each of ``loci``); skips when
    Chromium cannot run here."""
    env = dict(os.environ, CHROMIUM=CHROMIUM)
    proc = subprocess.run(
        ["node", str(DRIVER), url, str(shot), "20000", ";".join(loci or [])],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    if proc.returncode == 2 and _LAUNCH_FAILURE.search(proc.stderr):
        pytest.skip(f"Chromium cannot run here: {proc.stderr.strip().splitlines()[0][:300]}")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_igv_html_in_headless_chromium(served_hub, tmp_path):
    hub, base = served_hub
    assert check_hub(hub).problems == ()
    assert '<script src="igv.min.js"></script>' in (hub / "igv.html").read_text()
    shot = tmp_path / "igv_browser.png"
    state = _page_state(f"{base}/igv.html", shot)
    print(f"\nscreenshot: {shot}  (Chromium {state.get('chromium')}, igv.js {state['igvVersion']})")
    art = os.environ.get("REGTRACKS_TEST_ARTIFACTS")
    if art:
        Path(art).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(art) / "igv_browser.png")

    # the page and igv.js report no error, and every request succeeded
    assert state["errors"] == [] and state["pageErrors"] == []
    assert state["consoleErrors"] == [] and state["failedRequests"] == []
    assert state["igvVersion"] == DEFAULT_HUB.igv_js_version  # the bundled igv.js
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


# A second, smaller driver: the page's own messages, with every request that is not to the
# local server (or a file) aborted, as on a machine without network.
OFFLINE_DRIVER = r"""
"use strict";
const { chromium } = require(process.argv[2]);
const [url, local] = process.argv.slice(3);
(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const out = { requests: [], blocked: [], pageErrors: [] };
  try {
    const context = await browser.newContext();
    await context.route("**/*", (route) => {
      const u = route.request().url();
      out.requests.push(u);
      const ours = u.startsWith(local) || u.startsWith("file:") || u.startsWith("data:");
      if (ours) return route.continue();
      out.blocked.push(u);
      return route.abort("internetdisconnected");
    });
    const page = await context.newPage();
    page.on("pageerror", (e) => out.pageErrors.push(String(e && e.message ? e.message : e)));
    await page.goto(url, { waitUntil: "load", timeout: 20000 });
    const ready = () => window.regtracks && window.regtracks.ready;
    await page.waitForFunction(ready, null, { timeout: 20000 });
    Object.assign(out, await page.evaluate(() => ({
      errors: window.regtracks.errors,
      status: document.getElementById("status").textContent,
      statusShown: getComputedStyle(document.getElementById("status")).display !== "none",
      igvLoaded: !!(window.igv && typeof window.igv.createBrowser === "function"),
      browser: !!window.regtracks.browser,
    })));
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((e) => {
  process.stderr.write("offline driver: " + (e && e.stack ? e.stack : e) + "\n");
  process.exit(2);
});
"""


def _offline_state(tmp_path: Path, url: str, local: str) -> dict:
    script = tmp_path / "offline.cjs"
    script.write_text(OFFLINE_DRIVER)
    playwright = BROWSER_DIR / "node_modules" / "playwright-core"
    proc = subprocess.run(
        ["node", str(script), str(playwright), url, local],
        capture_output=True,
        text=True,
        timeout=90,
        env=dict(os.environ, CHROMIUM=CHROMIUM),
    )
    if proc.returncode == 2 and _LAUNCH_FAILURE.search(proc.stderr):
        pytest.skip(f"Chromium cannot run here: {proc.stderr.strip().splitlines()[0][:300]}")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_page_says_igv_js_did_not_load(served_hub, tmp_path):
    """The hub's igv.min.js removed, no network: one message naming the src, no blank page."""
    hub, base = served_hub
    (hub / "igv.min.js").unlink()
    state = _offline_state(tmp_path, f"{base}/igv.html", base)
    assert not state["igvLoaded"] and not state["browser"]
    assert state["pageErrors"] == []  # not "igv.createBrowser is not a function"
    assert len(state["errors"]) == 1, state["errors"]
    message = state["errors"][0]
    assert message.startswith("igv.js did not load from igv.min.js"), message
    assert "regtracks hub build" in message
    assert state["status"] == message and state["statusShown"]  # on the page, not the console
    assert state["blocked"] == []  # the page asked nothing of the network


def test_page_opened_as_a_file_says_how_to_serve_it(served_hub, tmp_path):
    hub, base = served_hub
    state = _offline_state(tmp_path, (hub / "igv.html").as_uri(), base)
    assert state["pageErrors"] == [] and not state["browser"]
    assert len(state["errors"]) == 1, state["errors"]
    message = state["errors"][0]
    assert f"run `regtracks serve {hub}`" in message, message
    assert "open the igv.html URL it prints" in message
    assert state["status"] == message and state["statusShown"]
    assert state["blocked"] == []


def test_predicted_hub_shows_predictions_and_observed_peaks_at_two_loci(trained_run, tmp_path):
    """A hub written by ``regtracks predict`` (the demo's path), served, offline: at two loci
    with peaks, every prediction track and every observed-peak track has data in view."""
    missing = _requirements()
    if missing:
        pytest.skip(missing)
    import pyBigWig
    from typer.testing import CliRunner

    from regtracks.checkpoint import load_checkpoint
    from regtracks.cli import app

    test_chrom = load_checkpoint(trained_run / "best.pt").split_record["chroms"]["test"][0]
    hub = tmp_path / "hub"
    args = ["predict", str(trained_run), "--out", str(hub), "--chrom", test_chrom]
    r = CliRunner().invoke(app, [*args, "--writers", "0", "--marker", "CTCF,DNase"])
    assert r.exit_code == 0, r.output
    assert check_hub(hub).problems == ()
    with pyBigWig.open(str(hub / "tracks" / "peaks_DNase.bb")) as bb:
        size = bb.chroms()[test_chrom]
        starts = [s for s, _, _ in bb.entries(test_chrom, 0, size)]
    loci = []
    for s in (starts[len(starts) // 4], starts[3 * len(starts) // 4]):  # two peaks apart
        a = max(1, s - 2_000)
        loci.append(f"{test_chrom}:{a}-{a + 5_000}")
    with _serve(hub) as base:
        state = _page_state(f"{base}/igv.html", tmp_path / "predicted.png", loci)
    assert state["errors"] == [] and state["pageErrors"] == [] and state["failedRequests"] == []
    assert state["blocked"] == []  # nothing asked for the network
    kinds = {t["file"]: t["kind"] for t in load_manifest(hub)["tracks"]}
    assert sorted(kinds.values()) == ["peaks", "peaks", "prediction", "prediction"]
    assert len(state["views"]) == 2
    for view in state["views"]:
        by_url = {t["url"]: t for t in view["tracks"]}
        assert set(by_url) == set(kinds), view["locus"]
        for url, t in by_url.items():
            assert t["loaded"] and t["message"] is None, t
            if kinds[url] == "prediction":
                assert t["type"] == "wig" and t["nFeatures"] > 0, t
                assert t["dataRange"] == {"min": 0, "max": 1} and not t["autoscale"], t
        # the DNase peak the locus was chosen on is drawn
        peak = by_url["tracks/peaks_DNase.bb"]
        assert peak["type"] == "annotation" and peak["nFeatures"] > 0, (view["locus"], peak)


def test_native_zoom_levels_read_in_igv_js(tmp_path):
    """A whole 8 Mbp chromosome in view (~7 kb a pixel): igv.js reads the native writer's
    first zoom level (the bytes it asks for), and what it draws is the value written there."""
    missing = _requirements()
    if missing:
        pytest.skip(missing)
    import struct

    from _hub_data import pred_track

    from regtracks.tracks.bigwig import BigWigWriter

    size, bs, step = 8_000_000, 128, 256_000  # values constant over 256 kb steps
    hub = make_hub(tmp_path, [pred_track("pred_CTCF", "CTCF", "TFBS", chroms=("chr1",))],
                   sizes=[["chr1", size]])  # fmt: skip
    n = -(-size // bs)
    v = ((np.arange(n) * bs // step) % 7 / 8 + 0.05).astype(np.float32)[None]
    v[0, 20_000:20_400] = np.nan  # a gap: no data, no record
    path = hub / "tracks" / "pred_CTCF.bw"
    path.unlink()
    with BigWigWriter([path], [("chr1", size)], bin_size=bs, n_procs=0, engine="native") as w:
        for j in range(0, n, 3_001):  # blocks that end anywhere
            w.add("chr1", j * bs, v[:, j : j + 3_001])
    build_hub(hub, write_2bit=writer_2bit())
    assert check_hub(hub).problems == ()
    raw = path.read_bytes()
    n_zooms = struct.unpack_from("<H", raw, 6)[0]
    zooms = [struct.unpack_from("<IIQQ", raw, 64 + 24 * k) for k in range(n_zooms)]
    assert zooms[0][0] == 20 * bs
    ranges: list[tuple[str, int, int]] = []

    class Logged(_RangeHandler):
        def send_head(self):
            m = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", "").strip())
            if m:
                ranges.append((self.path, int(m.group(1)), int(m.group(2))))
            return super().send_head()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Logged, directory=str(hub))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        state = _page_state(f"{base}/igv.html", tmp_path / "wide.png", [f"chr1:1-{size:,}"])
    finally:
        server.shutdown()
        server.server_close()
    assert state["errors"] == [] and state["pageErrors"] == [] and state["failedRequests"] == []
    # igv.js asked for the first zoom level's records (a range between its data offset and
    # its index), besides the header it reads first
    _, _, data_at, index_at = zooms[0]
    mine = [(a, b) for p, a, b in ranges if p.endswith("pred_CTCF.bw")]
    assert any(data_at <= a and b < index_at for a, b in mine), (zooms[0], mine)
    (view,) = state["views"]
    (t,) = view["tracks"]
    assert t["loaded"] and t["message"] is None and t["nFeatures"] > 300, t["nFeatures"]
    feats = np.array(t["features"], np.float64)
    gap = (20_000 * bs, 20_400 * bs)
    assert not ((feats[:, 0] >= gap[0]) & (feats[:, 1] <= gap[1])).any()  # nothing in the gap
    inside = (feats[:, 0] // step == (feats[:, 1] - 1) // step) & (
        (feats[:, 1] <= gap[0]) | (feats[:, 0] >= gap[1])
    )
    assert inside.sum() > 300
    want = (feats[inside, 0] // step) % 7 / 8 + 0.05
    np.testing.assert_allclose(feats[inside, 2], want, rtol=1e-6)
