"""Hub files from a manifest (UCSC track / assembly hub, IGV session, igv.js page) and hub checks.

Golden files (tests/golden/) pin the hub text; set REGTRACKS_UPDATE_GOLDEN=1 to rewrite them
after an intended change, then review the diff.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree

import pytest
from _hub_data import (
    SIZES,
    make_hub,
    pred_track,
    sal_track,
    write_2bit_minimal,
    write_bigwig,
    writer_2bit,
)
from typer.testing import CliRunner

from regtracks._util import RegtracksError
from regtracks.cli import app
from regtracks.config import DEFAULT_HUB
from regtracks.tracks import igv as igv_mod
from regtracks.tracks.hub import build_hub
from regtracks.tracks.hubcheck import check_hub
from regtracks.tracks.manifest import load_manifest, update_manifest
from regtracks.tracks.twobit import read_2bit_sizes

GOLDEN = Path(__file__).parent / "golden"
NODE_DIR = Path(__file__).parent / "browser"
runner = CliRunner()


def _build(hub, **kw):
    kw.setdefault("write_2bit", writer_2bit())
    return build_hub(hub, **kw)


def parse_ra(text: str) -> list[dict]:
    """Independent, minimal reader of hub text: stanzas as dicts (first key kept as '_key')."""
    out, cur = [], None
    for line in text.splitlines():
        s = line.strip()
        if not s:
            cur = None
            continue
        if s.startswith("#"):
            continue
        k, _, v = s.partition(" ")
        if cur is None:
            cur = {"_key": k}
            out.append(cur)
        cur[k] = v
    return out


def line_of(path: Path, pattern: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if re.search(pattern, line):
            return i
    raise AssertionError(f"{pattern!r} not in {path}")


# ---------------------------------------------------------------------------------------------
# manifest
def test_update_manifest_adds_replaces_and_keeps(tmp_path):
    hub = tmp_path / "hub"
    genome = {"name": "toy", "fasta": "/x/toy.fa", "ucsc": None, "chrom_sizes": SIZES}
    a, b = pred_track("pred_A", "A", "TFBS"), pred_track("pred_B", "B", "Histone")
    update_manifest(hub, genome, [a, b])
    a2 = dict(a, description="second run")
    sal = sal_track("sal_A", "A")
    m = update_manifest(hub, dict(genome, fasta=None), [sal, a2])
    assert [t["name"] for t in m["tracks"]] == ["pred_A", "pred_B", "sal_A"]
    assert m["tracks"][0]["description"] == "second run"
    assert m["genome"]["fasta"] == "/x/toy.fa"  # None does not erase what was recorded
    assert load_manifest(hub) == m
    assert sorted(p.name for p in hub.iterdir()) == ["manifest.json"]  # no temporary left


def test_update_manifest_refuses_another_genome(tmp_path):
    hub = tmp_path / "hub"
    genome = {"name": "toy", "fasta": None, "ucsc": None, "chrom_sizes": SIZES}
    update_manifest(hub, genome, [pred_track("pred_A", "A", "TFBS")])
    other = dict(genome, chrom_sizes=[["chr1", 10]])
    with pytest.raises(RegtracksError, match="other chromosomes or sizes"):
        update_manifest(hub, other, [pred_track("pred_B", "B", "TFBS")])


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(format="x"), "format"),
        (lambda m: m["tracks"][0].update(kind="motifs"), "kind 'motifs'"),
        (lambda m: m["tracks"][0].update(file="/abs/x.bw"), "inside the hub folder"),
        (lambda m: m["tracks"][0].update(file="../x.bw"), "inside the hub folder"),
        (lambda m: m["tracks"][0].pop("marker"), "'marker'"),
        (lambda m: m["tracks"][0].update(color="300,0,0"), "color"),
        (lambda m: m["tracks"].append(dict(m["tracks"][0])), "appears twice"),
        (lambda m: m["genome"].update(chrom_sizes=[["chr1", -5]]), "chrom_sizes"),
    ],
)
def test_load_manifest_names_the_fault(tmp_path, edit, message):
    hub = make_hub(tmp_path)
    m = json.loads((hub / "manifest.json").read_text())
    edit(m)
    (hub / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(RegtracksError, match=re.escape(message)):
        load_manifest(hub)


def test_load_manifest_missing_and_not_json(tmp_path):
    with pytest.raises(RegtracksError, match="no manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(RegtracksError, match="not valid JSON"):
        load_manifest(tmp_path)


# ---------------------------------------------------------------------------------------------
# golden hub text
GOLDEN_ASSEMBLY = [
    "hub.txt",
    "genomes.txt",
    "toy/trackDb.txt",
    "toy/chrom.sizes",
    "toy/html/pred_CTCF.html",
    "toy/html/sal_CTCF_chr1_20000_30000.html",
    "igv_session.xml",
    "igv.html",
    "hub.html",
]


def _compare_golden(hub: Path, names: list[str], folder: str) -> None:
    update = os.environ.get("REGTRACKS_UPDATE_GOLDEN") == "1"
    for name in names:
        got = (hub / name).read_text()
        gold = GOLDEN / folder / name
        if update:
            gold.parent.mkdir(parents=True, exist_ok=True)
            gold.write_text(got)
        assert gold.is_file(), f"golden file {gold} missing (REGTRACKS_UPDATE_GOLDEN=1 writes it)"
        assert got == gold.read_text(), f"{name} differs from {gold}"


def test_golden_assembly_hub(tmp_path):
    hub = make_hub(tmp_path)
    res = _build(hub)
    assert res.kind == "assembly" and res.genome == "toy" and res.n_tracks == 5
    _compare_golden(hub, GOLDEN_ASSEMBLY, "hub_assembly")
    for f in hub.rglob("*"):
        if f.suffix in (".txt", ".html", ".xml", ".tsv", ".sizes"):
            assert str(tmp_path) not in f.read_text(), f"{f} holds an absolute path"


def test_golden_one_file_hub(tmp_path):
    hub = make_hub(tmp_path)
    _build(hub, one_file=True)
    _compare_golden(hub, ["hub.txt"], "hub_onefile")
    assert not (hub / "genomes.txt").exists() and not (hub / "toy" / "trackDb.txt").exists()


def test_golden_ucsc_hosted_hub(tmp_path):
    hub = make_hub(tmp_path, ucsc="hg19", fasta=False)
    res = build_hub(hub, write_2bit=_no_2bit)
    assert res.kind == "ucsc" and res.genome == "hg19"
    _compare_golden(
        hub, ["hub.txt", "genomes.txt", "hg19/trackDb.txt", "igv_session.xml"], "hub_ucsc"
    )
    assert not list(hub.rglob("*.2bit"))
    assert check_hub(hub).problems == ()


def _no_2bit(fasta, out):  # pragma: no cover - must not be called
    raise AssertionError("a UCSC-hosted genome needs no 2bit")


# ---------------------------------------------------------------------------------------------
# hub content, checked independently of the goldens
def test_hub_settings_per_kind(tmp_path):
    hub = make_hub(tmp_path)
    _build(hub)
    stanzas = parse_ra((hub / "toy" / "trackDb.txt").read_text())
    by = {s["track"]: s for s in stanzas}
    comps = [s["track"] for s in stanzas if "compositeTrack" in s]
    assert comps == ["TFBS", "Histone", "DNase", "Saliency"]
    for name in ("TFBS", "Histone", "DNase"):
        c = by[name]
        assert c["compositeTrack"] == "on" and c["type"] == "bigWig 0 1"
        assert c["viewLimits"] == "0:1" and c["autoScale"] == "off"
        assert c["windowingFunction"] == "mean" and c["maxHeightPixels"]
    assert by["TFBS"]["color"] == "0,90,200"  # category colour
    assert by["pred_DNase"]["color"] == "10,20,30"  # the manifest's own colour wins
    assert by["pred_GATA1"]["subGroups"] == "marker=GATA1 cell=K562"
    assert by["pred_CTCF"]["bigDataUrl"] == "../tracks/pred_CTCF.bw"
    sal = by["sal_CTCF_chr1_20000_30000"]
    assert by["Saliency"]["autoScale"] == "on" and sal["autoScale"] == "on"
    lo, hi = (float(x) for x in sal["viewLimits"].split(":"))
    # values are (0.5 + 0.5 sin - 0.3) * 0.02: within [-0.006, 0.014]; limits from the file
    assert -0.0061 < lo < -0.0059 and 0.0139 < hi < 0.0141
    assert sal["type"] == f"bigWig {sal['viewLimits'].replace(':', ' ')}"
    # provenance: metadata line and the description page
    assert "checkpoint_sha256=ab12cd34ef56ab12" in by["pred_CTCF"]["metadata"]
    page = (hub / "toy" / by["pred_CTCF"]["html"]).read_text()
    assert "regtracks predict runs/dilated --chrom chr1 --out hub/" in page
    assert "2026-11-24T10:00:00Z" in page
    genome = parse_ra((hub / "genomes.txt").read_text())[0]
    assert genome["twoBitPath"] == "toy/toy.2bit" and genome["defaultPos"] == "chr1:1-60000"
    assert genome["organism"] == "toy"
    assert (hub / "toy" / "chrom.sizes").read_text() == "chr1\t60000\nchr2\t40000\nchrM\t1000\n"


def test_labels_fit_ucsc_limits_and_names_are_symbols(tmp_path):
    long_marker = "ZNF123-isoform-with-a-very-long-name"
    tracks = [
        pred_track("pred-weird name/1", long_marker, "TFBS", cell="GM12878 (long cell type)"),
        pred_track("pred_weird_name_1", "B", "TFBS"),  # same symbol as above once cleaned
        pred_track("9lives", "C", "Other category"),
    ]
    tracks[0]["description"] = "x" * 200
    hub = make_hub(tmp_path, tracks)
    _build(hub)
    stanzas = parse_ra((hub / "toy" / "trackDb.txt").read_text())
    names = [s["track"] for s in stanzas]
    assert len(set(names)) == len(names)
    for s in stanzas:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", s["track"])
        assert 0 < len(s["shortLabel"]) <= 17 and 0 < len(s["longLabel"]) <= 76
    assert "Other_category" in names
    assert check_hub(hub).problems == ()


def test_faceted_composite_above_threshold(tmp_path):
    tracks = [pred_track(f"pred_M{i}", f"M{i}", "TFBS", cell=f"C{i % 2}") for i in range(5)]
    tracks.append(pred_track("pred_H", "H3K27ac", "Histone"))
    hub = make_hub(tmp_path, tracks)
    cfg = replace(DEFAULT_HUB, facet_threshold=3)
    res = _build(hub, cfg=cfg)
    assert res.faceted == ("TFBS",)
    by = {s["track"]: s for s in parse_ra((hub / "toy" / "trackDb.txt").read_text())}
    comp = by["TFBS"]
    assert comp["compositeTrack"] == "faceted" and comp["primaryKey"] == "name"
    assert "subGroup1" not in comp and by["Histone"]["compositeTrack"] == "on"
    rows = (hub / "toy" / comp["metaDataUrl"]).read_text().splitlines()
    header = rows[0].split("\t")
    keys = {r.split("\t")[header.index("name")] for r in rows[1:]}
    children = [n for n, s in by.items() if s.get("parent", "").split()[0:1] == ["TFBS"]]
    assert len(children) == 5 == len(keys)
    for n in children:
        assert n.startswith("TFBS_") and n[len("TFBS_") :] in keys
        assert "subGroups" not in by[n]
    assert check_hub(hub, cfg=cfg).problems == ()
    # back under the threshold: a plain composite again, and the metadata file goes away
    _build(hub)
    assert not (hub / "toy" / "TFBS.metadata.tsv").exists()
    assert check_hub(hub).problems == ()


def test_rebuild_keeps_tracks_of_other_commands(tmp_path):
    hub = make_hub(tmp_path, [pred_track("pred_CTCF", "CTCF", "TFBS")])
    _build(hub)
    m = load_manifest(hub)
    sal = sal_track("sal_CTCF_x", "CTCF")
    write_bigwig(hub / sal["file"], SIZES, ("chr1",), scale=0.01, start=100, span=1, n=50)
    update_manifest(hub, m["genome"], [sal])  # what `saliency` does
    _build(hub)
    names = {s["track"] for s in parse_ra((hub / "toy" / "trackDb.txt").read_text())}
    assert {"pred_CTCF", "sal_CTCF_x", "TFBS", "Saliency"} <= names
    # a new prediction run replaces pred_CTCF and keeps the saliency track
    update_manifest(hub, m["genome"], [dict(m["tracks"][0], description="rerun")])
    _build(hub)
    text = (hub / "toy" / "trackDb.txt").read_text()
    assert "sal_CTCF_x" in text and "rerun" in (hub / "toy/html/pred_CTCF.html").read_text()
    assert check_hub(hub).problems == ()


def test_one_file_choice_is_remembered_and_reversible(tmp_path):
    hub = make_hub(tmp_path)
    _build(hub, one_file=True)
    assert "useOneFile on" in (hub / "hub.txt").read_text()
    _build(hub)  # as last built
    assert "useOneFile on" in (hub / "hub.txt").read_text()
    assert check_hub(hub).problems == ()
    _build(hub, one_file=False)
    assert "genomesFile genomes.txt" in (hub / "hub.txt").read_text()
    assert (hub / "genomes.txt").is_file() and (hub / "toy" / "trackDb.txt").is_file()
    assert check_hub(hub).problems == ()


def test_default_pos_follows_the_data(tmp_path):
    hub = make_hub(tmp_path, [sal_track("sal_only", "CTCF")])
    res = _build(hub, cfg=replace(DEFAULT_HUB, default_view_bp=10_000))
    chrom, rng = res.default_pos.split(":")
    start, end = (int(x) for x in rng.split("-"))
    # the saliency track has data on chr1 from 20,000 (0-based) to 30,000
    assert chrom == "chr1" and 19_700 < start <= 20_001 and end - start + 1 == 10_000


def test_twobit_is_read_back_and_matches_fasta(tmp_path):
    py2bit = pytest.importorskip("py2bit")
    hub = make_hub(tmp_path)
    _build(hub)
    path = hub / "toy" / "toy.2bit"
    assert read_2bit_sizes(path) == [tuple(x) for x in SIZES]
    tb = py2bit.open(str(path))
    assert tb.chroms() == {c: n for c, n in SIZES}
    fasta = (tmp_path / "toy.fa").read_text().split(">")[1:]
    for rec in fasta:
        name, *lines = rec.splitlines()
        assert tb.sequence(name) == "".join(lines)
    tb.close()


def test_twobit_kept_when_current_and_rewritten_when_fasta_changes(tmp_path):
    hub = make_hub(tmp_path)
    calls = []

    def writer(fasta, out):
        calls.append(fasta)
        write_2bit_minimal(fasta, out)

    build_hub(hub, write_2bit=writer)
    build_hub(hub, write_2bit=writer)
    assert len(calls) == 1
    fa = tmp_path / "toy.fa"
    os.utime(fa, (fa.stat().st_mtime + 10, fa.stat().st_mtime + 10))
    build_hub(hub, write_2bit=writer)
    assert len(calls) == 2


def test_twobit_of_another_genome_is_refused(tmp_path):
    hub = make_hub(tmp_path)
    other = tmp_path / "other.fa"
    other.write_text(">chr1\nACGT\n")
    before = (hub / "manifest.json").read_bytes()
    # checked before it is recorded (it was recorded, then refused when the 2bit was written)
    with pytest.raises(RegtracksError, match=r"--genome .*other.fa: its sequences \(1\) are not"):
        build_hub(hub, genome=other, write_2bit=write_2bit_minimal)
    assert (hub / "manifest.json").read_bytes() == before
    assert not list((hub / "toy").glob("*.2bit")) and not list((hub / "toy").glob(".*"))


def test_twobit_that_differs_from_the_manifest_is_refused(tmp_path):
    hub = make_hub(tmp_path)
    other = tmp_path / "other.fa"
    other.write_text(">chr1\nACGT\n")

    def wrong(fasta, out):  # a writer that writes another genome: the check before the rename
        write_2bit_minimal(other, out)

    with pytest.raises(RegtracksError, match="differ from the manifest"):
        build_hub(hub, write_2bit=wrong)
    assert not list((hub / "toy").glob("*.2bit")) and not list((hub / "toy").glob(".*.tmp*"))


def test_build_errors_name_the_fault(tmp_path):
    hub = make_hub(tmp_path, fasta=False)
    with pytest.raises(RegtracksError, match="--genome FASTA"):
        build_hub(hub, write_2bit=write_2bit_minimal)
    assert not (hub / "hub.txt").exists()
    hub2 = make_hub(tmp_path / "b")
    (hub2 / "tracks" / "pred_GATA1.bw").unlink()
    with pytest.raises(RegtracksError, match="pred_GATA1.*not found"):
        build_hub(hub2, write_2bit=write_2bit_minimal)
    with pytest.raises(RegtracksError, match="igv-js"):
        build_hub(
            make_hub(tmp_path / "c"), igv_js=tmp_path / "nope.js", write_2bit=write_2bit_minimal
        )


def test_igv_session_and_page(tmp_path):
    hub = make_hub(tmp_path)
    fake_js = tmp_path / "igv.min.js"
    fake_js.write_text("/* igv */ var igv = {createBrowser: function () {}};")
    _build(hub, igv_js=fake_js)
    root = ElementTree.parse(hub / "igv_session.xml").getroot()
    assert root.tag == "Session" and root.get("genome") == "toy/toy.2bit"
    assert root.get("locus") == "chr1:1-60000"
    res = [r.get("path") for r in root.iter("Resource")]
    tracks = list(root.iter("Track"))
    manifest = load_manifest(hub)
    assert sorted(res) == sorted(t["file"] for t in manifest["tracks"])
    assert [t.get("id") for t in tracks] == res
    page = (hub / "igv.html").read_text()
    assert '<script src="igv.min.js"></script>' in page
    assert (hub / "igv.min.js").read_text() == fake_js.read_text()
    cfg = json.loads(page.split("const TRACKS = ", 1)[1].split(";\n", 1)[0])
    assert [c["url"] for c in cfg] == res
    pred = next(c for c in cfg if c["url"].endswith("pred_CTCF.bw"))
    assert (pred["min"], pred["max"], pred["autoscale"], pred["windowFunction"]) == (
        0,
        1,
        False,
        "mean",
    )
    opts = json.loads(page.split("const OPTIONS = ", 1)[1].split(";\n", 1)[0])
    assert opts["reference"]["twoBitURL"] == "toy/toy.2bit" and opts["loadDefaultGenomes"] is False
    # a later build without --igv-js keeps using the hub's copy (not the bundled one)
    _build(hub)
    assert '<script src="igv.min.js"></script>' in (hub / "igv.html").read_text()
    assert (hub / "igv.min.js").read_text() == fake_js.read_text()


def test_igv_session_scales(tmp_path):
    """IGV desktop: predictions on a fixed 0-1 scale, saliency autoscaled per composite."""
    hub = make_hub(
        tmp_path,
        [
            pred_track("pred_CTCF", "CTCF", "TFBS"),
            pred_track("pred_H3K4me3", "H3K4me3", "Histone"),
            sal_track("sal_CTCF_chr1_20000_30000", "CTCF"),
            sal_track("sal_GATA1_chr1_20000_30000", "GATA1"),
        ],
    )
    _build(hub)
    root = ElementTree.parse(hub / "igv_session.xml").getroot()
    kinds = {r["file"]: r["kind"] for r in load_manifest(hub)["tracks"]}
    tracks = list(root.iter("Track"))
    assert {t.get("id") for t in tracks} == set(kinds)
    sal_groups = set()
    for trk in tracks:
        rng = trk.find("DataRange")
        if kinds[trk.get("id")] == "prediction":
            assert trk.get("autoScale") == "false", trk.attrib
            assert trk.get("autoscaleGroup") is None, trk.attrib
            assert (float(rng.get("minimum")), float(rng.get("maximum"))) == (0.0, 1.0)
        else:
            assert trk.get("autoScale") == "true", trk.attrib
            sal_groups.add(trk.get("autoscaleGroup"))
            assert float(rng.get("minimum")) < float(rng.get("maximum"))
    assert len(sal_groups) == 1 and None not in sal_groups  # one group: the Saliency composite
    assert int(root.get("nextAutoscaleGroup")) > int(next(iter(sal_groups)))


# ---------------------------------------------------------------------------------------------
# igv.js: bundled, copied into every hub, found elsewhere when not bundled; the page's messages
def test_bundled_igv_js_is_copied_into_a_hub(tmp_path):
    hub = make_hub(tmp_path)
    res = _build(hub)  # no igv_js
    assert (hub / "igv.min.js").read_bytes() == igv_mod.BUNDLED_IGV_JS.read_bytes()
    assert hub / "igv.min.js" in res.files
    page = (hub / "igv.html").read_text()
    assert '<script src="igv.min.js"></script>' in page
    assert "cdn.jsdelivr" not in page and "needs the network" not in page
    assert str(igv_mod.BUNDLED_IGV_JS.parent) not in page  # nothing machine-specific
    # the page's own error paths: igv.js missing (despite the element ids), opened as a file
    assert 'id="igv"' not in page and 'id="regtracks-igv"' in page
    assert 'typeof window.igv.createBrowser === "function"' in page
    assert '"igv.js did not load from " + IGV_SRC' in page
    assert 'const IGV_SRC = "igv.min.js";' in page
    assert 'location.protocol === "file:"' in page and "`regtracks serve " in page
    assert "open the igv.html URL it prints" in page


def test_bundled_igv_js_version_and_licence():
    js = igv_mod.BUNDLED_IGV_JS
    assert js.is_file() and js.stat().st_size > 500_000
    text = js.read_text()
    assert igv_mod.looks_like_igv_js(js)
    assert f'return"{DEFAULT_HUB.igv_js_version}"' in text  # igv.version() of the bundled copy
    licence = (js.parent / "LICENSE-igv.txt").read_text()
    assert "MIT License" in licence and "Broad Institute" in licence
    npm = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["igv"]
    assert npm == DEFAULT_HUB.igv_js_version  # the browser test drives the same release
    assert igv_mod.igv_cdn_url() == (
        f"https://cdn.jsdelivr.net/npm/igv@{DEFAULT_HUB.igv_js_version}/dist/igv.min.js"
    )


FAKE_IGV = "/* igv */ var igv = {createBrowser: function () {}};"


def _fake_npm_igv(folder: Path, tag: str) -> Path:
    js = folder / "igv" / "dist" / "igv.min.js"
    js.parent.mkdir(parents=True)
    js.write_text(f"{FAKE_IGV} // {tag}")
    return js


@pytest.fixture
def unbundled(tmp_path, monkeypatch):
    """No bundled igv.js, no npm on PATH, $REGTRACKS_IGV_JS unset, in an empty folder."""
    monkeypatch.setattr(igv_mod, "BUNDLED_IGV_JS", tmp_path / "not-bundled" / "igv.min.js")
    monkeypatch.delenv(igv_mod.IGV_JS_ENV, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    return bin_dir


def test_igv_js_lookup_order(tmp_path, unbundled, monkeypatch):
    assert igv_mod.find_igv_js() is None
    # npm's global root, when npm is on PATH
    glob = _fake_npm_igv(tmp_path / "global", "global")
    npm = unbundled / "npm"
    npm.write_text(f"#!/bin/sh\necho {tmp_path / 'global'}\n")
    npm.chmod(0o755)
    assert igv_mod.find_igv_js() == (glob, "npm igv (global)")
    # node_modules in the current folder or a parent
    local = _fake_npm_igv(tmp_path / "work" / "node_modules", "local")
    assert igv_mod.find_igv_js() == (local, "npm igv in node_modules")
    # $REGTRACKS_IGV_JS: the file, or a folder holding it
    env = _fake_npm_igv(tmp_path / "env", "env")
    monkeypatch.setenv(igv_mod.IGV_JS_ENV, str(env))
    assert igv_mod.find_igv_js() == (env, "$REGTRACKS_IGV_JS")
    monkeypatch.setenv(igv_mod.IGV_JS_ENV, str(tmp_path / "env" / "igv"))
    assert igv_mod.find_igv_js()[0] == env
    monkeypatch.setenv(igv_mod.IGV_JS_ENV, str(tmp_path / "nothing.js"))
    with pytest.raises(RegtracksError, match="REGTRACKS_IGV_JS=.*nothing.js"):
        igv_mod.find_igv_js()
    # the bundled copy comes first
    monkeypatch.undo()
    assert igv_mod.find_igv_js()[0] == igv_mod.BUNDLED_IGV_JS


def test_igv_js_from_npm_copied_into_hub(tmp_path, unbundled):
    local = _fake_npm_igv(tmp_path / "work" / "node_modules", "local")
    hub = make_hub(tmp_path / "h")
    _build(hub)
    assert (hub / "igv.min.js").read_text() == local.read_text()
    assert '<script src="igv.min.js"></script>' in (hub / "igv.html").read_text()


def test_npm_that_hangs_is_given_up(tmp_path, unbundled, monkeypatch):
    npm = unbundled / "npm"
    npm.write_text("#!/bin/sh\nsleep 30\n")
    npm.chmod(0o755)
    monkeypatch.setattr(igv_mod, "_NPM_TIMEOUT_S", 0.3)
    import time

    t0 = time.monotonic()
    assert igv_mod.find_igv_js() is None
    assert time.monotonic() - t0 < 10


def test_cdn_only_when_no_local_igv_js(tmp_path, unbundled):
    hub = make_hub(tmp_path / "h")
    res = _build(hub)
    assert not (hub / "igv.min.js").exists() and hub / "igv.min.js" not in res.files
    page = (hub / "igv.html").read_text()
    url = igv_mod.igv_cdn_url()
    assert f'<script src="{url}"></script>' in page
    assert "this page needs the network" in page and "--igv-js" in page
    assert f"const IGV_SRC = {json.dumps(url)};" in page
    result = runner.invoke(app, ["hub", "build", str(hub)])
    assert result.exit_code == 0, result.output
    assert "needs the network" in result.stderr


# ---------------------------------------------------------------------------------------------
# hub check: passes on what regtracks writes, fails with the right line on broken hubs
@pytest.fixture
def good_hub(tmp_path):
    hub = make_hub(tmp_path)
    _build(hub)
    return hub


def _check_cli(hub):
    res = runner.invoke(app, ["hub", "check", str(hub)])
    return res.exit_code, [ln for ln in res.stdout.splitlines() if ln.strip()]


def test_check_passes_on_good_hub(good_hub):
    code, lines = _check_cli(good_hub)
    assert code == 0 and len(lines) == 1 and lines[0].startswith("OK")
    assert "5 data files" not in lines[0] and "6 data files" in lines[0]  # 5 bigWigs + the 2bit


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_check_missing_file(good_hub):
    tdb = good_hub / "toy" / "trackDb.txt"
    (good_hub / "tracks" / "pred_GATA1.bw").unlink()
    code, lines = _check_cli(good_hub)
    n = line_of(tdb, r"bigDataUrl \.\./tracks/pred_GATA1\.bw")
    assert code == 1
    assert lines == [
        f"toy/trackDb.txt:{n}: track pred_GATA1: bigDataUrl ../tracks/pred_GATA1.bw: file not found"
    ]


def test_check_duplicate_name(good_hub):
    tdb = good_hub / "toy" / "trackDb.txt"
    _edit(tdb, "track pred_GATA1\n", "track pred_CTCF\n")
    code, lines = _check_cli(good_hub)
    first = line_of(tdb, r"^\s*track pred_CTCF$")
    second = [
        i for i, ln in enumerate(tdb.read_text().splitlines(), 1) if ln.strip() == "track pred_CTCF"
    ][1]
    assert code == 1
    assert lines == [
        f"toy/trackDb.txt:{second}: track pred_CTCF: name used twice "
        f"(first at toy/trackDb.txt:{first})"
    ]


def test_check_wrong_chromosome_size(good_hub):
    bad = [["chr1", 60_000], ["chr2", 41_000], ["chrM", 1_000]]
    write_bigwig(good_hub / "tracks" / "pred_H3K4me3.bw", bad)
    tdb = good_hub / "toy" / "trackDb.txt"
    code, lines = _check_cli(good_hub)
    n = line_of(tdb, r"bigDataUrl .*pred_H3K4me3")
    assert code == 1
    assert lines == [
        f"toy/trackDb.txt:{n}: track pred_H3K4me3: ../tracks/pred_H3K4me3.bw: chr2 is "
        "41,000 bp there but 40,000 bp in toy"
    ]


def test_check_over_long_label(good_hub):
    tdb = good_hub / "toy" / "trackDb.txt"
    _edit(tdb, "shortLabel GATA1 K562\n", "shortLabel GATA1 K562 replicate\n")
    _edit(tdb, "longLabel Histone predicted", "longLabel " + "y" * 80 + " Histone predicted")
    code, lines = _check_cli(good_hub)
    n1 = line_of(tdb, "shortLabel GATA1 K562 replicate")
    n2 = line_of(tdb, "longLabel y{80}")
    assert code == 1
    assert lines[0] == (
        f"toy/trackDb.txt:{n1}: track pred_GATA1: shortLabel 'GATA1 K562 replicate' has 20 "
        "characters (UCSC allows 17)"
    )
    assert lines[1].startswith(f"toy/trackDb.txt:{n2}: track Histone: longLabel 'yyy")
    assert lines[1].endswith("(UCSC allows 76)") and len(lines) == 2


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        (
            "hub.txt",
            "hub regtracks_toy\n",
            "genome x\nhub regtracks_toy\n",
            "first line must be 'hub",
        ),
        ("hub.txt", "email regtracks-user@example.org\n", "", "required setting email is missing"),
        (
            "toy/trackDb.txt",
            "    color 0,90,200\n",
            "    color 0,90,200\n    fooBar 1\n",
            "unknown setting fooBar",
        ),
        ("toy/trackDb.txt", "parent TFBS on", "parent TFBX on", "parent TFBX does not exist"),
        (
            "toy/trackDb.txt",
            "subGroups marker=CTCF cell=SIM1",
            "subGroups marker=CTCF cell=HeLa",
            "cell=HeLa is not defined in TFBS",
        ),
        ("toy/trackDb.txt", "    bigDataUrl ../tracks/pred_CTCF.bw\n", "", "bigDataUrl is missing"),
        ("toy/trackDb.txt", "viewLimits 0:1", "viewLimits 1:0", "viewLimits 1 0 is not min:max"),
        ("toy/trackDb.txt", "visibility full", "visibility loud", "visibility 'loud' unknown"),
        (
            "toy/chrom.sizes",
            "chr2\t40000",
            "chr2\t40001",
            "disagrees with the 2bit (chr2 40,001 vs 40,000)",
        ),
        (
            "genomes.txt",
            "defaultPos chr1:1-60000",
            "defaultPos chr1:1-90000",
            "past the end of chr1",
        ),
        ("genomes.txt", "organism toy\n", "", "assembly hub setting organism is missing"),
    ],
)
def test_check_broken_on_purpose(good_hub, file, old, new, expected):
    _edit(good_hub / file, old, new)
    code, lines = _check_cli(good_hub)
    assert code == 1 and len(lines) == 1, lines
    reported = "genomes.txt" if file.endswith("chrom.sizes") else file  # the stanza naming it
    assert expected in lines[0] and lines[0].startswith(reported + ":")


def test_check_not_a_bigwig(good_hub):
    (good_hub / "tracks" / "pred_DNase.bw").write_bytes(b"not a bigwig at all" * 10)
    code, lines = _check_cli(good_hub)
    assert code == 1 and len(lines) == 1
    assert (
        "pred_DNase: bigDataUrl ../tracks/pred_DNase.bw: pyBigWig cannot open it as a bigWig"
        in lines[0]
    )


def test_check_bigwig_without_zoom_levels(good_hub):
    import pyBigWig

    path = good_hub / "tracks" / "pred_CTCF.bw"
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(c, n) for c, n in SIZES], maxZooms=0)
    bw.addEntries("chr1", 0, values=[0.5] * 10, span=128, step=128)
    bw.close()
    code, lines = _check_cli(good_hub)
    assert code == 1 and len(lines) == 1 and "no zoom levels" in lines[0]
    assert lines[0].startswith(
        f"toy/trackDb.txt:{line_of(good_hub / 'toy' / 'trackDb.txt', 'pred_CTCF.bw')}:"
    )


def test_check_bad_2bit_and_missing_hub(good_hub, tmp_path):
    (good_hub / "toy" / "toy.2bit").write_bytes(b"\0" * 40)
    code, lines = _check_cli(good_hub)
    assert code == 1 and lines == [
        f"genomes.txt:{line_of(good_hub / 'genomes.txt', 'twoBitPath')}: genome toy: "
        "not a .2bit file (bad signature)"
    ]
    (tmp_path / "empty").mkdir()  # a folder without hub.txt: a problem of the hub
    code, lines = _check_cli(tmp_path / "empty")
    assert code == 1 and lines == [f"{tmp_path / 'empty' / 'hub.txt'}: hub file not found"]
    r = runner.invoke(app, ["hub", "check", str(tmp_path / "none")])  # no such path: an error
    assert r.exit_code == 1 and "error:" in r.output and "no such hub folder" in r.output


def test_check_one_file_hub_line_numbers(tmp_path):
    hub = make_hub(tmp_path)
    _build(hub, one_file=True)
    assert check_hub(hub).problems == ()
    (hub / "tracks" / "pred_CTCF.bw").unlink()
    n = line_of(hub / "hub.txt", r"bigDataUrl tracks/pred_CTCF\.bw")
    code, lines = _check_cli(hub)
    assert code == 1 and lines == [
        f"hub.txt:{n}: track pred_CTCF: bigDataUrl tracks/pred_CTCF.bw: file not found"
    ]


# ---------------------------------------------------------------------------------------------
# CLI
def test_cli_hub_build(tmp_path):
    hub = make_hub(tmp_path, ucsc=None)
    if writer_2bit() is not None:  # no regtracks.tracks.twobit yet: the CLI cannot write the 2bit
        pytest.skip("regtracks.tracks.twobit.write_2bit is not available")
    res = runner.invoke(app, ["hub", "build", str(hub), "--one-file", "--email", "me@lab.org"])
    assert res.exit_code == 0, res.output
    assert "wrote assembly hub" in res.stderr
    assert "email me@lab.org" in (hub / "hub.txt").read_text()
    assert check_hub(hub).problems == ()


def test_cli_hub_build_ucsc_and_errors(tmp_path):
    hub = make_hub(tmp_path, fasta=False)
    res = runner.invoke(app, ["hub", "build", str(hub), "--genome-name", "hg19"])
    assert res.exit_code == 0, res.output
    assert "track hub on UCSC's hg19" in res.stderr
    assert load_manifest(hub)["genome"]["ucsc"] == "hg19"  # remembered for later builds
    res = runner.invoke(app, ["hub", "build", str(tmp_path / "nothing")])
    assert res.exit_code == 1
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "no manifest" in err[0]
    res = runner.invoke(app, ["hub", "build", str(hub), "--genome-name", "hg 19"])
    assert res.exit_code == 1 and "not a UCSC assembly name" in res.stderr


# ---------------------------------------------------------------------------------------------
# a second opinion: @gmod/ucsc-hub (npm) parses what we write
def _ucsc_hub_js(tmp_path: Path, hub: Path, one_file: bool):
    mod = NODE_DIR / "node_modules" / "@gmod" / "ucsc-hub"
    if shutil.which("node") is None or not mod.is_dir():
        pytest.skip("node or tests/browser/node_modules (npm ci --prefix tests/browser) missing")
    script = tmp_path / "parse.cjs"
    script.write_text(
        """
const fs = require('fs'); const path = require('path');
const {HubFile, GenomesFile, TrackDbFile, SingleFileHub} = require(process.argv[2]);
const hub = process.argv[3];
try {
  let tracks;
  if (process.argv[4] === 'one') {
    const h = new SingleFileHub(fs.readFileSync(path.join(hub, 'hub.txt'), 'utf8'));
    tracks = h.tracks;
  } else {
    new HubFile(fs.readFileSync(path.join(hub, 'hub.txt'), 'utf8'));
    const g = new GenomesFile(fs.readFileSync(path.join(hub, 'genomes.txt'), 'utf8'));
    const genome = Object.values(g.data)[0];
    const tdb = genome.data.trackDb;
    tracks = new TrackDbFile(fs.readFileSync(path.join(hub, tdb), 'utf8'));
  }
  const out = {};
  for (const name of Object.keys(tracks.data)) out[name] = tracks.data[name].data;
  console.log(JSON.stringify({ok: true, tracks: out}));
} catch (e) { console.log(JSON.stringify({ok: false, error: String(e.message || e)})); }
"""
    )
    proc = subprocess.run(
        [
            "node",
            str(script),
            str(mod / "dist" / "index.js"),
            str(hub),
            "one" if one_file else "multi",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("one_file", [False, True])
def test_gmod_ucsc_hub_parses_our_hubs(tmp_path, one_file):
    hub = make_hub(tmp_path)
    _build(hub, one_file=one_file)
    got = _ucsc_hub_js(tmp_path, hub, one_file)
    assert got["ok"], got
    tracks = got["tracks"]
    assert set(tracks) >= {"TFBS", "pred_CTCF", "Saliency", "sal_CTCF_chr1_20000_30000"}
    assert tracks["pred_CTCF"]["parent"] == "TFBS on" and tracks["TFBS"]["viewLimits"] == "0:1"
    assert tracks["pred_CTCF"]["bigDataUrl"].endswith("tracks/pred_CTCF.bw")
    # and it rejects our duplicate-name breakage too
    if not one_file:
        _edit(hub / "toy" / "trackDb.txt", "track pred_GATA1\n", "track pred_CTCF\n")
        got = _ucsc_hub_js(tmp_path, hub, one_file)
        assert not got["ok"] and "duplicate" in got["error"]


def test_file_names_with_spaces_are_url_quoted(tmp_path):
    t = pred_track("pred_A", "A", "TFBS")
    t["file"] = "tracks/pred A (rep 1).bw"
    hub = make_hub(tmp_path, [t])
    _build(hub)
    by = {s["track"]: s for s in parse_ra((hub / "toy" / "trackDb.txt").read_text())}
    assert by["pred_A"]["bigDataUrl"] == "../tracks/pred%20A%20%28rep%201%29.bw"
    assert check_hub(hub).problems == ()
    with pytest.raises(RegtracksError, match="not an e-mail"):
        _build(hub, email="me at lab\nshortLabel x")
