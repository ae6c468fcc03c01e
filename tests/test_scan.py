"""The scan engine: stitching is exact where the receptive field fits, bins are exact means,
assembly gaps carry no data."""

import numpy as np
import pytest
import torch
from torch import nn

from regtracks.data.genome import Genome, one_hot
from regtracks.inference.scan import gap_mask, plan_scan, scan_chromosome, scan_margin
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
    plan = plan_scan(1, 1, bin_size=bin_size, scan_window=1_000)
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
    plan = plan_scan(model.receptive_field, 1, bin_size=1, scan_window=700)
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
    plan = plan_scan(1, 1, bin_size=10, scan_window=300)
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
    approx = plan_scan(None, 10, bin_size=128, scan_window=25_000)
    assert not approx.exact
    with pytest.raises(ValueError, match="bin-size"):
        plan_scan(5, 1, bin_size=0)
    with pytest.raises(ValueError, match="no room"):
        plan_scan(10_810, 10, bin_size=128, scan_window=20_000)


# -- the lean scan: equal to a brute-force reference, whatever the markers kept ---------------


def _gap_positions(codes: np.ndarray, min_gap: int) -> np.ndarray:
    """Bool per base: inside a run of N (code 0) of at least ``min_gap`` bp."""
    isn = np.concatenate([[False], codes == 0, [False]])
    edges = np.flatnonzero(np.diff(isn.astype(np.int8)))
    out = np.zeros(codes.size, bool)
    for s, e in zip(edges[::2], edges[1::2], strict=True):
        if e - s >= min_gap:
            out[s:e] = True
    return out


def brute_force(model, genome, chrom, plan, min_gap=100, rc=False):
    """Each core's window through ``model`` on its own, sigmoid, bins averaged by hand (with
    ``rc``: averaged with the reversed prediction on the reverse complement)."""
    size, bs = genome.sizes[chrom], plan.bin_size
    gap = _gap_positions(genome.fetch(chrom, 0, size), min_gap)
    n_bins = -(-size // bs)
    out = np.full((model.n_markers, n_bins), np.nan)
    for c0 in range(0, size, plan.core):
        e = min(c0 + plan.core, size)
        if gap[c0:e].all():
            continue  # no data: the scan does not run this window
        w = genome.fetch(chrom, c0 - plan.margin, c0 - plan.margin + plan.window)
        x = one_hot(w)
        with torch.no_grad():
            logits = model(torch.from_numpy(x)[None])[0].double().numpy()
            p = 1 / (1 + np.exp(-logits))
            if rc:
                rev = torch.from_numpy(x[::-1, ::-1].copy())[None]  # ACGT: complement = reverse
                p = (p + 1 / (1 + np.exp(-model(rev)[0].double().numpy()[:, ::-1]))) / 2
        p = p[:, plan.margin : plan.margin + e - c0]
        for b in range(c0 // bs, -(-e // bs)):
            a, z = b * bs, min((b + 1) * bs, size)
            out[:, b] = np.nan if gap[a:z].all() else p[:, a - c0 : z - c0].mean(1)
    return out


def small_dilated(n_markers=4):
    from regtracks.models import get_model

    torch.manual_seed(3)
    return get_model(
        "dilated", n_markers=n_markers, f1=8, f2=8, f3=8, d_hidden=8, dilations="1,3"
    ).eval()


@pytest.fixture
def edge_genome(tmp_path, rng):
    """Gaps inside a window, a gap covering whole cores, a chromosome ending in a gap (its
    last, partial core has no data) and one whose last core is partial and has data."""
    a = list(random_seq(rng, 23_457))
    a[3_000:3_400] = "N" * 400
    a[8_000:15_000] = "N" * 7_000
    b = list(random_seq(rng, 9_001))
    b[7_500:] = "N" * 1_501
    return Genome(write_fasta(tmp_path / "g.fa", {"chrA": "".join(a), "chrB": "".join(b)}))


@pytest.mark.parametrize("make", [Conv, small_dilated], ids=["conv", "dilated"])
@pytest.mark.parametrize("bin_size", [1, 10, 128])
def test_scan_equals_brute_force_for_every_marker_choice(edge_genome, make, bin_size):
    model = make().eval()
    M = model.n_markers
    margin = scan_margin(model.receptive_field, model.stride, 0)
    plan = plan_scan(
        model.receptive_field, model.stride, bin_size=bin_size, scan_window=2 * margin + 1_280
    )
    assert plan.exact and plan.core == 1_280  # 19 windows on chrA: a last batch of 1 of 3
    for chrom in ("chrA", "chrB"):
        ref = brute_force(model, edge_genome, chrom, plan)
        every = collect(model, edge_genome, chrom, plan, batch_size=3)
        listed = collect(model, edge_genome, chrom, plan, batch_size=3, marker_idx=list(range(M)))
        np.testing.assert_array_equal(every, listed)
        assert np.array_equal(np.isnan(every), np.isnan(ref)) and np.isnan(ref).any()
        # forward_slice (the dilated model's head on the core only) rounds differently
        np.testing.assert_allclose(every, ref, atol=1e-6, rtol=0)
        # a subset: the same rows (a permutation: index_select; a run: a view)
        for sub in ([M - 1, 0], [1, 2], list(reversed(range(M)))):
            got = collect(model, edge_genome, chrom, plan, batch_size=2, marker_idx=sub)
            np.testing.assert_allclose(got, every[sub], atol=2e-7, rtol=0)
            assert np.array_equal(np.isnan(got), np.isnan(every[sub]))
    # reverse-complement averaging, with a subset (the reversed window's core is sliced too)
    got = collect(
        model, edge_genome, "chrA", plan, batch_size=3, marker_idx=[2, 0], rc_average=True
    )
    ref = brute_force(model, edge_genome, "chrA", plan, rc=True)[[2, 0]]
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)


def test_blocks_are_one_per_batch_in_order(edge_genome):
    model = Echo()
    plan = plan_scan(1, 1, bin_size=10, scan_window=1_000)
    size = edge_genome.sizes["chrA"]
    got = list(scan_chromosome(model, edge_genome, "chrA", plan=plan, n_markers=5, batch_size=4))
    step = 4 * plan.core
    assert [s for s, _ in got] == list(range(0, size, step))
    for s, v in got:
        assert v.dtype == np.float32 and v.flags.c_contiguous and v.shape[0] == 5
        assert v.shape[1] == -(-(min(s + step, size) - s) // 10)


def test_early_close_and_errors_stop_the_prefetch_thread(edge_genome):
    import gc
    import threading

    from regtracks._util import RegtracksError

    model = Echo()
    plan = plan_scan(1, 1, bin_size=10, scan_window=500)
    before = threading.active_count()
    gen = scan_chromosome(model, edge_genome, "chrA", plan=plan, n_markers=5, batch_size=1)
    next(gen)
    assert threading.active_count() == before + 1  # the prefetch thread, ahead of the model
    gen.close()
    assert threading.active_count() == before
    for _ in scan_chromosome(model, edge_genome, "chrA", plan=plan, n_markers=5, batch_size=1):
        break  # a for loop left early: the generator is closed when dropped
    gc.collect()
    assert threading.active_count() == before

    class Failing:
        """The genome, whose fourth fetch fails (on the prefetch thread)."""

        def __init__(self, g):
            self.g, self.n = g, 0
            self.sizes, self.require, self.n_runs = g.sizes, g.require, g.n_runs

        def fetch(self, *a):
            self.n += 1
            if self.n == 4:
                raise RegtracksError("chrA: cannot read the FASTA (test)")
            return self.g.fetch(*a)

    gen = scan_chromosome(model, Failing(edge_genome), "chrA", plan=plan, n_markers=5)
    with pytest.raises(RegtracksError, match="cannot read the FASTA"):
        list(gen)
    assert threading.active_count() == before

    class Broken(Echo):
        def forward(self, x):
            raise RuntimeError("model failed")

    with pytest.raises(RuntimeError, match="model failed"):
        list(scan_chromosome(Broken(), edge_genome, "chrA", plan=plan, n_markers=5))
    assert threading.active_count() == before


def test_cpu_passes_of_one_window_give_the_same_tracks(edge_genome, monkeypatch):
    from regtracks.inference import scan

    model = small_dilated()
    margin = scan_margin(model.receptive_field, model.stride, 0)
    plan = plan_scan(model.receptive_field, model.stride, bin_size=10, scan_window=2 * margin + 640)
    whole = collect(model, edge_genome, "chrA", plan, batch_size=4, rc_average=True)
    monkeypatch.setattr(scan, "_CPU_PASS_BYTES", 1)  # one window a pass
    single = collect(model, edge_genome, "chrA", plan, batch_size=4, rc_average=True)
    np.testing.assert_allclose(single, whole, atol=2e-7, rtol=0)
    assert np.array_equal(np.isnan(single), np.isnan(whole))
    ref = brute_force(model, edge_genome, "chrA", plan, rc=True)
    np.testing.assert_allclose(single, ref, atol=1e-6, rtol=0)
