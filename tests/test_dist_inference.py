"""torchrun for inference: `predict`, `saliency` and `variants` split over processes give what
one process gives (bigWig values and bytes, manifests, TSV bytes, HDF5 datasets, the annotated VCF).

Fast tests run the processes' shares in threads of this process (tests.test_runtime.ThreadJob
stands in for torch.distributed) over awkward geometries: chunks smaller than the margin, more
processes than chunks, records split between clusters, flushes behind skipped records. The
slow ones launch `torchrun --nproc-per-node 2` on gloo (CPU) and compare with one process."""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyBigWig
import pytest
import torch
from typer.testing import CliRunner

from regtracks.cli import app
from regtracks.data.genome import Genome
from regtracks.inference import variants as V
from regtracks.inference.saliency import (
    _Chunks,
    _part_blocks,
    _saliency_share,
    _zone,
    saliency_region,
)
from regtracks.models import get_model
from tests.conftest import random_seq, write_fasta
from tests.test_runtime import ThreadJob, run_ranks
from tests.test_saliency import LinearConv, _collect
from tests.test_saliency import genome as genome  # noqa: F401  (the fixture)
from tests.test_variants import _strong, write_vcf

runner = CliRunner()


# --- saliency: the shares of the processes, in threads -----------------------------------------
@pytest.mark.parametrize(
    "world, margin, core, chunk",
    [
        (2, 40, 100, 300),  # chunks wider than the margin: neighbours overlap once
        (3, 120, 50, 50),  # a margin of several chunks: a base gets gradient from 5 chunks
        (4, 30, 200, 10_000),  # one chunk: processes without any
        (5, 35, 70, 140),
    ],
)
@pytest.mark.parametrize("reduce", ["grad_x_input", "norm"])
def test_saliency_shares_equal_one_process(genome, world, margin, core, chunk, reduce):  # noqa: F811
    torch.manual_seed(0)
    model = LinearConv(3, 2 * margin - 1).eval()
    start, end = 8_713, 9_877  # across the N run at 9,000-9,500
    kw = dict(marker_idx=[2, 0], reduce=reduce, margin=margin, core=core, chunk=chunk,
              stride=1, batch_size=3, device=torch.device("cpu"), amp=None)  # fmt: skip
    span = (start - margin, end + margin)
    want = _collect(saliency_region(model, genome, "c1", start, end, **kw), *span)
    geo = _Chunks(genome.sizes["c1"], start, end, margin=margin, core=core, stride=1, chunk=chunk)
    with _tempdir() as folder:

        def share(job):
            temps: list = []
            return _saliency_share(copy.deepcopy(model), genome, "c1", start, end, job=job,
                                   folder=folder, temps=temps, **kw)  # fmt: skip

        parts = run_ranks(world, share)
        zones = [_zone(geo, ThreadJob(r, world, None), r)[1:] for r in range(world)]
        assert zones[0][0] == span[0] and zones[-1][1] == span[1]
        assert all(zones[r][1] == zones[r + 1][0] for r in range(world - 1))
        got = _collect(_part_blocks(parts, zones, 2, [0, 1], step=97), *span)
    np.testing.assert_array_equal(got, want)  # bit for bit, not to rounding


def test_saliency_shares_of_a_dilated_model(genome):  # noqa: F811
    torch.manual_seed(1)
    tiny = {"f1": 8, "f2": 8, "f3": 8, "d_hidden": 8}
    model = get_model("dilated", n_markers=2, **tiny).eval()
    margin = -(-model.receptive_field // model.stride) * model.stride
    kw = dict(marker_idx=[1, 0], reduce="grad_x_input", margin=margin, core=2_000, chunk=4_000,
              stride=model.stride, batch_size=2, device=torch.device("cpu"), amp=None)  # fmt: skip
    start, end = 15_003, 24_950
    geo = _Chunks(genome.sizes["c1"], start, end, margin=margin, core=2_000, stride=10,
                  chunk=4_000)  # fmt: skip
    want = _collect(saliency_region(model, genome, "c1", start, end, **kw), *geo.span)
    with _tempdir() as folder:
        parts = run_ranks(
            2,
            lambda job: _saliency_share(
                copy.deepcopy(model),
                genome,
                "c1",
                start,
                end,
                job=job,
                folder=folder,
                temps=[],
                **kw,
            ),  # fmt: skip
        )
        zones = [_zone(geo, ThreadJob(r, 2, None), r)[1:] for r in range(2)]
        got = _collect(_part_blocks(parts, zones, 2, [0, 1]), *geo.span)
    np.testing.assert_array_equal(got, want)


@contextlib.contextmanager
def _tempdir():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# --- variants: the parts of the processes, joined ---------------------------------------------
@pytest.fixture(scope="module")
def vgenome(tmp_path_factory):
    rng = np.random.default_rng(3)
    d = tmp_path_factory.mktemp("dvar")
    return Genome(
        write_fasta(d / "g.fa", {"c1": random_seq(rng, 40_000), "c2": random_seq(rng, 9_000)})
    )


def _messy_vcf(g: Genome, path: Path, n: int = 120, seed: int = 0) -> Path:
    """Sorted records: multi-allelic ones (an ALT symbolic), REF mismatches, indels, runs of
    skipped records, a chromosome the genome lacks at the end."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in g.chroms:
        for p in sorted(rng.choice(g.sizes[c] - 20, n, replace=False)):
            p = int(p)
            ref = g.fetch_text(c, p, p + 1).upper()
            alts = [b for b in "ACGT" if b != ref]
            k = int(rng.integers(0, 8))
            if k == 0:
                alt = ",".join(alts)  # three ALTs
            elif k == 1:
                alt = f"{alts[0]},<DEL>"
            elif k in (2, 3):  # a run of REF mismatches
                ref, alt = ("T" if ref != "T" else "A"), alts[0]
            elif k == 4:
                alt = alts[1] + "GA"  # an insertion
            elif k == 5:
                ref, alt = g.fetch_text(c, p, p + 3).upper(), alts[2]  # a deletion
            else:
                alt = alts[2]
            rows.append((c, p + 1, f"r{len(rows)}", ref, alt))
    rows.append(("chrZ", 10, "z", "A", "C"))
    return write_vcf(path, rows)


def _run_score(g, vcf, out, *, fmt, world=None, cluster_alleles, pending, monkeypatch, share):
    """One process (``world`` None) or ``world`` parts joined, as score_variants does."""
    monkeypatch.setattr(V, "CLUSTER_ALLELES", cluster_alleles)
    monkeypatch.setattr(V, "PENDING_RECORDS", pending)
    model = _strong("cnn7")
    margin = -(-model.receptive_field // model.stride) * model.stride
    shape = V._scan_vcf(vcf)
    names, cats = ["a", "b", "c"], ["x", "y", "z"]
    attrs = {"radius": 25} if fmt == "h5" else None
    kw = dict(fmt=fmt, names=names, cats=cats, attrs=attrs, shape=shape, genome=g, radius=25,
              what="test")  # fmt: skip
    out = Path(out)
    vcf_out = out.with_name(out.name + ".vcf.gz")
    index = vcf_out.with_name(vcf_out.name + ".tbi")
    skipped = out.with_name(out.name + ".skipped.tsv")

    def effects(alleles, keep=None):
        return V.variant_effects(model, g, alleles, marker_idx=[2, 0, 1], radius=25,
                                 margin=margin, stride=model.stride, batch_size=4,
                                 share_windows=share, cluster_span=3_000, keep=keep)  # fmt: skip

    if world is None:
        res = V.VariantResult(out=out)
        with contextlib.ExitStack() as stack:
            tmp = V._final_temps(stack, out, skipped, vcf_out, index)
            sinks = V._Sinks(stack, *tmp, **kw)
            V._score(vcf, g, shape, res, sinks, effects, on_ref_mismatch="skip", progress=None)
            V._finish(sinks, vcf_out, index, tmp)
        return res.variants
    cuts = V._cut_lines(vcf, shape.records, world)
    parts, counts = [], []
    for r in range(world):
        part = V._part_temps(out, r, True, [])
        res = V.VariantResult(out=out)
        with contextlib.ExitStack() as stack:
            sinks = V._Sinks(stack, *part, **kw, header=False)
            keep = V._keep_block(cuts, r)
            V._score(vcf, g, shape, res, sinks, lambda a, keep=keep: effects(a, keep),
                     on_ref_mismatch="skip", progress=None, first=r == 0)  # fmt: skip
        parts.append(part)
        counts.append(res.variants)
    with contextlib.ExitStack() as stack:
        tmp = V._final_temps(stack, out, skipped, vcf_out, index)
        sinks = V._Sinks(stack, *tmp, **kw)
        for p in parts:
            sinks.append(*p)
        V._finish(sinks, vcf_out, index, tmp)
    for p in parts:
        for f in p:
            if f is not None:
                os.unlink(f)
    return counts


@pytest.mark.parametrize(
    "world, cluster_alleles, pending, share",
    [
        (2, 512, 4096, True),
        (3, 2, 4096, True),  # records' alleles split between clusters
        (4, 3, 5, True),  # and flushes behind runs of skipped records
        (7, 5, 3, False),  # one window per allele: batches instead of clusters
    ],
)
def test_variant_parts_joined_equal_one_process(
    vgenome, tmp_path, monkeypatch, world, cluster_alleles, pending, share
):
    vcf = _messy_vcf(vgenome, tmp_path / "v.vcf", n=40 if world > 3 else 80)
    setting = dict(cluster_alleles=cluster_alleles, pending=pending, monkeypatch=monkeypatch,
                   share=share)  # fmt: skip
    n_one = _run_score(vgenome, vcf, tmp_path / "one.tsv", fmt="wide", **setting)
    counts = _run_score(vgenome, vcf, tmp_path / "many.tsv", fmt="wide", world=world, **setting)
    assert sum(counts) == n_one and sum(c > 0 for c in counts) >= 2  # shared out, none twice
    for suffix in ("", ".skipped.tsv"):
        one = (tmp_path / f"one.tsv{suffix}").read_bytes()
        assert (tmp_path / f"many.tsv{suffix}").read_bytes() == one
    with gzip.open(tmp_path / "one.tsv.vcf.gz") as a, gzip.open(tmp_path / "many.tsv.vcf.gz") as b:
        assert a.read() == b.read()
    assert (tmp_path / "many.tsv.vcf.gz.tbi").is_file()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_variant_parts_joined_equal_one_process_h5(vgenome, tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    vcf = _messy_vcf(vgenome, tmp_path / "v.vcf", n=40)
    setting = dict(cluster_alleles=3, pending=4096, monkeypatch=monkeypatch, share=True)
    _run_score(vgenome, vcf, tmp_path / "one.h5", fmt="h5", **setting)
    _run_score(vgenome, vcf, tmp_path / "many.h5", fmt="h5", world=3, **setting)
    _same_h5(h5py, tmp_path / "one.h5", tmp_path / "many.h5")


def _same_h5(h5py, a, b):
    with h5py.File(a) as x, h5py.File(b) as y:
        assert set(x) == set(y) and dict(x.attrs) == dict(y.attrs)
        for k in x:
            assert x[k].dtype == y[k].dtype and x[k].chunks == y[k].chunks, k
            np.testing.assert_array_equal(x[k][:], y[k][:])


def test_cut_lines_split_the_records_in_blocks(tmp_path):
    text = "##fileformat=VCFv4.2\n#CHROM\tPOS\n" + "".join(f"c\t{i}\n\n" for i in range(1, 6))
    vcf = tmp_path / "v.vcf"
    vcf.write_text(text)  # records on lines 3, 5, 7, 9, 11
    assert V._cut_lines(vcf, 5, 1) == []
    assert V._cut_lines(vcf, 5, 2) == [7]  # records 0-1 | 2-4
    assert V._cut_lines(vcf, 5, 3) == [5, 9]  # records 0 | 1-2 | 3-4
    assert V._cut_lines(vcf, 5, 7) == [3, 5, 7, 7, 9, 11]  # blocks of no record
    keep = [V._keep_block([5, 7], r) for r in range(3)]
    alleles = [V.Variant("c", 0, ".", "A", "C", line) for line in (3, 5, 5, 7, 9)]
    # line 5 split between two clusters: the second stays with the first's process, 0
    clusters = [alleles[:2], alleles[2:4], alleles[4:]]
    assert [[k(c) for c in clusters] for k in keep] == [
        [True, True, False], [False, False, False], [False, False, True]
    ]  # fmt: skip
    keep = [V._keep_block([5, 7], r) for r in range(3)]
    clusters = [alleles[:1], alleles[1:2], alleles[2:4], alleles[4:]]
    owners = [[k(c) for c in clusters] for k in keep]
    assert owners[1] == [False, True, True, False]  # the cluster going on with line 5 stays


# --- torchrun, two CPU processes on gloo ---------------------------------------------------------
def _torchrun(*args, cwd=None, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def _bigwig_values(path):
    with pyBigWig.open(str(path)) as bw:
        chroms = bw.chroms()
        return chroms, {
            c: (bw.values(c, 0, n, numpy=True), bw.intervals(c)) for c, n in chroms.items()
        }


def _same_tracks(hub_a, hub_b, names):
    for n in names:
        ca, va = _bigwig_values(hub_a / "tracks" / n)
        cb, vb = _bigwig_values(hub_b / "tracks" / n)
        assert ca == cb, n
        for c in ca:
            np.testing.assert_array_equal(vb[c][0], va[c][0])  # NaN (no data) where it is NaN
            assert vb[c][1] == va[c][1], (n, c)
        # and the same bytes: the native writer's files do not depend on how the work was cut
        assert (hub_b / "tracks" / n).read_bytes() == (hub_a / "tracks" / n).read_bytes(), n


def _manifest(hub):
    man = json.loads((hub / "manifest.json").read_text())
    for t in man["tracks"]:
        for k in ("command", "created"):
            t.get("provenance", {}).pop(k, None)
    return man


@pytest.fixture
def one_thread():
    """torch on one thread here, as in each torchrun process of these tests: another thread
    count sums in another order and changes float32 roundings (as in one process)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_torchrun_predict_equals_one_process(trained_run, tmp_path, one_thread):
    args = ["predict", str(trained_run), "--chrom", "chr1", "--chrom", "chr3", "--bin-size", "64",
            "--marker", "SP1", "--marker", "CTCF", "--marker", "DNase", "--writers", "0",
            "--device", "cpu", "--threads", "1"]  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    r = runner.invoke(app, [*args, "--out", str(one)])
    assert r.exit_code == 0, r.output
    p = _torchrun("-m", "regtracks", *args, "--out", str(two))
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr.count("wrote 3 track(s) over 2 chromosome(s)") == 1  # process 0 alone tells
    assert "Traceback" not in p.stderr
    names = [f"pred_{m}.bw" for m in ("SP1", "CTCF", "DNase")]
    _same_tracks(one, two, names)
    assert _manifest(two) == _manifest(one)
    assert runner.invoke(app, ["hub", "check", str(two)]).exit_code == 0
    assert not [f for f in (two / "tracks").iterdir() if f.name.startswith(".")]


WORKER = '''
"""Run by torchrun on each process: the library calls of the comparison."""
import json, os, sys
from dataclasses import replace
from regtracks.config import DEFAULT_SALIENCY
from regtracks.inference.predict import predict
from regtracks.inference.saliency import saliency
from regtracks.inference.variants import score_variants

run, out, vcf, h5 = sys.argv[1:5]
kw = dict(device="cpu", n_procs=0)
# a hub that accumulates: chr2 added to chr1 (copied into the new files)
predict(run, f"{out}/hub", chroms=["chr1"], bin_size=100, **kw)
predict(run, f"{out}/hub", chroms=["chr2"], bin_size=100, **kw)
# saliency in chunks smaller than its margin, over a region cut by the processes
res = saliency(run, f"{out}/sal", region="chr2:20,001-29,000", markers=["SP1", "DNase", "CTCF"],
               bin_size=7, scan_window=24_000, target="all", cfg=replace(DEFAULT_SALIENCY,
               chunk=1_000), **kw)
for fmt in ("wide", "long") + (("h5",) if h5 == "1" else ()):
    v = score_variants(run, vcf, f"{out}/v.{fmt}", device="cpu", radius=20, fmt=fmt,
                       vcf_out=f"{out}/v.{fmt}.vcf.gz")
if os.environ["RANK"] == "0":
    json.dump({"targets": res.targets, "variants": v.variants}, open(f"{out}/res.json", "w"))
'''


def _worker_calls(run, out, vcf, h5):
    """What WORKER does, in this process (one process)."""
    from dataclasses import replace

    from regtracks.config import DEFAULT_SALIENCY
    from regtracks.inference.predict import predict
    from regtracks.inference.saliency import saliency
    from regtracks.inference.variants import score_variants

    kw = dict(device="cpu", n_procs=0)
    predict(run, out / "hub", chroms=["chr1"], bin_size=100, **kw)
    predict(run, out / "hub", chroms=["chr2"], bin_size=100, **kw)
    res = saliency(run, out / "sal", region="chr2:20,001-29,000", markers=["SP1", "DNase", "CTCF"],
                   bin_size=7, scan_window=24_000, target="all",
                   cfg=replace(DEFAULT_SALIENCY, chunk=1_000), **kw)  # fmt: skip
    for fmt in ("wide", "long") + (("h5",) if h5 else ()):
        v = score_variants(run, vcf, out / f"v.{fmt}", device="cpu", radius=20, fmt=fmt,
                           vcf_out=out / f"v.{fmt}.vcf.gz")  # fmt: skip
    return {"targets": res.targets, "variants": v.variants}


@pytest.mark.slow
def test_torchrun_library_calls_equal_one_process(trained_run, sim_small, tmp_path, one_thread):
    try:
        import h5py
    except ImportError:
        h5py = None
    g = Genome(sim_small / "genome.fa")
    vcf = _messy_vcf(g, tmp_path / "in.vcf", n=25)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    want = _worker_calls(trained_run, one, vcf, h5py is not None)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    p = _torchrun(str(script), str(trained_run), str(two), str(vcf), "1" if h5py else "0")
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((two / "res.json").read_text()) == want
    _same_tracks(one / "hub", two / "hub", [f"pred_{m}.bw" for m in _markers(one / "hub")])
    assert _manifest(two / "hub") == _manifest(one / "hub")
    _same_tracks(one / "sal", two / "sal", [f"sal_{m}.bw" for m in ("SP1", "DNase", "CTCF")])
    assert _manifest(two / "sal") == _manifest(one / "sal")
    for fmt in ("wide", "long") + (("h5",) if h5py else ()):
        if fmt != "h5":
            assert (two / f"v.{fmt}").read_bytes() == (one / f"v.{fmt}").read_bytes()
        else:
            _same_h5(h5py, one / "v.h5", two / "v.h5")
        a, b = (one / f"v.{fmt}.skipped.tsv"), (two / f"v.{fmt}.skipped.tsv")
        assert b.read_bytes() == a.read_bytes()
        with gzip.open(one / f"v.{fmt}.vcf.gz") as x, gzip.open(two / f"v.{fmt}.vcf.gz") as y:
            assert y.read() == x.read()
    left = [f for d in (two, two / "hub" / "tracks", two / "sal" / "tracks") for f in d.iterdir()
            if ".tmp" in f.name]  # fmt: skip
    assert not left


def _markers(hub):
    return [t["marker"] for t in json.loads((hub / "manifest.json").read_text())["tracks"]
            if t["kind"] == "prediction"]  # fmt: skip


@pytest.mark.slow
def test_torchrun_error_on_one_process_ends_both_with_one_line(trained_run, tmp_path):
    """Process 0 cannot take the hub's lock: both processes stop (no hang), one error line."""
    from regtracks._util import folder_lock

    hub = tmp_path / "hub"
    with folder_lock(hub, "a test holding it"):
        p = _torchrun("-m", "regtracks", "predict", str(trained_run), "--chrom", "chr1", "--out",
                      str(hub), "--device", "cpu", "--writers", "0", timeout=200)  # fmt: skip
    assert p.returncode != 0
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "in use by another regtracks process" in errors[0], p.stderr
    assert "regtracks/inference" not in p.stderr  # no traceback of ours (torchrun prints its own)
    assert not (hub / "tracks").exists() or not list((hub / "tracks").glob("*.bw"))


def test_threads_stand_in_for_processes():
    """run_ranks: every process's result, in rank order (the helper the tests above use)."""
    assert run_ranks(3, lambda job: (job.rank, job.sync(job.rank * 10))) == [
        (0, [0, 10, 20]), (1, [0, 10, 20]), (2, [0, 10, 20])
    ]  # fmt: skip
