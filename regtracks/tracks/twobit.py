"""UCSC ``.2bit`` genome files: a streaming writer and a minimal reader of the sizes.

An assembly hub needs the genome as ``.2bit``. :func:`write_2bit` writes it from a FASTA
(through :class:`regtracks.data.genome.Genome`), one chromosome at a time, in pieces of ``chunk``
bases: memory beyond the packed chromosome being written (a quarter byte a base) is constant.
The file is written under a temporary name and renamed when complete.

Format (UCSC ``twoBit``; integers are little-endian uint32 unless stated)::

    header    signature 0x1A412743, version, sequenceCount, reserved (0)
    index     per sequence: nameSize (uint8), name (ASCII), offset of its record
              (uint32 in version 0; uint64 in version 1)
    record    dnaSize, nBlockCount, nBlockStarts[], nBlockSizes[],
              maskBlockCount, maskBlockStarts[], maskBlockSizes[], reserved (0),
              packedDna: ceil(dnaSize / 4) bytes, 4 bases a byte, first base in the high bits,
              T=0, C=1, A=2, G=3

N blocks are the runs of anything that is not A, C, G or T (N and the IUPAC ambiguity
letters, which 2bit cannot hold: they read back as N); their bases are packed as T, as UCSC
does. Mask blocks are the runs of lowercase letters (soft-masking). Version 0 is written
unless a record would start past 4 GiB (genomes over ~16 Gbp); then version 1, which UCSC
(``twoBitToFa``), lib2bit/py2bit and IGV read. Block starts are 0-based, half-open
``[start, start + size)``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from regtracks._util import RegtracksError, atomic_path

__all__ = ["write_2bit", "read_2bit_sizes", "TWOBIT_SIGNATURE"]

TWOBIT_SIGNATURE = 0x1A412743

_PACK = np.zeros(256, dtype=np.uint8)  # T and anything else -> 0
_IS_BASE = np.zeros(256, dtype=bool)
for _b, _v in zip("TCAG", range(4), strict=True):
    for _c in (_b, _b.lower()):
        _PACK[ord(_c)] = _v
        _IS_BASE[ord(_c)] = True
_IS_LOWER = np.zeros(256, dtype=bool)
_IS_LOWER[ord("a") : ord("z") + 1] = True
_U32_MAX = 0xFFFFFFFF


class _NeedLong(Exception):
    """A record would start past 4 GiB: write version 1 (64-bit offsets) instead."""


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.diff(mask.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _join_runs(starts: list[np.ndarray], ends: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-chunk runs and merge those that touch across chunk borders."""
    s = np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, np.int64)
    e = np.concatenate(ends).astype(np.int64) if ends else np.zeros(0, np.int64)
    if s.size < 2:
        return s, e
    new = np.concatenate([[True], s[1:] != e[:-1]])
    last = np.concatenate([new[1:], [True]])
    return s[new], e[last]


def _pack(codes: np.ndarray) -> bytes:
    """``(L,)`` 2-bit codes -> ``ceil(L/4)`` bytes, first base in the high bits."""
    pad = (-codes.size) % 4
    if pad:
        codes = np.concatenate([codes, np.zeros(pad, np.uint8)])
    c = codes.reshape(-1, 4)
    return ((c[:, 0] << 6) | (c[:, 1] << 4) | (c[:, 2] << 2) | c[:, 3]).astype(np.uint8).tobytes()


def write_2bit(
    genome_or_fasta,
    path: str | os.PathLike,
    *,
    chunk: int = 1 << 23,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Write a genome as UCSC ``.2bit``, atomically.

    Parameters
    ----------
    genome_or_fasta : Genome or str or Path
        A :class:`regtracks.data.genome.Genome`, or a FASTA path opened as one.
    path : str or Path
        Output ``.2bit`` file.
    chunk : int
        Bases read from the FASTA at a time (rounded up to a multiple of 4).
    progress : callable, optional
        Called as ``progress(done_bp, total_bp, chrom)`` after each piece.

    Returns
    -------
    Path of the finished file.

    Raises
    ------
    RegtracksError
        Missing or unreadable FASTA, a sequence name longer than 255 bytes or not ASCII, a
        sequence of 4 Gbp or more, a FASTA whose sequence is shorter than its index says.
    """
    from regtracks.data.genome import Genome

    genome = genome_or_fasta if isinstance(genome_or_fasta, Genome) else Genome(genome_or_fasta)
    chunk = max(4, -(-int(chunk) // 4) * 4)
    chrom_sizes = genome.chrom_sizes
    for name, size in chrom_sizes:
        try:
            raw = name.encode("ascii")
        except UnicodeEncodeError:
            raise RegtracksError(f"{genome.path}: sequence name {name!r} is not ASCII") from None
        if len(raw) > 255:
            raise RegtracksError(f"{genome.path}: sequence name {name[:40]!r}... is over 255 bytes")
        if size > _U32_MAX:
            raise RegtracksError(f"{genome.path}: sequence {name} is too long for .2bit")
    with atomic_path(path) as tmp:
        try:
            _write(genome, chrom_sizes, tmp, chunk=chunk, long=False, progress=progress)
        except _NeedLong:
            _write(genome, chrom_sizes, tmp, chunk=chunk, long=True, progress=progress)
    return Path(path)


def _write(genome, chrom_sizes, tmp: Path, *, chunk: int, long: bool, progress) -> None:
    off_fmt = "<Q" if long else "<I"
    total = sum(s for _, s in chrom_sizes)
    done = 0
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<4I", TWOBIT_SIGNATURE, 1 if long else 0, len(chrom_sizes), 0))
        slots = []  # file position of each index offset, filled in at the end
        for name, _ in chrom_sizes:
            raw = name.encode("ascii")
            fh.write(struct.pack("<B", len(raw)) + raw)
            slots.append(fh.tell())
            fh.write(struct.pack(off_fmt, 0))
        offsets = []
        for name, size in chrom_sizes:
            offset = fh.tell()
            if not long and offset > _U32_MAX:
                raise _NeedLong
            offsets.append(offset)
            n_s, n_e, m_s, m_e, packed = [], [], [], [], []
            for s in range(0, size, chunk):
                e = min(size, s + chunk)
                text = genome.fetch_text(name, s, e)
                arr = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8)
                if arr.size != e - s:
                    raise RegtracksError(
                        f"{genome.path}: {name} has {s + arr.size} bases at most where its "
                        f"index says {size}; rebuild the .fai"
                    )
                a, b = _runs(~_IS_BASE[arr])
                n_s.append(a + s)
                n_e.append(b + s)
                a, b = _runs(_IS_LOWER[arr])
                m_s.append(a + s)
                m_e.append(b + s)
                packed.append(_pack(_PACK[arr]))
                done += e - s
                if progress is not None:
                    progress(done, total, name)
            ns, ne = _join_runs(n_s, n_e)
            ms, me = _join_runs(m_s, m_e)
            fh.write(struct.pack("<2I", size, ns.size))
            fh.write(ns.astype("<u4").tobytes() + (ne - ns).astype("<u4").tobytes())
            fh.write(struct.pack("<I", ms.size))
            fh.write(ms.astype("<u4").tobytes() + (me - ms).astype("<u4").tobytes())
            fh.write(struct.pack("<I", 0))
            for piece in packed:
                fh.write(piece)
        for slot, offset in zip(slots, offsets, strict=True):
            fh.seek(slot)
            fh.write(struct.pack(off_fmt, offset))


def read_2bit_sizes(path: str | os.PathLike) -> list[tuple[str, int]]:
    """Sequence names and sizes of a ``.2bit`` file, in file order.

    Reads the header, the index and each record's ``dnaSize``; either byte order, version 0
    or 1.

    Raises
    ------
    RegtracksError
        Not a .2bit file, or truncated.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            if len(head) < 16:
                raise RegtracksError(f"{path}: not a .2bit file (too short)")
            for bo in "<>":
                if struct.unpack(bo + "I", head[:4])[0] == TWOBIT_SIGNATURE:
                    break
            else:
                raise RegtracksError(f"{path}: not a .2bit file (bad signature)")
            _, version, count, _ = struct.unpack(bo + "4I", head)
            if version not in (0, 1):
                raise RegtracksError(f"{path}: unknown .2bit version {version}")
            off_fmt = bo + ("Q" if version == 1 else "I")
            off_len = struct.calcsize(off_fmt)
            index = []
            for _ in range(count):
                n = fh.read(1)
                name = fh.read(n[0]) if n else b""
                raw = fh.read(off_len)
                if not n or len(name) != n[0] or len(raw) != off_len:
                    raise RegtracksError(f"{path}: truncated .2bit index")
                index.append(
                    (name.decode("ascii", errors="replace"), struct.unpack(off_fmt, raw)[0])
                )
            out = []
            for name, offset in index:
                fh.seek(offset)
                raw = fh.read(4)
                if len(raw) != 4:
                    raise RegtracksError(f"{path}: truncated .2bit record of {name}")
                out.append((name, struct.unpack(bo + "I", raw)[0]))
            return out
    except FileNotFoundError:
        raise RegtracksError(f"{path}: file not found") from None
