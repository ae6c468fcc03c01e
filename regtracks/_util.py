"""Private helpers shared by several modules.

Coordinates are 0-based, half-open ``[start, end)`` everywhere.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np


class RegtracksError(ValueError):
    """A user-facing error: bad input, missing file, mismatched checkpoint.

    The command line turns it into one line on stderr and exit code 1 (no traceback).
    The message names the file, line, chromosome or argument at fault.
    """


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    A failed or interrupted block removes the temporary file, so no file that looks finished
    is ever left behind. The temporary name keeps the final suffix (some writers look at it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sfx = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{sfx}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; finished files get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def open_text(path: str | os.PathLike):
    """Open a text file for reading, plain or gzip/bgzip (recognised by its magic bytes)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rt") if magic == b"\x1f\x8b" else open(path)


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
