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
