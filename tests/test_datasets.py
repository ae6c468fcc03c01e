from dataclasses import replace

import numpy as np
import pytest
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


# -- the batched path (__getitems__), counter-based draws, the shared code map ---------------


def _seq_td(tiny, **kw):
    return prepare(
        tiny["fasta"],
        tiny["manifest"],
        task="sequence",
        cfg=replace(DEFAULT_DATA, seq_len=400, split="random", **kw),
    )


def test_batched_path_equals_the_per_item_path_cell_for_cell(tiny, rng):
    from regtracks.data.genome import one_hot

    # sequence task: codes from the shared code map vs Genome.fetch item by item
    td = _seq_td(tiny)
    ds = SequenceDataset(td.genome, td.samples, td.n_markers, None, rc=True, seed=4, shift=20)
    assert ds.code_map is not None
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        idx = rng.permutation(len(ds))[:17].tolist()
        ref = collate_sequence([ds[i] for i in idx])
        for x_dtype, y_dtype in ((None, None), (torch.float32, torch.float32)):
            ds.model_tensors(x_dtype, y_dtype)
            got = ds.__getitems__(idx)
            assert torch.equal(got.codes, ref.codes) and torch.equal(got.index, ref.index)
            assert got.y.dtype == (y_dtype or torch.uint8)
            np.testing.assert_array_equal(got.y.numpy(), ref.y.numpy())
            if x_dtype is None:
                assert got.x is None
            else:
                np.testing.assert_array_equal(got.x.numpy(), one_hot(ref.codes.numpy()))
            x, y = to_device(got, td.n_markers, "cpu")
            np.testing.assert_array_equal(x.numpy(), one_hot(ref.codes.numpy()))
    # dense task: interval rows, or dense labels (uint8, float32) built in place
    td = _td(tiny)
    ds = DenseDataset(td.genome, td.index, td.samples, "train", rc=True, seed=5, shift=250)
    for epoch in (0, 2):
        ds.set_epoch(epoch)
        idx = rng.permutation(len(ds))[:9].tolist()
        items = [ds[i] for i in idx]
        ref = collate_dense(items)
        assert any(it["rc"] for it in items) and any(it["shift"] for it in items)
        ds.model_tensors(None, None)
        got = ds.__getitems__(idx)
        assert torch.equal(got.codes, ref.codes) and torch.equal(got.rows, ref.rows)
        assert got.y is None
        for y_dtype in (torch.uint8, torch.float32):
            ds.model_tensors(torch.float32, y_dtype)
            got = ds.__getitems__(idx)
            assert got.rows is None and got.y.dtype == y_dtype
            for b, it in enumerate(items):
                chrom, s0, _ = td.samples.region(it["index"])
                s = s0 + it["shift"]
                want = brute_labels(tiny["rows"], td.markers.names, chrom, s, s + 500)
                if it["rc"]:
                    want = want[:, ::-1]
                np.testing.assert_array_equal(got.y[b].numpy(), want)
            np.testing.assert_array_equal(got.x.numpy(), one_hot(ref.codes.numpy()))
            _, y = to_device(got, td.n_markers, "cpu")
            assert torch.equal(y.to(torch.uint8), to_device(ref, td.n_markers, "cpu")[1])


@pytest.mark.parametrize("task", ["sequence", "dense"])
def test_loader_batches_do_not_depend_on_workers_and_follow_the_epoch(tiny, task, monkeypatch):
    from regtracks.data import datasets
    from regtracks.runtime import DistEnv
    from regtracks.training.loaders import EpochSampler, close_loader, make_dataset, make_loader

    if task == "sequence":
        td, shift = _seq_td(tiny), 20
    else:  # dense labels built in the workers, handed over in shared memory
        td, shift = _td(tiny), 250
        monkeypatch.setattr(datasets, "PICKLE_BYTES", 0)

    def run(workers):
        ds, collate = make_dataset(td, "train", rc=True, seed=1, shift=shift)
        sampler = EpochSampler(len(ds), batch_size=5, seed=1, dist=DistEnv())
        dl = make_loader(
            ds, sampler, collate, batch_size=5, workers=workers, device=torch.device("cpu")
        )
        assert dl.persistent_workers == (workers > 0)
        epochs = []
        for epoch in range(3):  # persistent workers see each epoch's draws
            sampler.set_epoch(epoch)
            ds.set_epoch(epoch)
            epochs.append([(b.codes.clone(), b.y.clone(), b.index.clone()) for b in dl])
        close_loader(dl)
        return epochs

    a, b = run(0), run(2)
    for ea, eb in zip(a, b, strict=True):
        assert len(ea) == len(eb) > 0
        for (ca, ya, ia), (cb, yb, ib) in zip(ea, eb, strict=True):
            assert torch.equal(ca, cb) and torch.equal(ya, yb) and torch.equal(ia, ib)
    # the same sample is drawn again in another epoch (a new strand / jitter for some)
    first = {int(i): row for c, _, idx in a[0] for i, row in zip(idx, c, strict=True)}
    second = {int(i): row for c, _, idx in a[1] for i, row in zip(idx, c, strict=True)}
    common = first.keys() & second.keys()
    assert common and any(not torch.equal(first[k], second[k]) for k in common)


def test_item_draws_are_counter_based():
    from regtracks.data.datasets import item_draws

    ids = np.arange(5_000)
    lo, hi = np.full(5_000, -7), np.full(5_000, 9)
    hi[::10] = lo[::10]  # no room to move: the shift is lo
    coin, shift = item_draws(3, 2, ids, lo, hi)
    assert coin.dtype == bool and shift.dtype == np.int64
    assert 0.45 < coin.mean() < 0.55
    assert (shift >= lo).all() and (shift <= hi).all() and (shift[::10] == -7).all()
    assert set(shift[1::10].tolist()) == set(range(-7, 10))  # every value drawn
    # each id's draws are its own: batches of any size or order give the same
    perm = np.random.default_rng(0).permutation(5_000)[:300]
    c2, s2 = item_draws(3, 2, ids[perm], lo[perm], hi[perm])
    assert (c2 == coin[perm]).all() and (s2 == shift[perm]).all()
    c1, s1 = item_draws(3, 2, [int(perm[0])], int(lo[perm[0]]), int(hi[perm[0]]))
    assert c1[0] == coin[perm[0]] and s1[0] == shift[perm[0]]
    # another epoch or seed draws again
    assert (item_draws(3, 3, ids, lo, hi)[0] != coin).mean() > 0.4
    assert (item_draws(4, 2, ids, lo, hi)[0] != coin).mean() > 0.4


def test_dense_labels_inplace_matches_brute_force(rng):
    from regtracks.data.datasets import dense_labels_inplace

    n, m, L = 3, 4, 50
    rows, want = [], np.zeros((n, m, L), dtype=np.uint8)
    for b in range(n):
        for k in range(m):
            cuts = np.sort(rng.choice(np.arange(L + 1), size=6, replace=False))
            for s, e in zip(cuts[::2], cuts[1::2], strict=True):
                rows.append((b, k, s, e))
                want[b, k, s:e] = 1
    rows = [r for r in rows if r[:2] != (0, 0)] + [(0, 0, 0, L)]  # a whole window
    want[0, 0] = 1
    t = torch.tensor(rows, dtype=torch.int32)
    for dtype in (torch.uint8, torch.float32, torch.bfloat16):
        y = dense_labels_inplace(t, n, m, L, dtype)
        assert y.dtype == dtype and y.shape == (n, m, L)
        np.testing.assert_array_equal(y.to(torch.uint8).numpy(), want)
    out = torch.full((n, m, L), 7, dtype=torch.uint8)
    assert dense_labels_inplace(t, n, m, L, out=out) is out
    np.testing.assert_array_equal(out.numpy(), want)
    assert dense_labels_inplace(t[:0], n, m, L).sum() == 0


def test_a_batch_crosses_processes_as_one_buffer(tiny, monkeypatch):
    import pickle
    from multiprocessing.reduction import ForkingPickler

    from regtracks.data import datasets
    from regtracks.data.datasets import _unpack_batch, _unpack_bytes

    td = _seq_td(tiny)
    ds = SequenceDataset(td.genome, td.samples, td.n_markers, None, rc=True, seed=0)
    ds.model_tensors(torch.float32, None)
    batch = ds.__getitems__([0, 3, 2])
    # small: one buffer by value; large: one buffer in shared memory (as between processes)
    for limit, unpack in ((1 << 20, _unpack_bytes), (0, _unpack_batch)):
        monkeypatch.setattr(datasets, "PICKLE_BYTES", limit)
        assert batch.__reduce__()[0] is unpack  # every tensor is a view of one buffer
        back = pickle.loads(ForkingPickler.dumps(batch))
        for f in ("codes", "index", "y", "x"):
            assert torch.equal(getattr(back, f), getattr(batch, f)), f
        assert back.rows is None
    # a batch collated from items pickles field by field
    items = collate_sequence([ds[0], ds[1]])
    assert items.__reduce__()[0] not in (_unpack_batch, _unpack_bytes)
    assert torch.equal(pickle.loads(pickle.dumps(items)).codes, items.codes)


def test_code_map_is_cached_beside_the_fasta_and_rebuilt_when_it_changes(tiny, monkeypatch):
    import os

    import regtracks._util as util
    from regtracks._util import RegtracksError
    from regtracks.data.genome import Genome

    g = Genome(tiny["fasta"])
    cm = g.code_map()
    assert cm.path.parent == tiny["fasta"].parent and cm.path.name.startswith("tiny.fa.codes-")
    assert cm.codes.dtype == np.uint8 and cm.total == sum(tiny["sizes"].values())
    for chrom, size in tiny["sizes"].items():
        np.testing.assert_array_equal(cm.fetch(chrom, -5, size + 5), g.fetch(chrom, -5, size + 5))
    # another process (a new Genome) maps the same file; nothing is rewritten
    mtime = cm.path.stat().st_mtime_ns
    again = Genome(tiny["fasta"]).code_map()
    assert again.path == cm.path and cm.path.stat().st_mtime_ns == mtime
    # a changed FASTA gets a new file, the stale one is removed
    st = tiny["fasta"].stat()
    os.utime(tiny["fasta"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    new = Genome(tiny["fasta"]).code_map()
    assert new.path != cm.path and not cm.path.exists() and new.path.exists()
    # a folder that cannot be written: the cache folder, else memory
    os.utime(tiny["fasta"], ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    real = util.atomic_path
    beside = tiny["fasta"].parent

    def refuse_beside(path, **kw):
        if os.fspath(path).startswith(os.fspath(beside) + os.sep + "tiny.fa.codes-"):
            raise RegtracksError(f"{path}: cannot write (read-only file system)")
        return real(path, **kw)

    monkeypatch.setattr(util, "atomic_path", refuse_beside)
    monkeypatch.setenv("REGTRACKS_CACHE", str(beside / "cache"))
    cached = Genome(tiny["fasta"]).code_map()
    assert cached.path.parent == beside / "cache" / "codes"
    np.testing.assert_array_equal(cached.codes, new.codes)
    os.utime(tiny["fasta"], ns=(st.st_atime_ns, st.st_mtime_ns + 3 * 10**9))

    def refuse(path, **kw):
        raise RegtracksError(f"{path}: cannot write (read-only file system)")

    monkeypatch.setattr(util, "atomic_path", refuse)
    in_memory = Genome(tiny["fasta"]).code_map()
    assert in_memory.path is None
    np.testing.assert_array_equal(in_memory.codes, new.codes)
