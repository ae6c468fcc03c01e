"""Bad input across every command, table-driven: a user's mistake or a broken file gives exit
!= 0, exactly one ``error:`` line naming the culprit (file, line, option, chromosome), no
traceback, and nothing that looks finished (no new result file, old results unchanged).

Each case is ``(id, setup)``: ``setup(env)`` prepares whatever broken input it needs in
``env.tmp`` and returns a :class:`Case` (the arguments, words the error line must hold, and the
paths that must not appear or must not change).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from conftest import train_args, write_fasta
from typer.testing import CliRunner

from regtracks.cli import app

runner = CliRunner()


@dataclass
class Case:
    args: list[str]
    culprit: list[str]  # every one must be in the error line
    absent: list[Path] = field(default_factory=list)  # must not exist afterwards
    unchanged: list[Path] = field(default_factory=list)  # must keep their bytes
    code: int | None = None  # exact exit code, when it matters


@dataclass
class Env:
    sim: Path
    run: Path
    hub: Path
    tmp: Path

    @property
    def fa(self) -> str:
        return str(self.sim / "genome.fa")

    @property
    def markers(self) -> str:
        return str(self.sim / "markers.tsv")

    def copy_markers(self, edit=None, peak_text: str | bytes | None = None, gz=None) -> Path:
        """A copy of the simulated markers.tsv in tmp (absolute peak paths), ``edit``ed
        (a function of its lines); ``peak_text``: the first marker's peak file replaced."""
        lines = (self.sim / "markers.tsv").read_text().splitlines()
        head = lines[0].split("\t")
        col = head.index("path")
        rows = [line.split("\t") for line in lines[1:]]
        for r in rows:
            r[col] = str((self.sim / r[col]).resolve())
        if peak_text is not None:
            name = "peaks.bed.gz" if gz else "peaks.bed"
            p = self.tmp / name
            data = peak_text.encode() if isinstance(peak_text, str) else peak_text
            if gz == "gzip":
                data = gzip.compress(data)
            p.write_bytes(data)
            rows[0][col] = str(p)
        lines = ["\t".join(head)] + ["\t".join(r) for r in rows]
        if edit is not None:
            lines = edit(lines)
        out = self.tmp / "markers.tsv"
        out.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
        return out

    def summary(self, *more) -> list[str]:
        return ["data", "summary", "-g", self.fa, "-m", self.markers, "--window-len", "2000", *more]

    def train(self, out: Path | None = None, *more) -> list[str]:
        return train_args(self.sim, out or self.tmp / "run", "--max-steps", "1", *more)

    def a_file(self, name: str = "file.txt") -> Path:
        p = self.tmp / name
        p.write_text("not a folder\n")
        return p


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _col(lines: list[str], name: str, value: str, row: int = 1) -> list[str]:
    head = lines[0].split("\t")
    cells = lines[row].split("\t")
    while len(cells) < len(head):
        cells.append("")
    cells[head.index(name)] = value
    lines[row] = "\t".join(cells)
    return lines


# --- the cases ---------------------------------------------------------------------------------
def c_sim(*more, culprit):
    def setup(env: Env) -> Case:
        out = env.tmp / "sim"
        return Case(["simulate", "--out", str(out), "--chrom-len", "20000", *more], culprit, [out])

    return setup


def c_sim_out_file(env):
    f = env.a_file()
    return Case(["simulate", "--out", str(f), "--chrom-len", "20000"], [str(f)], unchanged=[f])


def c_sim_parent_file(env):
    f = env.a_file()
    return Case(["simulate", "--out", str(f / "sim"), "--chrom-len", "20000"], [str(f)])


def c_summary(*more, culprit):
    return lambda env: Case(env.summary(*more), culprit)


def c_summary_missing(which):
    def setup(env):
        args = env.summary()
        i = args.index(which)
        args[i + 1] = str(env.tmp / "missing.file")
        return Case(args, ["missing.file"])

    return setup


def c_markers(edit=None, culprit=(), peak_text=None, gz=None, extra=()):
    """data summary with a broken markers.tsv (or peak file); the error names ``culprit``
    (a callable of the env gives words only known then)."""

    def setup(env):
        m = env.copy_markers(edit, peak_text=peak_text, gz=gz)
        words = culprit(env, m) if callable(culprit) else list(culprit)
        args = ["data", "summary", "-g", env.fa, "-m", str(m), "--window-len", "2000", *extra]
        return Case(args, words)

    return setup


def _binary_manifest(env):
    m = env.tmp / "markers.tsv"
    m.write_bytes(b"name\tcategory\tpath\n\xff\xfe\x00\x81garbage\tTFBS\tx.bed\n")
    return Case(["data", "summary", "-g", env.fa, "-m", str(m)], ["markers.tsv"])


def _corrupt_gz(env):
    text = "".join(f"chr1\t{i * 100}\t{i * 100 + 50}\n" for i in range(2000))
    data = bytearray(gzip.compress(text.encode()))
    data[len(data) // 2] ^= 0xFF  # a flipped byte: the CRC (or the inflate) fails
    m = env.copy_markers(peak_text=bytes(data), gz=True)
    return Case(["data", "summary", "-g", env.fa, "-m", str(m)], ["peaks.bed.gz"])


def _truncated_gz(env):
    text = "".join(f"chr1\t{i * 100}\t{i * 100 + 50}\n" for i in range(2000))
    data = gzip.compress(text.encode())
    m = env.copy_markers(peak_text=data[: len(data) // 2], gz=True)
    return Case(["data", "summary", "-g", env.fa, "-m", str(m)], ["peaks.bed.gz"])


def _dup_fasta(env):
    fa = write_fasta(env.tmp / "dup.fa", {"chr1": "ACGT" * 100})
    with open(fa, "a") as fh:
        fh.write(">chr1\nTTTT\n")
    return Case(["data", "summary", "-g", str(fa), "-m", env.markers], ["dup.fa", "chr1"])


def _past_end_strict(env):
    m = env.copy_markers(peak_text="chr1\t100\t200\nchr1\t59990\t70000\n")
    args = ["data", "summary", "-g", env.fa, "-m", str(m), "--window-len", "2000", "--strict"]
    return Case(args, ["peaks.bed", "line 2", "chr1"])


def c_train(*more, culprit, absent_run=True):
    def setup(env):
        out = env.tmp / "run"
        return Case(env.train(out, *more), culprit, [out / "last.pt"] if absent_run else [])

    return setup


def _train_out_file(env):
    f = env.a_file("run")
    return Case(env.train(f), [str(f)], unchanged=[f])


def _train_parent_file(env):
    f = env.a_file()
    return Case(env.train(f / "run"), [str(f)])


def _train_existing_run(env):
    out = env.tmp / "run"
    shutil.copytree(env.run, out)
    return Case(env.train(out), [str(out)], unchanged=[out / "last.pt"])


def c_resume(*more, culprit):
    def setup(env):
        out = env.tmp / "run"
        shutil.copytree(env.run, out)
        return Case(["train", "--resume", str(out), *more], culprit, unchanged=[out / "last.pt"])

    return setup


def _resume_nothing(env):
    out = env.tmp / "empty"
    out.mkdir()
    return Case(["train", "--resume", str(out)], [str(out), "last.pt"])


def c_eval(*more, culprit):
    def setup(env):
        out = env.tmp / "report"
        return Case(["evaluate", str(env.run), "--out", str(out), *more], culprit, [out])

    return setup


def _eval_missing_run(env):
    return Case(["evaluate", str(env.tmp / "norun")], ["norun"])


def _garbage_checkpoint(env):
    ck = env.tmp / "model.pt"
    ck.write_bytes(b"\x80\x04not a checkpoint at all")
    return Case(["evaluate", str(ck)], ["model.pt"])


def _checkpoint_missing_keys(env):
    raw = torch.load(env.run / "last.pt", weights_only=True)
    del raw["genome"]
    ck = env.tmp / "broken.pt"
    torch.save(raw, ck)
    return Case(["evaluate", str(ck)], ["broken.pt", "genome"])


def _checkpoint_missing_inner_key(env):
    raw = torch.load(env.run / "last.pt", weights_only=True)
    del raw["genome"]["chrom_sizes"]
    ck = env.tmp / "broken.pt"
    torch.save(raw, ck)
    return Case(["evaluate", str(ck)], ["broken.pt", "chrom_sizes"])


def _eval_out_file(env):
    f = env.a_file()
    return Case(["evaluate", str(env.run), "--out", str(f)], [str(f)], unchanged=[f])


def _predict_args(env, out, *more):
    return ["predict", str(env.run), "--chrom", "chr4", "--out", str(out), "--writers", "0", *more]


def c_predict(*more, culprit):
    def setup(env):
        out = env.tmp / "hub"
        return Case(_predict_args(env, out, *more), culprit, [out / "manifest.json"])

    return setup


def c_predict_into_hub(*more, culprit):
    """predict into the complete hub (a copy): refused before any track is rewritten."""

    def setup(env):
        hub = env.tmp / "hub"
        shutil.copytree(env.hub, hub)
        keep = [p for p in hub.rglob("*") if p.is_file()]
        return Case(_predict_args(env, hub, *more), culprit, unchanged=keep)

    return setup


def _predict_other_genome_hub(env):
    hub = env.tmp / "hub"
    shutil.copytree(env.hub, hub)
    man = json.loads((hub / "manifest.json").read_text())
    man["genome"]["chrom_sizes"] = [["chrX", 1000]]
    (hub / "manifest.json").write_text(json.dumps(man))
    keep = [p for p in hub.rglob("*") if p.is_file()]
    return Case(_predict_args(env, hub), ["manifest.json", "genome"], unchanged=keep)


def _predict_other_genome(env):
    fa = write_fasta(env.tmp / "other.fa", {"chr1": "ACGT" * 3000})
    out = env.tmp / "hub"
    return Case(_predict_args(env, out, "--genome", str(fa)), ["other.fa"], [out])


def _predict_out_file(env):
    f = env.a_file()
    return Case(_predict_args(env, f), [str(f)], unchanged=[f])


def _predict_colour(env):
    """A manifest colour that is not R,G,B, in the run's markers.tsv: named with its line
    before the scan (the checkpoint records the colour of each marker)."""
    raw = torch.load(env.run / "best.pt", weights_only=True)
    raw["markers"][0]["color"] = "red"
    ck = env.tmp / "red.pt"
    torch.save(raw, ck)
    out = env.tmp / "hub"
    args = ["predict", str(ck), "--chrom", "chr4", "--out", str(out), "--writers", "0"]
    return Case(args, ["red"], [out / "manifest.json"])


def _predict_full_disk(env, monkeypatch):
    """The disk fills while the tracks are written: one line naming a track and the cause,
    the complete hub's old files kept byte for byte, no temporaries left."""
    import errno
    import os

    hub = env.tmp / "hub"
    shutil.copytree(env.hub, hub)
    keep = [p for p in hub.rglob("*") if p.is_file()]
    real_replace = os.replace

    def full(src, dst):  # every rename of a finished temporary: the disk is full
        if str(dst).endswith(".bw"):
            raise OSError(errno.ENOSPC, "No space left on device", str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    return Case(_predict_args(env, hub, "--no-hub"), [".bw", "no space left"], unchanged=keep)


def c_saliency(*more, culprit):
    def setup(env):
        out = env.tmp / "sal"
        args = ["saliency", str(env.run), "--out", str(out), "--no-hub", *more]
        return Case(args, culprit, [out / "manifest.json"])

    return setup


def _saliency_out_file(env):
    f = env.a_file()
    args = ["saliency", str(env.run), "--region", "chr4:1-1000", "--out", str(f)]
    return Case(args, [str(f)], unchanged=[f])


def _vcf(env, body: str) -> Path:
    p = env.tmp / "v.vcf"
    p.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + body)
    return p


def c_variants(body, *more, culprit):
    def setup(env):
        vcf = _vcf(env, body)
        out = env.tmp / "scores.tsv"
        return Case(
            ["variants", str(env.run), "--vcf", str(vcf), "--out", str(out), *more], culprit, [out]
        )

    return setup


def _variants_missing_vcf(env):
    out = env.tmp / "scores.tsv"
    args = ["variants", str(env.run), "--vcf", str(env.tmp / "none.vcf"), "--out", str(out)]
    return Case(args, ["none.vcf"], [out])


def _variants_out_dir(env):
    vcf = _vcf(env, "chr4\t30000\t.\tA\tC\t.\t.\t.\n")
    d = env.tmp / "outdir"
    d.mkdir()
    return Case(["variants", str(env.run), "--vcf", str(vcf), "--out", str(d)], [str(d)])


def _variants_parent_file(env):
    vcf = _vcf(env, "chr4\t30000\t.\tA\tC\t.\t.\t.\n")
    f = env.a_file()
    return Case(["variants", str(env.run), "--vcf", str(vcf), "--out", str(f / "s.tsv")], [str(f)])


def _train_colour(env):
    m = env.copy_markers(lambda lines: _col(lines, "color", "red"))
    out = env.tmp / "run"
    args = env.train(out)
    args[args.index("--markers") + 1] = str(m)
    return Case(args, ["markers.tsv", "line 2", "red"], [out / "last.pt"])


def _train_past_end_strict(env):
    m = env.copy_markers(peak_text="chr1\t100\t200\nchr1\t59990\t70000\n")
    out = env.tmp / "run"
    args = env.train(out, "--strict")
    args[args.index("--markers") + 1] = str(m)
    return Case(args, ["peaks.bed", "line 2", "chr1"], [out / "last.pt"])


def _train_genome_missing(env):
    out = env.tmp / "run"
    args = env.train(out)
    args[args.index("--genome") + 1] = str(env.tmp / "none.fa")
    return Case(args, ["none.fa"], [out / "last.pt"])


def _hub_build_not_hub(env):
    d = env.tmp / "nothub"
    d.mkdir()
    return Case(["hub", "build", str(d)], ["nothub"], [d / "hub.txt"])


def c_hub_build(*more, culprit):
    def setup(env):
        hub = env.tmp / "hub"
        shutil.copytree(env.hub, hub)
        keep = [p for p in hub.rglob("*") if p.is_file() and p.suffix in (".txt", ".json")]
        return Case(["hub", "build", str(hub), *more], culprit, unchanged=keep)

    return setup


def _hub_build_other_genome(env):
    fa = write_fasta(env.tmp / "other.fa", {"chr1": "ACGT" * 3000})
    return c_hub_build("--genome", str(fa), culprit=["other.fa"])(env)


def _hub_build_missing_igv(env):
    return c_hub_build("--igv-js", str(env.tmp / "igv.min.js"), culprit=["igv.min.js"])(env)


def _hub_check_missing(env):
    return Case(["hub", "check", str(env.tmp / "nohub")], ["nohub"])


def _serve_missing(env):
    return Case(["serve", str(env.tmp / "nohub"), "--port", "0"], ["nohub"])


BAD_BED_LINE = "chr1\t100\t200\nchr1\tabc\t300\n"
CASES = [
    # simulate
    ("simulate-density-negative", c_sim("--site-density", "-1", culprit=["--site-density"])),
    ("simulate-density-huge", c_sim("--site-density", "1e9", culprit=["--site-density"])),
    ("simulate-seed-negative", c_sim("--seed", "-1", culprit=["--seed"])),
    ("simulate-n-chroms-0", c_sim("--n-chroms", "0", culprit=["--n-chroms"])),
    ("simulate-chrom-len-0", c_sim("--chrom-len", "0", culprit=["--chrom-len"])),
    ("simulate-n-markers-0", c_sim("--n-markers", "0", culprit=["--n-markers"])),
    ("simulate-motifs-missing", c_sim("--motifs", "/no/such/motifs.jaspar", culprit=["motifs.jaspar"])),
    ("simulate-out-is-a-file", c_sim_out_file),
    ("simulate-parent-is-a-file", c_sim_parent_file),
    # data summary: files
    ("summary-genome-missing", c_summary_missing("-g")),
    ("summary-markers-missing", c_summary_missing("-m")),
    ("fasta-duplicate-names", _dup_fasta),
    ("markers-binary", _binary_manifest),
    ("markers-colour-name", c_markers(lambda ls: _col(ls, "color", "red"), ["markers.tsv", "line 2", "red"])),
    ("markers-colour-range", c_markers(lambda ls: _col(ls, "color", "300,0,0"), ["markers.tsv", "line 2", "300"])),
    ("markers-colour-short", c_markers(lambda ls: _col(ls, "color", "10,20"), ["markers.tsv", "line 2"])),
    ("markers-category", c_markers(lambda ls: _col(ls, "category", "Enhancer"), ["markers.tsv", "line 2", "Enhancer"])),
    ("markers-duplicate-name", c_markers(lambda ls: _col(ls, "name", ls[2].split("\t")[0]), ["markers.tsv", "line 2"])),
    ("markers-empty-name", c_markers(lambda ls: _col(ls, "name", ""), ["markers.tsv", "line 2"])),
    ("markers-peaks-missing", c_markers(lambda ls: _col(ls, "path", "/no/such/peaks.bed"), ["markers.tsv", "peaks.bed"])),
    ("markers-no-path-column", c_markers(lambda ls: [x.split("\t")[0] + "\t" + x.split("\t")[1] for x in ls], ["markers.tsv", "path"])),
    ("markers-empty", c_markers(lambda ls: ls[:1], ["markers.tsv"])),
    ("bed-malformed-line", c_markers(peak_text=BAD_BED_LINE, culprit=["peaks.bed", "line 2"])),
    ("bed-start-after-end", c_markers(peak_text="chr1\t500\t100\n", culprit=["peaks.bed", "line 1"])),
    ("bed-binary", c_markers(peak_text=b"chr1\t1\t5\n\xff\xfe\x00garbage\n", culprit=["peaks.bed", "line 2"])),
    ("bed-gz-corrupt", _corrupt_gz),
    ("bed-gz-truncated", _truncated_gz),
    ("bed-past-end-strict", _past_end_strict),
    # data summary: options
    ("summary-chroms-unknown", c_summary("--chroms", "chrZ", culprit=["chrZ"])),
    ("summary-valid-chroms-unknown", c_summary("--valid-chroms", "chrZ", culprit=["chrZ"])),
    ("summary-window-len-0", c_summary("--window-len", "0", culprit=["--window-len"])),
    ("summary-max-n", c_summary("--max-n", "2", culprit=["--max-n"])),
    ("summary-split", c_summary("--split", "bogus", culprit=["--split"])),
    ("summary-task", c_summary("--task", "bogus", culprit=["bogus"])),
    ("summary-exclude-missing", c_summary("--exclude", "/no/such/excl.bed", culprit=["excl.bed"])),
    ("summary-seed-negative", c_summary("--seed", "-1", culprit=["--seed"])),
    # train: options
    ("train-lr-nan", c_train("--lr", "nan", culprit=["--lr"])),
    ("train-lr-negative", c_train("--lr", "-1", culprit=["--lr"])),
    ("train-lr-inf", c_train("--lr", "inf", culprit=["--lr"])),
    ("train-workers-negative", c_train("--workers", "-1", culprit=["--workers"])),
    ("train-patience-negative", c_train("--patience", "-1", culprit=["--patience"])),
    ("train-pos-weight-negative", c_train("--pos-weight", "-1", culprit=["--pos-weight"])),
    ("train-eval-every-negative", c_train("--eval-every", "-1", culprit=["--eval-every"])),
    ("train-max-eval-batches-negative", c_train("--max-eval-batches", "-1", culprit=["--max-eval-batches"])),
    ("train-seed-negative", c_train("--seed", "-1", culprit=["--seed"])),
    ("train-batch-size-0", c_train("--batch-size", "0", culprit=["--batch-size"])),
    ("train-nothing-to-do", c_train("--max-steps", "0", "--epochs", "0", culprit=["--epochs"])),
    ("train-warmup-negative", c_train("--warmup", "-1", culprit=["--warmup"])),
    ("train-shift-negative", c_train("--shift", "-5", culprit=["--shift"])),
    ("train-lr-decay", c_train("--lr-decay", "bogus", culprit=["--lr-decay"])),
    ("train-marker-weighting", c_train("--marker-weighting", "bogus", culprit=["bogus"])),
    ("train-model-unknown", c_train("--model", "bogus", culprit=["bogus"])),
    ("train-hparam-unknown", c_train("--hparam", "bogus=1", culprit=["bogus"])),
    ("train-threads-negative", c_train("--threads", "-1", culprit=["--threads"])),
    ("train-precision", c_train("--precision", "bogus", culprit=["bogus"])),
    ("train-device", c_train("--device", "bogus", culprit=["bogus"])),
    ("train-genome-missing", _train_genome_missing),
    ("train-markers-colour", _train_colour),
    ("train-past-end-strict", _train_past_end_strict),
    ("train-out-is-a-file", _train_out_file),
    ("train-parent-is-a-file", _train_parent_file),
    ("train-existing-run", _train_existing_run),
    ("resume-other-seed", c_resume("--seed", "7", culprit=["--seed 7"])),
    ("resume-other-batch-size", c_resume("--batch-size", "2", culprit=["--batch-size 2"])),
    ("resume-other-lr", c_resume("--lr", "0.1", culprit=["--lr 0.1"])),
    ("resume-other-model", c_resume("--model", "cnn3", culprit=["--model cnn3"])),
    ("resume-nothing", _resume_nothing),
    # evaluate
    ("evaluate-checkpoint-bogus", c_eval("--checkpoint", "bogus", culprit=["--checkpoint", "bogus"])),
    ("evaluate-checkpoint-missing", c_eval("--checkpoint", "/no/such/model.pt", culprit=["model.pt"])),
    ("evaluate-split", c_eval("--split", "bogus", culprit=["bogus"])),
    ("evaluate-batch-size-0", c_eval("--batch-size", "0", culprit=["--batch-size"])),
    ("evaluate-workers-negative", c_eval("--workers", "-1", culprit=["--workers"])),
    ("evaluate-run-missing", _eval_missing_run),
    ("evaluate-garbage-checkpoint", _garbage_checkpoint),
    ("evaluate-checkpoint-missing-keys", _checkpoint_missing_keys),
    ("evaluate-checkpoint-missing-inner-key", _checkpoint_missing_inner_key),
    ("evaluate-out-is-a-file", _eval_out_file),
    # predict
    ("predict-chrom-unknown", c_predict("--chrom", "chrZ", culprit=["chrZ"])),
    ("predict-checkpoint-bogus", c_predict("--checkpoint", "bogus", culprit=["--checkpoint"])),
    ("predict-bin-size-0", c_predict("--bin-size", "0", culprit=["--bin-size"])),
    ("predict-scan-window-negative", c_predict("--scan-window", "-5", culprit=["--scan-window"])),
    ("predict-writers-negative", c_predict("--writers", "-1", culprit=["--writers"])),
    ("predict-marker-unknown", c_predict("--marker", "NOPE", culprit=["NOPE"])),
    ("predict-category-unknown", c_predict("--category", "Enhancer", culprit=["Enhancer"])),
    ("predict-precision", c_predict("--precision", "bogus", culprit=["bogus"])),
    ("predict-genome-name-quote", c_predict("--genome-name", 'hg19 "x"', culprit=["--genome-name"])),
    ("predict-threads-negative", c_predict("--threads", "-1", culprit=["--threads"])),
    ("predict-batch-size-0", c_predict("--batch-size", "0", culprit=["--batch-size"])),
    ("predict-other-genome", _predict_other_genome),
    ("predict-out-is-a-file", _predict_out_file),
    ("predict-into-hub-of-other-genome", _predict_other_genome_hub),
    ("predict-into-hub-genome-name-quote", c_predict_into_hub("--genome-name", 'hg19 "x"', culprit=["--genome-name"])),
    ("predict-colour", _predict_colour),
    # saliency
    ("saliency-region-malformed", c_saliency("--region", "chr4:abc", culprit=["chr4:abc"])),
    ("saliency-region-past-end", c_saliency("--region", "chr4:59000-70000", culprit=["chr4"])),
    ("saliency-region-unknown-chrom", c_saliency("--region", "chrZ:1-100", culprit=["chrZ"])),
    ("saliency-reduce", c_saliency("--region", "chr4:1-1000", "--reduce", "bogus", culprit=["bogus"])),
    ("saliency-out-is-a-file", _saliency_out_file),
    ("saliency-marker-unknown", c_saliency("--region", "chr4:1-1000", "--marker", "NOPE", culprit=["NOPE"])),
    ("saliency-bin-size-0", c_saliency("--region", "chr4:1-1000", "--bin-size", "0", culprit=["--bin-size"])),
    # variants
    ("variants-vcf-missing", _variants_missing_vcf),
    ("variants-out-is-a-folder", _variants_out_dir),
    ("variants-parent-is-a-file", _variants_parent_file),
    ("variants-marker-unknown", c_variants("chr4\t30000\t.\tA\tC\t.\t.\t.\n", "--marker", "NOPE", culprit=["NOPE"])),
    ("variants-vcf-malformed", c_variants("chr4\tabc\t.\tA\tC\t.\t.\t.\n", culprit=["v.vcf"])),
    ("variants-radius-negative", c_variants("chr4\t30000\t.\tA\tC\t.\t.\t.\n", "--radius", "-1", culprit=["--radius"])),
    # hubs and serve
    ("hub-build-not-a-hub", _hub_build_not_hub),
    ("hub-build-other-genome", _hub_build_other_genome),
    ("hub-build-igv-js-missing", _hub_build_missing_igv),
    ("hub-build-bad-email", c_hub_build("--email", "not an address", culprit=["--email"])),
    ("hub-build-genome-name-quote", c_hub_build("--genome-name", 'hg19 "x"', culprit=["--genome-name"])),
    ("hub-check-missing", _hub_check_missing),
    ("serve-missing", _serve_missing),
    ("serve-max-connections", lambda env: Case(["serve", str(env.hub), "--max-connections", "0"], ["--max-connections"])),
    ("serve-timeout", lambda env: Case(["serve", str(env.hub), "--timeout", "nan"], ["--timeout"])),
    ("serve-port", lambda env: Case(["serve", str(env.hub), "--port", "99999"], ["99999"])),
]  # fmt: skip


# --- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_run(trained_run, tmp_path_factory):
    """The trained run with a best.pt (3 steps validate nothing; evaluate and predict take
    best, so the run gets one, a copy of last.pt)."""
    run = tmp_path_factory.mktemp("bad_input") / "run"
    shutil.copytree(trained_run, run)
    if not (run / "best.pt").is_file():
        shutil.copy(run / "last.pt", run / "best.pt")
    return run


@pytest.fixture(scope="module")
def good_hub(good_run, tmp_path_factory):
    hub = tmp_path_factory.mktemp("bad_input_hub") / "hub"
    r = runner.invoke(app, ["predict", str(good_run), "--chrom", "chr4", "--out", str(hub),
                            "--writers", "0"])  # fmt: skip
    assert r.exit_code == 0, r.output
    return hub


def _names(line: str, word: str) -> bool:
    """``word`` is in the error line; ``line N`` may also be written ``FILE:N:``."""
    if word.startswith("line "):
        n = word.split()[1]
        return word in line or f":{n}:" in line or f", line {n}" in line
    return word in line


def _hidden_temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_file() and ".tmp" in p.name]


@pytest.mark.parametrize("setup", [c for _, c in CASES], ids=[i for i, _ in CASES])
def test_bad_input(setup, sim_small, good_run, good_hub, tmp_path, monkeypatch):
    env = Env(sim=sim_small, run=good_run, hub=good_hub, tmp=tmp_path)
    before_run = {p: _sha(p) for p in good_run.rglob("*.pt")}
    _refused(setup(env), tmp_path)
    assert {p: _sha(p) for p in good_run.rglob("*.pt")} == before_run


def _refused(case: Case, tmp_path: Path) -> None:
    """Run ``case``: exit != 0 (``case.code`` when given), one error line naming the culprit,
    no traceback, nothing written that should not be, old files kept, no temporaries left."""
    sums = {p: _sha(p) for p in case.unchanged}
    r = runner.invoke(app, case.args)
    out = r.output
    assert r.exit_code != 0, out
    if case.code is not None:
        assert r.exit_code == case.code, out
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    for word in case.culprit:
        assert _names(errors[0], word), f"{word!r} not in {errors[0]!r}"
    for p in case.absent:
        assert not p.exists(), f"{p} written"
    for p, h in sums.items():
        assert p.exists() and _sha(p) == h, f"{p} changed"
    assert not _hidden_temps(tmp_path), _hidden_temps(tmp_path)


def test_there_are_enough_cases():
    assert len(CASES) >= 60
    assert len({i for i, _ in CASES}) == len(CASES)


def test_predict_full_disk_keeps_the_hub(sim_small, good_run, good_hub, tmp_path, monkeypatch):
    """The disk fills as the tracks are renamed into place (ENOSPC raised by hand, so the test
    runs without root; tests/test_write_safety.py fills a real tmpfs): one line naming a track
    and the cause, every old file of the hub kept byte for byte, no temporaries left."""
    env = Env(sim=sim_small, run=good_run, hub=good_hub, tmp=tmp_path)
    case = _predict_full_disk(env, monkeypatch)
    case.code = 1
    _refused(case, tmp_path)
