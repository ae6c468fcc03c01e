"""How a command shares the CPU cores (regtracks.runtime.plan_threads and usable_cpus), and how
the processes of a torchrun job meet (DistJob: shares, payloads, an error told to all)."""

from __future__ import annotations

import contextlib
import os

import pytest
import torch

from regtracks import config as _util
from regtracks._util import RegtracksError
from regtracks.runtime import (
    DistEnv,
    DistJob,
    ThreadPlan,
    apply_threads,
    plan_threads,
    usable_cpus,
)


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


def test_the_console_script_asks_for_huge_pages_unless_told_otherwise(monkeypatch):
    import regtracks.cli as cli

    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    monkeypatch.setattr(cli, "app", lambda: None)
    cli.main()
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")  # the user's choice is kept
    cli.main()
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "0"


# --- torchrun: the processes of one job meet (DistJob), here threads of one process -------------
class ThreadJob(DistJob):
    """A :class:`DistJob` whose processes are threads of this process (``board``: what they
    share; see :func:`run_ranks`), for tests without torch.distributed."""

    def __init__(self, rank: int, world: int, board):
        super().__init__(DistEnv(rank, world, rank))
        self.board = board

    def _exchange(self, mine) -> list:
        b = self.board
        b["slots"][self.rank] = mine
        b["barrier"].wait()
        got = list(b["slots"])
        b["barrier"].wait()
        return got


def run_ranks(world: int, fn, *, guard: bool = True):
    """``fn(job)`` on ``world`` threads standing for the processes of a torchrun job, each in
    its job's :meth:`~DistJob.guard`: the results in rank order, or the exception of the
    lowest rank that raised (every thread's outcome in ``run_ranks.outcomes``)."""
    import threading

    board = {"slots": [None] * world, "barrier": threading.Barrier(world, timeout=60)}
    out: list = [None] * world

    def one(r):
        job = ThreadJob(r, world, board)
        try:
            with job.guard() if guard else contextlib.nullcontext():
                out[r] = ("ok", fn(job))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            out[r] = ("error", exc)

    threads = [threading.Thread(target=one, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a process of the job hangs"
    run_ranks.outcomes = out
    for kind, value in out:
        if kind == "error":
            raise value
    return [value for _, value in out]


def test_a_job_of_one_process_meets_nobody():
    job = DistJob(DistEnv())
    assert job.world == 1 and job.is_main and job.sync("x") == ["x"]
    assert list(job.share(5)) == [0, 1, 2, 3, 4]
    with job.guard():
        pass
    with pytest.raises(RegtracksError, match="bad"), job.guard():
        raise RegtracksError("bad")


def test_shares_are_contiguous_blocks_in_rank_order():
    for n in (0, 1, 5, 7, 64):
        for world in (1, 2, 3, 8):
            blocks = [list(ThreadJob(r, world, None).share(n)) for r in range(world)]
            assert sum(blocks, []) == list(range(n))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_an_error_on_one_process_is_told_to_the_others():
    def fn(job):
        job.sync()  # a first meeting, passed
        if job.rank == 1:
            raise RegtracksError("x.vcf:7: REF A at chr1:5 does not match")
        job.sync("never")  # the others wait here: they hear of process 1's error
        return "done"

    with pytest.raises(RegtracksError) as info:
        run_ranks(3, fn)
    kinds = [(k, str(v)) for k, v in run_ranks.outcomes]
    assert kinds[1] == ("error", "x.vcf:7: REF A at chr1:5 does not match")  # its own
    for r in (0, 2):
        assert kinds[r][0] == "error"
        assert kinds[r][1] == (
            "process 1 of 3 (torchrun) failed: x.vcf:7: REF A at chr1:5 does not match"
        )
    assert "process 1 of 3" in str(info.value)  # process 0's, the one the command line prints


def test_the_end_of_the_body_is_a_meeting():
    """Process 0 fails after the others have finished their share: they fail too."""

    def fn(job):
        if job.rank == 0:
            raise OSError(28, "No space left on device", "hub/manifest.json")
        return "done"

    with pytest.raises(OSError):
        run_ranks(2, fn)
    kind, exc = run_ranks.outcomes[1]
    assert kind == "error" and str(exc) == (
        "process 0 of 2 (torchrun) failed: hub/manifest.json: No space left on device"
    )


def test_every_process_failing_alike_keeps_its_own_error():
    def fn(job):
        raise RegtracksError(f"--batch-size must be at least 1 (process {job.rank})")

    with pytest.raises(RegtracksError, match=r"\(process 0\)"):
        run_ranks(2, fn)
    assert str(run_ranks.outcomes[1][1]).endswith("(process 1)")


def test_world_size_without_torchrun_is_one_line(monkeypatch):
    """WORLD_SIZE set by hand, no rendezvous: one error line, no hang."""
    from regtracks.runtime import init_process_group

    for k in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RegtracksError, match="cannot join the torchrun job's process group"):
        init_process_group(DistEnv.from_env(), torch.device("cpu"), timeout=5)
    assert not torch.distributed.is_initialized()
