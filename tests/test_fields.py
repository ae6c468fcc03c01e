"""Empirical receptive fields (`regtracks receptive-field`) and the paper's Figure 2
(`regtracks figure2`): a linear convolution's gradient profile equals its weights' norms by
hand, reaches exactly the nominal half-width and is zero beyond; a dilated model spreads its
gradient farther than CNN7; the commands print, write and fail in one line."""

import importlib.util
import inspect
import json
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from regtracks.checkpoint import load_checkpoint
from regtracks.cli import app
from regtracks.inference import fields
from regtracks.inference.fields import ReceptiveField, gradient_profile
from regtracks.models import get_model
from tests.test_saliency import LinearConv

runner = CliRunner()
HAS_MPL = importlib.util.find_spec("matplotlib") is not None
needs_mpl = pytest.mark.skipif(not HAS_MPL, reason="needs matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


def _random_codes(rng, n, length):
    codes = rng.integers(1, 5, size=(n, length)).astype(np.uint8)
    codes[rng.random((n, length)) < 0.05] = 0  # some N
    return codes


@pytest.mark.parametrize("k", [21, 20])
def test_linear_profile_by_hand(k):
    """A convolution of width k: d logit_m(p) / d x[:, p + j - left] = w[m, :, j] whatever the
    input, so the profile is the weights' norms by distance; its extent is k // 2 (the
    nominal half-width; an even width reaches one base farther on the right) and it is
    exactly zero beyond."""
    torch.manual_seed(0)
    model = LinearConv(3, k)
    w = model.conv.weight.detach().numpy().astype(np.float64)
    rng = np.random.default_rng(1)
    n, length, max_d = 7, 80, 30
    codes = _random_codes(rng, n, length)
    pos = rng.integers(max_d, length - max_d, size=n)
    mk = rng.integers(0, 3, size=n)
    got = gradient_profile(model, codes, pos, mk, max_distance=max_d, batch_size=3)
    want = np.zeros(max_d + 1)
    for m in mk:
        for j in range(k):
            want[abs(j - model.left)] += np.linalg.norm(w[m, :, j])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    res = ReceptiveField(model="linear", receptive_field=k, stride=1, max_distance=max_d,
                         profile=got / n, samples=n)  # fmt: skip
    assert res.half_width == k // 2
    assert res.extent == res.distance(1.0) == k // 2
    assert (res.profile[k // 2 + 1 :] == 0).all() and res.profile[k // 2] > 0
    assert res.d50 <= res.d90 <= res.extent
    assert res.cumulative[-1] == pytest.approx(1.0)
    assert model.training and all(p.requires_grad for p in model.parameters())  # restored


def test_mass_distances_by_hand():
    res = ReceptiveField(model="m", receptive_field=None, stride=1, max_distance=5,
                         profile=np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0]), samples=1)  # fmt: skip
    assert (res.d50, res.d90, res.extent) == (1, 3, 3)  # 2/4 within 1, 4/4 within 3
    assert res.half_width is None
    np.testing.assert_allclose(res.per_base, [1.0, 0.5, 0.5, 0.5, 0.0, 0.0])
    flat = ReceptiveField(model="m", receptive_field=9, stride=1, max_distance=3,
                          profile=np.zeros(4), samples=1)  # fmt: skip
    assert flat.d50 is flat.d90 is flat.extent is None  # no gradient: no distance
    d = res.as_dict()
    assert d["d90"] == 3 and d["profile"][0] == 1.0 and json.dumps(d)


def test_dilated_reaches_farther_than_cnn7():
    """Untrained, seeded: the dilated model's 90 % distance is larger than CNN7's, and each
    extent stays inside its declared field."""
    rng = np.random.default_rng(2)
    out = {}
    for name, hp in (("cnn7", {}), ("dilated", {"f1": 8, "f2": 8, "f3": 8, "d_hidden": 8})):
        torch.manual_seed(4)
        model = get_model(name, n_markers=2, **hp).eval()
        rf, stride = model.receptive_field, model.stride
        max_d = -(-rf // stride) * stride
        length = 2 * max_d + stride
        n = 3
        codes = _random_codes(rng, n, length)
        pos = np.full(n, max_d + 3)
        prof = gradient_profile(model, codes, pos, np.zeros(n, int), max_distance=max_d)
        out[name] = ReceptiveField(model=name, receptive_field=rf, stride=stride,
                                   max_distance=max_d, profile=prof / n, samples=n)  # fmt: skip
        assert out[name].extent <= rf - 1
    assert out["dilated"].d90 > out["cnn7"].d90
    assert out["dilated"].extent > out["cnn7"].receptive_field


def test_cli_defaults_are_the_library_defaults():
    from regtracks.cli.figures import receptive_field

    p = inspect.signature(receptive_field).parameters
    assert p["samples"].default == fields.DEFAULT_FIELD_SAMPLES
    assert p["split"].default == fields.DEFAULT_FIELD_SPLIT
    assert p["seed"].default == fields.DEFAULT_FIELD_SEED
    assert p["batch_size"].default == fields.DEFAULT_FIELD_BATCH


def _field(run, *extra):
    r = runner.invoke(
        app,
        ["receptive-field", str(run), "--samples", "4", "--device", "cpu", *extra],
        env={"COLUMNS": "200"},
    )  # fmt: skip; a table unwrapped
    assert r.exit_code == 0, r.output
    return r


def test_cli_receptive_field_json_is_seeded(trained_run):
    a = json.loads(_field(trained_run, "--json").stdout)
    rf = load_checkpoint(trained_run / "best.pt").build_model().receptive_field
    assert a["receptive_field"] == rf and a["half_width"] == rf // 2 and a["split"] == "test"
    assert a["samples"] == 4 and sum(a["markers"].values()) == 4
    assert 0 <= a["d50"] <= a["d90"] <= a["extent"] <= min(a["max_distance"], rf - 1)
    assert len(a["profile"]) == a["max_distance"] + 1
    assert a["cumulative"][-1] == pytest.approx(1.0)
    b = json.loads(_field(trained_run, "--json").stdout)
    assert a["profile"] == b["profile"]  # same seed, same positions and markers
    c = json.loads(_field(trained_run, "--json", "--seed", "9", "--split", "valid").stdout)
    assert c["split"] == "valid" and c["profile"] != a["profile"]
    table = _field(trained_run, "--marker", "CTCF").stdout
    assert "half-width" in table and f"{rf:,} bp" in table


@needs_mpl
def test_cli_receptive_field_plot(trained_run, tmp_path):
    png = tmp_path / "figs" / "rf.png"
    r = _field(trained_run, "--plot", str(png))
    assert png.read_bytes()[:8] == PNG and "wrote the curve" in r.output
    assert not list(png.parent.glob(".*tmp*"))  # written atomically: no temporary left


@pytest.mark.parametrize(
    "args,message",
    [
        (["--samples", "0"], "--samples"),
        (["--split", "nope"], "--split"),
        (["--marker", "NOPE"], "NOPE"),
        (["--batch-size", "0"], "--batch-size"),
    ],
)
def test_cli_receptive_field_bad_input_one_line(trained_run, args, message):
    r = runner.invoke(app, ["receptive-field", str(trained_run), *args])
    assert r.exit_code == 1, r.output
    assert message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def _no_matplotlib(monkeypatch):
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, mod, None)  # import raises ImportError


def test_without_matplotlib_one_line_before_the_work(trained_run, tmp_path, monkeypatch):
    _no_matplotlib(monkeypatch)
    png = tmp_path / "f.png"
    for argv in (
        ["receptive-field", str(trained_run), "--plot", str(png)],
        ["figure2", str(trained_run), "--region", "chr2:20,001-21,000", "--marker", "DNase",
         "--out", str(png)],
    ):  # fmt: skip
        r = runner.invoke(app, argv)
        assert r.exit_code == 1
        assert "needs matplotlib" in r.output and "regtracks[plot]" in r.output
        assert len(r.output.strip().splitlines()) == 1
        assert not png.exists()


# --- figure2 -----------------------------------------------------------------------------------
def _peak(run, marker="DNase", chrom="chr2"):
    ck = load_checkpoint(run / "best.pt")
    ms = ck.marker_set()
    g = ck.open_genome()
    s, e = ms.read(g).per_marker[ms.index_of(marker)][chrom]
    i = int(np.searchsorted(s, 20_000))
    return int(s[i]), int(e[i]), s, e


@needs_mpl
def test_figure2_panels_are_the_saliency_norm_from_the_positives(trained_run, tmp_path):
    from regtracks.inference.figures import figure2

    s, e, _, _ = _peak(trained_run)
    start, end = s - 200, e + 200
    out = tmp_path / "fig2.png"
    res = figure2([trained_run, trained_run / "best.pt"], out,
                  region=f"chr2:{start + 1}-{end}", marker="DNase", device="cpu")  # fmt: skip
    assert out.read_bytes()[:8] == PNG and len(res.panels) == 2
    p, q = res.panels
    want = np.zeros(end - start, np.uint8)
    want[s - start : e - start] = 1  # blue: the peak's outputs, nothing else
    np.testing.assert_array_equal(p.targets, want)
    assert p.target == "positives" and p.n_targets == e - s
    rf = load_checkpoint(trained_run / "best.pt").build_model().receptive_field
    assert p.receptive_field == rf and f"receptive field {rf:,} bp" in p.label
    assert p.span[1] - p.span[0] == p.norm.size and (p.norm >= 0).all() and p.norm.max() > 0
    np.testing.assert_array_equal(p.norm, q.norm)  # the same run twice: the same panel
    # the norm is the saliency track's --reduce norm
    r = runner.invoke(app, ["saliency", str(trained_run), "--region", f"chr2:{start + 1}-{end}",
                            "--marker", "DNase", "--reduce", "norm", "--out",
                            str(tmp_path / "hub"), "--no-hub"])  # fmt: skip
    assert r.exit_code == 0, r.output
    import pyBigWig

    with pyBigWig.open(str(tmp_path / "hub" / "tracks" / "sal_DNase.bw")) as bw:
        track = np.array(bw.values("chr2", *p.span), dtype=np.float32)
    np.testing.assert_allclose(p.norm, track, rtol=1e-5, atol=1e-7)


@needs_mpl
def test_cli_figure2(trained_run, tmp_path):
    s, e, starts, ends = _peak(trained_run)
    out = tmp_path / "out" / "fig2.png"
    base = ["figure2", str(trained_run), str(trained_run), "--region", f"chr2:{s - 99}-{e + 100}",
            "--out", str(out), "--device", "cpu"]  # fmt: skip
    r = runner.invoke(app, [*base, "--marker", "DNase"])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == PNG and "2 panel(s)" in r.output
    assert not list(out.parent.glob(".*tmp*"))
    r = runner.invoke(app, [*base, "--marker", "DNase", "--target", "all"])
    assert r.exit_code == 0 and "--target all" in r.output
    # one marker only
    r = runner.invoke(app, [*base, "--marker", "DNase,SP1"])
    assert r.exit_code == 2 and "name one marker" in r.output
    # a region without a positive: one line, no figure
    gap = int(np.flatnonzero(starts[1:] - ends[:-1] > 400)[0])
    a = int(ends[gap]) + 100
    out.unlink()
    r = runner.invoke(app, ["figure2", str(trained_run), "--region", f"chr2:{a + 1}-{a + 200}",
                            "--marker", "DNase", "--out", str(out)])  # fmt: skip
    assert r.exit_code == 1 and "no positive labels of DNase" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()
    r = runner.invoke(app, ["figure2", str(trained_run), "--region", "chr2:1-100", "--marker",
                            "NOPE", "--out", str(out)])  # fmt: skip
    assert r.exit_code == 1 and "NOPE" in r.output and not out.exists()
