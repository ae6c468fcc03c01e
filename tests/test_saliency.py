"""`regtracks saliency`: stitched gradients equal a linear model's weights summed by hand and
the gradient of one long input; the command writes bigWigs into a checked hub; bad input fails
cleanly."""

import json

import numpy as np
import pyBigWig
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from regtracks.checkpoint import load_checkpoint
from regtracks.cli import app
from regtracks.data.genome import Genome, one_hot
from regtracks.inference.saliency import saliency_region
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
    ],
)
def test_bad_input_one_line(trained_run, tmp_path, args, message):
    hub = tmp_path / "hub"
    r = runner.invoke(app, ["saliency", str(trained_run), "--out", str(hub), *args])
    assert r.exit_code == 1
    assert message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (hub / "manifest.json").exists()
