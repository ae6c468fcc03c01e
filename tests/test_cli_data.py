"""`regtracks data summary` on good and bad input: one line, exit 1, no traceback."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from regtracks.cli import app
from tests.conftest import write_manifest

runner = CliRunner()


def summary(tiny, *extra, genome=None, markers=None):
    return runner.invoke(
        app,
        [
            "data",
            "summary",
            "--genome",
            str(genome or tiny["fasta"]),
            "--markers",
            str(markers or tiny["manifest"]),
            "--window-len",
            "1000",
            "--split",
            "random",
            *extra,
        ],
    )


def test_summary_table_and_json(tiny):
    r = summary(tiny)
    assert r.exit_code == 0, r.output
    assert "TF1" in r.stdout and "H3K4me3" in r.stdout
    assert "skipped 3 peaks on 1 chromosome(s) absent from the genome: chrUn_random (3)" in r.stderr
    r = summary(tiny, "--json")
    s = json.loads(r.stdout)
    assert s["windows_total"] == 7 + 4 and set(s["splits"]) == {"train", "valid", "test"}
    assert [m["name"] for m in s["markers"]] == ["TF1", "H3K4me3", "DHS"]
    assert set(s["markers"][0]) >= {
        "name",
        "category",
        "intervals",
        "covered_bp",
        "positive_fraction",
    }
    r = summary(tiny, "--json", "--task", "sequence")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["task"] == "sequence"


def _one_line_error(r, *needles):
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:")
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0]


def test_bad_inputs(tiny, tmp_path):
    _one_line_error(summary(tiny, genome=tmp_path / "missing.fa"), "missing.fa", "not found")
    _one_line_error(summary(tiny, markers=tmp_path / "nope.tsv"), "nope.tsv", "not found")
    bad = tmp_path / "bad.tsv"
    bad.write_text("name\tpath\nA\tx.bed\n")
    _one_line_error(summary(tiny, markers=bad), "bad.tsv", "category")
    (tmp_path / "broken.bed").write_text("chr1\t10\t20\nchr1\tabc\t30\n")
    m = write_manifest(
        tmp_path / "m.tsv", [{"name": "A", "category": "TFBS", "path": "broken.bed"}]
    )
    _one_line_error(summary(tiny, markers=m), "broken.bed:2", "not integers")
    (tmp_path / "inv.bed").write_text("chr1\t50\t20\n")
    m = write_manifest(tmp_path / "m2.tsv", [{"name": "A", "category": "TFBS", "path": "inv.bed"}])
    _one_line_error(summary(tiny, markers=m), "inv.bed:1", "bad interval")
    _one_line_error(summary(tiny, "--window-len", "0"), "--window-len")
    _one_line_error(summary(tiny, "--chroms", "chr9"), "chr9")
    _one_line_error(summary(tiny, "--task", "wide"), "wide")
    r = summary(tiny, "--window-len", "abc")
    assert r.exit_code == 2  # usage error


@pytest.mark.parametrize("argv", [["--help"], ["data", "summary", "--help"]])
def test_help_does_not_import_torch(argv):
    code = (
        "import sys\nfrom regtracks.cli import app\n"
        f"try:\n    app({argv!r})\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_python_dash_m(tiny):
    r = subprocess.run(
        [sys.executable, "-m", "regtracks", "--version"], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.startswith("regtracks ")


# --- data checks: FASTA names, chromosome ends, undecodable text, corrupt gzip ---------------
def _past_end_data(tmp_path):
    """A 7,820 bp genome whose peaks claim 107,920 bp: chr2:0-100,920 runs past chr2 (820 bp),
    chr1:7,500-7,600 starts past chr1 (7,000 bp)."""
    from tests.conftest import write_bed, write_fasta

    fa = write_fasta(tmp_path / "g.fa", {"chr1": "ACGT" * 1_750, "chr2": "ACGT" * 205})
    write_bed(
        tmp_path / "a.bed", [("chr1", 0, 7_000), ("chr2", 0, 100_920), ("chr1", 7_500, 7_600)]
    )
    m = write_manifest(tmp_path / "m.tsv", [{"name": "A", "category": "TFBS", "path": "a.bed"}])
    return fa, m


def test_summary_clips_intervals_at_chrom_ends(tiny, tmp_path):
    fa, m = _past_end_data(tmp_path)
    r = summary(tiny, "--json", genome=fa, markers=m)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["markers"][0]["covered_bp"] == 7_820  # not 107,920
    assert s["markers"][0]["clipped"] == 2 and s["markers"][0]["intervals"] == 2
    (rec,) = s["clipped"]
    assert rec["intervals"] == 2 and rec["past_end"] == 1 and rec["marker"] == "A"
    assert rec["file"].endswith("a.bed")
    note = f"2 intervals clipped at chromosome ends in {tmp_path / 'a.bed'}"
    assert note in " ".join(r.stderr.split())
    r = summary(tiny, genome=fa, markers=m)  # the table shows the count
    assert r.exit_code == 0 and "clipped" in r.stdout
    # --strict: one line naming the file, the line and the chromosome
    _one_line_error(
        summary(tiny, "--strict", genome=fa, markers=m), "a.bed:5", "chr2:0-100920", "chr2"
    )
    # an exclude BED past the end: clipped and said, or refused with --strict
    (tmp_path / "ex.bed").write_text("chr2\t4300\t9000\n")  # chr2 of tiny: 4,321 bp
    ex = str(tmp_path / "ex.bed")
    r = summary(tiny, "--json", "--exclude", ex)
    assert r.exit_code == 0, r.output
    assert [c["marker"] for c in json.loads(r.stdout)["clipped"]] == [None]
    assert "1 interval clipped at chromosome ends in" in r.stderr
    _one_line_error(summary(tiny, "--strict", "--exclude", ex), "ex.bed:1", "chr2:4300-9000")


def _run(*argv):
    return subprocess.run(
        [sys.executable, "-m", "regtracks", *argv], capture_output=True, text=True, timeout=120
    )


def test_duplicate_fasta_names_one_line(tiny, tmp_path):
    """htslib's own warning (on file descriptor 2) is not shown beside the error."""
    fa = tmp_path / "dup.fa"
    fa.write_text(tiny["fasta"].read_text() + ">chr1\nACGTACGT\n")
    r = _run("data", "summary", "-g", str(fa), "-m", str(tiny["manifest"]), "--window-len", "1000")
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "dup.fa" in lines[0] and "'chr1' appears twice" in lines[0]


def test_binary_and_corrupt_inputs_one_line(tiny, tmp_path):
    import gzip

    bad = tmp_path / "markers.tsv"
    bad.write_bytes(tiny["manifest"].read_bytes()[:60] + b"\xff\xd8\xff\xe0\x00\x10JFIF\n")
    _one_line_error(summary(tiny, markers=bad), "markers.tsv:2", "not UTF-8")
    raw = gzip.compress(b"".join(b"chr1\t%d\t%d\n" % (i, i + 5) for i in range(0, 6_000, 7)))
    (tmp_path / "crc.bed.gz").write_bytes(raw[:-8] + b"\0\0\0\0" + raw[-4:])
    (tmp_path / "cut.bed.gz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "bin.bed").write_bytes(b"chr1\t1\t5\n\x00\x9f\x92\x96\n")
    for name, needle in (
        ("crc.bed.gz", "corrupt or truncated gzip"),
        ("cut.bed.gz", "corrupt or truncated gzip"),
        ("bin.bed", "bin.bed:2: not UTF-8"),
    ):
        m = write_manifest(
            tmp_path / f"{name}.tsv", [{"name": "A", "category": "TFBS", "path": name}]
        )
        _one_line_error(summary(tiny, markers=m), name, needle)
