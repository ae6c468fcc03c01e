"""Training, checkpoints, resume, Ctrl-C, NaN, DDP and bad input."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from regtracks.cli import app
from regtracks.models import register_model
from tests.conftest import train_args

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def one_line_error(r, *needles):
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:"), r.stderr
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[-1], lines[-1]


def test_train_then_evaluate(sim_small, tmp_path):
    out = tmp_path / "run"
    r = run(*train_args(sim_small, out, "--max-steps", "4", "--eval-every", "2"))
    assert r.exit_code == 0, r.output
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    ck = torch.load(out / "best.pt", weights_only=True)
    assert ck["format"] == "regtracks-checkpoint/1" and ck["task"] == "dense"
    assert ck["model"]["name"] == "dilated" and ck["model"]["hparams"]["f1"] == 8
    assert ck["model"]["receptive_field"] > 0 and ck["model"]["stride"] == 10
    assert [m["category"] for m in ck["markers"]] == ["TFBS", "TFBS", "Histone", "DNase"]
    assert all(os.path.isabs(m["path"]) for m in ck["markers"])
    assert (
        ck["genome"]["chrom_sizes"][0] == ["chr1", 60_000] and len(ck["genome"]["sizes_hash"]) == 16
    )
    assert ck["data"]["window_len"] == 2000 and ck["split"]["mode"] == "chrom"
    assert (
        "state" not in ck and "optimizer" in torch.load(out / "last.pt", weights_only=True)["state"]
    )
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["event"] == "valid"] == [2, 4]
    assert all(x["bp_per_s"] > 0 for x in lines if x["event"] == "train")
    r = run("evaluate", str(out), "--split", "test", "--json", "--workers", "0")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["split"] == "test"
    assert set(rep["categories"]) == {"TFBS", "Histone", "DNase"}
    assert all({"pr_auc", "roc_auc"} <= set(v) for v in rep["categories"].values())
    assert [m["name"] for m in rep["markers"]] == [m["name"] for m in ck["markers"]]
    for m in rep["markers"]:
        assert {"name", "category", "pr_auc", "roc_auc", "positive_rate"} <= set(m)
        assert 0 < m["positive_rate"] < 1 and 0 <= m["pr_auc"] <= 1
    assert (out / "evaluate" / "test" / "report.md").is_file()
    assert list((out / "evaluate" / "test").glob("pr_*.png"))


def _state(path):
    return torch.load(path, weights_only=True)


def test_resume_is_bit_identical(sim_small, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    # extending a run (3 then 7 steps) keeps a constant rate identical; a cosine schedule is
    # a function of the run's length, so only a resume to the same end continues it
    common = ("--eval-every", "3", "--max-eval-batches", "1", "--lr-decay", "none")
    assert run(*train_args(sim_small, a, "--max-steps", "7", *common)).exit_code == 0
    assert run(*train_args(sim_small, b, "--max-steps", "3", *common)).exit_code == 0
    mid = _state(b / "last.pt")
    assert mid["state"]["step"] == 3
    r = run(*train_args(sim_small, b, "--max-steps", "7", "--resume", *common))
    assert r.exit_code == 0, r.output
    sa, sb = _state(a / "last.pt"), _state(b / "last.pt")
    assert sa["state"]["step"] == sb["state"]["step"] == 7
    for k, v in sa["state_dict"].items():
        assert torch.equal(v, sb["state_dict"][k]), k
    oa, ob = sa["state"]["optimizer"]["state"], sb["state"]["optimizer"]["state"]
    for k in oa:
        assert torch.equal(oa[k]["exp_avg"], ob[k]["exp_avg"])
    steps = [json.loads(x)["step"] for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)


def test_bad_input_leaves_runs_alone(sim_small, tmp_path):
    out = tmp_path / "run"
    assert run(*train_args(sim_small, out, "--max-steps", "2")).exit_code == 0
    before = (out / "last.pt").stat().st_mtime_ns
    one_line_error(run(*train_args(sim_small, out, "--max-steps", "2")), "already holds a run")
    one_line_error(
        run(*train_args(sim_small, out, "--resume", model="cnn1", hparams=[])),
        "--resume",
        "dilated",
    )
    one_line_error(run(*train_args(sim_small, out, "--resume", hparams=["f1=16"])), "f1=16")
    one_line_error(run(*train_args(sim_small, tmp_path / "x", hparams=["nope=1"])), "nope")
    one_line_error(run(*train_args(sim_small, tmp_path / "y", "--device", "cuda")), "CUDA")
    one_line_error(run(*train_args(sim_small, tmp_path / "z", "--resume")), "nothing to resume")
    # another marker table
    other = tmp_path / "markers.tsv"
    lines = (sim_small / "markers.tsv").read_text().splitlines()
    other.write_text("\n".join(lines[:-1]).replace("peaks/", f"{sim_small}/peaks/") + "\n")
    args = train_args(sim_small, out, "--resume")
    args[args.index("--markers") + 1] = str(other)
    one_line_error(run(*args), "marker table")
    assert (out / "last.pt").stat().st_mtime_ns == before
    # evaluate: not a run, another genome
    one_line_error(run("evaluate", str(tmp_path / "nothing")), "no such run")
    (tmp_path / "empty").mkdir()
    one_line_error(run("evaluate", str(tmp_path / "empty")), "not a regtracks run")
    from tests.conftest import write_fasta

    fa = write_fasta(tmp_path / "other.fa", {"chr1": "ACGT" * 15_000, "chr2": "ACGT" * 100})
    one_line_error(
        run("evaluate", str(out), "--genome", str(fa), "--workers", "0"), "does not match", "chr2"
    )
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    one_line_error(run("evaluate", str(bad)), "bad.pt")


def _nan_model(*, n_markers: int):
    class NanAfter(torch.nn.Module):
        receptive_field = 1
        stride = 1
        task = "dense"

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Conv1d(4, n_markers, 1)
            self.calls = 0

        def forward(self, x):
            if self.training:
                self.calls += 1
            y = self.w(x)
            return y * float("nan") if self.calls > 3 else y

    return NanAfter()


def test_nan_loss_stops_and_keeps_last_good(sim_small, tmp_path, monkeypatch):
    from regtracks.models import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # leave no trace
    register_model("nan_after_3", task="dense", layers=1, kind="test")(_nan_model)
    out = tmp_path / "run"
    from regtracks.config import DEFAULT_TRAIN, DataConfig
    from regtracks.training.train import train

    cfg = DEFAULT_TRAIN.__class__(
        model="nan_after_3",
        max_steps=20,
        batch_size=2,
        workers=0,
        log_every=1,
        checkpoint_every=2,
        eval_every=0,
    )
    with pytest.raises(ValueError, match="loss became nan near step 4"):
        train(
            sim_small / "genome.fa",
            sim_small / "markers.tsv",
            out,
            cfg,
            data_cfg=DataConfig(window_len=2000),
        )
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["state"]["step"] == 2
    assert all(
        torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point()
    )


def _cli(*args):
    return [sys.executable, "-m", "regtracks", *args]


def test_ctrl_c_saves_and_resumes(sim_small, tmp_path):
    out = tmp_path / "run"
    args = train_args(sim_small, out, "--max-steps", "400", "--eval-every", "0")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    metrics = out / "metrics.jsonl"
    t0 = time.time()
    while not (metrics.exists() and metrics.read_text().strip()) and time.time() - t0 < 120:
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err.decode()
    assert b"Traceback" not in err and b"--resume" in err
    step = torch.load(out / "last.pt", weights_only=True)["state"]["step"]
    assert 10 <= step < 400
    r = run(*train_args(sim_small, out, "--max-steps", str(step + 2), "--resume"))
    assert r.exit_code == 0, r.output
    assert torch.load(out / "last.pt", weights_only=True)["state"]["step"] == step + 2


def test_torchrun_ddp_two_processes(sim_small, tmp_path):
    out = tmp_path / "ddp"
    args = train_args(sim_small, out, "--max-steps", "3", "--eval-every", "3")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "regtracks",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    ck = torch.load(out / "last.pt", weights_only=True)
    assert ck["state"]["step"] == 3
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    valid = [x for x in lines if x["event"] == "valid"]
    assert len(valid) == 1  # rank 0 alone writes
    train = [x for x in lines if x["event"] == "train"]
    assert train and train[-1]["step"] == 3


def test_learning_options_curves_and_tensorboard(sim_small, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    tb = tmp_path / "tb"
    r = run(
        *train_args(sim_small, out, "--max-steps", "4", "--eval-every", "2"),
        "--shift", "300", "--marker-weighting", "inverse", "--warmup", "3", "--lr", "0.002",
        "--lr-decay", "cosine",
        "--tensorboard", str(tb),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    ck = torch.load(out / "last.pt", weights_only=True)
    assert ck["train"]["shift"] == 300 and ck["train"]["marker_weighting"] == "inverse"
    assert ck["train"]["lr_decay"] == "cosine"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    lrs = [x["lr"] for x in lines if x["event"] == "train"]
    assert lrs and all(0 < v <= 0.002 for v in lrs)
    valid = [x for x in lines if x["event"] == "valid"]
    assert all(x["seconds"] > 0 and len(x["pr_auc_markers"]) == 4 for x in valid)
    assert valid[0]["seconds"] < valid[1]["seconds"]
    png = (out / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    if importlib.util.find_spec("tensorboard") is not None:
        assert any(p.name.startswith("events.out.tfevents") for p in tb.iterdir())
    # the default shift is half the window; evaluate writes the curves beside its report
    r = run(*train_args(sim_small, tmp_path / "run2", "--max-steps", "2", "--eval-every", "2"))
    assert r.exit_code == 0, r.output
    ck = torch.load(tmp_path / "run2" / "last.pt", weights_only=True)
    assert ck["train"]["shift"] == 1000 and ck["train"]["marker_weighting"] == "sqrt"
    r = run("evaluate", str(out), "--split", "test", "--workers", "0")
    assert r.exit_code == 0, r.output
    assert (out / "evaluate" / "test" / "curves.png").is_file()
    for bad, needle in (
        (["--marker-weighting", "loud"], "--marker-weighting"),
        (["--shift", "-1"], "--shift"),
        (["--warmup", "-2"], "--warmup"),
        (["--lr-decay", "step"], "--lr-decay"),
        (["--patience", "-1"], "--patience"),
        (["--lr", "nan"], "--lr"),
    ):
        one_line_error(run(*train_args(sim_small, tmp_path / "bad", *bad)), needle)


def test_marker_weights_by_hand():
    from regtracks.training.train import marker_weights

    rates = [0.01, 0.04, 0.0001, 0.25]
    assert marker_weights("none", rates, "cpu", task="dense") is None
    w = marker_weights("inverse", rates, "cpu", task="dense")
    p = [0.01, 0.04, 0.001, 0.25]  # clipped to [1e-3, 0.5]
    want = [1 / x for x in p]
    want = [x / (sum(want) / 4) for x in want]
    assert w.shape == (1, 4, 1) and torch.allclose(w.flatten(), torch.tensor(want))
    w = marker_weights("sqrt", rates, "cpu", task="sequence")
    want = [x**-0.5 for x in p]
    want = [x / (sum(want) / 4) for x in want]
    assert w.shape == (1, 4) and torch.allclose(w.flatten(), torch.tensor(want))


def test_lr_schedule_by_hand():
    import math

    from regtracks.training.train import lr_schedule

    # warm-up: 1/4, 2/4, 3/4, 4/4 of lr, then constant
    assert [lr_schedule(s, 0.4, 4, "none", 10) for s in range(6)] == pytest.approx(
        [0.1, 0.2, 0.3, 0.4, 0.4, 0.4]
    )
    # cosine after a warm-up of 2 over 12 steps: lr at step 2, lr/100 at step 11, midpoint
    lrs = [lr_schedule(s, 1.0, 2, "cosine", 12) for s in range(12)]
    assert lrs[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert lrs[-1] == pytest.approx(0.01)
    t = (6 - 2) / (12 - 1 - 2)
    assert lrs[6] == pytest.approx(0.01 + 0.99 * (1 + math.cos(math.pi * t)) / 2)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:], strict=False))
    assert lr_schedule(50, 1.0, 0, "cosine", 0) == 1.0  # no known end: constant


def test_warnings_when_the_loss_falls_but_validation_stays_at_chance():
    from types import SimpleNamespace

    from regtracks.runtime import DistEnv
    from regtracks.training.train import Trainer

    events = []
    t = Trainer.__new__(Trainer)  # only the bookkeeping the warnings read
    t.on_event, t.dist, t.state = events.append, DistEnv(), {"step": 500}
    t._warned, t._losses = False, [0.69, 0.40]
    t.td = SimpleNamespace(markers=SimpleNamespace(categories=["TFBS", "TFBS", "Histone"]))
    at_chance = {"roc_auc": {"mean": 0.52, "TFBS": 0.53, "Histone": 0.51}}
    t._warn_memorising(at_chance)
    assert events == []  # the loss has not halved
    t._losses = [0.69, 0.011]
    t._warn_memorising({"roc_auc": {"mean": 0.8}})
    assert events == []  # validation learns
    t._warn_memorising(at_chance)
    t._warn_memorising(at_chance)  # once
    assert [e["kind"] for e in events] == ["memorising"]
    assert "0.6900 to 0.0110" in events[0]["message"] and "0.520" in events[0]["message"]
    t.last_valid = {"roc_auc": {"mean": 0.7, "TFBS": 0.9, "Histone": 0.51}}
    t.warn_at_chance()
    assert events[-1]["kind"] == "at-chance"
    assert "Histone (ROC-AUC 0.510)" in events[-1]["message"]
    assert "TFBS" not in events[-1]["message"]


def _same_state(pa, pb):
    sa, sb = _state(pa), _state(pb)
    assert sa["state"]["step"] == sb["state"]["step"]
    for k, v in sa["state_dict"].items():
        assert torch.equal(v, sb["state_dict"][k]), k
    oa, ob = sa["state"]["optimizer"]["state"], sb["state"]["optimizer"]["state"]
    for k in oa:
        assert torch.equal(oa[k]["exp_avg"], ob[k]["exp_avg"])
        assert torch.equal(oa[k]["exp_avg_sq"], ob[k]["exp_avg_sq"])


def test_resume_run_reads_the_options_it_was_started_with(sim_small, tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    common = ("--eval-every", "3", "--max-eval-batches", "1", "--lr-decay", "none")
    assert run(*train_args(sim_small, a, "--max-steps", "7", *common)).exit_code == 0
    assert run(*train_args(sim_small, b, "--max-steps", "3", *common)).exit_code == 0
    rec = json.loads((b / "options.json").read_text())
    assert rec["format"] == "regtracks-train-options/1"
    opts = rec["options"]
    assert opts["genome"] == str((sim_small / "genome.fa").resolve())
    assert opts["max_steps"] == 3 and opts["window_len"] == 2000 and opts["seed"] == 3
    assert opts["hparam"] == ["f1=8", "f2=8", "f3=8", "d_hidden=8"]
    assert not {"out", "resume", "overwrite"} & set(opts)
    monkeypatch.chdir(tmp_path)  # stored paths are absolute: resume from anywhere
    # an option that would change the steps already taken is refused, in one line
    before = (b / "last.pt").stat().st_mtime_ns
    one_line_error(run("train", "--resume", "b", "--lr", "0.1"), "--lr 0.1", "--lr 0.003")
    one_line_error(run("train", "--resume", "b", "--no-rc"), "--no-rc", "--rc", "--max-steps")
    one_line_error(run("train", "--resume", "b", "--window-len", "1000"), "--window-len 1000")
    r = run("train", "--resume", "b", "--out", "a")
    assert r.exit_code == 2 and "--resume b stands for --out b" in r.stderr
    assert (b / "last.pt").stat().st_mtime_ns == before
    # no genome, markers or other options: extended to 7 steps, it ends as the run trained so
    r = run("train", "--resume", "b", "--max-steps", "7")
    assert r.exit_code == 0, r.output
    assert "resuming b with the options it was started with; changed: --max-steps 7" in r.stderr
    _same_state(a / "last.pt", b / "last.pt")
    assert json.loads((b / "options.json").read_text())["options"]["max_steps"] == 7
    steps = [json.loads(x)["step"] for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)


def test_resume_hint_and_runs_without_recorded_options(sim_small, tmp_path, monkeypatch):
    import regtracks.training.train as training
    from regtracks.training.train import TrainResult

    out = tmp_path / "run"
    assert run(*train_args(sim_small, out, "--max-steps", "2", "--lr-decay", "none")).exit_code == 0
    (out / "options.json").unlink()  # as a run started before runs recorded their options
    one_line_error(run("train", "--resume", str(out)), "options.json", "-g GENOME -m MARKERS")
    # the old spelling, every option given again, still resumes, and records them
    r = run(*train_args(sim_small, out, "--max-steps", "3", "--lr-decay", "none", "--resume"))
    assert r.exit_code == 0, r.output
    assert json.loads((out / "options.json").read_text())["options"]["max_steps"] == 3
    # a cosine schedule stretched by a longer run: said
    other = tmp_path / "cos"
    assert run(*train_args(sim_small, other, "--max-steps", "2")).exit_code == 0
    r = run("train", "--resume", str(other), "--max-steps", "3")
    assert r.exit_code == 0 and "cosine learning-rate schedule stretches" in r.stderr
    r = run("train", "--out", str(tmp_path / "new"))
    assert r.exit_code == 2 and "error: missing --genome: needed to start a run" in r.stderr
    # the hint after Ctrl-C names the run alone
    stopped = TrainResult(run_dir=out, status="interrupted", step=3, epoch=0, best=None,
                          best_step=None)  # fmt: skip
    monkeypatch.setattr(training, "train", lambda *a, **k: stopped)
    r = run("train", "--resume", str(out), "--max-steps", "9")
    assert r.exit_code == 130, r.output
    assert f"resume with: regtracks train --resume {out}" in " ".join(r.stderr.split())


# --- Ctrl-C: finish the step, save, stop; further Ctrl-Cs wait for the save -----------------
def _lib_train(sim, out, *, resume=False, on_event=None):
    """A tiny CPU run of 6 steps through the library (last.pt every 2 steps)."""
    from regtracks.config import DEFAULT_TRAIN, DataConfig
    from regtracks.training.train import train

    cfg = DEFAULT_TRAIN.__class__(
        model="dilated",
        hparams={"f1": 8, "f2": 8, "f3": 8, "d_hidden": 8},
        max_steps=6,
        batch_size=4,
        workers=0,
        device="cpu",
        seed=3,
        log_every=1,
        eval_every=0,
        checkpoint_every=2,
        max_eval_batches=1,
    )
    return train(
        sim / "genome.fa",
        sim / "markers.tsv",
        out,
        cfg,
        data_cfg=DataConfig(window_len=2000),
        resume=resume,
        on_event=on_event,
    )


@pytest.fixture(scope="module")
def uninterrupted(sim_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    res = _lib_train(sim_small, out)
    assert res.status == "max-steps" and res.step == 6
    return out / "last.pt"


def _sigint():
    os.kill(os.getpid(), signal.SIGINT)


# where the Ctrl-Cs land, the step last.pt is left at, the saves of last.pt, what is said
CTRL_C_CASES = {
    # first between steps 3 and 4, a second while the checkpoint after step 3 is written
    "during-save": (3, [2, 3], ["Ctrl-C: finishing this step", "still saving the checkpoint"]),
    # three inside step 4: the step finishes, then it is saved
    "in-step": (4, [2, 4], ["Ctrl-C: finishing", "still finishing step 4", "still finishing"]),
    # first inside step 5, two more while its loss is logged, before the save
    "bookkeeping": (5, [2, 4, 5], ["Ctrl-C", "stopping at step 5: saving", "stopping at"]),
    # two during the final validation: the second stops it at once; last.pt holds step 6
    "in-validation": (6, [2, 4, 6], ["Ctrl-C: stopping after the validation"]),
    # two while the batch of step 5 is made: no step begun, it stops at step 4
    "data-wait": (4, [2, 4], ["Ctrl-C: finishing this step", "stopping at step 4: saving"]),
    # an interrupt inside step 5, after its update: nothing of the torn step is saved
    "torn-step": (4, [2, 4], ["stopped inside step 5: {last} keeps step 4"]),
}


@pytest.mark.parametrize("where", list(CTRL_C_CASES))
def test_ctrl_c_saves_whole_steps_only_and_resumes_bit_identical(
    sim_small, tmp_path, monkeypatch, uninterrupted, where
):
    import regtracks.training.train as training
    from regtracks.training.train import Trainer

    want_step, want_saves, want_said = CTRL_C_CASES[where]
    out = tmp_path / "run"
    events, saves, sent = [], [], []
    real_save, real_step, real_validate = (
        training.save_checkpoint, torch.optim.Adam.step, Trainer.validate
    )  # fmt: skip

    def save(path, ck):
        if path.name == "last.pt":
            saves.append(ck["metrics"]["step"])
        if where == "during-save" and len(sent) == 1:
            sent.append("save")
            _sigint()
        real_save(path, ck)

    def on_event(ev):
        events.append(ev)
        if ev["event"] != "train":
            return
        if where == "during-save" and ev["step"] == 3 and not sent:
            sent.append("between steps")
            _sigint()
        if where == "bookkeeping" and ev["step"] == 5:
            _sigint()
            _sigint()

    calls = []

    def opt_step(self, *a, **k):
        calls.append(1)
        n = len(calls)  # the step this is
        if where == "in-step" and n == 4:
            _sigint()
            _sigint()
            _sigint()
        if where == "bookkeeping" and n == 5:
            _sigint()
        result = real_step(self, *a, **k)
        if where == "torn-step" and n == 5:
            raise KeyboardInterrupt  # the weights hold step 5, the counters do not
        return result

    def validate(self):
        if where == "in-validation":
            _sigint()
            _sigint()
        return real_validate(self)

    real_make_loader, loaders, collated = training.make_loader, [], []

    def make_loader(ds, sampler, collate, **kw):  # the first is the training loader
        def collate_train(items):  # workers=0: the batches are made in this process
            collated.append(1)
            if where == "data-wait" and len(collated) == 5:
                _sigint()
                _sigint()
            return collate(items)

        loaders.append(ds)
        return real_make_loader(ds, sampler, collate_train if len(loaders) == 1 else collate, **kw)

    monkeypatch.setattr(training, "make_loader", make_loader)
    monkeypatch.setattr(training, "save_checkpoint", save)
    monkeypatch.setattr(torch.optim.Adam, "step", opt_step)
    monkeypatch.setattr(Trainer, "validate", validate)
    before = signal.getsignal(signal.SIGINT)
    res = _lib_train(sim_small, out, on_event=on_event)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    assert res.status == "interrupted" and res.step == want_step
    assert events[-1] == {"event": "end", "status": "interrupted", "step": want_step,
                          "best": None}  # fmt: skip
    assert saves == want_saves
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["state"]["step"] == last["metrics"]["step"] == want_step
    said = [e["message"] for e in events if e["event"] == "warning" and e["kind"] == "interrupt"]
    assert len(said) == len(want_said), said
    for got, want in zip(said, want_said, strict=True):
        assert got.startswith(want.format(last=out / "last.pt")), (got, want)
    if where == "during-save":
        assert sent == ["between steps", "save"]
        assert said[1] == f"still saving the checkpoint {out / 'last.pt'}; please wait"
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]
    # resumed to the end: bit-identical to the run that was never stopped
    monkeypatch.undo()
    res = _lib_train(sim_small, out, resume=True)
    assert res.status == "max-steps" and res.step == 6
    _same_state(uninterrupted, out / "last.pt")


# --- the run folder: locked for the whole run, stale temporaries cleaned, checked writable -----
_HOLD = (
    "import sys\n"
    "from regtracks._util import folder_lock\n"
    "with folder_lock(sys.argv[1], 'regtracks predict'):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.readline()\n"
)
_TRY = (
    "import sys\n"
    "from regtracks._util import RegtracksError, folder_lock\n"
    "try:\n"
    "    with folder_lock(sys.argv[1], 'second'):\n"
    "        print('got it')\n"
    "except RegtracksError as e:\n"
    "    print(e)\n"
)


def test_a_second_train_into_the_folder_fails_at_once(sim_small, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        r = run(*train_args(sim_small, out, "--max-steps", "2"))
        one_line_error(r, str(out), f"in use by another regtracks process (pid {holder.pid}")
        assert not (out / "last.pt").exists() and not (out / "metrics.jsonl").exists()
    finally:
        holder.communicate("\n", timeout=30)
    # while a run trains, the folder is its own: another process is refused, naming it
    seen = []

    def on_event(ev):
        if ev["event"] == "train" and not seen:
            seen.append(
                subprocess.run(
                    [sys.executable, "-c", _TRY, str(out)],
                    capture_output=True, text=True, timeout=60,
                ).stdout.strip()
            )  # fmt: skip

    stale = out / ".last.pt.k2j3h4.tmp.pt"  # a killed run's temporary
    other = out / "evaluate" / ".report.md.ab12cd.tmp.md"  # another writer's: left alone
    other.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    other.write_text("x")
    res = _lib_train(sim_small, out, on_event=on_event)
    assert res.status == "max-steps"
    assert seen and "in use by another regtracks process" in seen[0]
    assert f"pid {os.getpid()}: regtracks train" in seen[0]
    assert not stale.exists() and other.exists()
    r = subprocess.run(
        [sys.executable, "-c", _TRY, str(out)], capture_output=True, text=True, timeout=60
    )
    assert r.stdout.strip() == "got it"  # released when the run ended


def test_the_run_folder_is_checked_before_the_first_step(sim_small, tmp_path, monkeypatch):
    import errno

    import regtracks._util as util

    real = util.tempfile.mkstemp

    def read_only(*a, prefix=None, **k):
        if prefix and prefix.startswith(".write-test"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*a, prefix=prefix, **k)

    monkeypatch.setattr(util.tempfile, "mkstemp", read_only)
    events = []
    out = tmp_path / "ro"
    with pytest.raises(ValueError, match=r"ro: run folder not writable \(read-only file system\)"):
        _lib_train(sim_small, out, on_event=events.append)
    assert events == [] and not (out / "last.pt").exists()
    monkeypatch.undo()
    f = tmp_path / "file"
    f.write_text("x")
    one_line_error(run(*train_args(sim_small, f)), str(f), "not a folder")
    assert f.read_text() == "x"
    one_line_error(run(*train_args(sim_small, f / "run")), str(f))


def test_loader_workers_do_not_change_training(sim_small, tmp_path):
    """Persistent loader workers (2, labels built there) train bit-identically to batches made
    in the main process (0) over several epochs: the same batches, augmentation draws (which
    the workers must see change with the epoch) and labels."""
    from dataclasses import replace

    from regtracks.config import DEFAULT_TRAIN, DataConfig
    from regtracks.training.train import train

    states = []
    for workers in (0, 2):
        cfg = replace(
            DEFAULT_TRAIN,
            task="sequence",
            model="lr",
            hparams={},
            batch_size=32,
            workers=workers,
            device="cpu",
            seed=3,
            epochs=3,
            eval_every=0,
            max_eval_batches=2,
            checkpoint_every=0,
            log_every=4,
            patience=0,
        )
        out = tmp_path / f"workers{workers}"
        res = train(
            sim_small / "genome.fa", sim_small / "markers.tsv", out, cfg, data_cfg=DataConfig()
        )
        assert res.status == "finished" and res.epoch == 3 and len(res.history) == 3
        states.append((_state(out / "last.pt"), res.history))
    (a, ha), (b, hb) = states
    assert a["state"]["step"] == b["state"]["step"] > 0
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert [h["pr_auc"] for h in ha] == [h["pr_auc"] for h in hb]
