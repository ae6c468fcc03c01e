"""The inference session: one margin rule (the scanner's) for predict, saliency and variants;
the common provenance record; the deprecated ``window_len`` keyword; no private imports."""

import ast
import dataclasses
import math
import warnings
from pathlib import Path

import pytest

from regtracks.inference.scan import plan_scan
from regtracks.inference.session import (
    InferenceSession,
    check_writable,
    open_session,
    scan_window_arg,
    track_name,
)

INFERENCE = Path(__file__).resolve().parents[1] / "regtracks" / "inference"


@pytest.fixture(scope="module")
def session(trained_run):
    return open_session(trained_run, device="cpu", purpose="tests")


@pytest.mark.parametrize("rf", ["model", None, 1, 4_001])
@pytest.mark.parametrize("stride", [1, 7])
def test_margin_is_the_scan_plans(session, rf, stride):
    s = dataclasses.replace(session, stride=stride)
    if rf != "model":
        s = dataclasses.replace(s, receptive_field=rf)
    assert isinstance(s, InferenceSession)
    for bin_size in (1, 128):
        assert s.margin() == s.plan(bin_size).margin
        direct = plan_scan(
            s.receptive_field, stride, bin_size=bin_size, train_window=s.train_window
        )
        assert s.margin() == direct.margin
    for window in (3 * s.margin() + 40_000, 50_001):
        assert s.margin(window) == s.plan(1, window).margin
    assert s.margin() % stride == 0
    if s.receptive_field is None:  # a quarter of the window, rounded up to the stride
        assert s.margin() == math.ceil(math.ceil(s.train_window / 4) / stride) * stride
    else:
        assert s.receptive_field <= s.margin() < s.receptive_field + stride


def test_session_holds_the_run(session, trained_run):
    s = session
    assert s.path == trained_run / "best.pt"
    assert s.train_window == 2000 == s.checkpoint.train_window
    assert s.receptive_field == s.model.receptive_field and not s.model.training
    assert s.marker_idx == list(range(len(s.markers))) == list(range(s.checkpoint.n_markers))
    assert [m.name for m in s.selected] == [m.name for m in s.markers]
    one = open_session(trained_run, device="cpu", markers=["DNase"], purpose="tests")
    assert [m.name for m in one.selected] == ["DNase"]


def test_provenance_record(session):
    p = session.provenance(scan_window=5, rc_average=False)
    assert list(p) == [
        "checkpoint", "checkpoint_sha256", "model", "genome", "window_len",
        "scan_window", "rc_average", "command", "created", "regtracks_version",
    ]  # fmt: skip
    assert p["window_len"] == 2000 and len(p["checkpoint_sha256"]) == 64
    q = session.provenance(window_len=None, region="chr1:1-10")
    assert "window_len" not in q and q["region"] == "chr1:1-10"


def test_output_helpers(tmp_path):
    assert track_name("pred", "CTCF/K562 x") == "pred_CTCF_K562_x"
    check_writable(tmp_path / "hub")
    assert (tmp_path / "hub" / "tracks").is_dir()


def test_window_len_is_deprecated_for_scan_window():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scan_window_arg(3000, None, caller="predict") == 3000
        assert scan_window_arg(None, None, caller="predict") is None
    with pytest.warns(DeprecationWarning, match="scan_window"):
        assert scan_window_arg(None, 3000, caller="predict") == 3000
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError):
        scan_window_arg(2000, 3000, caller="predict")


def test_predict_and_saliency_accept_window_len(session, trained_run, tmp_path):
    from regtracks.inference.predict import predict
    from regtracks.inference.saliency import saliency

    default = session.plan(128)
    window = default.window + default.core  # the core: a multiple of bin size and stride
    kw = dict(markers=["DNase"], device="cpu", n_procs=0, build=False)
    with pytest.warns(DeprecationWarning):
        old = predict(trained_run, tmp_path / "a", chroms=["chr1"], window_len=window, **kw)
    new = predict(trained_run, tmp_path / "b", chroms=["chr1"], scan_window=window, **kw)
    assert old.plan == new.plan and old.plan.window == window
    with pytest.warns(DeprecationWarning):
        saliency(trained_run, tmp_path / "a", region="chr1:1001-1100", window_len=window, **kw)


def test_inference_modules_import_no_private_names():
    bad = []
    for path in INFERENCE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("regtracks."):
                bad += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
            if isinstance(node, ast.ImportFrom) and node.module == "regtracks.training.train":
                bad.append(f"{path.name}: regtracks.training.train")
    assert not bad
