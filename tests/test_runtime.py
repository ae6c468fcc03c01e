"""How a command shares the CPU cores: regtracks.runtime.plan_threads and usable_cpus."""

from __future__ import annotations

import os

import pytest
import torch

from regtracks import config as _util
from regtracks._util import RegtracksError
from regtracks.runtime import ThreadPlan, apply_threads, plan_threads, usable_cpus


@pytest.fixture
def cores(monkeypatch):
    """Pretend the process may use ``n`` cores, with no OMP_NUM_THREADS and no torchrun."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)

    def set_cores(n):
        monkeypatch.setattr("regtracks.runtime.usable_cpus", lambda: n)

    return set_cores


def test_torch_gets_the_cores_the_writers_leave(cores):
    cores(2)
    assert plan_threads(workers=1, writers=0) == ThreadPlan(2, 2, 1, 0)  # workers mostly wait
    assert plan_threads(workers=0, writers=0) == ThreadPlan(2, 2, 0, 0)
    assert plan_threads(workers=0, writers=4).intra_op == 1  # never below one
    cores(16)
    assert plan_threads(workers=4, writers=0) == ThreadPlan(16, 16, 4, 0)


def test_writers_default_to_half_the_cores_on_cpu_and_all_but_one_on_cuda(cores):
    cores(2)
    assert plan_threads() == ThreadPlan(2, 1, 0, 1)
    assert plan_threads(device_type="cuda") == ThreadPlan(2, 1, 0, 1)
    cores(16)
    assert plan_threads() == ThreadPlan(16, 8, 0, 8)
    assert plan_threads(device_type="cuda") == ThreadPlan(16, 1, 0, 15)
    cores(64)
    assert plan_threads(device_type="cuda").writers == 16  # at most 16
    cores(1)
    assert plan_threads() == ThreadPlan(1, 1, 0, 1)
    assert plan_threads(writers=0) == ThreadPlan(1, 1, 0, 0)  # given writers are kept


def test_threads_option_beats_omp_num_threads_which_beats_the_cores(cores, monkeypatch):
    cores(8)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert plan_threads(writers=0).cpus == 3
    assert plan_threads(5, writers=0).cpus == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert plan_threads(writers=0).cpus == 8


def test_torchrun_processes_of_one_machine_share_its_cores(cores, monkeypatch):
    cores(16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert plan_threads(workers=2, writers=0) == ThreadPlan(4, 4, 2, 0)
    assert plan_threads(6, workers=2, writers=0).cpus == 6  # --threads is per process
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert plan_threads(writers=0).cpus == 1


@pytest.mark.parametrize(
    "kw, word", [({"threads": -1}, "--threads"), ({"workers": -1}, "--workers")]
)
def test_negative_counts_are_one_line_errors(kw, word):
    with pytest.raises(RegtracksError, match=word):
        plan_threads(**kw)


def test_usable_cpus_is_the_affinity_capped_by_a_cgroup_quota(monkeypatch):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    n = len(os.sched_getaffinity(0))
    monkeypatch.setattr(_util, "_cgroup_cpu_limit", lambda: None)
    assert usable_cpus() == n
    monkeypatch.setattr(_util, "_cgroup_cpu_limit", lambda: 1.5)
    assert usable_cpus() == 1  # 1.5 CPUs of quota: one whole core
    monkeypatch.setattr(_util, "_cgroup_cpu_limit", lambda: 0.2)
    assert usable_cpus() == 1  # never zero


def test_cgroup_v2_quota_is_read(monkeypatch, tmp_path):
    real = _util.Path

    def fake(p, *a):
        if str(p) == "/sys/fs/cgroup/cpu.max":
            return real(tmp_path / "cpu.max")
        return real(p, *a)

    monkeypatch.setattr(_util, "Path", fake)
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _util._cgroup_cpu_limit() == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _util._cgroup_cpu_limit() is None


def test_apply_threads_sets_torchs_threads():
    before = torch.get_num_threads()
    try:
        apply_threads(ThreadPlan(cpus=1, intra_op=1, workers=0, writers=0))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cli_threads_option_sets_torch_threads_and_refuses_negatives(trained_run, tmp_path):
    from typer.testing import CliRunner

    from regtracks.cli import app

    before = torch.get_num_threads()
    try:
        args = ["evaluate", str(trained_run), "--workers", "0", "--out", str(tmp_path / "ev")]
        r = CliRunner().invoke(app, [*args, "--threads", "1"])
        assert r.exit_code == 0, r.output
        assert torch.get_num_threads() == 1
        r = CliRunner().invoke(app, [*args, "--threads", "-2"])
        assert r.exit_code == 1
        assert "--threads must be 0" in r.output
        assert "Traceback" not in r.output
    finally:
        torch.set_num_threads(before)


def test_the_console_script_makes_openmp_threads_sleep_while_they_wait(monkeypatch):
    import regtracks.cli as cli

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(cli, "app", lambda: None)
    cli.main()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice is kept
    cli.main()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
