"""2bit writer: hand-computed bytes, round trip through py2bit (sequence, N and mask blocks)."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from regtracks._util import RegtracksError
from regtracks.data.genome import Genome
from regtracks.tracks.twobit import _write, read_2bit_sizes, write_2bit

py2bit = pytest.importorskip("py2bit")


def _fasta(path, seqs: dict[str, str], width: int = 7) -> Genome:
    with open(path, "w") as fh:
        for name, seq in seqs.items():
            fh.write(f">{name} some description\n")
            for i in range(0, len(seq), width):
                fh.write(seq[i : i + width] + "\n")
    return Genome(path)


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """Brute force: runs of True as (start, end)."""
    out, start = [], None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    return out


def _expected_read(seq: str) -> str:
    """What py2bit with soft-masking returns: non-ACGT as N (upper case even when soft-masked:
    py2bit applies N blocks after the mask; the mask blocks themselves are checked apart)."""
    return "".join(c if c.upper() in "ACGT" else "N" for c in seq)


def _random_seqs() -> dict[str, str]:
    rng = np.random.default_rng(0)
    letters = np.array(list("ACGTACGTACGTACGTRYKMSWNacgtn"))
    seqs = {}
    for name, n in (("chr1", 203), ("chr2", 1), ("chr3", 2), ("chrUn_x", 7), ("chrM", 61)):
        s = "".join(rng.choice(letters, n))
        seqs[name] = s
    seqs["chr1"] = "NNNNN" + seqs["chr1"][5:90] + "N" * 30 + "acgtnnNNacGT" + seqs["chr1"][127:]
    seqs["chrN"] = "N" * 13  # all gap
    seqs["chrLow"] = "acgtacgtacg"  # all soft-masked, odd length
    return seqs


def test_hand_computed_bytes(tmp_path):
    g = _fasta(tmp_path / "g.fa", {"c": "ACGTn"})
    out = write_2bit(g, tmp_path / "g.2bit")
    want = struct.pack("<4I", 0x1A412743, 0, 1, 0)  # signature, version 0, 1 sequence
    want += b"\x01c" + struct.pack("<I", 16 + 2 + 4)  # index: name, record offset
    want += struct.pack("<2I", 5, 1) + struct.pack("<2I", 4, 1)  # dnaSize; one N block 4+1
    want += struct.pack("<I", 1) + struct.pack("<2I", 4, 1)  # one mask block 4+1
    want += struct.pack("<I", 0)  # reserved
    want += bytes([0b10_01_11_00, 0b00_000000])  # A=2 C=1 G=3 T=0 | N packed as T, padding
    assert out.read_bytes() == want


@pytest.mark.parametrize("chunk", [8, 1 << 23])
def test_round_trip_py2bit(tmp_path, chunk):
    seqs = _random_seqs()
    g = _fasta(tmp_path / "g.fa", seqs)
    out = write_2bit(g, tmp_path / "out" / "g.2bit", chunk=chunk)
    assert read_2bit_sizes(out) == [(n, len(s)) for n, s in seqs.items()]
    tb = py2bit.open(str(out), True)
    assert tb.chroms() == {n: len(s) for n, s in seqs.items()}
    for name, seq in seqs.items():
        assert tb.sequence(name) == _expected_read(seq)
        if len(seq) > 2:  # a piece starting inside a byte
            assert tb.sequence(name, 1, len(seq) - 1) == _expected_read(seq)[1:-1]
        hard = tb.hardMaskedBlocks(name) or []
        assert [tuple(b) for b in hard] == _runs([c.upper() not in "ACGT" for c in seq])
        soft = tb.softMaskedBlocks(name) or []
        assert [tuple(b) for b in soft] == _runs([c.islower() for c in seq])
    tb.close()
    plain = py2bit.open(str(out))
    assert plain.sequence("chrLow") == "ACGTACGTACG"  # masking off: upper case
    plain.close()


def test_version_1_with_64_bit_offsets_reads_back(tmp_path):
    seqs = _random_seqs()
    g = _fasta(tmp_path / "g.fa", seqs)
    out = tmp_path / "long.2bit"
    _write(g, g.chrom_sizes, out, chunk=16, long=True, progress=None)
    assert struct.unpack("<I", out.read_bytes()[4:8])[0] == 1
    assert read_2bit_sizes(out) == [(n, len(s)) for n, s in seqs.items()]
    tb = py2bit.open(str(out), True)
    for name, seq in seqs.items():
        assert tb.sequence(name) == _expected_read(seq)
    tb.close()


def test_progress_and_fasta_path(tmp_path):
    seqs = {"a": "ACGT" * 5, "b": "GG"}
    _fasta(tmp_path / "g.fa", seqs)
    calls = []
    write_2bit(tmp_path / "g.fa", tmp_path / "g.2bit", chunk=8, progress=lambda *a: calls.append(a))
    assert calls[-1] == (22, 22, "b") and [c[0] for c in calls] == [8, 16, 20, 22]


def test_errors_leave_no_file(tmp_path):
    with pytest.raises(RegtracksError, match="not found"):
        write_2bit(tmp_path / "missing.fa", tmp_path / "x.2bit")
    g = _fasta(tmp_path / "g.fa", {"n" * 300: "ACGT"})
    with pytest.raises(RegtracksError, match="255"):
        write_2bit(g, tmp_path / "x.2bit")
    assert not (tmp_path / "x.2bit").exists()
    assert [p for p in os.listdir(tmp_path) if "2bit" in p] == []
    bad = tmp_path / "bad.2bit"
    bad.write_bytes(b"not a 2bit file at all")
    with pytest.raises(RegtracksError, match="signature"):
        read_2bit_sizes(bad)
