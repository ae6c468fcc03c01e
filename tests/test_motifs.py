"""Motif files: JASPAR (.jaspar, .pfm) and MEME minimal format, and their one-line errors."""

import numpy as np
import pytest
from typer.testing import CliRunner

from regtracks._util import RegtracksError
from regtracks.cli import app
from regtracks.data.motifs import Motif, format_jaspar, parse_motifs, read_motifs

JASPAR = """\
>MA0139.2 CTCF
A  [   281     56      8    744 ]
C  [    49    800    903     13 ]
G  [   449     21      0     65 ]
T  [   134     36      2     91 ]

>MA0079.5\tSP1
C: 1 1 1 731
A: 1 1 1 267
T: 47 1 1 1
G: 950 997 997 1
>MA9999.1
A 0 0 10
C 10 0 0
G 0 10 0
T 0 0 0
"""

PFM = """\
 4  19   0   0   0   0
16   0  20   0   0   0
 0   1   0  20   0  20
 0   0   0   0  20   0
"""

MEME = """\
MEME version 5

ALPHABET= ACGT

strands: + -

Background letter frequencies
A 0.303 C 0.183 G 0.209 T 0.306

MOTIF MA0058.4 MAX
letter-probability matrix: alength= 4 w= 3 nsites= 100 E= 0
  0.1 0.8 0.05 0.05

  0.9 0.0 0.1 0.0
  0.0 0.0 0.0 1.0
URL http://jaspar.genereg.net/matrix/MA0058.4

MOTIF crp
letter-probability matrix: alength= 4 w= 2
 0.25 0.25 0.25 0.25
 0 0 2 0
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_jaspar_multi_matrix(tmp_path):
    ms = read_motifs(write(tmp_path, "m.jaspar", JASPAR))
    assert [(m.name, m.id) for m in ms] == [
        ("CTCF", "MA0139.2"),
        ("SP1", "MA0079.5"),
        ("MA9999.1", "MA9999.1"),
    ]
    ctcf = ms[0]
    assert ctcf.matrix.shape == (4, 4) and len(ctcf) == 4
    np.testing.assert_allclose(ctcf.matrix.sum(axis=1), 1.0)
    np.testing.assert_allclose(ctcf.matrix[0], np.array([281, 49, 449, 134]) / 913)
    assert ctcf.consensus == "GCCA"
    # letters in any order, "A:" rows, tab in the header
    sp1 = ms[1]
    np.testing.assert_allclose(sp1.matrix[3], np.array([267, 731, 1, 1]) / 1000)
    assert sp1.consensus == "GGGC"
    assert ms[2].consensus == "CGA"


def test_pfm_with_and_without_header(tmp_path):
    (m,) = read_motifs(write(tmp_path, "MA0004.1.Arnt.pfm", PFM))
    assert m.name == "MA0004" and m.consensus == "CACGTG"
    np.testing.assert_allclose(m.matrix[0], [0.2, 0.8, 0, 0])
    (m,) = read_motifs(write(tmp_path, "x.pfm", ">MA0004.1 Arnt\n" + PFM))
    assert (m.name, m.id, m.consensus) == ("Arnt", "MA0004.1", "CACGTG")


def test_meme_minimal(tmp_path):
    ms = read_motifs(write(tmp_path, "m.meme", MEME))
    assert [(m.name, m.id) for m in ms] == [("MAX", "MA0058.4"), ("crp", "crp")]
    np.testing.assert_allclose(
        ms[0].matrix, [[0.1, 0.8, 0.05, 0.05], [0.9, 0, 0.1, 0], [0, 0, 0, 1]]
    )
    np.testing.assert_allclose(ms[1].matrix[1], [0, 0, 1, 0])  # normalised
    assert ms[0].consensus == "CAT"
    # forced format, and parse_motifs on text
    assert len(parse_motifs(MEME, fmt="meme")) == 2


def test_pseudocount(tmp_path):
    p = write(tmp_path, "m.jaspar", JASPAR)
    (m,) = [x for x in read_motifs(p, pseudocount=1.0) if x.id == "MA9999.1"]
    np.testing.assert_allclose(m.matrix[0], np.array([1, 11, 1, 1]) / 14)
    meme = read_motifs(write(tmp_path, "m.meme", MEME), pseudocount=1.0)
    np.testing.assert_allclose(meme[0].matrix[2], np.array([1, 1, 1, 101]) / 104)  # nsites=100
    np.testing.assert_allclose(meme[1].matrix[1], np.array([1, 1, 21, 1]) / 24)  # nsites: 20


def test_format_jaspar_round_trip(tmp_path):
    ms = read_motifs(write(tmp_path, "m.jaspar", JASPAR))
    again = parse_motifs(format_jaspar(ms))
    assert [(m.name, m.id) for m in again] == [(m.name, m.id) for m in ms]
    for a, b in zip(ms, again, strict=True):
        np.testing.assert_allclose(a.matrix, b.matrix)
    probs = Motif("X", np.array([[0.5, 0.5, 0, 0]]))
    assert format_jaspar([probs]).startswith(">X\nA [ 0.5 ]")


BAD = [
    ("bad.jaspar", ">M1 A\nA [1 2]\nC [1 x]\nG [1 2]\nT [1 2]\n", 3, "'x' is not a number"),
    ("bad.jaspar", ">M1 A\nA [1 2]\nC [1 2]\nG [1 2]\n>M2 B\n", 1, "3 matrix rows, expected 4"),
    ("bad.jaspar", ">M1 A\nA [1 2]\nC [1 2]\nG [1 2 3]\nT [1 2]\n", 4, "3 columns"),
    ("bad.jaspar", ">M1 A\nA [1 2]\nC [1 2]\nG [1 2]\nT [1 2]\nA [1 2]\n", 6, "fifth matrix row"),
    ("bad.jaspar", ">M1 A\nA [1 2]\nA [1 2]\nG [1 2]\nT [1 2]\n", 2, "A, C, G, T once each"),
    ("bad.jaspar", ">M1 A\nA [1 0]\nC [1 0]\nG [1 0]\nT [1 0]\n", 1, "position 2 has no counts"),
    ("bad.jaspar", ">M1 A\nA [1 -2]\nC [1 2]\nG [1 2]\nT [1 2]\n", 2, "must be >= 0"),
    ("bad.pfm", "1 2\n3 4\n", 1, "2 matrix rows, expected 4"),
    (
        "bad.meme",
        "MEME version 4\n\nMOTIF a\nletter-probability matrix: alength= 4 w= 2\n0.2 0.8 0\n",
        5,
        "3 values, expected 4",
    ),
    (
        "bad.meme",
        "MOTIF a\nletter-probability matrix: alength= 4 w= 3\n0 0 0 1\n0 1 0 0\n\nMOTIF b\n",
        6,
        "2 matrix rows, w= says 3",
    ),
    ("bad.meme", "MOTIF a\nletter-probability matrix: alength= 20 w= 1\n", 2, "alength= 20"),
    ("bad.meme", "MEME version 4\nALPHABET= ACDEFGHIKLMNPQRSTVWY\n", 2, "not DNA"),
    ("bad.meme", "MOTIF a\nMOTIF b\n", 1, "no 'letter-probability matrix:' line"),
]


@pytest.mark.parametrize(("name", "text", "line", "msg"), BAD)
def test_malformed_files_name_file_and_line(tmp_path, name, text, line, msg):
    p = write(tmp_path, name, text)
    with pytest.raises(RegtracksError) as exc:
        read_motifs(p)
    text = str(exc.value)
    assert "\n" not in text
    assert text.startswith(f"{p}:{line}: ") and msg in text, text


def test_empty_and_missing(tmp_path):
    with pytest.raises(RegtracksError, match="no motifs found"):
        read_motifs(write(tmp_path, "e.jaspar", "\n# nothing\n"))
    with pytest.raises(RegtracksError, match="not found"):
        read_motifs(tmp_path / "missing.jaspar")


def test_cli_reports_bad_motif_file(tmp_path):
    p = write(tmp_path, "bad.jaspar", ">M1 A\nA [1 2]\nC [1 x]\nG [1 2]\nT [1 2]\n")
    args = ["simulate", "--out", str(tmp_path / "s"), "--chrom-len", "60000", "--markers", "3"]
    r = CliRunner().invoke(app, [*args, "--motifs", str(p)])
    assert r.exit_code == 1
    assert f"{p}:3: 'x' is not a number" in " ".join(r.output.split())
    r = CliRunner().invoke(app, [*args, "--motifs", "jaspar:CORE"])
    assert r.exit_code == 1 and "jaspar_motifs.py" in r.output
    one = write(tmp_path, "one.jaspar", ">M1 A\nA [1]\nC [0]\nG [0]\nT [0]\n")
    r = CliRunner().invoke(app, [*args, "--motifs", str(one)])
    assert r.exit_code == 1 and "at least 2" in r.output
