"""Genome access: FASTA (plain or bgzip) -> uint8 base codes and one-hot tensors.

Codes are ``N=0, A=1, C=2, G=3, T=4``. Soft-masked (lowercase) bases read as bases; IUPAC
ambiguity letters and anything else read as N. One-hot encoding is ``(4, L)`` float32 in
A, C, G, T order with N = all zeros. Coordinates are 0-based half-open.

The ``.fai`` (and ``.gzi`` for bgzip) index is built once, in the process that opens the
:class:`Genome`; file handles are opened lazily in each process, because a handle that crosses a
``fork`` (DataLoader workers) returns wrong sequences (pyfaidx#211).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from regtracks._util import RegtracksError

__all__ = [
    "Genome",
    "encode",
    "one_hot",
    "reverse_complement",
    "decode",
    "write_fasta_record",
    "CODE_ALPHABET",
]

CODE_ALPHABET = "NACGT"
_LUT = np.zeros(256, dtype=np.uint8)
for _i, _b in enumerate("ACGT", start=1):
    _LUT[ord(_b)] = _i
    _LUT[ord(_b.lower())] = _i
_COMPLEMENT = np.array([0, 4, 3, 2, 1], dtype=np.uint8)
_EYE = np.eye(5, dtype=np.float32)[:, 1:]  # code -> one-hot row (N -> zeros)
_FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".2bit")


def encode(seq: str | bytes) -> np.ndarray:
    """Sequence text -> ``(L,)`` uint8 codes (N=0, A=1, C=2, G=3, T=4)."""
    if isinstance(seq, str):
        seq = seq.encode("ascii", errors="replace")
    return _LUT[np.frombuffer(seq, dtype=np.uint8)]


def decode(codes: np.ndarray) -> str:
    """``(L,)`` uint8 codes -> upper-case sequence text."""
    return np.frombuffer(b"NACGT", dtype=np.uint8)[np.asarray(codes)].tobytes().decode()


def one_hot(codes: np.ndarray) -> np.ndarray:
    """``(..., L)`` uint8 codes -> ``(..., 4, L)`` float32 one-hot (A, C, G, T; N = zeros)."""
    return np.moveaxis(_EYE[np.asarray(codes)], -1, -2)


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of ``(..., L)`` uint8 codes (N stays N)."""
    return _COMPLEMENT[np.asarray(codes)][..., ::-1].copy()


def _is_bgzf(path: Path) -> bool | None:
    """True for BGZF, False for plain gzip, None when the file is not gzip at all."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != b"\x1f\x8b":
        return None
    return len(head) >= 18 and bool(head[3] & 4) and head[12:14] == b"BC"


def _stem(path: Path) -> str:
    name = path.name
    if name.endswith(".gz"):
        name = name[:-3]
    for sfx in _FASTA_SUFFIXES:
        if name.endswith(sfx):
            return name[: -len(sfx)]
    return name


class Genome:
    """A FASTA genome with random access.

    Parameters
    ----------
    path : str or Path
        FASTA file, plain or bgzip-compressed (``.fa.gz`` made by ``bgzip``).
    backend : {"auto", "pysam", "pyfaidx"}
        Reader. ``auto`` uses pysam (C, fastest); pyfaidx reads plain FASTA only.
    name : str, optional
        Genome name used in tracks and hubs (default: the file name without suffixes).

    Raises
    ------
    RegtracksError
        Missing file, plain-gzip FASTA, or a FASTA that cannot be indexed.
    """

    def __init__(self, path: str | os.PathLike, *, backend: str = "auto", name: str | None = None):
        self.path = Path(path).expanduser().resolve()
        if backend not in ("auto", "pysam", "pyfaidx"):
            raise RegtracksError(f"backend {backend!r} is not one of auto, pysam, pyfaidx")
        if not self.path.is_file():
            raise RegtracksError(f"{path}: FASTA file not found")
        bgzf = _is_bgzf(self.path)
        if bgzf is False:
            raise RegtracksError(
                f"{path}: gzip-compressed but not bgzip; recompress with `bgzip` "
                "(random access needs BGZF blocks) or decompress it"
            )
        self.compressed = bool(bgzf)
        if backend == "pyfaidx" and self.compressed:
            raise RegtracksError(f"{path}: the pyfaidx backend reads plain FASTA only")
        self.backend = "pysam" if backend == "auto" else backend
        self.name = name or _stem(self.path)
        self._build_index()
        self.chroms, self.sizes = self._read_fai()
        if not self.chroms:
            raise RegtracksError(f"{path}: no sequences in FASTA")
        self._aliases = self._make_aliases(self.chroms)
        self._handle = None
        self._pid = -1
        self._n_runs: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # -- index and names -------------------------------------------------------------------
    @property
    def fai_path(self) -> Path:
        return Path(str(self.path) + ".fai")

    def _build_index(self) -> None:
        fai = self.fai_path
        stale = fai.exists() and fai.stat().st_mtime < self.path.stat().st_mtime
        gzi_missing = self.compressed and not Path(str(self.path) + ".gzi").exists()
        if fai.exists() and not stale and not gzi_missing:
            return
        import pysam

        try:
            pysam.faidx(str(self.path))
        except Exception as exc:  # pysam raises several types; all mean "cannot index"
            msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise RegtracksError(f"{self.path}: cannot index FASTA ({msg})") from None
        if not fai.exists():
            raise RegtracksError(
                f"{self.path}: cannot index FASTA (no .fai written; is the folder writable "
                "and every line of a sequence the same length?)"
            )

    def _read_fai(self) -> tuple[list[str], dict[str, int]]:
        chroms, sizes = [], {}
        with open(self.fai_path) as fh:
            for line in fh:
                f = line.rstrip("\n").split("\t")
                if len(f) >= 2 and f[0]:
                    chroms.append(f[0])
                    sizes[f[0]] = int(f[1])
        return chroms, sizes

    @staticmethod
    def _make_aliases(chroms: list[str]) -> dict[str, str]:
        """Other spellings (``1`` for ``chr1``, ``MT`` for ``chrM``) when unambiguous."""
        real = set(chroms)
        cand: dict[str, set[str]] = {}
        for c in chroms:
            alts = {c[3:]} if c.startswith("chr") else {"chr" + c}
            if c in ("chrM", "MT", "M", "chrMT"):
                alts |= {"chrM", "MT", "M", "chrMT"}
            for a in alts - {c}:
                cand.setdefault(a, set()).add(c)
        return {a: next(iter(t)) for a, t in cand.items() if len(t) == 1 and a not in real}

    def resolve(self, chrom: str) -> str | None:
        """The genome's name for ``chrom`` (exact, or ``1``/``chr1`` reconciled), else None."""
        if chrom in self.sizes:
            return chrom
        return self._aliases.get(chrom)

    def require(self, chrom: str) -> str:
        """Like :meth:`resolve` but raise a one-line error listing valid names."""
        name = self.resolve(chrom)
        if name is None:
            shown = ", ".join(self.chroms[:30]) + (" ..." if len(self.chroms) > 30 else "")
            raise RegtracksError(
                f"unknown chromosome {chrom!r} in {self.path.name}; valid: {shown}"
            )
        return name

    @property
    def chrom_sizes(self) -> list[tuple[str, int]]:
        """``[(chrom, size), ...]`` in FASTA order."""
        return [(c, self.sizes[c]) for c in self.chroms]

    @property
    def total_len(self) -> int:
        return sum(self.sizes.values())

    def sizes_hash(self) -> str:
        """Short hash of the chromosome names and sizes, in order (recorded in checkpoints)."""
        return sizes_hash(self.chrom_sizes)

    # -- sequence access -----------------------------------------------------------------
    def _fasta(self):
        pid = os.getpid()
        if self._handle is None or self._pid != pid:
            if self.backend == "pysam":
                import pysam

                self._handle = pysam.FastaFile(str(self.path))
            else:
                import pyfaidx

                self._handle = pyfaidx.Fasta(
                    str(self.path), as_raw=True, sequence_always_upper=False, rebuild=False
                )
            self._pid = pid
        return self._handle

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_pid"] = -1
        return state

    def fetch_text(self, chrom: str, start: int, end: int) -> str:
        """Raw sequence text of ``[start, end)`` clipped to the chromosome (case kept)."""
        chrom = self.require(chrom)
        size = self.sizes[chrom]
        s, e = max(0, int(start)), min(size, int(end))
        if e <= s:
            return ""
        fa = self._fasta()
        if self.backend == "pysam":
            return fa.fetch(chrom, s, e)
        return fa[chrom][s:e]

    def fetch(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Codes of ``[start, end)``; positions outside the chromosome are N.

        Returns
        -------
        (end - start,) uint8 codes (N=0, A=1, C=2, G=3, T=4).
        """
        start, end = int(start), int(end)
        if end < start:
            raise RegtracksError(f"fetch {chrom}:{start}-{end}: end before start")
        chrom = self.require(chrom)
        out = np.zeros(end - start, dtype=np.uint8)
        s, e = max(0, start), min(self.sizes[chrom], end)
        if e > s:
            out[s - start : e - start] = encode(self.fetch_text(chrom, s, e))
        return out

    def one_hot(self, chrom: str, start: int, end: int) -> np.ndarray:
        """``(4, end - start)`` float32 one-hot of ``[start, end)`` (N and off-chromosome = 0)."""
        return one_hot(self.fetch(chrom, start, end))

    # -- N content -----------------------------------------------------------------------
    def n_runs(self, chrom: str) -> tuple[np.ndarray, np.ndarray]:
        """Runs of N on ``chrom`` as sorted disjoint ``(starts, ends)`` int64 arrays (cached)."""
        chrom = self.require(chrom)
        if chrom not in self._n_runs:
            self._n_runs[chrom] = _runs(self.fetch(chrom, 0, self.sizes[chrom]) == 0)
        return self._n_runs[chrom]

    def n_count(self, chrom: str, starts, ends) -> np.ndarray:
        """Number of N bases in each ``[starts[i], ends[i])``; off-chromosome bases count as N."""
        from regtracks._util import covered_bp

        chrom = self.require(chrom)
        s = np.asarray(starts, dtype=np.int64)
        e = np.asarray(ends, dtype=np.int64)
        ns, ne = self.n_runs(chrom)
        size = self.sizes[chrom]
        inside = covered_bp(ns, ne, np.clip(s, 0, size), np.clip(e, 0, size))
        outside = (e - s) - (np.clip(e, 0, size) - np.clip(s, 0, size))
        return inside + outside

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, {len(self.chroms)} chroms, {self.total_len:,} bp)"


def write_fasta_record(fh, name: str, text: np.ndarray, *, width: int = 60) -> None:
    """Write one FASTA record to a binary file handle, ``width`` bases a line.

    Parameters
    ----------
    fh : binary file
    name : str
        Sequence name (the ``>`` line).
    text : (L,) uint8
        ASCII sequence (``b"ACGTN"``, any case).
    """
    n = text.size
    full = (n // width) * width
    fh.write(f">{name}\n".encode())
    lines = np.empty((n // width, width + 1), dtype=np.uint8)
    lines[:, :width] = text[:full].reshape(-1, width)
    lines[:, width] = 10
    fh.write(lines.tobytes())
    if n > full:
        fh.write(text[full:].tobytes() + b"\n")


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of True in a boolean array as ``(starts, ends)``."""
    if mask.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    d = np.diff(mask.astype(np.int8), prepend=0, append=0)
    return np.flatnonzero(d == 1).astype(np.int64), np.flatnonzero(d == -1).astype(np.int64)


def sizes_hash(chrom_sizes: list[tuple[str, int]] | list[list]) -> str:
    """SHA-256 (first 16 hex digits) of ``name<TAB>size`` lines."""
    text = "".join(f"{c}\t{int(s)}\n" for c, s in chrom_sizes)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
