"""`regtracks benchmark`: every model trained and evaluated, tables written, resumable."""

import json

from typer.testing import CliRunner

from regtracks.cli import app
from regtracks.training.benchmark import grid_configs

runner = CliRunner()


def bench(sim, out, *extra):
    return runner.invoke(
        app,
        [
            "benchmark",
            "--genome",
            str(sim / "genome.fa"),
            "--markers",
            str(sim / "markers.tsv"),
            "--out",
            str(out),
            "--models",
            "cnn1,dilated",
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--window-len",
            "2000",
            "--device",
            "cpu",
            "--hparam",
            "f1=8",
            "--hparam",
            "dilated:f2=8",
            "--hparam",
            "dilated:f3=8",
            "--hparam",
            "d_hidden=8",
            *extra,
        ],
    )


def test_benchmark_tables_and_resume(sim_small, tmp_path):
    out = tmp_path / "bench"
    r = bench(sim_small, out)
    assert r.exit_code == 0, r.output
    table = json.loads((out / "table.json").read_text())
    assert [row["model"] for row in table["rows"]] == ["cnn1", "dilated"]
    for row in table["rows"]:
        assert set(row["valid"]) >= {"TFBS", "Histone", "DNase"}
        assert set(row["test"]) >= {"TFBS", "Histone", "DNase"}
        assert row["params"] > 0 and row["steps"] == 2
        assert set(row["test_by_rule"]) == {"local", "distal", "broad", "union"}
    assert table["rows"][1]["hparams"] == {"f1": 8, "f2": 8, "f3": 8, "d_hidden": 8}
    md = (out / "table.md").read_text()
    assert (
        "| Model | Layers | Type | Params | Valid TFBS |" in md
        and "| dilated | 7 | Dilated |" in md  # rates 1-81: five dilated layers (paper: 4)
    )
    done = out / "runs" / "dilated" / "d_hidden=8,f1=8,f2=8,f3=8" / "done.json"
    assert done.is_file()
    stamp = done.stat().st_mtime_ns
    r = bench(sim_small, out)
    assert r.exit_code == 0 and "finished earlier, kept" in r.stderr
    assert done.stat().st_mtime_ns == stamp


def test_grids_follow_the_papers_tables():
    assert grid_configs("dilated", "dense", "none") == [{}]
    small = grid_configs("cnn7", "dense", "small")
    assert len(small) == 4 and {c["lr"] for c in small} == {1e-3, 3e-3}
    paper = grid_configs("dilated", "dense", "paper")
    assert len(paper) == 3 * 2**6  # lr x {decay, dropout, f1, f2, f3, d_hidden}
    lstm = grid_configs("bilstm", "dense", "paper")
    assert {c["stride"] for c in lstm} == {10, 20, 50, 100} and len(
        lstm
    ) == 3 * 2 * 2 * 3 * 2 * 4 * 3
    assert "f2" not in grid_configs("cnn1", "dense", "paper")[0]  # cnn1 has no second layer
    seq = grid_configs("dilated6", "sequence", "paper")
    assert {c["kernel_width"] for c in seq} == {4, 8, 12}


def test_bad_model_name(sim_small, tmp_path):
    r = runner.invoke(
        app,
        [
            "benchmark",
            "--genome",
            str(sim_small / "genome.fa"),
            "--markers",
            str(sim_small / "markers.tsv"),
            "--out",
            str(tmp_path / "b"),
            "--models",
            "cnn1,danq",
        ],
    )
    assert r.exit_code == 1 and "danq" in r.stderr and "dense models" in r.stderr
