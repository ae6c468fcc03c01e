"""Private helpers shared by several modules.

Coordinates are 0-based, half-open ``[start, end)`` everywhere.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np


class RegtracksError(ValueError):
    """A user-facing error: bad input, missing file, mismatched checkpoint.

    The command line turns it into one line on stderr and exit code 1 (no traceback).
    The message names the file, line, chromosome or argument at fault.
    """


# errors of writing that are the output's (disk, folder, permissions), not the input's
_WRITE_ERRNOS = frozenset(
    getattr(errno, n)
    for n in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG", "EIO", "ENOTDIR",
              "EISDIR", "EEXIST", "ENAMETOOLONG")
    if hasattr(errno, n)
)  # fmt: skip
LOW_SPACE_BYTES = 1 << 20
"""Below this many free bytes a failed write is put down to a full disk."""


def write_cause(path: str | os.PathLike, exc: BaseException | None = None) -> str:
    """Why writing ``path`` failed, in words: the OS error's, or "no space left on device"
    when its file system is (nearly) full (C libraries such as libBigWig report a full disk
    as a generic write error, or not at all); "" when nothing is known."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        free = None
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on device"
    if free is not None and free < LOW_SPACE_BYTES:
        return f"no space left on device: {free:,} bytes free"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    if exc is not None:
        text = str(exc).strip().splitlines()
        return text[-1] if text else type(exc).__name__
    return ""


def output_error(path: str | os.PathLike, exc: OSError) -> RegtracksError:
    """The one-line error of an OS error met while writing ``path``: it names the file the OS
    names (the folder that cannot be made, say) and the cause."""
    name = getattr(exc, "filename", None) or path
    if _TEMP_NAME.fullmatch(Path(name).name):  # our temporary: name the file it stands for
        name = path
    if isinstance(exc, FileExistsError | NotADirectoryError) and Path(name) != Path(path):
        return RegtracksError(f"{path}: cannot write: {name} is not a folder")
    return RegtracksError(f"{name}: cannot write ({write_cause(path, exc)})")


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's data to the disk (a rename of an unflushed file may survive a
    crash while its data does not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename) to the disk; a no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _file_in_the_way(path: Path) -> Path | None:
    """The first existing component of ``path`` that is not a folder, if any."""
    for p in (*reversed(path.parents), path):
        if p.exists() and not p.is_dir():
            return p
    return None


def make_folder(path: str | os.PathLike) -> Path:
    """``mkdir -p`` with one-line errors naming the folder (a file in the way, no permission)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        block = _file_in_the_way(path)
        what = "a file is in the way" if block in (None, path) else f"{block} is a file"
        raise RegtracksError(f"{path}: cannot create the folder: {what}") from None
    except OSError as exc:
        raise RegtracksError(
            f"{path}: cannot create the folder ({write_cause(path, exc)})"
        ) from None
    return path


def check_output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Make the folder ``path`` (``mkdir -p``) and check a file can be written in it: the check
    to run before long work whose results go there.

    Raises
    ------
    RegtracksError
        "PATH: cannot create the folder: a file is in the way", "PATH: output folder not
        writable (read-only file system)" and the like.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RegtracksError(f"{path}: the {what} is a file; name a folder")
    make_folder(path)
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RegtracksError(f"{path}: {what} not writable ({write_cause(path, exc)})") from None
    return path


def check_output_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """Check, before the work, that ``path`` can be written as a file: not a folder, its folder
    made and writable.

    Raises
    ------
    RegtracksError
        "--out PATH is a folder; name a file to write" and the errors of
        :func:`check_output_folder` for its folder.
    """
    path = Path(path)
    if path.is_dir():
        raise RegtracksError(f"{option} {path} is a folder; name a file to write")
    check_output_folder(path.parent)
    return path


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike,
    *,
    suffix: str | None = None,
    check: Callable[[Path], None] | None = None,
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    The one way regtracks writes a file. The block writes the temporary; then ``check(tmp)``
    (when given) verifies what was written (it raises :class:`RegtracksError` if not whole),
    the data is flushed to the disk (``fsync``), the temporary renamed to ``path`` and the
    rename flushed. A failed or interrupted block, check or flush removes the temporary and
    leaves the previous ``path`` as it was, so no file that looks finished is ever half
    written. The temporary name keeps the final suffix (some writers look at it); it starts
    with ``.`` and holds ``.tmp`` (:func:`remove_stale_temps` knows it).

    Raises
    ------
    RegtracksError
        "<path>: cannot write (no space left on device)" and the like for an error of the
        output (disk full, read-only, no permission, a file where a folder should be); other
        errors of the block pass through unchanged.
    """
    path = Path(path)
    if path.is_dir():
        raise RegtracksError(f"{path} is a folder; name a file to write")
    make_folder(path.parent)
    sfx = path.suffix if suffix is None else suffix
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{sfx}", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; finished files get the usual mode
    try:
        yield tmp_path
        if check is not None:
            check(tmp_path)
        fsync_file(tmp_path)
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        named = Path(exc.filename) if getattr(exc, "filename", None) else None
        if exc.errno in _WRITE_ERRNOS and named in (None, tmp_path, path, path.parent):
            raise output_error(path, exc) from None
        raise
    except RegtracksError as exc:  # a check failed: name the file the user asked for
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if str(tmp_path) in str(exc):
            raise RegtracksError(str(exc).replace(str(tmp_path), str(path))) from None
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def remove_stale_temps(folder: str | os.PathLike, *, depth: int = 2) -> int:
    """Remove the temporaries (``.<name>.<random>.tmp<suffix>``, as :func:`atomic_path` and the
    bigWig writer name them) that killed runs left in ``folder`` and its sub-folders down to
    ``depth``; returns how many. Call it only while holding the folder's
    :func:`folder_lock` (a live writer's temporaries look the same)."""
    folder = Path(folder)
    removed = 0
    if not folder.is_dir():
        return 0
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        if len(rel.parts) >= depth:
            dirnames.clear()
        for f in filenames:
            if _TEMP_NAME.fullmatch(f):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(dirpath, f))
                    removed += 1
    return removed


_TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{4,}\.tmp(\.[A-Za-z0-9]+)?")
LOCK_NAME = ".regtracks.lock"
_HELD: set[str] = set()  # lock files this process holds


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold an exclusive lock on an output folder for the block (``fcntl.flock`` on
    ``FOLDER/.regtracks.lock``); a second writer fails at once. The lock file holds the pid
    and ``what`` of its holder (for the message); the OS drops the lock when its process
    dies, so a killed run never blocks the next. Where ``fcntl`` is missing (Windows) there is
    no lock.

    Raises
    ------
    RegtracksError
        "FOLDER is in use by another regtracks process (pid N: what); wait for it to finish or
        write into another folder".
    """
    folder = make_folder(folder)
    lock = folder / LOCK_NAME
    key = os.path.realpath(lock)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield lock
        return
    if key in _HELD:  # this process holds it already (predict -> build_hub): re-entered
        yield lock
        return
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise output_error(lock, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RegtracksError(
                f"{folder} is in use by another regtracks process ({holder}); wait for it to "
                "finish or write into another folder"
            ) from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: {what}\n".encode(), 0)
        _HELD.add(key)
        try:
            yield lock
        finally:
            _HELD.discard(key)
    finally:
        os.close(fd)  # releases the lock


def open_text(path: str | os.PathLike):
    """Open a UTF-8 text file for reading, plain or gzip/bgzip (recognised by its magic bytes).

    Returns a context manager whose iteration yields the lines (``\\r\\n`` read as ``\\n``, a
    leading byte-order mark dropped); ``lineno`` is the number of the last line yielded.
    Errors of the content are one line naming the file:

    Raises
    ------
    RegtracksError
        "FILE:LINE: not UTF-8 text (byte 0x.. at column C); is it a binary file?" and "FILE:
        corrupt or truncated gzip (after line N: ...)" (a bad CRC, damaged or cut-off data).
    """
    import zlib

    gzip_errors = (zlib.error, EOFError, gzip.BadGzipFile)

    class TextLines:
        def __init__(self, path: Path):
            self.path = path
            self.lineno = 0
            with open(path, "rb") as fh:
                self.compressed = fh.read(2) == b"\x1f\x8b"
            self._fh = gzip.open(path, "rb") if self.compressed else open(path, "rb")

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.close()

        def close(self) -> None:
            try:
                self._fh.close()
            except gzip_errors:  # pragma: no cover - closing reads nothing more
                pass

        def read(self) -> str:
            return "".join(self)

        def __iter__(self) -> Iterator[str]:
            lines = iter(self._fh)
            while True:
                try:
                    raw = next(lines)
                except StopIteration:
                    return
                except gzip_errors as exc:
                    text = str(exc).strip().splitlines()
                    why = text[-1] if text else type(exc).__name__
                    raise RegtracksError(
                        f"{self.path}: corrupt or truncated gzip (after line {self.lineno:,}: "
                        f"{why})"
                    ) from None
                self.lineno += 1
                if raw.endswith(b"\r\n"):
                    raw = raw[:-2] + b"\n"
                try:
                    line = raw.decode("utf-8-sig" if self.lineno == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    bad = raw[exc.start]
                    col = len(raw[: exc.start].decode("utf-8", errors="replace")) + 1
                    raise RegtracksError(
                        f"{self.path}:{self.lineno}: not UTF-8 text (byte 0x{bad:02x} at "
                        f"column {col}); is it a binary file?"
                    ) from None
                yield line

    return TextLines(Path(path))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def renamed_keyword(
    new_value, old_value, *, caller: str, new: str, old: str, why: str = "", stacklevel: int = 3
):
    """The value of keyword ``new`` of ``caller``, or of its deprecated former name ``old``.

    ``old`` given (not None) warns with a ``DeprecationWarning`` (``why``, when given, says what
    the new name means) and stands for ``new``; both given, with different values, is a
    ``TypeError``. Deprecated names are removed in the release after the one that renamed them.
    ``stacklevel`` 3 names the code that called ``caller``.
    """
    if old_value is None:
        return new_value
    note = f" ({why})" if why else ""
    warnings.warn(
        f"{caller}({old}=...) is deprecated, use {new}={note}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    if new_value is not None and new_value != old_value:
        raise TypeError(
            f"{caller}() got {new}={new_value!r} and {old}={old_value!r} "
            f"(the deprecated name of {new}): give {new} only"
        )
    return old_value


def natural_key(name: str) -> tuple:
    """Sort key putting ``chr2`` before ``chr10``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort and merge overlapping or touching intervals.

    Parameters
    ----------
    starts, ends : (K,) int arrays
        Half-open intervals, in any order.

    Returns
    -------
    starts, ends : (K',) int64 arrays
        Disjoint, sorted, non-touching intervals covering the same bases.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.size == 0:
        return starts.copy(), ends.copy()
    order = np.lexsort((ends, starts))
    s, e = starts[order], ends[order]
    run_end = np.maximum.accumulate(e)
    # a new interval begins where its start is past every earlier end
    new = np.empty(s.size, dtype=bool)
    new[0] = True
    new[1:] = s[1:] > run_end[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, s.size - 1)
    return s[first], run_end[last]


def expand_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(starts[i], starts[i] + counts[i])`` for every ``i`` (vectorised).

    Parameters
    ----------
    starts, counts : (K,) int arrays
        ``counts >= 0``.

    Returns
    -------
    (counts.sum(),) int64
    """
    starts = np.asarray(starts, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + offsets


def covered_bp(
    starts: np.ndarray, ends: np.ndarray, q_start: np.ndarray, q_end: np.ndarray
) -> np.ndarray:
    """Bases of each query ``[q_start, q_end)`` covered by disjoint sorted intervals.

    Parameters
    ----------
    starts, ends : (K,) int64
        Disjoint, sorted intervals (as returned by :func:`merge_intervals`).
    q_start, q_end : (Q,) int
        Query intervals.

    Returns
    -------
    (Q,) int64 covered base counts.
    """
    q_start = np.asarray(q_start, dtype=np.int64)
    q_end = np.asarray(q_end, dtype=np.int64)
    if starts.size == 0:
        return np.zeros(np.broadcast(q_start, q_end).shape, dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(ends - starts)])

    def upto(x: np.ndarray) -> np.ndarray:
        # covered bases in [0, x)
        k = np.searchsorted(starts, x, side="right")  # intervals starting before x: 0..k-1
        full = cum[np.maximum(k - 1, 0)]
        last = np.maximum(k - 1, 0)
        partial = np.clip(x - starts[last], 0, ends[last] - starts[last])
        return np.where(k > 0, full + partial, 0)

    return upto(q_end) - upto(q_start)


def parse_region(text: str) -> tuple[str, int, int]:
    """Parse ``chr1:1,000-2,000`` (1-based inclusive, as browsers show) to 0-based half-open."""
    m = re.fullmatch(r"\s*([^:\s]+):([\d,]+)-([\d,]+)\s*", text)
    if not m:
        raise RegtracksError(f"region {text!r} is not of the form chrom:start-end")
    start = int(m.group(2).replace(",", "")) - 1
    end = int(m.group(3).replace(",", ""))
    if start < 0 or end <= start:
        raise RegtracksError(f"region {text!r} is empty or starts before 1")
    return m.group(1), start, end
