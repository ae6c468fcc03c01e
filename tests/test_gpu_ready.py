"""What a GPU run relies on, checked on CPU: the lean loss, DDP's options (gloo, 2 processes),
torch.compile, and the GPU benchmarks' loud failures. Tests that need CUDA are marked ``gpu``
and skipped without it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from regtracks.training.loss import bce_with_logits

ROOT = Path(__file__).resolve().parent.parent
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


# --- the loss ----------------------------------------------------------------------------------
def _reference(logits, y, pos_weight, weight):
    """The float32 path the loss replaces: float32 copies of logits and labels."""
    per = F.binary_cross_entropy_with_logits(
        logits.float(), y.float(), pos_weight=pos_weight, reduction="none"
    )
    return (per if weight is None else per * weight).mean()


def _case(shape, *, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g) * 4
    y = (torch.rand(shape, generator=g) < 0.1).to(torch.uint8)
    m = shape[1]
    w = torch.rand(m, generator=g) + 0.5
    w = w.view(1, m, *([1] * (len(shape) - 2)))
    return logits, y, w


@pytest.mark.parametrize("shape", [(3, 5, 101), (4, 7)])  # dense (N, M, L), sequence (N, M)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weight", [None, 2.5])
@pytest.mark.parametrize("logit_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("label_dtype", [torch.uint8, torch.bool, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("chunk", [1, 64, 1 << 24])  # a row a chunk, some rows, one chunk
def test_loss_equals_the_float32_path(shape, weighted, pos_weight, logit_dtype, label_dtype, chunk):
    logits, y, w = _case(shape, seed=len(shape) + int(weighted))
    logits = logits.to(logit_dtype)
    y = y.to(label_dtype)  # 0/1 are exact in every one of these dtypes
    w = w if weighted else None
    pw = None if pos_weight is None else torch.tensor(pos_weight)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    ours = bce_with_logits(a, y, pos_weight=pw, weight=w, chunk=chunk)
    ref = _reference(b, y, pw, w)
    assert ours.dtype == torch.float32 and ours.shape == ()
    assert abs(ours.item() - ref.item()) <= 1e-6 * max(1.0, abs(ref.item()))
    ours.backward()
    ref.backward()
    assert a.grad.dtype == logit_dtype
    if logit_dtype == torch.float32:
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-9)
    else:  # both round a float32 gradient to bf16: at most one bf16 step apart
        torch.testing.assert_close(a.grad.float(), b.grad.float(), rtol=2**-7, atol=1e-9)


def test_loss_by_hand():
    """Two elements, from the definition: -w * (pw * y log s(x) + (1 - y) log(1 - s(x)))."""
    import math

    x = torch.tensor([[0.5, -2.0]])
    y = torch.tensor([[1, 0]], dtype=torch.uint8)
    w = torch.tensor([[2.0, 0.5]])
    s = [1 / (1 + math.exp(-v)) for v in (0.5, -2.0)]
    want = (2.0 * 3.0 * -math.log(s[0]) + 0.5 * -math.log(1 - s[1])) / 2
    got = bce_with_logits(x, y, pos_weight=torch.tensor(3.0), weight=w)
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_trainer_loss_takes_uint8_labels_and_bf16_logits(sim_small, tmp_path):
    """The training loss of a run (sqrt marker weights) on uint8 labels and bf16 logits equals
    the float32 path on float32 copies."""
    from regtracks.config import DEFAULT_DATA, DEFAULT_TRAIN
    from regtracks.data.datasets import to_device
    from regtracks.training.train import Trainer

    cfg = _tiny_cfg(max_steps=1)
    data_cfg = replace(DEFAULT_DATA, window_len=2000)
    g, m = sim_small / "genome.fa", sim_small / "markers.tsv"
    t = Trainer(g, m, tmp_path / "r", cfg, data_cfg=data_cfg)
    try:
        assert cfg.marker_weighting == DEFAULT_TRAIN.marker_weighting == "sqrt"
        batch = next(iter(t.loader))
        x, y = to_device(batch, t.td.n_markers, t.device)
        assert y.dtype == torch.uint8 and y.shape == (4, 4, 2000)  # built so by the loader
        logits = t.model(x).detach().to(torch.bfloat16)
        ours = t.loss(logits, y)
        ref = _reference(logits, y, t.pos_weight, t.marker_weight)
        assert abs(ours.item() - ref.item()) <= 1e-6
    finally:
        t.close()


@pytest.mark.gpu
@needs_cuda
def test_loss_keeps_no_float32_copy_on_cuda():
    """On CUDA, at batch 16 x 919 markers x 25 kb, the loss and its backward allocate less than
    one float32 copy of the logits beyond the bf16 gradient (a window at a time), where the
    float32 path keeps several (logits, labels, the per-element loss, its float32 gradient)."""
    dev = torch.device("cuda")
    shape = (16, 919, 25_000)
    logits = (torch.randn(shape, device=dev) * 3).to(torch.bfloat16).requires_grad_(True)
    y = (torch.rand(shape, device=dev) < 0.05).to(torch.uint8)
    w = torch.rand(1, 919, 1, device=dev) + 0.5
    pw = torch.tensor(1.0, device=dev)
    f32 = logits.numel() * 4

    def peak(fn):
        logits.grad = None
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn().backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    ours = peak(lambda: bce_with_logits(logits, y, pos_weight=pw, weight=w))
    g = logits.grad.float()
    ref = peak(lambda: _reference(logits, y, pw, w))
    torch.testing.assert_close(g, logits.grad.float(), rtol=2**-7, atol=1e-12)
    gib = 2**30
    assert ours < 1.25 * f32 and ref > 2 * f32, (ours / gib, ref / gib, f32 / gib)


@pytest.mark.gpu
@needs_cuda
def test_two_bf16_steps_on_cuda(sim_small, tmp_path):
    """The CUDA path of a training step (labels built on the device as uint8, bf16 autocast,
    the lean loss) runs, and its checkpoint loads on the CPU."""
    from regtracks.checkpoint import load_checkpoint
    from regtracks.config import DEFAULT_DATA
    from regtracks.training.train import train

    res = train(
        sim_small / "genome.fa",
        sim_small / "markers.tsv",
        tmp_path / "run",
        _tiny_cfg(device="cuda", precision="bf16", max_steps=2, eval_every=2, log_every=1),
        data_cfg=replace(DEFAULT_DATA, window_len=2000),
    )
    assert res.step == 2
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < x["loss"] < 5 for x in lines if x["event"] == "train")
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    ck.build_model(device=torch.device("cpu"))


# --- unused parameters, batch norm and DDP's options -------------------------------------------
def _half_used(*, n_markers: int = 2):
    """A dense model with a layer the loss never reaches (a plugin's leftover head, say)."""
    from regtracks.models.layers import DenseModel

    class HalfUsed(DenseModel):
        receptive_field = 3

        def __init__(self, n_markers):
            super().__init__(n_markers)
            self.used = nn.Conv1d(4, n_markers, 3, padding=1)
            self.bn = nn.BatchNorm1d(n_markers)
            self.spare = nn.Linear(3, 3)  # never called

        def forward(self, x):
            return self.bn(self.used(x))

    return HalfUsed(n_markers)


def test_unused_parameters_are_found_without_touching_state():
    from regtracks.models import get_model
    from regtracks.training.train import unused_parameters

    td = SimpleNamespace(samples=SimpleNamespace(length=300))
    m = _half_used()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rng = torch.get_rng_state()
    assert unused_parameters(m, td, torch.device("cpu")) == ["spare.weight", "spare.bias"]
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is untouched
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # BN stats too
    assert m.training and all(p.grad is None for p in m.parameters())
    m.find_unused_parameters = False  # a model may say so itself
    assert unused_parameters(m, td, torch.device("cpu")) == []
    for name, hp in (
        ("dilated", {"f1": 8, "f2": 8, "f3": 8, "d_hidden": 8}),
        ("idcnn", {}),
    ):
        model = get_model(name, n_markers=3, **hp)
        assert unused_parameters(model, td, torch.device("cpu")) == [], name


def test_ddp_buffer_broadcast_keyword():
    """With SyncBatchNorm DDP does not broadcast rank 0's buffers before each forward (the
    statistics are synced already), in the keyword this torch takes; without it, DDP's default."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    from regtracks.training.train import _no_buffer_broadcast

    assert _no_buffer_broadcast(False) == {}
    [(key, value)] = _no_buffer_broadcast(True).items()
    assert value is False and key in inspect.signature(DDP).parameters
    assert key in ("forward_sync_buffers", "broadcast_buffers")


def test_sync_batchnorm_keeps_the_checkpoint_keys():
    """SyncBatchNorm (multi-GPU runs) holds the same parameters, buffers and state_dict keys,
    so its checkpoints load into the plain model."""
    from regtracks.models import get_model

    m = get_model("dilated", n_markers=3, f1=8, f2=8, f3=8, d_hidden=8)
    keys = {k: v.shape for k, v in m.state_dict().items()}
    params = {id(p) for p in m.parameters()}
    s = nn.SyncBatchNorm.convert_sync_batchnorm(m)
    assert any(isinstance(x, nn.SyncBatchNorm) for x in s.modules())
    assert not any(type(x) is nn.BatchNorm1d for x in s.modules())
    assert {k: v.shape for k, v in s.state_dict().items()} == keys
    assert {id(p) for p in s.parameters()} == params  # the optimizer's parameters, unchanged
    get_model("dilated", n_markers=3, f1=8, f2=8, f3=8, d_hidden=8).load_state_dict(s.state_dict())


def _tiny_cfg(**more):
    from regtracks.config import DEFAULT_TRAIN

    base = {
        "model": "dilated",
        "hparams": {"f1": 8, "f2": 8, "f3": 8, "d_hidden": 8},
        "batch_size": 4,
        "workers": 0,
        "device": "cpu",
        "seed": 3,
        "epochs": 0,
    }
    return replace(DEFAULT_TRAIN, **{**base, **more})


def _ddp_worker(rank: int, world: int, init: str, sim: str, out: str, record: str) -> None:
    import torch.distributed as dist

    from regtracks.config import DEFAULT_DATA
    from regtracks.training.train import Trainer

    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        cfg = _tiny_cfg(batch_size=2, workers=1, max_steps=4, eval_every=2, log_every=2)
        sim = Path(sim)
        t = Trainer(
            sim / "genome.fa",
            sim / "markers.tsv",
            out,
            cfg,
            data_cfg=replace(DEFAULT_DATA, window_len=2000),
        )
        pids = []
        validate = t.validate

        def recording_validate():
            res = validate()
            it = t.valid_loader._iterator
            pids.append(sorted(w.pid for w in it._workers) if it is not None else None)
            return res

        t.validate = recording_validate
        ddp = t.wrapped
        options = {
            "find_unused": ddp.find_unused_parameters,
            "bucket_view": ddp.gradient_as_bucket_view,
            "broadcast_buffers": ddp.broadcast_buffers,
            "sync_bn": any(isinstance(m, nn.SyncBatchNorm) for m in t.model.modules()),
        }
        res = t.run()
        state = {k: v.detach().cpu().clone() for k, v in t.model.state_dict().items()}
        # a model with a parameter the loss never reaches: DDP is told, and trains past step 2
        from regtracks.models import register_model

        register_model("half_used", task="dense", kind="test")(_half_used)
        cfg = _tiny_cfg(model="half_used", hparams={}, batch_size=2, max_steps=3, eval_every=0)
        t2 = Trainer(
            sim / "genome.fa",
            sim / "markers.tsv",
            f"{out}2",
            replace(cfg, patience=0),
            data_cfg=replace(DEFAULT_DATA, window_len=2000),
        )
        unused = (t2.wrapped.find_unused_parameters, t2.run().step)
        torch.save(
            {"state": state, "pids": pids, "options": options, "step": res.step, "unused": unused},
            f"{record}.{rank}",
        )
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_gloo_end_identical(sim_small, tmp_path):
    """Two gloo processes: DDP's options as set for a GPU run (less SyncBatchNorm, CUDA only),
    both ranks end with the same weights and batch-norm statistics, rank 0's checkpoint holds
    them and loads into a fresh model, and each rank's validation loader keeps its workers
    from one validation to the next. A model with an unused parameter trains too (DDP is
    told: find_unused_parameters)."""
    import torch.multiprocessing as mp

    from regtracks.checkpoint import load_checkpoint

    out, record = tmp_path / "run", tmp_path / "rank"
    mp.spawn(
        _ddp_worker,
        args=(2, str(tmp_path / "init"), str(sim_small), str(out), str(record)),
        nprocs=2,
        join=True,
    )
    r0, r1 = (torch.load(f"{record}.{r}", weights_only=True) for r in (0, 1))
    for r in (r0, r1):
        assert r["step"] == 4
        assert r["unused"] == (True, 3)
        assert r["options"] == {
            "find_unused": False,
            "bucket_view": True,
            "broadcast_buffers": True,  # no SyncBatchNorm on CPU: DDP keeps rank 0's stats
            "sync_bn": False,
        }
        # validations at steps 2 and 4; the same worker processes both times
        assert len(r["pids"]) == 2 and r["pids"][0] is not None and r["pids"][0] == r["pids"][1]
    assert r0["pids"] != r1["pids"]
    assert r0["state"].keys() == r1["state"].keys()
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    ck = load_checkpoint(out / "last.pt")
    assert ck.step == 4
    saved = ck.raw["state_dict"]
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in saved)
    for k in r0["state"]:
        assert torch.equal(saved[k], r0["state"][k]), k
    model = ck.build_model(device=torch.device("cpu"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in r0["state"].items())


# --- torch.compile -----------------------------------------------------------------------------
def _check_compiled_run(out: Path) -> None:
    from regtracks.checkpoint import load_checkpoint
    from regtracks.models import get_model

    ck = load_checkpoint(out / "last.pt")
    assert ck.step == 2 and ck.raw["train"]["compile"] is True
    keys = list(ck.raw["state_dict"])
    assert keys and not any("_orig_mod" in k for k in keys)
    plain = get_model("dilated", n_markers=4, f1=8, f2=8, f3=8, d_hidden=8)
    plain.load_state_dict(ck.raw["state_dict"])  # strict: the uncompiled model's keys
    model = ck.build_model(device=torch.device("cpu"))
    x = torch.zeros(1, 4, 2000)
    x[:, 0] = 1
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()


def test_compile_two_steps_checkpoint_loads_uncompiled(sim_small, tmp_path, monkeypatch):
    """``compile=True`` trains through ``torch.compile``; the checkpoint holds the plain keys.
    The graph is traced by dynamo and AOTAutograd ("aot_eager": no C compiler, seconds); the
    inductor backend, which needs one, is the next test's."""
    from regtracks.config import DEFAULT_DATA
    from regtracks.training.train import train

    calls = []
    real = torch.compile

    def compile_eager(model, **kw):
        calls.append(type(model).__name__)
        return real(model, **{**kw, "backend": "aot_eager"})

    monkeypatch.setattr(torch, "compile", compile_eager)
    torch._dynamo.reset()
    out = tmp_path / "run"
    res = train(
        sim_small / "genome.fa",
        sim_small / "markers.tsv",
        out,
        _tiny_cfg(compile=True, max_steps=2, eval_every=2, log_every=1),
        data_cfg=replace(DEFAULT_DATA, window_len=2000),
    )
    assert len(calls) == 1  # once, the model (no DDP in one process)
    assert res.status == "max-steps" and res.step == 2
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in lines if x["event"] == "train"]
    assert len(losses) == 2 and all(0 < v < 5 for v in losses)
    _check_compiled_run(out)


@pytest.mark.slow
def test_compile_inductor_cli(sim_small, tmp_path):
    """``regtracks train --compile`` with torch's default backend (inductor: C++ on CPU).
    Cold, its first step waits about a minute on 2 busy cores for the compiler (seconds once
    the inductor cache is warm); skipped where there is no C compiler."""
    from typer.testing import CliRunner

    from regtracks.cli import app
    from tests.conftest import train_args

    if not os.environ.get("REGTRACKS_TEST_INDUCTOR"):
        pytest.skip(
            "a cold inductor compile takes a minute or more: REGTRACKS_TEST_INDUCTOR=1 runs it "
            "(test_compile_two_steps_checkpoint_loads_uncompiled: the same with aot_eager)"
        )
    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        pytest.skip("no C compiler (cc, gcc, clang): torch.compile's inductor cannot build")
    torch._dynamo.reset()
    out = tmp_path / "run"
    args = train_args(sim_small, out, "--max-steps", "2", "--eval-every", "2", "--compile")
    r = CliRunner().invoke(app, args)
    if r.exit_code == 1 and "--compile: torch.compile failed" in r.output:
        if any(w in r.output.lower() for w in ("compiler", "cxx", "gcc", "cc1")):
            pytest.skip(f"torch.compile cannot build here: {r.output.strip().splitlines()[-1]}")
    assert r.exit_code == 0, r.output
    _check_compiled_run(out)
    opts = json.loads((out / "options.json").read_text())["options"]
    assert opts["compile"] is True


def test_compile_failure_is_one_line(sim_small, tmp_path, monkeypatch):
    """A backend that fails (as inductor does without a C compiler) stops the run with one
    line naming --compile, and no traceback."""
    from typer.testing import CliRunner

    from regtracks.cli import app
    from tests.conftest import train_args

    def broken_backend(gm, example_inputs):
        raise RuntimeError("no working C compiler found")

    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m, **kw: real(m, backend=broken_backend))
    torch._dynamo.reset()
    r = CliRunner().invoke(app, train_args(sim_small, tmp_path / "run", "--max-steps", "1",
                                           "--compile"))  # fmt: skip
    assert r.exit_code == 1, r.output
    last = [ln for ln in r.stderr.strip().splitlines() if ln.strip()][-1]
    assert last.startswith("error: --compile: torch.compile failed") and "without --compile" in last
    assert "Traceback" not in r.output


# --- the GPU benchmarks fail loudly without CUDA -----------------------------------------------
def _script(*args, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_bench_train_on_cuda_without_cuda_fails_in_one_line():
    r = _script(ROOT / "benchmarks" / "bench_train.py", "--device", "cuda")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: --device cuda, but CUDA is not available on this machine"
    ]


def test_bench_train_needs_pynvml_for_the_gpu_figure(monkeypatch):
    """With CUDA but without pynvml, the GPU-busy figure stops the run before it starts."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_train
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with pytest.raises(SystemExit) as e:
        bench_train.require_gpu_busy()
    assert str(e.value).startswith(
        "error: the GPU-busy figure needs pynvml: pip install nvidia-ml-py"
    )


def test_gpu_check_dry_run_and_no_cuda(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.py"
    r = _script(script, "--help")
    assert r.returncode == 0 and "--dry-run" in r.stdout
    r = _script(script, "--dry-run", "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    plan = r.stdout
    for needle in (
        "bench_train.py --device cuda",
        "--precision bf16",
        "--compile",
        "bench_scan.py",
        "--markers 919",
        "--chrom-len 50000000",
    ):
        assert needle in plan, needle
    assert not (tmp_path / "o").exists()  # a dry run writes nothing
    if not torch.cuda.is_available():
        r = _script(script, "--out", tmp_path / "o")
        assert r.returncode == 1
        assert r.stderr.strip().splitlines()[-1].startswith("error: CUDA is not available")
