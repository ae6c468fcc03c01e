"""Streaming AP / ROC-AUC against scikit-learn on the exact scores, and the bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from regtracks._util import RegtracksError
from regtracks.training.metrics import StreamingMetrics, category_means

TOL = 1e-3


def _scores(kind: str, shape: tuple[int, ...], rate: float, seed: int = 0):
    """Logits (float32) and 0/1 targets (uint8) of a synthetic score distribution."""
    rng = np.random.default_rng(seed)
    y = (rng.random(shape) < rate).astype(np.uint8)
    if kind == "separated":
        x = np.where(y == 1, rng.normal(3, 1.5, shape), rng.normal(-6, 1.5, shape))
    elif kind == "overlapping":
        x = np.where(y == 1, rng.normal(-3, 2, shape), rng.normal(-5, 2, shape))
    elif kind == "confident":  # large logits, beyond where a sigmoid saturates in float32
        x = np.where(y == 1, rng.normal(6, 8, shape), rng.normal(-14, 8, shape))
    elif kind == "skewed":
        x = np.where(y == 1, rng.gumbel(-2, 3, shape), rng.gumbel(-8, 1.5, shape))
    elif kind == "discrete":  # heavy ties: 12 distinct scores
        x = rng.integers(-6, 6, shape).astype(np.float64)
        y = (rng.random(shape) < rate * (1 + (x > 0))).astype(np.uint8)
    else:
        raise ValueError(kind)
    return x.astype(np.float32), y


def _sklearn(x: np.ndarray, y: np.ndarray, keep: np.ndarray | None = None):
    """Per-marker (AP, ROC-AUC, positive rate) on (N, M, L) or (N, M) arrays."""
    out = []
    for m in range(x.shape[1]):
        xs, ys = x[:, m], y[:, m]
        if keep is not None:
            k = np.broadcast_to(keep, x.shape)[:, m]
            xs, ys = xs[k], ys[k]
        xs, ys = xs.ravel().astype(np.float64), ys.ravel()
        out.append((average_precision_score(ys, xs), roc_auc_score(ys, xs), ys.mean()))
    return np.array(out)


def _check(res, expected, tol=TOL):
    np.testing.assert_allclose(res.pr_auc, expected[:, 0], atol=tol, rtol=0)
    np.testing.assert_allclose(res.roc_auc, expected[:, 1], atol=tol, rtol=0)
    np.testing.assert_allclose(res.positive_rate, expected[:, 2], atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "kind, shape, rate",
    [
        ("separated", (2, 3, 20_000), 0.05),
        ("overlapping", (2, 3, 20_000), 0.2),
        ("overlapping", (1, 2, 400_000), 0.001),  # very rare positives: ~400 per marker
        ("confident", (2, 3, 20_000), 0.02),
        ("skewed", (2, 3, 20_000), 0.02),
        ("discrete", (2, 3, 20_000), 0.1),
    ],
)
def test_matches_sklearn(kind, shape, rate):
    x, y = _scores(kind, shape, rate)
    sm = StreamingMetrics(shape[1])
    sm.update(torch.from_numpy(x), torch.from_numpy(y))
    res = sm.compute()
    _check(res, _sklearn(x, y))
    assert (res.n_total == shape[0] * shape[2]).all()
    assert (res.n_positive == y.sum(axis=(0, 2))).all()


def test_discrete_scores_are_exact():
    # distinct score values land in distinct bins: ties are grouped exactly like sklearn does
    x, y = _scores("discrete", (3, 4, 5_000), 0.1, seed=3)
    sm = StreamingMetrics(4)
    sm.update(torch.from_numpy(x), torch.from_numpy(y))
    _check(sm.compute(), _sklearn(x, y), tol=1e-12)


def test_exact_when_every_score_sits_mid_bin():
    # scores at bin centres: distinct values in distinct bins, so the histogram holds the
    # exact ranking and AP / ROC-AUC must equal sklearn's to rounding
    sm = StreamingMetrics(2, n_bins=512)
    edges = sm.bin_edges()
    centres = (edges[1:-2] + edges[2:-1]) / 2
    rng = np.random.default_rng(14)
    k = rng.integers(0, centres.size, size=(2, 2, 20_000))
    y = (rng.random(k.shape) < 0.05 + 0.4 * (k > 300)).astype(np.uint8)
    x = centres[k].astype(np.float32)
    sm.update(torch.from_numpy(x), torch.from_numpy(y))
    _check(sm.compute(), _sklearn(x, y), tol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_low_and_high_precision_logits(dtype):
    x, y = _scores("overlapping", (2, 3, 20_000), 0.1, seed=1)
    xt = torch.from_numpy(x).to(dtype)
    sm = StreamingMetrics(3)
    sm.update(xt, torch.from_numpy(y).bool())
    # sklearn on the very values the model emitted (bf16 has many ties)
    _check(sm.compute(), _sklearn(xt.double().numpy(), y))


def test_sequence_task_shape():
    x, y = _scores("skewed", (30_000, 5), 0.05, seed=2)
    sm = StreamingMetrics(5)
    sm.update(torch.from_numpy(x), torch.from_numpy(y))
    _check(sm.compute(), _sklearn(x, y))


def test_many_updates_equal_one():
    x, y = _scores("overlapping", (6, 3, 4_000), 0.1, seed=4)
    one = StreamingMetrics(3)
    one.update(torch.from_numpy(x), torch.from_numpy(y))
    many = StreamingMetrics(3)
    for i in range(6):
        many.update(torch.from_numpy(x[i : i + 1]), torch.from_numpy(y[i : i + 1]))
    assert torch.equal(one.counts, many.counts)
    # tiny chunks: blocks along markers and positions, and the index_add path
    small = StreamingMetrics(3, chunk=1_000)
    small.update(torch.from_numpy(x), torch.from_numpy(y))
    assert torch.equal(one.counts, small.counts)
    np.testing.assert_array_equal(one.compute().pr_auc, small.compute().pr_auc)


@pytest.mark.parametrize("deterministic", [False, True])
def test_accelerator_code_path_on_cpu(deterministic):
    # the branch CUDA takes (fresh buffers, index_add_ or bincount into all counts), run here
    x, y = _scores("skewed", (2, 3, 3_000), 0.05, seed=15)
    keep = np.random.default_rng(15).random((2, 3_000)) < 0.8
    ref = StreamingMetrics(3)
    ref.update(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(keep))
    acc = StreamingMetrics(3)
    xt, yt, drop = acc._check_batch(
        torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(keep)
    )
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        acc._add_block(xt[:, :2], yt[:, :2], drop[:, :2], 0, on_cpu=False)
        acc._add_block(xt[:, 2:], yt[:, 2:], drop[:, 2:], 2, on_cpu=False)
    finally:
        torch.use_deterministic_algorithms(before)
    assert torch.equal(acc._counts, ref._counts)


def test_mask_dense():
    x, y = _scores("overlapping", (3, 4, 10_000), 0.1, seed=5)
    keep = np.random.default_rng(5).random((3, 10_000)) < 0.6  # (N, L): True = counts
    sm = StreamingMetrics(4)
    sm.update(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(keep))
    res = sm.compute()
    _check(res, _sklearn(x, y, keep[:, None, :]))
    assert (res.n_total == keep.sum()).all()
    assert res.n_masked == (~keep).sum() * 4
    # a full (N, M, L) mask and a uint8 mask give the same counts
    full = np.broadcast_to(keep[:, None, :], x.shape).astype(np.uint8)
    sm2 = StreamingMetrics(4, chunk=5_000)
    sm2.update(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(full.copy()))
    assert torch.equal(sm.counts, sm2.counts)


def test_mask_sequence_items():
    x, y = _scores("separated", (5_000, 3), 0.1, seed=6)
    keep = np.arange(5_000) % 3 != 0  # (N,)
    sm = StreamingMetrics(3)
    sm.update(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(keep))
    _check(sm.compute(), _sklearn(x[keep], y[keep]))


def test_merge_and_state_dict(tmp_path):
    x, y = _scores("skewed", (4, 3, 5_000), 0.05, seed=7)
    a, b, both = StreamingMetrics(3), StreamingMetrics(3), StreamingMetrics(3)
    a.update(torch.from_numpy(x[:2]), torch.from_numpy(y[:2]))
    b.update(torch.from_numpy(x[2:]), torch.from_numpy(y[2:]))
    both.update(torch.from_numpy(x), torch.from_numpy(y))
    a.merge(b)
    assert torch.equal(a.counts, both.counts)
    torch.save(a.state_dict(), tmp_path / "m.pt")
    c = StreamingMetrics(3)
    c.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    np.testing.assert_array_equal(c.compute().roc_auc, both.compute().roc_auc)
    with pytest.raises(RegtracksError, match="n_bins"):
        StreamingMetrics(3, n_bins=1024).load_state_dict(a.state_dict())
    with pytest.raises(RegtracksError, match="merge"):
        a.merge(StreamingMetrics(4))
    a.reset()
    assert int(a.counts.sum()) == 0


def test_markers_without_positives_or_negatives():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 3, 1000)).astype(np.float32)
    y = (rng.random((2, 3, 1000)) < 0.3).astype(np.uint8)
    y[:, 1] = 0  # marker 1: no positive
    y[:, 2] = 1  # marker 2: no negative
    sm = StreamingMetrics(3)
    sm.update(torch.from_numpy(x), torch.from_numpy(y))
    res = sm.compute()
    assert np.isnan(res.pr_auc[1]) and np.isnan(res.roc_auc[1])
    assert res.positive_rate[1] == 0
    assert res.pr_auc[2] == pytest.approx(1.0) and np.isnan(res.roc_auc[2])
    assert np.isfinite(res.pr_auc[0]) and np.isfinite(res.roc_auc[0])
    # nothing seen at all: every metric NaN
    empty = StreamingMetrics(2).compute()
    assert np.isnan(empty.pr_auc).all() and np.isnan(empty.positive_rate).all()


def test_nan_and_infinite_logits_left_out():
    x, y = _scores("overlapping", (2, 2, 5_000), 0.2, seed=9)
    x[0, 0, :100] = np.nan
    x[1, 1, :7] = np.inf
    x[1, 1, 7:10] = -np.inf
    sm = StreamingMetrics(2)
    sm.update(torch.from_numpy(x), torch.from_numpy(y))
    res = sm.compute()
    assert res.n_nan.tolist() == [100, 10]
    keep = np.isfinite(x)
    _check(res, _sklearn(np.nan_to_num(x), y, keep))


def test_pr_curve_like_sklearn():
    x, y = _scores("discrete", (1, 2, 3_000), 0.2, seed=10)
    sm = StreamingMetrics(2)
    sm.update(torch.from_numpy(x), torch.from_numpy(y))
    precision, recall, thresholds = sm.pr_curve(1)
    p_ref, r_ref, t_ref = precision_recall_curve(y[0, 1], x[0, 1])
    np.testing.assert_allclose(precision, p_ref, atol=1e-12)
    np.testing.assert_allclose(recall, r_ref, atol=1e-12)
    # each integer score lies in the bin whose lower edge is just below it
    assert len(thresholds) == len(t_ref)
    assert (thresholds <= t_ref).all() and (t_ref - thresholds < 0.05).all()
    curves = sm.pr_curves(["a", "b"])
    np.testing.assert_array_equal(curves["b"][0], precision)


def test_bin_edges_describe_the_binning():
    sm = StreamingMetrics(1, n_bins=64)
    edges = sm.bin_edges()
    assert edges[0] == -np.inf and edges[-1] == np.inf
    assert (np.diff(edges) > 0).all()
    assert abs(edges[32]) < 1e-3  # symmetric around 0
    rng = np.random.default_rng(13)
    x = np.concatenate([rng.normal(0, 20, 20_000), [-1e30, -1e6, 1e6, 3e38]]).astype(np.float32)
    sm.update(torch.from_numpy(x).view(1, 1, -1), torch.zeros(1, 1, x.size, dtype=torch.bool))
    expected = np.bincount(np.searchsorted(edges, x, side="right") - 1, minlength=64)
    # float32 arithmetic may put a score that lies on an edge into the neighbouring bin
    assert np.abs(sm.counts[0, 0].numpy() - expected).sum() <= 4
    assert sm.counts[0, 0, 0] >= 2 and sm.counts[0, 0, -1] >= 2


def test_category_means_by_hand():
    values = [0.2, 0.4, np.nan, 0.9, 0.5, 0.7]
    cats = ["TFBS", "TFBS", "TFBS", "Histone", "Histone", "Histone"]
    means = category_means(values, cats)
    assert means["TFBS"] == pytest.approx(0.3)
    assert means["Histone"] == pytest.approx(0.7)
    assert means["DNase"] is None
    assert list(means) == ["TFBS", "Histone", "DNase"]
    assert category_means([np.nan], ["DNase"])["DNase"] is None
    with pytest.raises(RegtracksError, match="unknown categories"):
        category_means([0.1], ["Enhancer"])
    with pytest.raises(RegtracksError, match="one each"):
        category_means([0.1, 0.2], ["TFBS"])


def test_bad_input():
    sm = StreamingMetrics(3)
    x = torch.zeros(2, 3, 10)
    y = torch.zeros(2, 3, 10, dtype=torch.uint8)
    with pytest.raises(RegtracksError, match="3 markers"):
        StreamingMetrics(4).update(x, y)
    with pytest.raises(RegtracksError, match="target shape"):
        sm.update(x, y[:, :, :5])
    with pytest.raises(RegtracksError, match="float"):
        sm.update(y, y)
    with pytest.raises(RegtracksError, match="broadcast"):
        sm.update(x, y, torch.ones(2, 7, dtype=torch.bool))
    with pytest.raises(RegtracksError, match="n_bins"):
        StreamingMetrics(3, n_bins=1)
    with pytest.raises(RegtracksError, match="out of range"):
        sm.pr_curve(3)
    sm.update(torch.zeros(0, 3, 10), torch.zeros(0, 3, 10))  # an empty batch is fine
    assert int(sm.counts.sum()) == 0


def test_all_reduce_without_distributed_is_a_noop():
    x, y = _scores("separated", (1, 2, 1_000), 0.1)
    sm = StreamingMetrics(2)
    sm.update(torch.from_numpy(x), torch.from_numpy(y))
    before = sm.counts.clone()
    sm.all_reduce()
    assert torch.equal(sm.counts, before)


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        x, y = _scores("overlapping", (world, 3, 2_000), 0.1, seed=11)
        sm = StreamingMetrics(3)
        sm.update(torch.from_numpy(x[rank : rank + 1]), torch.from_numpy(y[rank : rank + 1]))
        sm.all_reduce()
        torch.save(sm.state_dict(), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_all_reduce_two_processes_gloo(tmp_path):
    import torch.multiprocessing as mp

    world = 2
    mp.spawn(
        _ddp_worker,
        args=(world, str(tmp_path / "init"), str(tmp_path)),
        nprocs=world,
        join=True,
    )
    x, y = _scores("overlapping", (world, 3, 2_000), 0.1, seed=11)
    ref = StreamingMetrics(3)
    ref.update(torch.from_numpy(x), torch.from_numpy(y))
    for rank in range(world):
        got = StreamingMetrics(3)
        got.load_state_dict(torch.load(tmp_path / f"rank{rank}.pt", weights_only=True))
        assert torch.equal(got.counts, ref.counts)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_counts_equal_cpu():
    x, y = _scores("confident", (2, 5, 50_000), 0.05, seed=12)
    keep = np.random.default_rng(12).random((2, 50_000)) < 0.9
    cpu = StreamingMetrics(5)
    cpu.update(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(keep))
    gpu = StreamingMetrics(5, device="cuda")
    xc, yc, kc = (torch.from_numpy(a).cuda() for a in (x, y, keep))
    gpu.update(xc.bfloat16().float(), yc, kc)  # bf16 round trip on the device
    gpu_f32 = StreamingMetrics(5)
    gpu_f32.update(xc, yc, kc)
    assert gpu_f32.device.type == "cuda"
    # float32 binning may differ at a bin edge between CPU and GPU arithmetic: a few scores
    assert (gpu_f32.counts.cpu() - cpu.counts).abs().sum() <= 10
    torch.use_deterministic_algorithms(True)
    try:
        det = StreamingMetrics(5, device="cuda")
        det.update(xc, yc, kc)
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(det.counts, gpu_f32.counts)
    _check(gpu.compute(), _sklearn(xc.bfloat16().double().cpu().numpy(), y, keep[:, None, :]))
