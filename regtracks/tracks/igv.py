"""Composes the IGV files: the IGV desktop session ``igv_session.xml`` and the igv.js page.

* ``igv_session.xml`` for IGV desktop: one Resource and Track per bigWig; predictions on a
  fixed 0-1 scale (``autoScale="false"``, as in UCSC and igv.html), saliency autoscaled in one
  group per composite; genome = the UCSC id or the relative path of the assembly hub's 2bit;
* ``igv.html``, an igv.js (3.x) page with the same tracks, loading ``igv.min.js`` from the hub
  folder when there is one, else from igv.js's CDN. igv.js does not read ``viewLimits`` /
  ``windowingFunction`` faithfully from hubs, so the page sets ``min``, ``max``,
  ``autoscale``, ``windowFunction`` itself: predictions 0-1 as in UCSC, saliency autoscaled
  per composite.

Both show the plan of :func:`regtracks.tracks.layout.plan_tracks`, in its order; loci are
1-based inclusive, as browsers show them.
"""

from __future__ import annotations

import json
from html import escape as html_escape
from pathlib import Path
from xml.sax.saxutils import quoteattr

from regtracks.tracks.layout import Track, count
from regtracks.tracks.trackdb import render

__all__ = ["IGV_JS_NAME", "session_xml", "igv_html"]

IGV_JS_NAME = "igv.min.js"


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
        res.append(
            f"        <Resource name={quoteattr(t.display)} path={quoteattr(path)}"
            f' type="bigwig" description={quoteattr(desc)}/>'
        )
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
    """igv.js page of ``flat``, loading igv.js from ``igv_src``."""
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
    return render(
        "igv.html",
        title=html_escape(title),
        summary=summary,
        igv_src=html_escape(igv_src, quote=True),
        igv_src_json=json.dumps(igv_src),
        options=_json_script(options),
        tracks=_json_script(tracks),
    )
