"""Labels of both tasks against brute force from the raw BED lines."""

import numpy as np
import torch

from regtracks.data.genome import Genome
from regtracks.data.labels import IntervalIndex, bin_positives, dense_labels_torch
from regtracks.data.markers import MarkerSet
from regtracks.data.prepare import prepare
from tests.conftest import brute_labels


def _index(tiny):
    ms = MarkerSet.from_tsv(tiny["manifest"])
    mi = ms.read(Genome(tiny["fasta"]))
    return ms, IntervalIndex(mi.per_marker)


def _windows(rng, sizes, n=40):
    out = [("chr1", 2_950, 3_350), ("chr2", 4_000, 4_500), ("chr1", -30, 120)]  # edges
    for _ in range(n):
        chrom = "chr1" if rng.random() < 0.5 else "chr2"
        s = int(rng.integers(-100, sizes[chrom]))
        out.append((chrom, s, s + int(rng.integers(1, 1_500))))
    return out


def test_dense_numpy_matches_brute_force(tiny, rng):
    ms, index = _index(tiny)
    for chrom, s, e in _windows(rng, tiny["sizes"]):
        want = brute_labels(tiny["rows"], ms.names, chrom, s, e)
        np.testing.assert_array_equal(index.dense(chrom, s, e), want)


def test_dense_torch_matches_brute_force(tiny, rng, device):
    ms, index = _index(tiny)
    wins = _windows(rng, tiny["sizes"], n=12)
    L = 700
    wins = [(c, s, s + L) for c, s, _ in wins]
    rows = []
    for b, (c, s, e) in enumerate(wins):
        r = index.query(c, s, e)
        rows.append(np.concatenate([np.full((r.shape[0], 1), b), r], axis=1))
    rows = torch.from_numpy(np.concatenate(rows)).to(device)
    y = dense_labels_torch(rows, len(wins), len(ms), L)
    assert y.dtype == torch.uint8 and y.device.type == device.type
    for b, (c, s, e) in enumerate(wins):
        np.testing.assert_array_equal(
            y[b].cpu().numpy(), brute_labels(tiny["rows"], ms.names, c, s, e)
        )


def test_bin_labels_match_brute_force(tiny):
    ms, index = _index(tiny)
    for chrom, size in tiny["sizes"].items():
        bins, markers = bin_positives(index, chrom, size, bin_size=200, min_overlap=0.5)
        got = set(zip(bins.tolist(), markers.tolist(), strict=True))
        want = set()
        y = brute_labels(tiny["rows"], ms.names, chrom, 0, size)
        for b in range(size // 200):
            for m in range(len(ms)):
                if y[m, b * 200 : (b + 1) * 200].sum() >= 100:
                    want.add((b, m))
        assert got == want


def test_sequence_samples_labels(tiny):
    td = prepare(
        tiny["fasta"],
        tiny["manifest"],
        task="sequence",
        cfg=__import__("regtracks.config", fromlist=["x"]).DataConfig(split="random"),
    )
    s = td.samples
    ms = td.markers
    g = td.genome
    seen_pos = set()
    for i in range(len(s)):
        chrom, a, b = s.region(i)
        assert b - a == 1000 and a >= 0 and b <= g.sizes[chrom]
        centre_bin = (a + 400) // 200
        assert (a + 400) % 200 == 0
        y = brute_labels(tiny["rows"], ms.names, chrom, centre_bin * 200, centre_bin * 200 + 200)
        want = (y.sum(1) >= 100).astype(np.uint8)
        np.testing.assert_array_equal(s.labels(i, len(ms)), want)
        if want.any():
            seen_pos.add((chrom, centre_bin))
        assert g.n_count(chrom, [a], [b])[0] <= 100
    # every positive bin whose input fits and is not too N-rich is a sample
    for chrom, size in td.genome.sizes.items():
        y = brute_labels(tiny["rows"], ms.names, chrom, 0, size)
        for bi in range(2, size // 200):
            a = bi * 200 - 400
            if a + 1000 > size or g.n_count(chrom, [a], [a + 1000])[0] > 100:
                continue
            if (y[:, bi * 200 : bi * 200 + 200].sum(1) >= 100).any():
                assert (chrom, bi) in seen_pos
