"""The command line's options: each declared once, one name for one thing, old spellings that
still work (with one warning line), help that shows flags as flags; and the one shape of
counted progress reports, ``progress(done, total, label)``."""

from __future__ import annotations

import ast
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from regtracks.cli import app
from regtracks.cli.common import rename_args
from regtracks.cli.options import names

PKG = Path(__file__).resolve().parents[1] / "regtracks"
CLI = PKG / "cli"
runner = CliRunner()

# spellings declared twice on purpose: data's --split (chrom | random: how windows are split)
# and evaluate's --split (valid | test: which split is scored); tests pin both
TWO_MEANINGS = {"--split": 2}


def _declarations() -> dict[str, list[str]]:
    """Every option spelling in cli/*.py -> the files whose typer.Option(...) / option(...) call
    declares it."""
    found: dict[str, list[str]] = {}
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name not in ("Option", "option"):
                continue
            for arg in node.args:
                if isinstance(arg, ast.Constant) and str(arg.value).startswith("-"):
                    for spelling in str(arg.value).split("/"):
                        found.setdefault(spelling, []).append(path.name)
    return found


def test_every_option_is_declared_once_in_options_py():
    found = _declarations()
    assert found["--device"] == ["options.py"]  # was declared 7 times
    assert len(found["--precision"]) == len(found["--checkpoint"]) == 1
    for spelling, where in found.items():
        assert len(where) == TWO_MEANINGS.get(spelling, 1), (spelling, where)
        if spelling != "--version":  # the root callback's own flag
            assert set(where) == {"options.py"}, (spelling, where)
    # one name, one thing: the new names exist, the overloaded ones are gone
    for spelling in ("--marker", "--scan-window", "--n-markers", "--n-chroms", "--max-steps"):
        assert spelling in found
    assert "--steps" not in found  # demo: --max-steps, as train and benchmark


def _all_commands():
    group = typer.main.get_command(app)
    ctx = group.make_context("regtracks", ["--help"], resilient_parsing=True)
    todo = [([], group, ctx)]
    while todo:
        path, grp, ctx = todo.pop()
        for name in grp.list_commands(ctx):
            cmd = grp.get_command(ctx, name)
            if hasattr(cmd, "list_commands"):
                todo.append(([*path, name], cmd, ctx))
            else:
                yield [*path, name], cmd


def test_one_spelling_one_type_across_commands():
    """An option spelled the same takes the same kind of value in every command."""
    kinds: dict[str, set] = {}
    for _, cmd in _all_commands():
        for p in cmd.params:
            kind = p.bare_type() if hasattr(p, "bare_type") else p.type.name  # typer / click
            for spelling in p.opts:
                if spelling.startswith("--") and spelling not in TWO_MEANINGS:
                    kinds.setdefault(spelling, set()).add((p.is_flag, p.multiple, kind))
    mixed = {s: k for s, k in kinds.items() if len(k) > 1}
    assert not mixed, mixed
    [(flag, multiple, _)] = kinds["--marker"]  # names, repeatable
    assert not flag and multiple
    [(flag, multiple, manifest)] = kinds["--markers"]  # only ever the manifest now
    assert not flag and not multiple and manifest.lower() == "path"


# --- old spellings ---------------------------------------------------------------------------
P = ["R", "-c", "c1", "-o", "o"]  # predict RUN --chrom c1 --out o
S = ["R", "-r", "c1", "-o", "o"]  # saliency RUN --region c1 --out o
RENAMED = [
    # command, its arguments with an old spelling, old -> new, the value of the new option
    (["predict"], [*P, "--markers", "A,B"], "--markers", "--marker", ("A,B",)),
    (["predict"], [*P, "--window-len", "9000"], "--window-len", "--scan-window", 9000),
    (["predict"], [*P, "--window-len=9000"], "--window-len", "--scan-window", 9000),
    (["saliency"], [*S, "--window-len", "9000"], "--window-len", "--scan-window", 9000),
    (["saliency"], [*S, "-m", "CTCF"], "-m", "--marker", ("CTCF",)),
    (["saliency"], [*S, "-mCTCF"], "-m", "--marker", ("CTCF",)),
    (["variants"], ["R", "--vcf", "v", "-o", "o", "-m", "SP1"], "-m", "--marker", ("SP1",)),
    (["simulate"], ["-o", "o", "--markers", "7"], "--markers", "--n-markers", 7),
    (["simulate"], ["-o", "o", "--chroms", "2"], "--chroms", "--n-chroms", 2),
    (["demo"], ["--steps", "5"], "--steps", "--max-steps", 5),
]


def _parse(path: list[str], args: list[str]):
    """The command's context for ``args``: parsed (old spellings mapped), not run."""
    group = typer.main.get_command(app)
    ctx = group.make_context("regtracks", [*path, *args])
    cmd = group
    for name in path:
        cmd = cmd.get_command(ctx, name)
    return cmd.make_context(path[-1], list(args), parent=ctx)


def _param(ctx, new: str):
    [p] = [p for p in ctx.command.params if new in p.opts]
    got = ctx.params[p.name]
    return tuple(got) if isinstance(got, list) else got


@pytest.mark.parametrize("path,args,old,new,value", RENAMED)
def test_old_spelling_maps_to_the_new_option_and_warns(path, args, old, new, value, capsys):
    assert _param(_parse(path, args), new) == value
    assert capsys.readouterr().err.strip().splitlines() == [
        f"warning: {old} is deprecated, use {new}"
    ]


@pytest.mark.parametrize(
    "path,args,param,value",
    [
        (["predict"], ["R", "-c", "chr1", "-o", "o", "--marker", "A,B"], "marker", ("A,B",)),
        (["predict"], ["R", "-c", "chr1", "-o", "o", "--scan-window", "9000"], "scan_window", 9000),
        (["saliency"], ["R", "-r", "chr1", "-o", "o", "--marker", "A"], "marker", ("A",)),
        (["variants"], ["R", "--vcf", "v", "-o", "o", "--marker", "A"], "marker", ("A",)),
        (["simulate"], ["-o", "o", "--n-markers", "7"], "n_markers", 7),
        (["simulate"], ["-o", "o", "--n-chroms", "2"], "n_chroms", 2),
        (["demo"], ["--max-steps", "5"], "max_steps", 5),
        # the manifest keeps -m / --markers where it is the manifest
        (["train"], ["-g", "g.fa", "-m", "m.tsv", "-o", "o"], "markers", Path("m.tsv")),
        (["data", "summary"], ["-g", "g.fa", "--markers", "m.tsv"], "markers", Path("m.tsv")),
        (["train"], ["-g", "g", "-m", "m", "-o", "o", "--window-len", "900"], "window_len", 900),
    ],
)
def test_new_spelling_works_without_a_warning(path, args, param, value, capsys):
    got = _parse(path, args).params[param]
    assert (tuple(got) if isinstance(got, list) else got) == value
    assert capsys.readouterr().err == ""
    assert "warning" not in runner.invoke(app, [*path, *args, "--help"]).stderr


def test_rename_args_leaves_values_and_the_rest_alone():
    renamed = {"--markers": "--marker", "-m": "--marker"}
    args, met = rename_args(["--markers", "a", "--out", "x", "--", "--markers"], renamed)
    assert args == ["--marker", "a", "--out", "x", "--", "--markers"] and met == ["--markers"]
    args, met = rename_args(["--markers=a", "-mb", "--markers", "c", "--marker-x"], renamed)
    assert args == ["--marker=a", "--marker=b", "--marker", "c", "--marker-x"]
    assert met == ["--markers", "-m"]  # each old spelling once


def test_old_spelling_end_to_end(tmp_path):
    """simulate --chroms / --markers: the genome has what was asked, one warning line each."""
    base = ["simulate", "--chrom-len", "60000"]
    r = runner.invoke(
        app, [*base, "--out", str(tmp_path / "old"), "--chroms", "1", "--markers", "3"]
    )
    assert r.exit_code == 0, r.output
    warn = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert warn == [
        "warning: --chroms is deprecated, use --n-chroms",
        "warning: --markers is deprecated, use --n-markers",
    ]
    info = json.loads((tmp_path / "old" / "simulation.json").read_text())
    assert len(info["chroms"]) == 1 and len(info["markers"]) == 3
    r = runner.invoke(
        app, [*base, "--out", str(tmp_path / "new"), "--n-chroms", "1", "--n-markers", "3"]
    )
    assert r.exit_code == 0 and "warning" not in r.stderr
    assert (tmp_path / "new" / "genome.fa").read_text() == (
        tmp_path / "old" / "genome.fa"
    ).read_text()


def test_renamed_options_are_listed_in_help():
    r = runner.invoke(app, ["predict", "--help"], terminal_width=200)
    text = " ".join(r.stdout.split())
    assert "--markers is now --marker" in text and "--window-len is now --scan-window" in text
    assert "--window-len" not in text.replace("--window-len is now", "")


# --- help quirks -----------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["predict"], ["evaluate"], ["hub", "check"], ["train"], []])
def test_help_shows_arguments_in_capitals_and_flags_without_a_type(argv):
    r = runner.invoke(app, [*argv, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    usage = next(ln for ln in r.stdout.splitlines() if "Usage:" in ln)
    assert "{" not in usage and "}" not in usage
    if argv and argv != ["train"]:
        assert re.search(r"\[OPTIONS\] (RUN|HUB)\b", usage), usage
    assert "<bool>" not in r.stdout
    if argv == ["predict"]:
        assert re.search(r"--rc-average\s+Average", r.stdout)


def test_bool_flags_take_no_value():
    r = runner.invoke(app, ["predict", "R", "-c", "chr1", "-o", "o", "--rc-average", "true"])
    assert r.exit_code == 2  # a flag, shown as one


def test_name_lists_are_repeatable_and_comma_lists():
    assert names(["chr1,chr2", " chr3 ", ""]) == ("chr1", "chr2", "chr3")
    assert names(None) is None and names([",", " "]) is None
    assert names("a,b") == ("a", "b")
    ctx = _parse(["predict"], ["R", "--chrom", "chr1,chr2", "-c", "chr3", "-o", "o"])
    assert names(ctx.params["chrom"]) == ("chr1", "chr2", "chr3")


def test_predict_takes_a_comma_list_of_chromosomes(trained_run, tmp_path):
    hub = tmp_path / "hub"
    r = runner.invoke(
        app,
        ["predict", str(trained_run), "--chrom", "chr1,chr3", "--marker", "DNase", "--no-hub"]
        + ["--out", str(hub), "--writers", "0"],
    )
    assert r.exit_code == 0, r.output
    man = json.loads((hub / "manifest.json").read_text())
    assert [t["chroms"] for t in man["tracks"] if t["kind"] == "prediction"] == [["chr1", "chr3"]]


# --- progress: one shape ---------------------------------------------------------------------
def _calls(name: str):
    """(file, call) for every plain call ``name(...)`` in the library (not the CLI)."""
    for path in sorted(PKG.rglob("*.py")):
        if CLI in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == name:
                yield path.relative_to(PKG), node


def test_counted_progress_has_three_arguments_and_events_one():
    progress = list(_calls("progress"))
    assert len(progress) >= 8
    bad = [f"{p}:{c.lineno}" for p, c in progress if len(c.args) != 3 or c.keywords]
    assert not bad, bad
    events = list(_calls("on_event"))
    assert events and all(len(c.args) == 1 and isinstance(c.args[0], ast.Dict) for _, c in events)


class Echo(torch.nn.Module):
    receptive_field = 1
    stride = 1
    n_markers = 2

    def forward(self, x):
        return torch.stack([x[:, 0], x[:, 1]], dim=1)


def test_scan_chromosome_reports_done_total_chrom(tmp_path):
    from regtracks.data.genome import Genome
    from regtracks.inference.scan import plan_scan, scan_chromosome
    from tests.conftest import write_fasta

    g = Genome(write_fasta(tmp_path / "g.fa", {"chrA": "ACGT" * 2_500}))
    calls = []
    plan = plan_scan(1, 1, bin_size=10, scan_window=1_000)
    for _ in scan_chromosome(
        Echo(), g, "chrA", plan=plan, n_markers=2, batch_size=3, progress=lambda *a: calls.append(a)
    ):
        pass
    assert calls and all(len(a) == 3 and a[1] == 10_000 and a[2] == "chrA" for a in calls)
    assert calls[-1][0] == 10_000 and [a[0] for a in calls] == sorted(a[0] for a in calls)


def test_evaluate_loader_reports_done_total_label():
    from regtracks.data.datasets import DenseBatch
    from regtracks.training.evaluate import evaluate_loader

    rng = np.random.default_rng(0)
    batches = [
        DenseBatch(
            codes=torch.from_numpy(rng.integers(1, 5, size=(2, 50)).astype(np.uint8)),
            index=torch.arange(2),
            y=torch.from_numpy(rng.integers(0, 2, size=(2, 2, 50)).astype(np.uint8)),
        )
        for _ in range(3)
    ]
    calls = []
    evaluate_loader(
        Echo(),
        batches,
        n_markers=2,
        device=torch.device("cpu"),
        progress=lambda *a: calls.append(a),
    )
    assert calls == [(1, 3, "batches"), (2, 3, "batches"), (3, 3, "batches")]


def test_cli_progress_bars_take_done_total_label():
    from regtracks.cli.common import in_kbp, progress_bar

    seen = []
    in_kbp(lambda *a: seen.append(a))(12_345, 60_000, "chr2")
    assert seen == [(12, 60, "chr2 (kbp)")]
    with progress_bar("x") as update:  # no terminal under pytest: a no-op of the same shape
        update(1, 2, "label")


def test_event_streams_are_on_event_and_old_keyword_warns():
    import inspect

    from regtracks._util import renamed_keyword
    from regtracks.demo import demo
    from regtracks.inference.scan import plan_scan
    from regtracks.training.benchmark import benchmark

    for fn in (demo, benchmark):
        assert "on_event" in inspect.signature(fn).parameters
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_keyword(1, None, caller="f", new="a", old="b") == 1
    with pytest.warns(DeprecationWarning, match=r"f\(b=\.\.\.\) is deprecated, use a="):
        assert renamed_keyword(None, 2, caller="f", new="a", old="b") == 2
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError):
        renamed_keyword(1, 2, caller="f", new="a", old="b")
    with pytest.warns(DeprecationWarning, match="scan_window"):
        old = plan_scan(1, 1, bin_size=10, window_len=1_000)
    assert old == plan_scan(1, 1, bin_size=10, scan_window=1_000)


# --- train --resume RUN and the time left --------------------------------------------------------
def test_a_flag_that_takes_a_value_hands_it_to_its_option():
    from regtracks.cli.common import flag_value

    opts = ["--out", "-o"]
    assert flag_value(["--resume", "r", "--lr", "1"], "--resume", opts) == [
        "--resume", "--out", "r", "--lr", "1"
    ]  # fmt: skip
    assert flag_value(["--resume=r"], "--resume", opts) == ["--resume", "--out", "r"]
    for bare in (["-o", "r", "--resume"], ["--resume", "-o", "r"], ["--resume", "--", "x"]):
        assert flag_value(bare, "--resume", opts) == bare  # the old spelling: a flag
    with pytest.raises(typer.Exit) as exc:
        flag_value(["--resume", "r", "-o", "s"], "--resume", opts)
    assert exc.value.exit_code == 2
    ctx = _parse(["train"], ["--resume", "r", "--max-steps", "9"])
    assert ctx.params["resume"] is True and ctx.params["out"] == Path("r")
    assert ctx.params["max_steps"] == 9 and ctx.params["genome"] is None


def test_time_left_from_the_mean_pace():
    from regtracks.cli.common import hms, time_left

    assert time_left(10.0, 5, 20) == 30.0  # 15 more at 2 s each
    assert time_left(10.0, 0, 20) is None and time_left(0.0, 5, 20) is None
    assert time_left(10.0, 5, None) is None  # unknown total: the elapsed time alone
    assert hms(0.2) == "0:00:01" and hms(3725) == "1:02:05"


def test_progress_shows_the_time_left_after_one_update(monkeypatch):
    import io

    from rich.console import Console

    from regtracks.cli.common import rich_progress

    bar = rich_progress("info", console=Console(file=io.StringIO(), force_terminal=True))
    task = bar.add_task("train", total=100, completed=10, done_before=10, info="")
    column, t = bar.columns[-1], bar._tasks[task]
    assert column.render(t).plain == ""  # nothing done since the start: no pace yet
    monkeypatch.setattr(type(t), "elapsed", property(lambda self: 9.0))
    bar.update(task, completed=40)  # 30 steps in 9 s (the resumed run's 10 not counted)
    assert column.render(t).plain == "0:00:18 left"
    bar.update(task, completed=5)  # a count that falls: a new stage, a fresh pace
    assert column.render(t).plain == ""
