"""``regtracks models``: the table, the JSON list, bad options."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from regtracks.cli import app

runner = CliRunner()

DENSE = ["cnn1", "cnn3", "cnn7", "idcnn", "bilstm", "dilated"]
SEQUENCE = ["lr", "ff", "deepsea", "dilated3", "dilated6", "danq"]
PAPER_TABLE2 = {
    "cnn1": 137_187,
    "cnn3": 341_803,
    "cnn7": 656_363,
    "idcnn": 635_739,
    "bilstm": 764_395,
    "dilated": 631_263,
}


def test_models_json_919():
    res = runner.invoke(app, ["models", "--json", "--n-markers", "919"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    by_name = {r["name"]: r for r in rows}
    assert set(DENSE + SEQUENCE) <= set(by_name)
    for r in rows:
        assert list(r)[:5] == ["name", "task", "params", "receptive_field", "source"]
    for name, paper in PAPER_TABLE2.items():  # the published architectures: the paper presets
        published = by_name[name]["preset_params"].get("paper", by_name[name]["params"])
        assert abs(published - paper) / paper < 0.05
        assert by_name[name]["task"] == "dense" and by_name[name]["source"] == "builtin"
    assert by_name["dilated"]["receptive_field"] == 11_314  # about 11 kb
    assert by_name["cnn1"]["receptive_field"] == 10
    assert by_name["bilstm"]["receptive_field"] is None
    assert all(by_name[n]["task"] == "sequence" for n in SEQUENCE)
    assert by_name["lr"]["params"] == 4000 * 919 + 919


def test_models_task_filter_and_markers():
    res = runner.invoke(app, ["models", "--json", "--task", "sequence", "--n-markers", "10"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["name"] for r in rows][:6] == SEQUENCE
    assert {r["task"] for r in rows} == {"sequence"}
    assert rows[0]["params"] == 4000 * 10 + 10  # logistic regression with M = 10


def test_models_table():
    res = runner.invoke(app, ["models", "--task", "dense"], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    for name in DENSE:
        assert name in res.stdout
    assert "11,314 bp" in res.stdout and "whole input" in res.stdout
    assert "receptive field" in res.stdout and "deepsea" not in res.stdout


def test_models_bad_options():
    res = runner.invoke(app, ["models", "--task", "both"])
    assert res.exit_code == 1
    assert "task 'both'" in res.output and len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["models", "--n-markers", "0"])
    assert res.exit_code == 1 and "n_markers" in res.output


def test_models_broken_plugin_is_a_warning(monkeypatch):
    import importlib.metadata

    from regtracks.models import registry

    class EP:
        name, value = "graphy", "graphy_pkg"
        dist = type("D", (), {"name": "regtracks-graphy"})()

        def load(self):
            raise ImportError("No module named 'graphy_pkg'")

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [EP()])
    res = runner.invoke(app, ["models", "--json", "--task", "dense"])
    assert res.exit_code == 0
    assert [r["name"] for r in json.loads(res.stdout)] == DENSE
    assert "warning:" in res.stderr and "regtracks-graphy" in res.stderr
