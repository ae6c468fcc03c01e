"""Position weight matrices from JASPAR (``.jaspar``, ``.pfm``) and MEME (minimal) files.

``read_motifs(path)`` returns a list of :class:`Motif`: a name and an ``(L, 4)`` matrix of
base probabilities in A, C, G, T order, each row summing to 1. Formats (detected from the
text; ``fmt`` forces one):

* JASPAR multi-matrix (``.jaspar``)::

      >MA0139.2 CTCF
      A  [    87    167    281 ... ]
      C  [   291    145     49 ... ]
      G  [    76    414    449 ... ]
      T  [   459    187    135 ... ]

  rows may also read ``A: 87 167 ...`` or ``A 87 167 ...``, in any order of the letters.
* JASPAR ``.pfm``: the same without the letters (four rows of counts in A, C, G, T order),
  with or without a ``>ID NAME`` header; a headerless file is one motif named after the file.
* MEME minimal format: ``MOTIF id [alt_name]`` followed by a ``letter-probability matrix:``
  line and ``w`` rows of four probabilities (``ALPHABET`` must be DNA, ``alength= 4``).

A motif's name is the header's second word (the TF: ``CTCF``), else its ID. Counts and
probabilities are normalised per position; ``pseudocount`` (default 0: the matrix as given) is
added to every count first. For MEME probabilities the counts are ``p * nsites`` (``nsites=``
of the matrix line, else 20). Malformed input raises a one-line
:class:`~regtracks._util.RegtracksError` naming the file and line.

Getting JASPAR matrices: ``pip install pyjaspar`` ships every JASPAR release as SQLite (no
download at run time) and ``examples/jaspar_motifs.py`` writes a ``.jaspar`` file of chosen
factors from it::

    python examples/jaspar_motifs.py motifs.jaspar CTCF SP1 MAX YY1 NRF1
    regtracks simulate --motifs motifs.jaspar --out sim

or by hand::

    from pyjaspar import jaspardb
    m = jaspardb().fetch_motif_by_id("MA0139")      # latest CTCF version (Bio.motifs)
    open("ctcf.jaspar", "w").write(m.format("jaspar"))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regtracks._util import RegtracksError

__all__ = ["Motif", "read_motifs", "parse_motifs", "format_jaspar"]

_BASES = "ACGT"


@dataclass(frozen=True, eq=False)
class Motif:
    """One position weight matrix.

    Attributes
    ----------
    name : str
        Factor name (``CTCF``), else the matrix ID.
    matrix : (L, 4) float64
        Base probabilities per position (A, C, G, T), rows summing to 1.
    id : str
        Matrix ID (``MA0139.2``), or ``""``.
    """

    name: str
    matrix: np.ndarray
    id: str = ""
    counts: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def consensus(self) -> str:
        """The most probable base at every position (ties: the first of A, C, G, T)."""
        return "".join(_BASES[i] for i in np.argmax(self.matrix, axis=1))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "id": self.id,
            "consensus": self.consensus,
            "matrix": [[round(float(v), 6) for v in row] for row in self.matrix],
        }


def read_motifs(path: str | Path, *, pseudocount: float = 0.0, fmt: str = "auto") -> list[Motif]:
    """Read every motif of a JASPAR (``.jaspar`` / ``.pfm``) or MEME file.

    Parameters
    ----------
    path : str or Path
    pseudocount : float
        Added to every count before normalising (0: the matrix as given).
    fmt : {"auto", "jaspar", "meme"}
        ``jaspar`` covers ``.pfm``; ``auto`` picks MEME when a line starts with ``MOTIF`` or
        ``MEME version``.

    Raises
    ------
    RegtracksError
        Missing file, no motifs, or malformed lines (message: ``file:line: what``).
    """
    p = Path(path)
    if not p.is_file():
        raise RegtracksError(f"{path}: motif file not found")
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise RegtracksError(f"{path}: not a text motif file (JASPAR or MEME)") from None
    return parse_motifs(text, source=str(path), pseudocount=pseudocount, fmt=fmt)


def parse_motifs(
    text: str, *, source: str = "<text>", pseudocount: float = 0.0, fmt: str = "auto"
) -> list[Motif]:
    """Parse motif text (see :func:`read_motifs`); ``source`` names it in errors."""
    if pseudocount < 0:
        raise RegtracksError(f"pseudocount must be >= 0, got {pseudocount}")
    if fmt not in ("auto", "jaspar", "meme"):
        raise RegtracksError(f"motif format {fmt!r} is not one of auto, jaspar, meme")
    lines = text.splitlines()
    if fmt == "auto":
        meme = any(ln.startswith(("MOTIF", "MEME version")) for ln in lines)
        fmt = "meme" if meme else "jaspar"
    parser = _parse_meme if fmt == "meme" else _parse_jaspar
    motifs = parser(lines, source, pseudocount)
    if not motifs:
        raise RegtracksError(f"{source}: no motifs found (expected JASPAR or MEME format)")
    return motifs


def _err(source: str, lineno: int, msg: str) -> RegtracksError:
    return RegtracksError(f"{source}:{lineno}: {msg}")


def _numbers(s: str, source: str, lineno: int) -> list[float]:
    vals = []
    for tok in s.replace("[", " ").replace("]", " ").split():
        try:
            v = float(tok)
        except ValueError:
            raise _err(source, lineno, f"{tok!r} is not a number") from None
        if not np.isfinite(v) or v < 0:
            raise _err(source, lineno, f"{tok!r}: counts and probabilities must be >= 0")
        vals.append(v)
    return vals


def _normalise(
    counts: np.ndarray, pseudocount: float, source: str, lineno: int, what: str
) -> np.ndarray:
    """(L, 4) counts -> (L, 4) probabilities; an all-zero position is an error."""
    c = counts + pseudocount
    tot = c.sum(axis=1, keepdims=True)
    bad = np.flatnonzero(tot[:, 0] <= 0)
    if bad.size:
        raise _err(source, lineno, f"{what}: position {int(bad[0]) + 1} has no counts")
    return c / tot


def _name_of(header: str, default: str) -> tuple[str, str]:
    """``>ID NAME ...`` -> (name, id)."""
    words = header.split()
    if not words:
        return default, ""
    return (words[1] if len(words) > 1 else words[0]), words[0]


_LETTER = re.compile(r"^\s*([ACGTacgt])\s*[:|]?\s*(?=[\[\d.\s]|$)")


def _parse_jaspar(lines: list[str], source: str, pseudocount: float) -> list[Motif]:
    motifs: list[Motif] = []
    stem = Path(source).name.split(".")[0] or "motif"
    header: tuple[str, str] | None = None  # (name, id)
    header_line = 0
    rows: list[tuple[str | None, list[float], int]] = []

    def finish(lineno: int) -> None:
        if header is None and not rows:
            return
        name, mid = header if header is not None else (stem, "")
        first = header_line or (rows[0][2] if rows else lineno)
        what = f"motif {mid or name}"
        if len(rows) != 4:
            raise _err(source, first, f"{what} has {len(rows)} matrix rows, expected 4")
        letters = [r[0] for r in rows]
        if any(x is not None for x in letters):
            if None in letters or sorted(letters) != list(_BASES):
                raise _err(
                    source,
                    rows[0][2],
                    f"{what}: rows must be labelled A, C, G, T once each, got "
                    + ", ".join(x or "?" for x in letters),
                )
        else:
            letters = list(_BASES)
        width = len(rows[0][1])
        for _, vals, ln in rows:
            if len(vals) != width:
                raise _err(
                    source, ln, f"{what}: row has {len(vals)} columns, the first row {width}"
                )
        if width == 0:
            raise _err(source, rows[0][2], f"{what}: empty matrix")
        counts = np.zeros((width, 4))
        for letter, (_, vals, _ln) in zip(letters, rows, strict=True):
            counts[:, _BASES.index(letter)] = vals
        probs = _normalise(counts, pseudocount, source, first, what)
        motifs.append(Motif(name, probs, mid, counts))

    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(">"):
            finish(lineno)
            header = _name_of(line[1:], stem)
            header_line = lineno
            rows = []
            continue
        m = _LETTER.match(line)
        letter = m.group(1).upper() if m else None
        body = line[m.end() :] if m else line
        if len(rows) == 4:
            raise _err(
                source,
                lineno,
                "a fifth matrix row (a JASPAR matrix has 4 rows: A, C, G, T); "
                "is a '>' header missing?",
            )
        rows.append((letter, _numbers(body, source, lineno), lineno))
    finish(len(lines) + 1 if lines else 1)
    return motifs


_KV = re.compile(r"(\w+)\s*=\s*(\S+)")


def _parse_meme(lines: list[str], source: str, pseudocount: float) -> list[Motif]:
    motifs: list[Motif] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i].strip()
        lineno = i + 1
        i += 1
        if line.startswith("ALPHABET"):
            alpha = line.split("=", 1)[1].strip() if "=" in line else ""
            if alpha.split()[:1] and alpha.split()[0].upper() not in ("ACGT", "DNA"):
                raise _err(source, lineno, f"alphabet {alpha!r} is not DNA (ACGT)")
            continue
        if not line.startswith("MOTIF"):
            continue
        words = line.split()
        if len(words) < 2:
            raise _err(source, lineno, "MOTIF line without an identifier")
        mid = words[1]
        name = words[2] if len(words) > 2 else mid
        what = f"motif {mid}"
        # find the letter-probability matrix line (before the next MOTIF)
        while i < n and not lines[i].strip().startswith(("letter-probability", "MOTIF")):
            i += 1
        if i >= n or lines[i].strip().startswith("MOTIF"):
            raise _err(source, lineno, f"{what} has no 'letter-probability matrix:' line")
        mline = lines[i].strip()
        mlineno = i + 1
        i += 1
        kv = dict(_KV.findall(mline))
        try:
            alength = int(kv.get("alength", 4))
            w = int(kv["w"]) if "w" in kv else None
            nsites = float(kv.get("nsites", 20))
        except ValueError:
            raise _err(source, mlineno, f"{what}: bad alength= / w= / nsites= values") from None
        if alength != 4:
            raise _err(source, mlineno, f"{what}: alength= {alength}, expected 4 (DNA)")
        if nsites <= 0:
            nsites = 20.0
        rows: list[list[float]] = []
        while i < n and (w is None or len(rows) < w):
            s = lines[i].strip()
            if not s:
                i += 1
                if rows and w is None:
                    break
                continue
            if not (s[0].isdigit() or s[0] in ".-+"):
                break
            vals = _numbers(s, source, i + 1)
            if len(vals) != 4:
                raise _err(source, i + 1, f"{what}: row has {len(vals)} values, expected 4")
            rows.append(vals)
            i += 1
        if w is not None and len(rows) != w:
            raise _err(
                source, i + 1 if i < n else n, f"{what}: {len(rows)} matrix rows, w= says {w}"
            )
        if not rows:
            raise _err(source, mlineno, f"{what}: empty matrix")
        probs = np.array(rows, dtype=np.float64)
        counts = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-300) * nsites
        motifs.append(
            Motif(name, _normalise(counts, pseudocount, source, mlineno, what), mid, counts)
        )
    return motifs


def format_jaspar(motifs: list[Motif]) -> str:
    """Motifs as JASPAR multi-matrix text (counts when known, else probabilities)."""
    out = []
    for m in motifs:
        mat = m.counts if m.counts is not None else m.matrix
        head = f">{m.id} {m.name}" if m.id else f">{m.name}"
        out.append(head)
        for k, b in enumerate(_BASES):
            out.append(f"{b} [ " + " ".join(f"{v:g}" for v in mat[:, k]) + " ]")
    return "\n".join(out) + "\n"
