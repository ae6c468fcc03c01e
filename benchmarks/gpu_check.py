"""The GPU figures in one short run (< 8 min on one H100 / H200), for the day a device is lent.

First a preflight in this process: CUDA, bf16, pynvml (nvidia-ml-py) and regtracks' own
dependencies must be there, else it stops at once with one ``error:`` line (no figure is then
measured, none is made up). Then the stages, each a process of its own (and its own process
group) with a time limit, its output kept in ``--out/<stage>.log`` (the last lines shown) and
its figures in ``--out/summary.json``:

1. ``tests``    the CUDA-only tests of tests/test_gpu_ready.py (the loss makes no float32 copy).
2. ``sim``      a 4 x 5 Mbp genome with 919 markers (in a scratch folder, not under --out).
3. ``train``    benchmarks/bench_train.py on CUDA, bf16, 919 markers, 25 kb windows, batch 16:
   steps/s, kbp/s, GPU busy % (pynvml), peak GPU memory, data wait.
4. ``scan``     benchmarks/bench_scan.py at 919 markers on a 50 Mbp chromosome: scan, write
   floor, predict, peak RSS, the chr1 extrapolation.
5. ``compile``  bench_train with ``--compile`` (torch.compile: inductor + Triton), 8 steps:
   the compile time is in its wall time, steps/s once compiled.

A stage that fails, runs past its limit or does not print a figure it promises is reported as
FAILED (with the reason), the next stage still runs, and the exit status is 1.

    python benchmarks/gpu_check.py --dry-run            # the plan; needs no GPU
    python benchmarks/gpu_check.py --out $OUT           # on the device machine
    python benchmarks/gpu_check.py --only train,compile --out $OUT   # again, some stages

regtracks need not be installed: run from the repository root (the stages get it on
``PYTHONPATH``); its dependencies must be importable (on a machine that cannot reach a
registry, install pyfaidx, pyBigWig, pysam and pybigtools from wheels brought along first);
preflight names any that is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
NEEDED = ("numpy", "pyfaidx", "pyBigWig", "pysam", "pybigtools", "typer", "rich", "sklearn")
"""Modules regtracks imports (pyproject's dependencies), plus pynvml for the GPU-busy figure."""


def stages(args) -> list[dict]:
    """Each stage: name, command, time limit (s), and the figures (name -> regex) it must print."""
    py = sys.executable
    sim = Path(args.work) / "sim"  # not under --out: only logs and the summary go back
    train = [
        py, BENCH / "bench_train.py", "--device", "cuda", "--precision", "bf16",
        "--markers", "919", "--chroms", "4", "--chrom-len", "5000000", "--window-len", "25000",
        "--batch", str(args.batch), "--workers", str(args.workers), "--data", sim,
    ]  # fmt: skip
    train_figures = {
        "steps_per_s": r"steps/s: ([\d.,]+)",
        "kbp_per_s": r"training throughput: ([\d.,]+) kbp/s",
        "gpu_busy_pct": r"GPU busy \(utilisation[^)]*\): (\d+) %",
        "peak_gpu_gib": r"peak GPU memory allocated \(timed steps\): ([\d.,]+) GiB",
        "data_wait_pct": r"data wait: ([\d.]+) %",
        "wall_s": r"steps in (\d+) s",
    }
    return [
        {
            "name": "tests",
            "cmd": [py, "-m", "pytest", "-q", "-x", "-m", "gpu", "tests/test_gpu_ready.py"],
            "limit": 40,
            "figures": {"passed": r"(\d+) passed"},
        },
        {
            "name": "sim",
            "cmd": [
                py,
                "-c",
                "import sys; from dataclasses import replace; from pathlib import Path; "
                "from regtracks.config import DEFAULT_SIM; from regtracks.data.simulate import "
                "simulate; simulate(Path(sys.argv[1]), replace(DEFAULT_SIM, n_chroms=4, "
                "chrom_len=5_000_000, n_markers=919)); print('simulated', sys.argv[1])",
                sim,
            ],  # fmt: skip
            "limit": 30,
            "figures": {"simulated": r"simulated (.+)"},
        },
        {
            "name": "train",
            "cmd": [*train, "--steps", str(args.steps), "--log-every", "5"],
            "limit": 90,
            "figures": train_figures,
        },
        {
            "name": "scan",
            "cmd": [
                py,
                BENCH / "bench_scan.py",
                "--device",
                "cuda",
                "--precision",
                "bf16",
                "--markers",
                "919",
                "--chrom-len",
                "50000000",
            ],  # fmt: skip
            "limit": 190,
            "figures": {
                "scan_s": r"scan only:\s+([\d.]+) s",
                "predict_s": r"predict:\s+([\d.]+) s",
                "floor_s": r"write floor:\s+([\d.]+) s",
                "chr1_min": r"extrapolated chr1 \(249 Mbp\) x \d+ markers: ([\d.]+) min",
                "peak_rss": r"peak RSS (?:of predict )?at (.+)",
            },
            "optional": {
                "scan_over_forward": r"ratio scan / model\(x\) alone: ([^(]+)",
                "predict_over_floor": r"ratio predict / floor: ([\d.]+)",
            },
        },
        {
            "name": "compile",
            "cmd": [*train, "--compile", "--steps", "8", "--log-every", "2"],
            "limit": 110,
            "figures": train_figures,
        },
    ]


def preflight() -> int:
    """Print what the machine has; one ``error:`` line and 1 when a figure cannot be measured."""
    import torch

    if not torch.cuda.is_available():
        print("error: CUDA is not available: no GPU figure can be measured", file=sys.stderr)
        return 1
    missing = [m for m in (*NEEDED, "pynvml") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"error: missing Python packages: {', '.join(missing)} (pynvml: pip install "
            "nvidia-ml-py; the others are regtracks' dependencies, carried as wheels)",
            file=sys.stderr,
        )
        return 1
    if not torch.cuda.is_bf16_supported():
        print("error: this GPU has no bf16: the bf16 figures cannot be measured", file=sys.stderr)
        return 1
    torch.cuda.utilization()  # pynvml reads the device (raises here rather than mid-run)
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs")
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {os.cpu_count()} CPUs")
    return 0


def run_stage(stage: dict, out: Path, env: dict) -> dict:
    """Run one stage in its own process group within its limit; its output goes to
    ``out/<name>.log`` (the last lines are shown after it)."""
    log = out / f"{stage['name']}.log"
    cmd = [str(c) for c in stage["cmd"]]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        p = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        timed_out = False
        try:
            p.wait(timeout=stage["limit"])
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)  # the stage and what it started (loader workers)
            p.wait()
    seconds = time.perf_counter() - t0
    output = log.read_text(errors="replace")
    for line in output.strip().splitlines()[-15:]:
        print(f"  [{stage['name']}] {line}")
    figures = {}
    for key, rx in {**stage["figures"], **stage.get("optional", {})}.items():
        found = re.findall(rx, output)
        if found:
            figures[key] = found if len(found) > 1 else found[0]
    missing = [k for k in stage["figures"] if k not in figures]
    if timed_out:
        why = f"ran past its limit of {stage['limit']} s"
    elif p.returncode != 0:
        last = [ln for ln in output.strip().splitlines() if ln.strip()]
        why = f"exit {p.returncode}: {last[-1] if last else 'no output'}"
    elif missing:
        why = f"figure(s) not printed: {', '.join(missing)}"
    else:
        why = None
    return {
        "stage": stage["name"],
        "ok": why is None,
        "why": why,
        "seconds": round(seconds, 1),
        "figures": figures,
        "log": log.name,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("OUT") or "gpu_check_out"),
        help="folder of the logs and summary.json (default: $OUT, else ./gpu_check_out)",
    )
    ap.add_argument(
        "--work", type=Path, help="scratch folder of the simulated data (default: a temp)"
    )
    ap.add_argument("--only", help="comma list of stages: tests, sim, train, scan, compile")
    ap.add_argument("--steps", type=int, default=60, help="steps of the train stage")
    ap.add_argument("--batch", type=int, default=16, help="windows per step (train, compile)")
    ap.add_argument("--workers", type=int, default=8, help="loader workers (train, compile)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan; run and write nothing")
    args = ap.parse_args()
    tmp = None
    if args.work is None:
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="gpu_check_") if not args.dry_run else None
        args.work = Path(tmp.name) if tmp else Path("<temp>")
    plan = stages(args)
    names = [s["name"] for s in plan]
    if args.only:
        want = {n.strip() for n in args.only.split(",") if n.strip()}
        bad = want - set(names)
        if bad:
            print(f"error: --only: no stage {', '.join(sorted(bad))} (stages: {', '.join(names)})",
                  file=sys.stderr)  # fmt: skip
            return 2
        if want & {"train", "compile"}:
            want.add("sim")
        plan = [s for s in plan if s["name"] in want]
    if args.dry_run:
        import torch

        total = 15 + sum(s["limit"] for s in plan)
        here = "yes" if torch.cuda.is_available() else "no"
        print(f"plan: preflight + {len(plan)} stages, at most {total} s (CUDA here: {here}); "
              f"logs and summary.json in {args.out}")  # fmt: skip
        print("- preflight: CUDA, bf16, pynvml and regtracks' dependencies (else one error line)")
        for s in plan:
            print(f"- {s['name']} (limit {s['limit']} s; figures: {', '.join(s['figures'])}):")
            print("    " + " ".join(str(c) for c in s["cmd"]))
        return 0
    if preflight() != 0:  # its one error line is printed; nothing is measured
        return 1
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for s in plan:
        print(f"== {s['name']} (limit {s['limit']} s)", flush=True)
        r = run_stage(s, args.out, env)
        results.append(r)
        status = "ok" if r["ok"] else f"FAILED: {r['why']}"
        print(f"== {s['name']}: {status} ({r['seconds']} s) {json.dumps(r['figures'])}", flush=True)
        (args.out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    failed = [r["stage"] for r in results if not r["ok"]]
    print(f"summary: {len(results) - len(failed)} of {len(results)} stages ok"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
