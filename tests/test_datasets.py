from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader

from regtracks.config import DEFAULT_DATA
from regtracks.data.datasets import (
    DenseDataset,
    SequenceDataset,
    collate_dense,
    collate_sequence,
    one_hot_torch,
    to_device,
)
from regtracks.data.genome import one_hot, reverse_complement
from regtracks.data.prepare import prepare
from tests.conftest import brute_labels


def _td(tiny, **kw):
    cfg = replace(DEFAULT_DATA, window_len=500, split="random", **kw)
    return prepare(tiny["fasta"], tiny["manifest"], cfg=cfg)


def test_dense_items_and_batches(tiny, device):
    td = _td(tiny)
    ds = DenseDataset(td.genome, td.index, td.samples, None)
    assert len(ds) == len(td.samples)
    dl = DataLoader(ds, batch_size=4, collate_fn=collate_dense)
    seen = 0
    for batch in dl:
        x, y = to_device(batch, td.n_markers, device)
        assert x.shape == (len(batch), 4, 500) and x.dtype == torch.float32
        assert y.shape == (len(batch), 3, 500) and y.dtype == torch.uint8
        for b, sid in enumerate(batch.index.tolist()):
            chrom, s, e = td.samples.region(sid)
            np.testing.assert_array_equal(x[b].cpu().numpy(), one_hot(td.genome.fetch(chrom, s, e)))
            want = brute_labels(tiny["rows"], td.markers.names, chrom, s, e)
            np.testing.assert_array_equal(y[b].cpu().numpy(), want)
        seen += len(batch)
    assert seen == len(ds)


def test_reverse_complement_augmentation(tiny):
    td = _td(tiny)
    ds = DenseDataset(td.genome, td.index, td.samples, None, rc=True, seed=3)
    dense = DenseDataset(td.genome, td.index, td.samples, None, rc=True, seed=3, dense_labels=True)
    flips = 0
    for i in range(len(ds)):
        it = ds[i]
        chrom, s, e = td.samples.region(it["index"])
        codes = td.genome.fetch(chrom, s, e)
        y = brute_labels(tiny["rows"], td.markers.names, chrom, s, e)
        if it["rc"]:
            flips += 1
            codes, y = reverse_complement(codes), y[:, ::-1]
        np.testing.assert_array_equal(it["codes"].numpy(), codes)
        np.testing.assert_array_equal(dense[i]["y"].numpy(), y)
        yy = to_device(collate_dense([it]), td.n_markers, "cpu")[1][0].numpy()
        np.testing.assert_array_equal(yy, y)
    assert 0 < flips < len(ds)
    # deterministic for (seed, epoch); another epoch draws again
    again = DenseDataset(td.genome, td.index, td.samples, None, rc=True, seed=3)
    assert [again[i]["rc"] for i in range(len(ds))] == [ds[i]["rc"] for i in range(len(ds))]
    again.set_epoch(1)
    assert [again[i]["rc"] for i in range(len(ds))] != [ds[i]["rc"] for i in range(len(ds))]


def test_workers_give_identical_batches(tiny):
    td = _td(tiny)
    ds = DenseDataset(td.genome, td.index, td.samples, "train", rc=True, seed=1)
    ds[0]  # open the FASTA handle in the parent before the workers fork

    def run(workers):
        g = torch.Generator().manual_seed(0)
        dl = DataLoader(
            ds,
            batch_size=3,
            shuffle=True,
            generator=g,
            num_workers=workers,
            collate_fn=collate_dense,
        )
        return [(b.codes.clone(), b.rows.clone()) for b in dl]

    a, b = run(0), run(2)
    assert len(a) == len(b)
    for (ca, ra), (cb, rb) in zip(a, b, strict=True):
        assert torch.equal(ca, cb) and torch.equal(ra, rb)


def test_sequence_dataset(tiny):
    from regtracks.config import DataConfig

    td = prepare(tiny["fasta"], tiny["manifest"], task="sequence", cfg=DataConfig(split="random"))
    ds = SequenceDataset(td.genome, td.samples, td.n_markers, None, rc=True, seed=0)
    batch = collate_sequence([ds[i] for i in range(min(5, len(ds)))])
    x, y = to_device(batch, td.n_markers, "cpu")
    assert x.shape == (len(batch), 4, 1000) and y.shape == (len(batch), 3)
    for b, sid in enumerate(batch.index.tolist()):
        np.testing.assert_array_equal(y[b].numpy(), td.samples.labels(sid, 3))


def test_one_hot_torch_matches_numpy(rng):
    codes = rng.integers(0, 5, size=(2, 33)).astype(np.uint8)
    np.testing.assert_array_equal(one_hot_torch(torch.from_numpy(codes)).numpy(), one_hot(codes))


def test_shift_augmentation_moves_labels_with_the_sequence(tiny):
    # windows may move only into kept neighbours of the same split
    td = _td(tiny)
    ds = DenseDataset(td.genome, td.index, td.samples, "train", rc=True, seed=5, shift=250)
    dense = DenseDataset(
        td.genome, td.index, td.samples, "train", rc=True, seed=5, shift=250, dense_labels=True
    )
    starts = {
        (td.samples.chroms[int(c)], int(s)): int(k)
        for c, s, k in zip(td.samples.chrom_idx, td.samples.start, td.samples.split, strict=True)
    }
    shifts = set()
    for epoch in range(3):
        ds.set_epoch(epoch)
        dense.set_epoch(epoch)
        for i in range(len(ds)):
            it = ds[i]
            chrom, s0, _ = td.samples.region(it["index"])
            d = it["shift"]
            assert -250 <= d <= 250
            shifts.add(d)
            s, e = s0 + d, s0 + d + 500
            # the shifted window lies in kept windows of the training split only
            for cell in {s - s % 500, (e - 1) - (e - 1) % 500}:
                assert starts.get((chrom, cell)) == 0, (chrom, s, e)
            codes = td.genome.fetch(chrom, s, e)
            y = brute_labels(tiny["rows"], td.markers.names, chrom, s, e)
            if it["rc"]:
                codes, y = reverse_complement(codes), y[:, ::-1]
            np.testing.assert_array_equal(it["codes"].numpy(), codes)
            np.testing.assert_array_equal(dense[i]["y"].numpy(), y)
            yy = to_device(collate_dense([it]), td.n_markers, "cpu")[1][0].numpy()
            np.testing.assert_array_equal(yy, y)
    assert len(shifts) > 10 and min(shifts) < 0 < max(shifts)
    # deterministic for (seed, epoch) and independent of the other datasets' state
    again = DenseDataset(td.genome, td.index, td.samples, "train", rc=True, seed=5, shift=250)
    again.set_epoch(2)
    assert [again[i]["shift"] for i in range(len(ds))] == [ds[i]["shift"] for i in range(len(ds))]
    # without shift (evaluation, scanning) the tiles stay fixed
    fixed = DenseDataset(td.genome, td.index, td.samples, "valid", seed=5)
    assert all(fixed[i]["shift"] == 0 for i in range(len(fixed)))


def test_shift_bounds_stay_in_split_and_chromosome():
    from regtracks.data.datasets import shift_bounds
    from regtracks.data.windows import Samples, SplitInfo

    # chrA: windows 0..4 at 0,100,...; window 2 dropped; splits train,train,-,valid,train
    samples = Samples(
        task="dense",
        chroms=["chrA", "chrB"],
        chrom_idx=np.array([0, 0, 0, 0, 1], dtype=np.int32),
        start=np.array([0, 100, 300, 400, 0], dtype=np.int64),
        length=100,
        split=np.array([0, 0, 1, 0, 0], dtype=np.int8),
        total=6,
        dropped={},
        split_info=SplitInfo(mode="random", chroms={}, auto=False),
    )
    lo, hi = shift_bounds(samples, np.arange(5), 60)
    # 0: no left neighbour, right one train; 1: left train, right dropped; 2 (valid): none;
    # 3: left is valid; 4: alone on chrB
    assert lo.tolist() == [0, -60, 0, 0, 0]
    assert hi.tolist() == [60, 0, 0, 0, 0]
    lo, hi = shift_bounds(samples, np.arange(5), 500)  # at most one window length
    assert lo.tolist() == [0, -100, 0, 0, 0] and hi.tolist() == [100, 0, 0, 0, 0]


def test_sequence_jitter_keeps_labels_inside_the_chromosome(tiny):
    td = prepare(
        tiny["fasta"],
        tiny["manifest"],
        task="sequence",
        cfg=replace(DEFAULT_DATA, seq_len=400, split="random"),
    )
    ds = SequenceDataset(td.genome, td.samples, td.n_markers, None, seed=2, shift=20)
    seen = set()
    for i in range(len(ds)):
        it = ds[i]
        chrom, s, e = td.samples.region(it["index"])
        d = it["shift"]
        seen.add(d)
        assert -20 <= d <= 20 and 0 <= s + d and e + d <= td.genome.sizes[chrom]
        np.testing.assert_array_equal(it["codes"].numpy(), td.genome.fetch(chrom, s + d, e + d))
        np.testing.assert_array_equal(it["y"].numpy(), td.samples.labels(it["index"], 3))
    assert len(seen) > 5
