"""Composes the IGV files: the IGV desktop session ``igv_session.xml`` and the igv.js page.

* ``igv_session.xml`` for IGV desktop: one Resource and Track per bigWig; predictions on a
  fixed 0-1 scale (``autoScale="false"``, as in UCSC and igv.html), saliency autoscaled in one
  group per composite; genome = the UCSC id or the relative path of the assembly hub's 2bit;
* ``igv.html``, an igv.js (3.x) page with the same tracks, loading ``igv.min.js`` from the hub
  folder when there is one (:func:`find_igv_js`: regtracks bundles igv.js, so there normally
  is), else from igv.js's CDN, and then it says that it needs the network. igv.js does not
  read ``viewLimits`` / ``windowingFunction`` faithfully from hubs, so the page sets ``min``,
  ``max``, ``autoscale``, ``windowFunction`` itself: predictions 0-1 as in UCSC, saliency
  autoscaled per composite. The page explains itself when igv.js did not load (naming the
  src it tried) and when it was opened as a file (``regtracks serve HUB``).

Both show the plan of :func:`regtracks.tracks.layout.plan_tracks`, in its order; loci are
1-based inclusive, as browsers show them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from html import escape as html_escape
from pathlib import Path
from xml.sax.saxutils import quoteattr

from regtracks._util import RegtracksError
from regtracks.config import DEFAULT_HUB, HubDefaults
from regtracks.tracks.layout import Track, count
from regtracks.tracks.trackdb import render

__all__ = [
    "BUNDLED_IGV_JS",
    "IGV_JS_ENV",
    "IGV_JS_NAME",
    "find_igv_js",
    "igv_cdn_url",
    "igv_html",
    "looks_like_igv_js",
    "session_xml",
]

IGV_JS_NAME = "igv.min.js"
BUNDLED_IGV_JS = Path(__file__).with_name("_vendor") / IGV_JS_NAME
"""igv.js (MIT licence, version ``DEFAULT_HUB.igv_js_version``) shipped with regtracks."""
IGV_JS_ENV = "REGTRACKS_IGV_JS"
"""Environment variable naming an igv.min.js, or a folder holding one (an npm ``igv``)."""
_NPM_TIMEOUT_S = 10.0


def looks_like_igv_js(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a readable file that defines igv.js's ``createBrowser``."""
    try:
        return b"createBrowser" in Path(path).read_bytes()
    except OSError:
        return False


def igv_cdn_url(cfg: HubDefaults = DEFAULT_HUB) -> str:
    """igv.js's CDN URL for ``cfg.igv_js_version``: the last resort of a hub's page."""
    return cfg.igv_js_url.replace("{version}", cfg.igv_js_version)


def _npm_global_root() -> Path | None:
    """``npm root -g``, or ``None`` when npm is absent, fails or takes over 10 s."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    with tempfile.TemporaryFile() as out:  # a file, not a pipe: nothing can block on it
        try:
            proc = subprocess.Popen(
                [npm, "root", "-g"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            return None
        try:
            rc = proc.wait(timeout=_NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                if hasattr(os, "killpg"):
                    os.killpg(proc.pid, signal.SIGKILL)
                else:  # pragma: no cover - Windows
                    proc.kill()
            proc.wait()
            return None
        out.seek(0)
        lines = out.read().decode(errors="replace").strip().splitlines()
    if rc != 0 or not lines:
        return None
    return Path(lines[-1].strip())


def _npm_igv_js(folder: Path) -> Path | None:
    """igv.min.js of an npm ``igv`` package folder, or of a folder holding it."""
    for cand in (folder / "dist" / IGV_JS_NAME, folder / IGV_JS_NAME):
        if cand.is_file() and looks_like_igv_js(cand):
            return cand
    return None


def find_igv_js(cwd: str | os.PathLike | None = None) -> tuple[Path, str] | None:
    """A local igv.min.js to copy into a hub, and where it was found; ``None``: there is none.

    In this order: the copy bundled with regtracks (:data:`BUNDLED_IGV_JS`); an installed npm
    ``igv``: ``$REGTRACKS_IGV_JS`` (the file or a folder holding it), then
    ``node_modules/igv/dist/igv.min.js`` in ``cwd`` (default: the current folder) or one of
    its parents, then in npm's global root (``npm root -g``, when npm is on PATH; given up
    after 10 s).

    Raises
    ------
    RegtracksError
        ``$REGTRACKS_IGV_JS`` is set (and consulted) but names no igv.js.
    """
    if BUNDLED_IGV_JS.is_file():
        return BUNDLED_IGV_JS, f"bundled igv.js {DEFAULT_HUB.igv_js_version}"
    env = os.environ.get(IGV_JS_ENV)
    if env:
        p = Path(env).expanduser()
        found = _npm_igv_js(p) if p.is_dir() else (p if looks_like_igv_js(p) else None)
        if found is None:
            raise RegtracksError(f"${IGV_JS_ENV}={env}: no igv.min.js (igv.js 3.x) there")
        return found, f"${IGV_JS_ENV}"
    try:
        here = Path(cwd if cwd is not None else os.getcwd()).absolute()
    except OSError:  # the current folder was removed
        here = None
    if here is not None:
        for d in (here, *here.parents):
            found = _npm_igv_js(d / "node_modules" / "igv")
            if found is not None:
                return found, "npm igv in node_modules"
    root = _npm_global_root()
    if root is not None:
        found = _npm_igv_js(root / "igv")
        if found is not None:
            return found, "npm igv (global)"
    return None


def _igv_color(rgb: str) -> str:
    return f"rgb({rgb})"


def session_xml(
    flat: list[Track], *, genome_attr: str, kind: str, locus: str, groups: dict[str, int]
) -> str:
    """IGV desktop session of ``flat``; ``groups`` maps a composite to its autoscale group.

    Predictions (tracks without ``view_limits``) get a fixed 0-1 scale, the others (saliency)
    autoscale in their composite's group.
    """
    res, trk = [], []
    for t in flat:
        path = Path(t.rec["file"]).as_posix()
        desc = t.long_label
        peaks = t.rec["kind"] == "peaks"
        res.append(
            f"        <Resource name={quoteattr(t.display)} path={quoteattr(path)}"
            f' type="{"bigbed" if peaks else "bigwig"}" description={quoteattr(desc)}/>'
        )
        if peaks:  # observed peaks: a feature track, one row
            trk.append(
                f"        <Track attributeKey={quoteattr(Path(path).name)}"
                ' clazz="org.broad.igv.track.FeatureTrack"'
                f' color="{t.color}" displayMode="COLLAPSED" fontSize="10" height="25"'
                f' id={quoteattr(path)} name={quoteattr(t.display)} visible="true"/>'
            )
            continue
        if t.view_limits is None:  # a prediction: probabilities on a fixed 0-1 scale
            lo, hi = 0.0, 1.0
            scale = 'autoScale="false"'
        else:  # saliency: scaled to the data, shared across its composite
            lo, hi = t.view_limits
            scale = f'autoScale="true" autoscaleGroup="{groups[t.composite]}"'
        trk.append(
            f"        <Track attributeKey={quoteattr(Path(path).name)} {scale}"
            ' clazz="org.broad.igv.track.DataSourceTrack"'
            f' color="{t.color}" fontSize="10" height="40" id={quoteattr(path)}'
            f' name={quoteattr(t.display)} renderer="BAR_CHART" visible="true"'
            ' windowFunction="mean">\n'
            f'            <DataRange baseline="0.0" drawBaseline="true" flipAxis="false"'
            f' maximum="{hi:g}" minimum="{lo:g}" type="LINEAR"/>\n'
            "        </Track>"
        )
    return render(
        "igv_session.xml",
        genome=quoteattr(genome_attr),
        has_gene_track="true" if kind == "ucsc" else "false",
        locus=quoteattr(locus),
        next_group=str(max(groups.values(), default=0) + 1),
        resources="\n".join(res),
        tracks="\n".join(trk),
    )


def _json_script(obj: object) -> str:
    """JSON safe to embed in an HTML <script> element."""
    text = json.dumps(obj, indent=2)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def igv_html(
    flat: list[Track], *, genome: str, kind: str, locus: str, igv_src: str, title: str
) -> str:
    """igv.js page of ``flat``, loading igv.js from ``igv_src``.

    ``igv_src`` is the hub's own copy (``igv.min.js``, relative: nothing machine-specific in
    the page) or a URL; with a URL the page says that it needs the network.
    """
    if kind == "assembly":
        options: dict = {
            "reference": {
                "id": genome,
                "name": genome,
                "twoBitURL": f"{genome}/{genome}.2bit",
                "chromSizesURL": f"{genome}/chrom.sizes",
            },
            "loadDefaultGenomes": False,
        }
    else:
        options = {"genome": genome}
    options["locus"] = locus
    options["showSampleNames"] = False
    tracks = []
    for i, t in enumerate(flat, start=1):
        if t.rec["kind"] == "peaks":
            tracks.append(
                {
                    "name": t.display,
                    "type": "annotation",
                    "format": "bigbed",
                    "url": Path(t.rec["file"]).as_posix(),
                    "color": _igv_color(t.color),
                    "displayMode": "COLLAPSED",
                    "height": 25,
                    "order": i,
                    "description": t.long_label,
                }
            )
            continue
        cfg: dict = {
            "name": t.display,
            "type": "wig",
            "format": "bigwig",
            "url": Path(t.rec["file"]).as_posix(),
            "color": _igv_color(t.color),
            "height": 40,
            "windowFunction": "mean",
            "order": i,
        }
        if t.view_limits is None:
            cfg.update(min=0, max=1, autoscale=False)
        else:
            cfg.update(autoscale=True, autoscaleGroup=t.composite)
        cfg["description"] = t.long_label
        tracks.append(cfg)
    summary = f"{count(len(flat), 'track')} on {html_escape(genome)}"
    remote = igv_src.startswith(("http://", "https://", "//"))
    if remote:
        note = (
            f"igv.js comes from {html_escape(igv_src)}: this page needs the network. For an"
            " offline page, rebuild the hub with a local igv.js:"
            " <code>regtracks hub build HUB --igv-js igv.min.js</code>."
        )
        hint = (
            "(it comes from the network: offline, rebuild the hub with a local igv.js,"
            " `regtracks hub build HUB --igv-js igv.min.js`)"
        )
    else:
        note = ""
        hint = (
            f"(is {igv_src} missing from the hub folder? `regtracks hub build HUB` copies it there)"
        )
    return render(
        "igv.html",
        title=html_escape(title),
        summary=summary,
        note=note,
        igv_src=html_escape(igv_src, quote=True),
        igv_src_json=_json_script(igv_src),
        igv_hint_json=_json_script(hint),
        options=_json_script(options),
        tracks=_json_script(tracks),
    )
