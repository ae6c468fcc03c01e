"""The scan engine: stitching is exact where the receptive field fits, bins are exact means,
assembly gaps carry no data."""

import numpy as np
import pytest
import torch
from torch import nn

from regtracks.data.genome import Genome, one_hot
from regtracks.inference.scan import gap_mask, plan_scan, scan_chromosome
from tests.conftest import random_seq, write_fasta


class Echo(nn.Module):
    """Output m at p = 3 * (one-hot channel m % 4 at p) - 1: the track echoes the sequence."""

    receptive_field = 1
    stride = 1

    def __init__(self, n_markers=5):
        super().__init__()
        self.n_markers = n_markers

    def forward(self, x):
        return torch.stack([3 * x[:, m % 4] - 1 for m in range(self.n_markers)], dim=1)


class Conv(nn.Module):
    """Random dilated convolutions (RF 1 + 2*(4*1 + 4*3 + 4*9) = 105), zero padding."""

    stride = 1

    def __init__(self, n_markers=3):
        super().__init__()
        torch.manual_seed(0)
        layers, c = [], 4
        for d in (1, 3, 9):
            layers += [nn.Conv1d(c, 16, 9, dilation=d, padding=4 * d), nn.ReLU()]
            c = 16
        self.net = nn.Sequential(*layers, nn.Conv1d(16, n_markers, 1))
        self.receptive_field = 1 + 8 * (1 + 3 + 9)
        self.n_markers = n_markers

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def genome(tmp_path, rng):
    s = list(random_seq(rng, 20_011))
    s[5_000:5_700] = "N" * 700  # an assembly gap
    s[9_000:9_050] = "N" * 50  # too short to be a gap: carries data
    seqs = {"chrA": "".join(s), "chrB": random_seq(rng, 999)}
    return Genome(write_fasta(tmp_path / "g.fa", seqs))


def collect(model, genome, chrom, plan, **kw):
    starts, blocks = [], []
    for s, v in scan_chromosome(model, genome, chrom, plan=plan, n_markers=model.n_markers, **kw):
        starts.append(s)
        blocks.append(v)
    out = np.concatenate(blocks, axis=1)
    assert starts[0] == 0 and out.shape[1] == -(-genome.sizes[chrom] // plan.bin_size)
    return out


@pytest.mark.parametrize("bin_size", [1, 7, 128])
def test_echo_bins_are_exact_means(genome, bin_size):
    model = Echo()
    plan = plan_scan(1, 1, bin_size=bin_size, window_len=1_000)
    got = collect(model, genome, "chrA", plan, batch_size=3)
    x = one_hot(genome.fetch("chrA", 0, genome.sizes["chrA"]))
    size = x.shape[1]
    gs, ge = gap_mask(genome, "chrA")
    assert gs.tolist() == [5_000] and ge.tolist() == [5_700]
    for m in range(model.n_markers):
        per_base = 1 / (1 + np.exp(-(3 * x[m % 4] - 1)))
        for b in range(got.shape[1]):
            a, e = b * bin_size, min((b + 1) * bin_size, size)
            if a >= 5_000 and e <= 5_700:
                assert np.isnan(got[m, b])
            else:
                assert got[m, b] == pytest.approx(per_base[a:e].mean(), abs=1e-6)


def test_conv_stitching_equals_long_input(genome, rng):
    model = Conv().eval()
    plan = plan_scan(model.receptive_field, 1, bin_size=1, window_len=700)
    assert plan.exact and plan.margin >= model.receptive_field
    got = collect(model, genome, "chrA", plan, batch_size=2)
    size = genome.sizes["chrA"]
    with torch.no_grad():
        x = torch.from_numpy(one_hot(genome.fetch("chrA", 0, size)))[None]
        full = torch.sigmoid(model(x))[0].numpy()
    rf = model.receptive_field
    inner = np.ones(size, bool)
    inner[:rf] = inner[-rf:] = False
    inner[5_000:5_700] = False  # no data in the gap
    np.testing.assert_allclose(got[:, inner], full[:, inner], atol=1e-5)
    # and single windows around random positions agree too
    for p in rng.integers(rf, size - rf, size=20):
        if 5_000 <= p < 5_700:
            continue
        w = torch.from_numpy(one_hot(genome.fetch("chrA", p - rf, p + rf + 1)))[None]
        with torch.no_grad():
            single = torch.sigmoid(model(w))[0, :, rf].numpy()
        np.testing.assert_allclose(got[:, p], single, atol=1e-5)


def test_marker_subset_rc_and_short_chrom(genome):
    model = Echo()
    plan = plan_scan(1, 1, bin_size=10, window_len=300)
    sub = collect(model, genome, "chrB", plan, marker_idx=[4, 1])
    full = collect(model, genome, "chrB", plan)
    np.testing.assert_allclose(sub, full[[4, 1]])
    assert sub.shape == (2, 100)  # 999 bp: 99 whole bins and a partial one
    # RC averaging of an echo model: channel m's RC partner is the complement base
    rc = collect(model, genome, "chrB", plan, rc_average=True)
    comp = {0: 3, 1: 2, 2: 1, 3: 0}
    np.testing.assert_allclose(rc[0], (full[0] + full[comp[0]]) / 2, atol=1e-6)


def test_plan_alignment():
    p = plan_scan(10_810, 10, bin_size=128)
    assert p.margin % 10 == 0 and p.margin >= 10_810
    assert p.core % 128 == 0 and p.core % 10 == 0 and p.window == p.core + 2 * p.margin
    assert p.core >= 6 * 10_000
    approx = plan_scan(None, 10, bin_size=128, window_len=25_000)
    assert not approx.exact
    with pytest.raises(ValueError, match="bin-size"):
        plan_scan(5, 1, bin_size=0)
    with pytest.raises(ValueError, match="no room"):
        plan_scan(10_810, 10, bin_size=128, window_len=20_000)
