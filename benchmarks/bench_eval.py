"""Streaming PR-AUC / ROC-AUC (regtracks.training.metrics) against scikit-learn on the same
predictions.

Synthetic dense-task predictions: ``--windows`` windows of ``--window-len`` positions and
``--markers`` markers, logits ``N(-4, 1.5) + separation * target`` with a positive rate drawn
per marker between 0.1 % and 10 %. The windows are generated batch by batch on the device
(generation is not timed) and fed to :class:`~regtracks.training.metrics.StreamingMetrics`, as an
evaluation loop would. scikit-learn (``average_precision_score`` + ``roc_auc_score`` per
marker, all of a marker's scores in memory) is timed on ``--sklearn-markers`` markers spread
over the set and scaled to every marker (its cost is the same for each marker); both are
checked to agree on those markers. The CPU timing uses one thread by default, as
scikit-learn does (``--threads 0`` for torch's default).

    python benchmarks/bench_eval.py                                # ~1 min on 2 CPU cores
    python benchmarks/bench_eval.py --windows 100 --sklearn-markers 10   # 2.5 M positions
    python benchmarks/bench_eval.py --device cuda --windows 400 --dtype bfloat16

``--accuracy`` instead measures how far binned AP / ROC-AUC land from scikit-learn on several
score distributions, for the library's bins at a few ``n_bins`` and for two alternatives
(bins uniform in probability; bins uniform in logits over [-16, 16], clipped), all with the
same tie-group formulas: the measurement behind the default binning.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from regtracks.config import DEFAULT_METRICS
from regtracks.training.metrics import StreamingMetrics


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _hist_metrics(bins: np.ndarray, y: np.ndarray, n_bins: int) -> tuple[float, float]:
    """AP and ROC-AUC of scores grouped into bins (ties), as StreamingMetrics computes them."""
    pos = np.bincount(bins[y == 1], minlength=n_bins)[::-1].astype(np.float64)
    neg = np.bincount(bins[y == 0], minlength=n_bins)[::-1].astype(np.float64)
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    ap = float((pos * precision).sum() / tp[-1])
    roc = float((neg * (2 * tp - pos)).sum() / (2 * tp[-1] * fp[-1]))
    return ap, roc


def accuracy(args) -> None:
    """Max |binned - sklearn| of AP and ROC-AUC over synthetic score distributions."""
    rng = np.random.default_rng(args.seed)
    n = args.accuracy_n
    # (positives, negatives) logit distributions
    kinds = {
        "separated": (lambda k: rng.normal(3, 1.5, k), lambda k: rng.normal(-6, 1.5, k)),
        "overlapping": (lambda k: rng.normal(-3, 2, k), lambda k: rng.normal(-5, 2, k)),
        "confident": (lambda k: rng.normal(6, 8, k), lambda k: rng.normal(-14, 8, k)),
        "skewed": (lambda k: rng.gumbel(-2, 3, k), lambda k: rng.gumbel(-8, 1.5, k)),
        "high": (lambda k: rng.normal(12, 3, k), lambda k: rng.normal(4, 4, k)),
    }
    nb_alt = DEFAULT_METRICS.n_bins
    schemes = [f"regtracks/{b}" for b in (4096, 8192, 16384)]
    schemes += [f"prob/{nb_alt}", f"logit[-16,16]/{nb_alt}"]
    worst = dict.fromkeys(schemes, 0.0)
    print(f"{n:,} scores per case; |AP diff| / |ROC-AUC diff| against scikit-learn")
    print("case".ljust(22) + "AP".rjust(7) + "".join(s.rjust(24) for s in schemes))
    for kind, (draw_pos, draw_neg) in kinds.items():
        for rate in (0.001, 0.02, 0.3):
            y = (rng.random(n) < rate).astype(np.uint8)
            x = np.where(y == 1, draw_pos(n), draw_neg(n)).astype(np.float32)
            ap0 = average_precision_score(y, x)
            roc0 = roc_auc_score(y, x)
            row = f"{kind} {rate}".ljust(22) + f"{ap0:7.4f}"
            for scheme in schemes:
                name, nb = scheme.split("/")
                nb = int(nb)
                if name == "regtracks":
                    sm = StreamingMetrics(1, n_bins=nb)
                    sm.update(
                        torch.from_numpy(x).view(1, 1, -1), torch.from_numpy(y).view(1, 1, -1)
                    )
                    r = sm.compute()
                    ap1, roc1 = float(r.pr_auc[0]), float(r.roc_auc[0])
                else:
                    if name == "prob":
                        u = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
                    else:
                        u = (np.clip(x.astype(np.float64), -16, 16) + 16) / 32
                    bins = np.clip(np.floor(u * nb), 0, nb - 1).astype(np.int64)
                    ap1, roc1 = _hist_metrics(bins, y, nb)
                e_ap, e_roc = abs(ap1 - ap0), abs(roc1 - roc0)
                worst[scheme] = max(worst[scheme], e_ap, e_roc)
                row += f"{e_ap:.1e} / {e_roc:.1e}".rjust(24)
            print(row, flush=True)
    print("worst".ljust(29) + "".join(f"{worst[s]:.1e}".rjust(24) for s in schemes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--markers", type=int, default=919)
    ap.add_argument("--windows", type=int, default=8, help="windows in all (default 8)")
    ap.add_argument("--window-len", type=int, default=25_000)
    ap.add_argument("--batch", type=int, default=2, help="windows per update() call")
    ap.add_argument("--sklearn-markers", type=int, default=20, help="markers timed in sklearn")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when there)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--bins", type=int, default=DEFAULT_METRICS.n_bins)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1, like scikit-learn; 0: torch's default)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes; the best is shown")
    ap.add_argument("--accuracy", action="store_true", help="binning accuracy table instead")
    ap.add_argument("--accuracy-n", type=int, default=1_000_000, help="scores per case")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.accuracy:
        accuracy(args)
        return
    dev = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    dtype = getattr(torch, args.dtype)
    m, length = args.markers, args.window_len
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    rate = torch.exp(torch.empty(m, device=dev).uniform_(np.log(1e-3), np.log(0.1), generator=gen))
    sep = torch.empty(m, device=dev).uniform_(0.5, 4.0, generator=gen)
    k = min(args.sklearn_markers, m)
    sub = np.unique(np.linspace(0, m - 1, k).round().astype(np.int64)) if k else np.array([], int)
    sub_t = torch.as_tensor(sub, device=dev)
    keep_x, keep_y = [], []

    def batches():
        """The same predictions on every pass: (logits, targets) of ``--batch`` windows."""
        gen.manual_seed(args.seed + 1)
        for w0 in range(0, args.windows, args.batch):
            n = min(args.batch, args.windows - w0)
            y = torch.rand(n, m, length, device=dev, generator=gen) < rate[:, None]
            y = y.to(torch.uint8)
            x = torch.randn(n, m, length, device=dev, generator=gen).mul_(1.5).sub_(4.0)
            x.add_(y * sep[:, None]).clamp_(-30, 30)
            yield x.to(dtype), y

    passes = []
    for rep in range(args.repeat):
        sm = StreamingMetrics(m, n_bins=args.bins, device=dev)
        t_update = 0.0
        n_scores = 0
        for x, y in batches():
            if rep == 0 and k:
                keep_x.append(x[:, sub_t].float().cpu().numpy())
                keep_y.append(y[:, sub_t].cpu().numpy())
            _sync(dev)
            t0 = time.perf_counter()
            sm.update(x, y)
            _sync(dev)
            t_update += time.perf_counter() - t0
            n_scores += x.numel()
            del x, y
        t0 = time.perf_counter()
        res = sm.compute()
        t_compute = time.perf_counter() - t0
        passes.append((t_update + t_compute, t_update, t_compute))
    t_stream, t_update, t_compute = min(passes)
    t_median = float(np.median([p[0] for p in passes]))

    print(
        f"predictions: {m} markers x {args.windows * length:,} positions = "
        f"{n_scores / 1e6:,.1f} M scores ({args.dtype}), batches of {args.batch} x {length:,}"
    )
    print(
        f"streaming ({dev.type}, {args.bins} bins, {torch.get_num_threads()} CPU threads): "
        f"update {t_update:.2f} s + compute {t_compute:.2f} s = {t_stream:.2f} s "
        f"({n_scores / t_stream / 1e6:,.0f} M scores/s; best of {args.repeat} passes, "
        f"median {t_median:.2f} s)"
    )
    if not k:
        return
    xs = np.concatenate(keep_x, axis=0)
    ys = np.concatenate(keep_y, axis=0)
    t_sk = 0.0
    d_ap, d_roc = [], []
    for j, mi in enumerate(sub):
        xm, ym = xs[:, j].ravel(), ys[:, j].ravel()
        best = np.inf
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            a = average_precision_score(ym, xm)
            r = roc_auc_score(ym, xm)
            best = min(best, time.perf_counter() - t0)
        t_sk += best
        d_ap.append(abs(a - res.pr_auc[mi]))
        d_roc.append(abs(r - res.roc_auc[mi]))
    per_marker = t_sk / len(sub)
    t_sk_all = per_marker * m
    print(
        f"scikit-learn (average_precision_score + roc_auc_score, {len(sub)} markers timed, "
        f"best of {args.repeat} each): "
        f"{t_sk:.2f} s = {per_marker:.3f} s/marker -> {t_sk_all:.1f} s for {m} markers "
        f"({n_scores / t_sk_all / 1e6:,.1f} M scores/s)"
    )
    print(f"speed-up: {t_sk_all / t_stream:.0f}x")
    print(
        f"agreement on those markers: max |AP diff| {max(d_ap):.1e}, "
        f"max |ROC-AUC diff| {max(d_roc):.1e}"
    )


if __name__ == "__main__":
    main()
