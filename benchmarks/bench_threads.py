"""Training steps per second of the demo's model against CPU threads, loader workers and load.

Trains the demo's configuration (:data:`regtracks.config.DEFAULT_DEMO`: the dilated model on
5 kb windows, batch 8) for ``--steps`` steps in a fresh process per setting and reports the
wall time of the steps after the first ``--warm`` (from the ``train`` events' ``seconds``,
which count step time only, plus the time waited for data). Each setting is one row:

* ``threads``: torch intra-op threads (``auto``: what :func:`regtracks.runtime.plan_threads`
  decides; ``torch``: torch's own default, one per core, which is what regtracks did before);
* ``workers``: DataLoader worker processes;
* ``--load N``: N busy-looping processes run beside it (a shared machine).

    python benchmarks/bench_threads.py                      # idle machine
    python benchmarks/bench_threads.py --load 2             # two other busy processes
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from dataclasses import replace
from pathlib import Path
import torch
from regtracks.config import DEFAULT_DATA, DEFAULT_DEMO, DEFAULT_TRAIN
from regtracks.runtime import plan_threads, apply_threads
from regtracks.training.train import train

sim, out, threads, workers, steps = sys.argv[1:6]
workers, steps = int(workers), int(steps)
if threads == "auto":
    apply_threads(plan_threads(0, workers=workers, writers=0))
elif threads != "torch":
    torch.set_num_threads(int(threads))
cfg = DEFAULT_DEMO
tc = replace(DEFAULT_TRAIN, model=cfg.model, hparams=dict(cfg.hparams), batch_size=cfg.batch_size,
             lr=cfg.lr, lr_decay=cfg.lr_decay, max_steps=steps, epochs=0, eval_every=0,
             max_eval_batches=1, workers=workers, device="cpu", patience=0, log_every=1)
times = []
def ev(e):
    if e.get("event") == "train":
        times.append((e["step"], time.perf_counter()))
train(Path(sim) / "genome.fa", Path(sim) / "markers.tsv", Path(out), tc,
      data_cfg=replace(DEFAULT_DATA, window_len=cfg.window_len), on_event=ev)
print(json.dumps({"times": times, "torch_threads": torch.get_num_threads()}))
"""


def _burn() -> None:  # pragma: no cover - a background load
    while True:
        pass


def run_one(sim: Path, threads: str, workers: int, steps: int, warm: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
        }
        cmd = [sys.executable, "-c", CHILD, str(sim), str(Path(tmp) / "run"), threads]
        cmd += [str(workers), str(steps)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    t = dict(res["times"])
    dt = t[steps] - t[warm]
    return {"s_per_step": dt / (steps - warm), "torch_threads": res["torch_threads"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warm", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--load", type=int, default=0, help="busy processes beside the runs")
    ap.add_argument("--settings", default="torch:1,auto:1,1:0,1:1,2:1,1:2,2:2",
                    help="comma list of threads:workers")  # fmt: skip
    ap.add_argument("--sim", type=Path, help="reuse the demo's sim folder")
    args = ap.parse_args()

    from regtracks.config import DEFAULT_DEMO
    from regtracks.data.simulate import simulate
    from regtracks.runtime import usable_cpus

    tmp = tempfile.TemporaryDirectory()
    sim = args.sim
    if sim is None:
        sim = Path(tmp.name) / "sim"
        simulate(sim, DEFAULT_DEMO.sim)
    burners = [mp.Process(target=_burn, daemon=True) for _ in range(args.load)]
    for b in burners:
        b.start()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"usable cpus {usable_cpus()}, load {args.load} busy process(es), "
          f"{args.steps - args.warm} timed steps, median of {args.repeats}")  # fmt: skip
    print(f"{'threads':>8} {'workers':>7} {'torch':>5} {'s/step':>8} {'demo 600 steps':>15}")
    try:
        settings = [s.split(":") for s in args.settings.split(",")]
        rows = {tuple(s): [] for s in settings}
        for _ in range(args.repeats):  # alternate the settings: drift hits them alike
            for th, wk in settings:
                rows[(th, wk)].append(run_one(sim, th, int(wk), args.steps, args.warm))
        for (th, wk), rs in rows.items():
            s = statistics.median(r["s_per_step"] for r in rs)
            print(
                f"{th:>8} {wk:>7} {rs[0]['torch_threads']:>5} {s:>8.3f} {600 * s / 60:>12.1f} min"
            )
    finally:
        for b in burners:
            b.terminate()


if __name__ == "__main__":
    main()
