"""Genome access: FASTA (plain or bgzip) -> uint8 base codes and one-hot tensors.

Codes are ``N=0, A=1, C=2, G=3, T=4``. Soft-masked (lowercase) bases read as bases; IUPAC
ambiguity letters and anything else read as N. One-hot encoding is ``(4, L)`` float32 in
A, C, G, T order with N = all zeros. Coordinates are 0-based half-open.

The ``.fai`` (and ``.gzi`` for bgzip) index is built once, in the process that opens the
:class:`Genome`; file handles are opened lazily in each process, because a handle that crosses a
``fork`` (DataLoader workers) returns wrong sequences (pyfaidx#211).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

from regtracks._util import RegtracksError

__all__ = [
    "Genome",
    "CodeMap",
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


class _GapReader:
    """Reads byte ranges of a FASTA's text, plain or bgzip (from the block its ``.gzi`` says
    holds the start, one block at a time; the last block read is kept)."""

    LIMIT = 1 << 16

    def __init__(self, path: Path, compressed: bool):
        self.blocks = None
        if compressed:
            raw = Path(str(path) + ".gzi").read_bytes()
            n = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else 0
            body = raw[8 : 8 + 16 * n]
            pairs = np.frombuffer(body[: len(body) // 16 * 16], dtype="<u8").reshape(-1, 2)
            self.blocks = np.vstack([np.zeros((1, 2), dtype=np.int64), pairs.astype(np.int64)])
        self.fh = open(path, "rb")
        self._cached: tuple[int, bytes, int] | None = None  # (offset, text, block size)

    def _block(self, coff: int) -> tuple[bytes, int] | None:
        """The text of the BGZF block at ``coff`` and the block's size (None past the end)."""
        if self._cached is not None and self._cached[0] == coff:
            return self._cached[1], self._cached[2]
        self.fh.seek(coff)
        head = self.fh.read(18)
        if len(head) < 18 or head[:2] != b"\x1f\x8b":
            return None
        size = int.from_bytes(head[16:18], "little") + 1
        text = zlib.decompress(head + self.fh.read(size - 18), 31)
        self._cached = (coff, text, size)
        return text, size

    def read(self, start: int, end: int | None) -> tuple[bytes, bool]:
        """Bytes ``[start, end)`` of the text (``end`` None: to the end of the file), at most
        :attr:`LIMIT` of them; and whether that was all of them."""
        want = self.LIMIT + 1 if end is None else min(max(end - start, 0), self.LIMIT)
        if self.blocks is None:
            self.fh.seek(start)
            data = self.fh.read(want)
        else:
            k = max(int(np.searchsorted(self.blocks[:, 1], start, side="right")) - 1, 0)
            coff, uoff = (int(v) for v in self.blocks[k])
            out = bytearray()
            while len(out) < want:
                got = self._block(coff)
                if got is None:
                    break
                text, size = got
                if start < uoff + len(text):
                    lo = max(start - uoff, 0)
                    out += text[lo : lo + want - len(out)]
                coff, uoff = coff + size, uoff + len(text)
            data = bytes(out)
        if end is None:
            return data[: self.LIMIT], len(data) <= self.LIMIT
        return data, end - start <= self.LIMIT or len(data) < want  # (or the file ended)

    def close(self) -> None:
        self.fh.close()


@contextlib.contextmanager
def _captured_stderr():
    """Catch what C libraries write to file descriptor 2 during the block; yields a function
    that returns it once the block is over ("" where fd 2 cannot be redirected)."""
    got: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:
        yield lambda: ""
        return
    with tempfile.TemporaryFile() as tmp:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: got[0] if got else ""
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            got.append(tmp.read().decode(errors="replace"))


def _htslib_message(text: str) -> str:
    """The last ``[E::...]`` (else ``[W::...]``) message of htslib in ``text``, untagged."""
    found = re.findall(r"\[([EW])::[^\]]*\]\s*(.+)", text)
    for level in ("E", "W"):
        msgs = [m for lv, m in found if lv == level]
        if msgs:
            return msgs[-1].strip()
    return ""


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


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
        Missing file, plain-gzip FASTA, a FASTA that cannot be indexed (htslib's reason in
        the message), or one naming a sequence twice (htslib would keep the first record of
        the name; checked on every open, also against a ``.fai`` made by ``samtools faidx``).
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
        self._code_map: CodeMap | None = None

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

        # htslib writes its warnings and errors to fd 2: caught, its reason goes in the error
        level = pysam.set_verbosity(3)
        with _captured_stderr() as said:
            try:
                pysam.faidx(str(self.path))
                failed = None
            except Exception as exc:  # pysam raises several types; all mean "cannot index"
                failed = exc
            finally:
                pysam.set_verbosity(level)
        if failed is not None:
            why = _htslib_message(said()) or _last_line(failed)
            raise RegtracksError(f"{self.path}: cannot index FASTA ({why})") from None
        if not fai.exists():
            raise RegtracksError(
                f"{self.path}: cannot index FASTA (no .fai written; is the folder writable "
                "and every line of a sequence the same length?)"
            )

    def _read_fai(self) -> tuple[list[str], dict[str, int]]:
        """Names and sizes from the ``.fai``, after checking that no record of the FASTA was
        left out of it for repeating a name (htslib keeps the first record of a name and says
        so only in a warning)."""
        chroms, sizes, rows = [], {}, []
        with open(self.fai_path, errors="replace") as fh:
            for lineno, line in enumerate(fh, start=1):
                f = line.rstrip("\r\n").split("\t")
                if len(f) < 2 or not f[0]:
                    continue
                if f[0] in sizes:
                    raise RegtracksError(
                        f"{self.fai_path}:{lineno}: sequence name {f[0]!r} appears twice in "
                        f"the index of {self.path.name}; rename one of its records"
                    )
                try:
                    size = int(f[1])
                    row = (int(f[2]), int(f[3]), int(f[4])) if len(f) >= 5 else None
                except ValueError:
                    raise RegtracksError(
                        f"{self.fai_path}:{lineno}: not a FASTA index line; delete the .fai "
                        "and it is rebuilt"
                    ) from None
                chroms.append(f[0])
                sizes[f[0]] = size
                rows.append((f[0], size, row))
        self._check_skipped_records(rows)
        return chroms, sizes

    def _check_skipped_records(self, rows: list[tuple[str, int, tuple | None]]) -> None:
        """Raise when the FASTA holds a record that the index lacks under a name it has.

        Each ``.fai`` row says where its sequence's bytes start and how they are laid out, so
        the bytes from one sequence's end to the next one's start are the next header line
        (and blank lines); a record htslib left out for its repeated name lies there. Only
        these gaps are read (through the ``.gzi`` for bgzip), and none where a gap is exactly
        ``>name`` and a line end.
        """
        if not rows or any(r is None for _, _, r in rows):
            return
        names = {name for name, _, _ in rows}
        try:
            reader = _GapReader(self.path, self.compressed)
        except OSError as exc:
            raise RegtracksError(f"{self.path}: cannot read the FASTA ({exc})") from None
        try:
            for k, (_name, size, (offset, lbases, lwidth)) in enumerate(rows):
                if lbases <= 0:
                    continue
                full, rem = divmod(size, lbases)
                end = offset + full * lwidth + (rem + lwidth - lbases if rem else 0)
                nxt = rows[k + 1] if k + 1 < len(rows) else None
                if nxt is not None and nxt[2][0] - end == len(nxt[0].encode()) + 1 + (
                    lwidth - lbases
                ):
                    continue  # exactly ">name" and a line end: nothing left out
                data, whole = reader.read(end, None if nxt is None else nxt[2][0])
                heads = [ln for ln in data.split(b"\n") if ln.startswith(b">")]
                if nxt is not None and whole:
                    heads = heads[:-1]  # the next indexed record's own header
                seen: set[str] = set()
                for h in heads:
                    parts = h[1:].split()
                    skipped = parts[0].decode(errors="replace") if parts else ""
                    if skipped in names or skipped in seen:
                        raise RegtracksError(
                            f"{self.path}: sequence name {skipped!r} appears twice (only the "
                            "first record of a name would be read); rename or remove the other"
                        )
                    seen.add(skipped)  # an empty record: htslib leaves it out of the index
        except (OSError, EOFError, zlib.error) as exc:
            raise RegtracksError(f"{self.path}: cannot read the FASTA ({exc})") from None
        finally:
            reader.close()

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

    def code_map(self) -> CodeMap:
        """The whole genome's codes as one shared uint8 memory map (built once, then cached).

        The codes are decoded once into ``<fasta>.codes-<key>.npy`` beside the FASTA (or, where
        that folder is not writable, into the cache folder: ``$REGTRACKS_CACHE``, else
        ``$XDG_CACHE_HOME/regtracks``, else ``~/.cache/regtracks``; where neither is, into
        memory), written atomically. ``key`` hashes the FASTA's size, modification time and
        chromosome sizes, so an edited FASTA gets a new file (the stale one is removed). Every
        process that maps it (DataLoader workers, torchrun ranks) shares the same pages of the
        page cache instead of decoding its own copy: fast random access to short windows.
        """
        if self._code_map is None:
            self._code_map = _open_code_map(self)
        return self._code_map

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


class CodeMap:
    """Codes of every chromosome of a genome end to end in FASTA order, as one uint8 array.

    ``codes`` is a read-only memory map of a cached ``.npy`` (:meth:`Genome.code_map`), opened
    lazily in each process (a pickled map carries its path, not its bytes); ``offset(chrom)``
    is where ``chrom`` starts in it.
    """

    def __init__(
        self, chrom_sizes: list[tuple[str, int]], path: Path | None, array: np.ndarray | None
    ):
        self.path = path
        self.sizes = dict(chrom_sizes)
        starts = np.cumsum([0] + [s for _, s in chrom_sizes])
        self._offsets = {c: int(o) for (c, _), o in zip(chrom_sizes, starts[:-1], strict=True)}
        self.total = int(starts[-1])
        self._array = array

    @property
    def codes(self) -> np.ndarray:
        """``(total,)`` uint8 codes (read-only)."""
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def offset(self, chrom: str) -> int:
        """Where ``chrom`` (the genome's own name) starts in :attr:`codes`."""
        return self._offsets[chrom]

    def fetch(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Codes of ``[start, end)`` of ``chrom`` (a copy); positions outside it are N."""
        start, end = int(start), int(end)
        out = np.zeros(max(end - start, 0), dtype=np.uint8)
        s, e = max(0, start), min(self.sizes[chrom], end)
        if e > s:
            o = self._offsets[chrom]
            out[s - start : e - start] = self.codes[o + s : o + e]
        return out

    def __getstate__(self):
        state = self.__dict__.copy()
        if self.path is not None:
            state["_array"] = None
        return state


def _cache_folder() -> Path:
    if os.environ.get("REGTRACKS_CACHE"):
        return Path(os.environ["REGTRACKS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "regtracks"


def _open_code_map(genome: Genome) -> CodeMap:
    """The genome's cached codes: found, else written (beside the FASTA, else in the cache
    folder), else decoded into memory."""
    from regtracks._util import atomic_path

    st = genome.path.stat()
    key = hashlib.sha256(
        f"{st.st_size}:{st.st_mtime_ns}:{genome.sizes_hash()}".encode()
    ).hexdigest()[:16]
    where = hashlib.sha256(str(genome.path).encode()).hexdigest()[:12]
    places = [(genome.path.parent, f"{genome.path.name}.codes-")]
    with contextlib.suppress(RuntimeError, KeyError):  # no home folder: beside or in memory
        places.append((_cache_folder() / "codes", f"{genome.path.name}-{where}.codes-"))
    sizes = genome.chrom_sizes
    total = sum(s for _, s in sizes)

    def usable(path: Path) -> bool:
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            return False
        return arr.dtype == np.uint8 and arr.shape == (total,)

    for folder, prefix in places:
        path = folder / f"{prefix}{key}.npy"
        if path.is_file() and usable(path):
            return CodeMap(sizes, path, None)
    for folder, prefix in places:
        path = folder / f"{prefix}{key}.npy"

        def check(tmp: Path) -> None:
            if not usable(tmp):
                raise RegtracksError(f"{tmp}: the cached genome codes did not read back")

        try:
            with atomic_path(path, check=check) as tmp:
                arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(total,))
                _decode_into(genome, arr)
                arr.flush()
                del arr
        except (RegtracksError, OSError):
            continue
        for old in folder.glob(f"{glob.escape(prefix)}*.npy"):
            if old != path:
                with contextlib.suppress(OSError):
                    old.unlink()
        return CodeMap(sizes, path, None)
    arr = np.empty(total, dtype=np.uint8)
    _decode_into(genome, arr)
    return CodeMap(sizes, None, arr)


def _decode_into(genome: Genome, out: np.ndarray, chunk: int = 1 << 24) -> None:
    """Every chromosome's codes, end to end, into ``out`` (``chunk`` bases a read)."""
    o = 0
    for chrom, size in genome.chrom_sizes:
        for s in range(0, size, chunk):
            e = min(size, s + chunk)
            out[o + s : o + e] = encode(genome.fetch_text(chrom, s, e))
        o += size


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
