"""`regtracks saliency`: stitched gradients equal a linear model's weights summed by hand (over
every position, the positive labels or the model's own calls) and the gradient of one long
input; the command writes bigWigs into a checked hub, from the positive labels by default; bad
input fails cleanly."""

import json

import numpy as np
import pyBigWig
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from regtracks.checkpoint import load_checkpoint, save_checkpoint
from regtracks.cli import app
from regtracks.data.genome import Genome, one_hot
from regtracks.data.labels import IntervalIndex
from regtracks.inference.saliency import TargetStats, region_labels, saliency_region
from regtracks.models import get_model
from regtracks.models.layers import DenseModel
from tests.conftest import random_seq, write_fasta

runner = CliRunner()


class LinearConv(DenseModel):
    """``logit[m, p] = b[m] + sum_{c, k} w[m, c, k] x[c, p + k - left]``: receptive field K."""

    def __init__(self, n_markers: int, k: int):
        super().__init__(n_markers)
        self.conv = nn.Conv1d(4, n_markers, k)
        self.left = k // 2
        self.receptive_field = k
        self.stride = 1

    def forward(self, x):
        k = self.receptive_field
        return self.conv(nn.functional.pad(x, (self.left, k - 1 - self.left)))


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    rng = np.random.default_rng(7)
    d = tmp_path_factory.mktemp("sal")
    seq = random_seq(rng, 40_000)
    seq = seq[:9_000] + "N" * 500 + seq[9_500:]  # an N run inside the span
    return Genome(write_fasta(d / "g.fa", {"c1": seq, "c2": random_seq(rng, 3_000)}))


def _collect(blocks, span0, span1):
    got = [(p, v) for p, v in blocks]
    pos = span0
    for p, v in got:
        assert p == pos  # contiguous, in order, no overlap
        pos += v.shape[1]
    assert pos == span1
    return np.concatenate([v for _, v in got], axis=1)


@pytest.mark.parametrize("start,end", [(8_000, 12_345), (0, 700), (39_000, 40_000)])
def test_linear_model_by_hand(genome, start, end):
    torch.manual_seed(0)
    k, m = 21, 2
    model = LinearConv(3, k)
    w = model.conv.weight.detach().numpy().astype(np.float64)  # (M, 4, K)
    # d S / d x[c, b] = sum over region positions p of w[m, c, b - p + left]
    L = genome.sizes["c1"]
    span0, span1 = max(0, start - k), min(L, end + k)
    grad = np.zeros((4, span1 - span0))
    for b in range(span0, span1):
        for p in range(max(start, b - k + 1 + model.left), min(end, b + model.left + 1)):
            grad[:, b - span0] += w[m, :, b - p + model.left]
    x = one_hot(genome.fetch("c1", span0, span1)).astype(np.float64)
    want_gxi = (grad * x).sum(axis=0)
    want_norm = np.sqrt((grad**2).sum(axis=0))
    for reduce, want in (("grad_x_input", want_gxi), ("norm", want_norm)):
        # small cores and chunks: many windows and chunks to stitch
        blocks = saliency_region(
            model, genome, "c1", start, end, marker_idx=[m], reduce=reduce, margin=k, core=50,
            chunk=400, batch_size=3,
        )  # fmt: skip
        got = _collect(blocks, span0, span1)
        assert got.shape == (1, span1 - span0)
        np.testing.assert_allclose(got[0], want, atol=1e-5)
    n_at = 9_000 - span0
    if 0 <= n_at < span1 - span0:
        assert want_gxi[n_at] == 0 and got[0, n_at] > 0  # N: no base present, gradient still


def _by_hand(w, m, left, k, outputs, span0, span1):
    """``(4, span)`` gradient of the sum of marker ``m``'s logits over ``outputs`` (positions)
    of a linear convolution: every output ``p`` adds ``w[m, :, b - p + left]`` at base ``b``."""
    grad = np.zeros((4, span1 - span0))
    for p in outputs:
        for j in range(k):
            b = p + j - left
            if span0 <= b < span1:
                grad[:, b - span0] += w[m, :, j]
    return grad


def _linear_logits(model, genome, chrom, m):
    """Marker ``m``'s logits along the whole chromosome, by hand (N off the ends)."""
    k, left = model.receptive_field, model.left
    w = model.conv.weight.detach().numpy().astype(np.float64)[m]  # (4, K)
    x = one_hot(genome.fetch(chrom, 0, genome.sizes[chrom])).astype(np.float64)
    xp = np.pad(x, ((0, 0), (left, k - 1 - left)))
    n = x.shape[1]
    out = np.full(n, float(model.conv.bias[m].detach()))
    for j in range(k):
        out += w[:, j] @ xp[:, j : j + n]
    return out


@pytest.mark.parametrize("start,end", [(8_000, 12_345), (0, 700)])
def test_linear_positives_by_hand(genome, start, end):
    """The paper's Figure 2: an error of 1 from every positive output = the weights summed over
    the positive outputs by hand; only positions inside the region count."""
    torch.manual_seed(2)
    k, m = 21, 1
    model = LinearConv(3, k)
    w = model.conv.weight.detach().numpy().astype(np.float64)
    rng = np.random.default_rng(5)
    s = np.sort(rng.choice(np.arange(0, 39_000, 400), size=40, replace=False))
    e = s + rng.integers(1, 300, size=s.size)
    s[0], e[0] = max(0, start - 50), start + 30  # a peak across the region's start
    order = np.argsort(s)
    index = IntervalIndex([{"c1": (s[order], e[order])}])
    y = index.dense("c1", 0, genome.sizes["c1"])[0]
    outputs = [p for p in range(start, end) if y[p]]
    assert outputs and len(outputs) < end - start
    L = genome.sizes["c1"]
    span0, span1 = max(0, start - k), min(L, end + k)
    grad = _by_hand(w, m, model.left, k, outputs, span0, span1)
    x = one_hot(genome.fetch("c1", span0, span1)).astype(np.float64)
    for reduce, want in (
        ("grad_x_input", (grad * x).sum(axis=0)),
        ("norm", np.sqrt((grad**2).sum(axis=0))),
    ):
        stats = TargetStats.new(1, start=start, end=end)
        blocks = saliency_region(
            model, genome, "c1", start, end, marker_idx=[m], reduce=reduce, margin=k, core=50,
            chunk=400, batch_size=3, target="positives", labels=region_labels(index, "c1"),
            stats=stats,
        )  # fmt: skip
        got = _collect(blocks, span0, span1)
        np.testing.assert_allclose(got[0], want, atol=1e-5)
        assert stats.counts.tolist() == [len(outputs)]
        np.testing.assert_array_equal(stats.mask[0], y[start:end])


def test_linear_predicted_by_hand(genome):
    """--target predicted: the sum over the outputs the model calls (logit > 0, p > 0.5).

    Integer weights and a bias of 0.5: every logit is a half-integer, so no call is decided by
    rounding."""
    torch.manual_seed(3)
    k, m = 15, 0
    model = LinearConv(2, k)
    with torch.no_grad():
        model.conv.weight.copy_(torch.randint(-1, 2, model.conv.weight.shape).float())
        model.conv.bias.fill_(0.5)
    w = model.conv.weight.detach().numpy().astype(np.float64)
    start, end = 20_000, 21_500
    logit = _linear_logits(model, genome, "c1", m)
    outputs = [p for p in range(start, end) if logit[p] > 0]
    assert 0 < len(outputs) < end - start
    span0, span1 = start - k, end + k
    grad = _by_hand(w, m, model.left, k, outputs, span0, span1)
    stats = TargetStats.new(1, start=start, end=end)
    blocks = saliency_region(
        model, genome, "c1", start, end, marker_idx=[m], reduce="norm", margin=k, core=40,
        chunk=300, batch_size=4, target="predicted", stats=stats,
    )  # fmt: skip
    got = _collect(blocks, span0, span1)
    np.testing.assert_allclose(got[0], np.sqrt((grad**2).sum(axis=0)), atol=1e-5)
    assert stats.counts.tolist() == [len(outputs)]
    np.testing.assert_array_equal(stats.mask[0], logit[start:end] > 0)


def test_positives_need_labels(genome):
    model = LinearConv(1, 5)
    with pytest.raises(ValueError, match="labels"):
        list(saliency_region(model, genome, "c1", 0, 100, marker_idx=[0], margin=5, core=10,
                             target="positives"))  # fmt: skip
    with pytest.raises(ValueError, match="--target"):
        list(saliency_region(model, genome, "c1", 0, 100, marker_idx=[0], margin=5, core=10,
                             target="peaks"))  # fmt: skip


def test_dilated_equals_one_long_input(genome):
    """A nonlinear model with an 11 kb field: stitched = the gradient of the whole chromosome.

    Without max pooling (``stem_width=0, pool=0``): a max pool's gradient goes to one element
    of each window, and two equal values (a repeat gives equal convolution outputs) that the two
    computations round differently move it to a neighbour; the stitching itself is what this
    test checks, and it is the same for every model."""
    torch.manual_seed(1)
    tiny = {"f1": 8, "f2": 8, "f3": 8, "d_hidden": 8, "stem_width": 0, "pool": 0}
    model = get_model("dilated", n_markers=2, **tiny).eval()
    rf = model.receptive_field
    start, end = 15_003, 24_950  # region +- rf inside the chromosome
    x = torch.from_numpy(one_hot(genome.fetch("c1", 0, genome.sizes["c1"])))[None]
    x.requires_grad_(True)
    model(x)[0, 1, start:end].sum().backward()
    full = x.grad[0].numpy()
    span0, span1 = start - rf, end + rf
    want = (full * x.detach()[0].numpy()).sum(axis=0)[span0:span1]
    blocks = saliency_region(
        model, genome, "c1", start, end, marker_idx=[1], margin=rf, core=2_000, chunk=4_000,
        stride=model.stride, batch_size=2,
    )  # fmt: skip
    got = _collect(blocks, span0, span1)[0]
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, atol=1e-5 * scale)
    assert not model.training and all(p.requires_grad for p in model.parameters())


def test_cli_writes_tracks_into_a_checked_hub(trained_run, sim_small, tmp_path):
    hub = tmp_path / "hub"
    r = runner.invoke(
        app,
        ["saliency", str(trained_run), "--region", "chr2:20,001-21,000", "--marker", "DNase",
         "--out", str(hub), "--device", "cpu"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    man = json.loads((hub / "manifest.json").read_text())
    (t,) = man["tracks"]
    assert t["kind"] == "saliency" and t["marker"] == "DNase" and t["chroms"] == ["chr2"]
    assert t["provenance"]["region"] == "chr2:20001-21000"
    assert t["provenance"]["target"] == "positives"  # the default: the run's peak files are there
    assert "positive position(s) (labels)" in t["description"]
    rf = load_checkpoint(trained_run / "best.pt").build_model().receptive_field
    margin = -(-rf // 10) * 10
    with pyBigWig.open(str(hub / "tracks" / "sal_DNase.bw")) as bw:
        ivs = bw.intervals("chr2")
        assert ivs[0][0] == 20_000 - margin and ivs[-1][1] == 21_000 + margin
        assert bw.intervals("chr1") is None
    assert runner.invoke(app, ["hub", "check", str(hub)]).exit_code == 0
    # a second command adds prediction tracks to the same hub and keeps the saliency one
    r = runner.invoke(
        app, ["predict", str(trained_run), "--chrom", "chr2", "--out", str(hub), "--writers", "0"]
    )
    assert r.exit_code == 0, r.output
    kinds = {
        t["name"]: t["kind"] for t in json.loads((hub / "manifest.json").read_text())["tracks"]
    }
    assert kinds["sal_DNase"] == "saliency" and kinds["pred_DNase"] == "prediction"
    assert runner.invoke(app, ["hub", "check", str(hub)]).exit_code == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--region", "chr2:5,000-4,000"], "empty"),
        (["--region", "chrZ:1-100"], "chrZ"),
        (["--region", "chr2:59,000-70,000"], "ends past chr2"),
        (["--region", "chr2:1-100", "--marker", "NOPE"], "NOPE"),
        (["--region", "chr2:1-100", "--reduce", "max"], "--reduce"),
        (["--region", "chr2:1-100", "--target", "peaks"], "--target"),
    ],
)
def test_bad_input_one_line(trained_run, tmp_path, args, message):
    hub = tmp_path / "hub"
    r = runner.invoke(app, ["saliency", str(trained_run), "--out", str(hub), *args])
    assert r.exit_code == 1
    assert message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (hub / "manifest.json").exists()


def _marker_peaks(run, marker, chrom):
    """Merged peaks of one marker of a run (as its labels are made), on one chromosome."""
    ck = load_checkpoint(run / "best.pt")
    ms = ck.marker_set()
    g = ck.open_genome()
    i = ms.index_of(marker)
    return ms, g, ms.read(g).per_marker[i][chrom]


def test_cli_default_target_is_the_positive_labels(trained_run, tmp_path):
    """The track equals the library's gradient from the positive labels read from the peak
    files recorded in the checkpoint, base by base; --target all differs from it."""
    from regtracks.data.markers import MarkerSet

    ms, g, (s, e) = _marker_peaks(trained_run, "DNase", "chr2")
    i = int(np.searchsorted(s, 20_000))
    start, end = int(s[i]) - 300, int(e[i]) + 300  # one peak and some negatives around it
    vals = {}
    for target in (None, "all"):
        hub = tmp_path / f"hub_{target}"
        args = ["saliency", str(trained_run), "--region", f"chr2:{start + 1}-{end}", "--marker",
                "DNase", "--out", str(hub), "--no-hub"]  # fmt: skip
        r = runner.invoke(app, args + ([] if target is None else ["--target", target]))
        assert r.exit_code == 0, r.output
        assert f"--target {target or 'positives'} outputs: DNase" in r.output
        with pyBigWig.open(str(hub / "tracks" / "sal_DNase.bw")) as bw:
            lo, hi = bw.intervals("chr2")[0][0], bw.intervals("chr2")[-1][1]
            vals[target] = (lo, np.array(bw.values("chr2", lo, hi), dtype=np.float64))
    ck = load_checkpoint(trained_run / "best.pt")
    model = ck.build_model()
    idx = IntervalIndex(MarkerSet([ms[ms.index_of("DNase")]]).read(g).per_marker)
    margin = -(-model.receptive_field // model.stride) * model.stride
    lo, got = vals[None]
    blocks = saliency_region(
        model, g, "chr2", start, end, marker_idx=[ms.index_of("DNase")], margin=margin,
        core=2_000, stride=model.stride, target="positives", labels=region_labels(idx, "chr2"),
    )  # fmt: skip
    want = _collect(blocks, lo, lo + got.size)[0]
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max())
    assert not np.allclose(got, vals["all"][1])


def test_cli_region_without_positives_says_so(trained_run, tmp_path):
    _, _, (s, e) = _marker_peaks(trained_run, "DNase", "chr2")
    gaps = np.flatnonzero(s[1:] - e[:-1] > 400)
    a = int(e[gaps[0]]) + 100  # inside a gap between two peaks
    hub = tmp_path / "hub"
    region = f"chr2:{a + 1}-{a + 200}"
    base = [
        "saliency",
        str(trained_run),
        "--region",
        region,
        "--marker",
        "DNase",
        "--out",
        str(hub),
    ]
    for extra in ([], ["--target", "positives"]):
        r = runner.invoke(app, base + extra)
        assert r.exit_code == 1
        assert "no positive labels of DNase" in r.output and "--target all" in r.output
        assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
        assert not (hub / "manifest.json").exists()
    r = runner.invoke(app, [*base, "--target", "all", "--no-hub"])  # every position: fine
    assert r.exit_code == 0, r.output


def test_cli_without_peak_files(trained_run, tmp_path):
    """Peak files moved away: the default falls back to every position with one warning;
    --target positives is one error line."""
    ck = load_checkpoint(trained_run / "best.pt")
    raw = dict(ck.raw)
    raw["markers"] = [dict(m, path=str(tmp_path / "gone.bed")) for m in raw["markers"]]
    moved = tmp_path / "moved.pt"
    save_checkpoint(moved, raw)
    hub = tmp_path / "hub"
    base = ["saliency", str(moved), "--region", "chr2:20,001-20,500", "--marker", "DNase",
            "--out", str(hub), "--no-hub"]  # fmt: skip
    r = runner.invoke(app, [*base, "--target", "positives"])
    assert r.exit_code == 1 and "--target positives needs the run's labels" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, base)
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "not there" in r.output
    (t,) = json.loads((hub / "manifest.json").read_text())["tracks"]
    assert t["provenance"]["target"] == "all"
