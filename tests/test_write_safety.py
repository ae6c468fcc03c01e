"""The write-safety layer: atomic writes, checked bigWigs, folder locks, stale temporaries, and
a full disk (a real one: a small tmpfs when the tests run as root; else ENOSPC raised by hand)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from regtracks._util import (
    LOCK_NAME,
    RegtracksError,
    atomic_path,
    check_output_file,
    check_output_folder,
    folder_lock,
    remove_stale_temps,
)
from regtracks.tracks.bigwig import BigWigWriter, check_bigwig

SIZES = [("chrA", 200_000), ("chrB", 50_000)]
BIN = 10


def _hidden(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob(".*")
        if p.is_file() and p.name != LOCK_NAME
    )


def _write_tracks(paths, seed: int, n_bins: int | None = None, n_procs: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with BigWigWriter(paths, SIZES, bin_size=BIN, n_procs=n_procs) as w:
        for chrom, size in SIZES:
            n = n_bins or -(-size // BIN)
            w.add(chrom, 0, rng.random((len(paths), n)).astype(np.float32))


@contextlib.contextmanager
def small_tmpfs(tmp_path: Path, size: str, *, options: str = ""):
    """A tmpfs of ``size`` mounted in ``tmp_path`` (root only); skip the test where mounting
    is not allowed."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs root (mount -t tmpfs)")
    where = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    opts = f"size={size}" + (f",{options}" if options else "")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder: Path, leave: int = 0) -> None:
    """Fill the file system of ``folder`` to ``leave`` free bytes."""
    with open(folder / "fill", "wb") as fh:
        with contextlib.suppress(OSError):
            while True:
                free = shutil.disk_usage(folder).free - leave
                if free <= 0:
                    break
                fh.write(b"\0" * min(free, 1 << 16))
                fh.flush()


# --- atomic_path -------------------------------------------------------------------------------


def test_atomic_path_renames_only_a_whole_file(tmp_path):
    p = tmp_path / "out.tsv"
    with atomic_path(p) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.tsv.")
        assert tmp.name.endswith(".tmp.tsv")
        tmp.write_text("new\n")
        assert not p.exists()  # nothing under the final name before the block ends
    assert p.read_text() == "new\n"
    assert _hidden(tmp_path) == []


def test_atomic_path_disk_full_keeps_the_old_file_and_names_the_cause(tmp_path):
    p = tmp_path / "out.tsv"
    p.write_text("old and good\n")
    with pytest.raises(RegtracksError) as e:
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    assert str(e.value) == f"{p}: cannot write (no space left on device)"
    assert p.read_text() == "old and good\n"
    assert _hidden(tmp_path) == []


def test_atomic_path_failed_check_keeps_the_old_file(tmp_path):
    p = tmp_path / "out.bin"
    p.write_bytes(b"old")

    def check(tmp):
        raise RegtracksError(f"{p}: incomplete")

    with pytest.raises(RegtracksError, match="incomplete"):
        with atomic_path(p, check=check) as tmp:
            tmp.write_bytes(b"new")
    assert p.read_bytes() == b"old"
    assert _hidden(tmp_path) == []


def test_atomic_path_interrupted_block_leaves_nothing(tmp_path):
    p = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(p) as tmp:
            tmp.write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_output_path_errors_are_one_line(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(RegtracksError, match=r"d is a folder; name a file"):
        with atomic_path(tmp_path / "d"):
            pass
    (tmp_path / "f").write_text("")
    with pytest.raises(
        RegtracksError, match=r"f/x\.tsv: cannot create the folder: .*/f is a file$"
    ):
        with atomic_path(tmp_path / "f" / "x.tsv" / "y.tsv"):
            pass
    with pytest.raises(
        RegtracksError, match=r"/f: cannot create the folder: a file is in the way$"
    ):
        with atomic_path(tmp_path / "f" / "y.tsv"):
            pass


def test_check_output_file_and_folder(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(RegtracksError, match=r"^--out .*d is a folder; name a file to write$"):
        check_output_file(tmp_path / "d")
    (tmp_path / "f").write_text("")
    with pytest.raises(RegtracksError, match=r"f: the report folder is a file; name a folder"):
        check_output_folder(tmp_path / "f", "report folder")
    assert check_output_folder(tmp_path / "new" / "sub").is_dir()
    assert list((tmp_path / "new" / "sub").iterdir()) == []  # the probe is gone


def test_read_only_folder_is_refused_before_the_work(tmp_path):
    if os.geteuid() == 0:
        ctx = small_tmpfs(tmp_path, "1m", options="ro")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        ctx = contextlib.nullcontext(ro)
    with ctx as ro:
        with pytest.raises(RegtracksError, match=r"not writable \((read-only|permission)"):
            check_output_folder(ro)
        with pytest.raises(RegtracksError, match=r"cannot write \((read-only|permission)"):
            with atomic_path(ro / "x.txt") as tmp:
                tmp.write_text("x")


# --- locks and stale temporaries ---------------------------------------------------------------


def test_a_second_writer_fails_at_once(tmp_path):
    code = (
        "import sys, time\n"
        "from regtracks._util import folder_lock\n"
        "with folder_lock(sys.argv[1], 'regtracks predict'):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RegtracksError) as e:
            with folder_lock(tmp_path, "regtracks saliency"):
                pass
        msg = str(e.value)
        assert f"in use by another regtracks process (pid {proc.pid}: regtracks predict)" in msg
        assert "\n" not in msg
    finally:
        proc.communicate("\n", timeout=30)
    with folder_lock(tmp_path, "regtracks saliency"):  # released when its holder is done
        with folder_lock(tmp_path, "re-entered by the same process"):
            pass


def test_killed_holder_does_not_block(tmp_path):
    code = (
        "import os, sys\n"
        "from regtracks._util import folder_lock\n"
        "with folder_lock(sys.argv[1], 'doomed'):\n"
        "    os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    with folder_lock(tmp_path, "next run"):
        pass


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "tracks").mkdir()
    stale = [
        tmp_path / "tracks" / ".pred_A.bw.k2j3h4.tmp.bw",
        tmp_path / ".manifest.json.ab12cd.tmp.json",
        tmp_path / ".hub.txt.zz99yy.tmp.txt",
    ]
    keep = [
        tmp_path / "tracks" / "pred_A.bw",
        tmp_path / ".hidden-notes",
        tmp_path / "tracks" / ".tmp",
        tmp_path / "manifest.json",
    ]
    for p in stale + keep:
        p.write_text("x")
    assert remove_stale_temps(tmp_path) == len(stale)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)


# --- bigWigs -----------------------------------------------------------------------------------


def test_check_bigwig_refuses_every_truncation(tmp_path):
    paths = [tmp_path / "t.bw"]
    _write_tracks(paths, seed=1)
    bases = sum(s for _, s in SIZES)
    check_bigwig(paths[0], SIZES, bases=bases)  # whole: no error
    data = paths[0].read_bytes()
    cut = tmp_path / "cut.bw"
    for n in sorted({4096, *(len(data) * k // 8 for k in range(1, 8)), len(data) - 1}):
        cut.write_bytes(data[:n])
        with pytest.raises(RegtracksError, match=r"t\.bw: the bigWig written is incomplete"):
            check_bigwig(cut, SIZES, bases=bases, name=paths[0])
    header_only = data[:4096] + b"\0" * (len(data) - 4096)  # what a full disk left before
    cut.write_bytes(header_only)
    with pytest.raises(RegtracksError, match="incomplete"):
        check_bigwig(cut, SIZES, bases=bases)
    with pytest.raises(RegtracksError, match="incomplete"):
        check_bigwig(paths[0], SIZES, bases=bases + 1)  # fewer bases than were written


@pytest.mark.parametrize("n_procs", [0, 1])
def test_writer_on_a_nearly_full_disk_completes_or_fails_in_one_line(tmp_path, n_procs):
    """Re-writing good tracks with less and less room: each attempt either completes (new,
    whole files) or fails with one line naming a track and the full disk, the previous files
    kept byte for byte; no temporary is left and every .bw is readable."""
    bases = sum(s for _, s in SIZES)
    outcomes = set()
    with small_tmpfs(tmp_path, "4m") as fs:
        paths = [fs / "tracks" / f"pred_{i}.bw" for i in range(3)]
        _write_tracks(paths, seed=1, n_procs=n_procs)
        for k, leave in enumerate([3 << 20, 1600 << 10, 1300 << 10, 64 << 10, 0]):
            before = {p: p.read_bytes() for p in paths}
            _fill(fs, leave=leave)
            try:
                _write_tracks(paths, seed=2 + k, n_procs=n_procs)
            except RegtracksError as e:
                outcomes.add("failed")
                msg = str(e)
                assert "\n" not in msg and "no space left on device" in msg
                assert any(str(p) in msg for p in paths)
                for p in paths:
                    assert p.read_bytes() == before[p]  # the previous good file
            else:
                outcomes.add("completed")
                for p in paths:
                    assert p.read_bytes() != before[p]
            (fs / "fill").unlink()
            assert _hidden(fs) == []
            for p in paths:
                check_bigwig(p, SIZES, bases=bases)
                bw = pyBigWig.open(str(p))
                assert bw.chroms() == dict(SIZES)
                assert np.isfinite(bw.values("chrB", 0, 1000, numpy=True)).all()
                bw.close()
        assert outcomes == {"failed", "completed"}
        _write_tracks(paths, seed=99, n_procs=n_procs)  # with room again, the re-run completes


def test_writer_disk_full_without_root(tmp_path, monkeypatch):
    """The same promise where no tmpfs can be mounted: the bigWig library's close fails as it
    does on a full disk (it raises a generic error), and the disk reports no free space."""
    import regtracks._util as util

    paths = [tmp_path / f"pred_{i}.bw" for i in range(2)]
    _write_tracks(paths, seed=1)
    before = {p: p.read_bytes() for p in paths}
    real = shutil.disk_usage
    monkeypatch.setattr(util.shutil, "disk_usage", lambda p: real(p)._replace(free=0))
    orig_open = pyBigWig.open

    class Broken:
        def __init__(self, bw):
            self.bw = bw

        def __getattr__(self, name):
            return getattr(self.bw, name)

        def close(self):
            self.bw.close()
            raise RuntimeError("Received an error while writing the bigWig header")

    def fake_open(path, mode="r"):
        bw = orig_open(path, mode)
        return Broken(bw) if mode == "w" else bw

    monkeypatch.setattr(pyBigWig, "open", fake_open)
    with pytest.raises(RegtracksError) as e:
        _write_tracks(paths, seed=2)
    msg = str(e.value)
    assert "no space left on device" in msg and "pred_" in msg and "\n" not in msg
    for p in paths:
        assert p.read_bytes() == before[p]
    assert _hidden(tmp_path) == []
