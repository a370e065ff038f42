"""Event-camera data: binning with tonic against an independent implementation of its windows,
the .npz formats and their errors, the event digits, [T, B, ...] inputs, and the CLI's
--event-input on convert, run, eval and report with the trained event CNN."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx_builders import inputs, small_cnn
from snn_onnx_cli.main import cli

import snn_onnx
from snn_onnx.data.events import EVENT_DTYPE, as_events, bin_events, load_events, save_events
from snn_onnx.errors import DataError

tonic = pytest.importorskip("tonic", reason="binning raw events needs tonic (pip install 'snn-onnx[events]')")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def reference_frames(ev: np.ndarray, sensor: tuple[int, int, int], T: int) -> np.ndarray:
    """tonic's n_time_bins windows, written from its documentation: T windows of
    floor(span / T) from the first event; an event at time t is in window k when
    start_k <= t < start_k + window."""
    w, h, p = sensor
    out = np.zeros((T, p, h, w), np.float32)
    t0 = ev["t"][0]
    win = (ev["t"][-1] - t0) // T
    for e in ev:
        for k in range(T):
            if t0 + k * win <= e["t"] < t0 + (k + 1) * win:
                out[k, e["p"], e["y"], e["x"]] += 1
    return out


def random_events(n: int, sensor=(7, 5, 2), seed: int = 0, span: int = 10_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"] = rng.integers(0, sensor[0], n)
    ev["y"] = rng.integers(0, sensor[1], n)
    ev["t"] = np.sort(rng.integers(0, span, n))
    ev["p"] = rng.integers(0, sensor[2], n)
    return ev


@pytest.mark.parametrize("T", [1, 3, 8])
def test_binning_matches_tonics_windows(T):
    ev = random_events(400, seed=T)
    frames = bin_events(ev, (7, 5, 2), T)
    assert frames.shape == (T, 2, 5, 7) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames, reference_frames(ev, (7, 5, 2), T))
    assert frames.sum() <= len(ev) and frames.sum() >= len(ev) - 1 - len(ev) // 20  # only the tail is cut


def test_binning_edge_cases():
    assert bin_events(random_events(0), (7, 5, 2), 4).sum() == 0  # no events: empty frames
    short = random_events(10, span=3)
    with pytest.raises(DataError, match="span .* fewer than T=8"):
        bin_events(short, (7, 5, 2), 8, where="sample 3")


def test_event_npz_formats(tmp_path):
    sensor = (7, 5, 2)
    samples = [random_events(50 + 10 * i, seed=i) for i in range(3)]
    events = np.concatenate(samples)
    offsets = np.cumsum([0] + [len(s) for s in samples])
    np.savez(tmp_path / "raw.npz", events=events, offsets=offsets, sensor_size=np.array(sensor), labels=np.array([2, 0, 1]))
    d = load_events(tmp_path / "raw.npz")
    assert len(d) == 3 and d.time_steps is None and d.frame_shape == (2, 5, 7)
    f = d.frames(4)
    assert f.shape == (4, 3, 2, 5, 7)
    for i, s in enumerate(samples):
        np.testing.assert_array_equal(f[:, i], reference_frames(s, sensor, 4))
    # columns [E, 4] with -1/+1 polarities mean the same
    cols = np.stack([events["x"], events["y"], events["t"], 2 * events["p"] - 1], axis=1)
    np.savez(tmp_path / "cols.npz", events=cols, offsets=offsets, sensor_size=np.array(sensor))
    np.testing.assert_array_equal(load_events(tmp_path / "cols.npz").frames(4), f)
    # frames fix T; a round trip keeps them and the labels
    save_events(tmp_path / "frames.npz", d, time_steps=4)
    fr = load_events(tmp_path / "frames.npz", limit=2)
    assert fr.time_steps == 4 and len(fr) == 2 and fr.labels.tolist() == [2, 0]
    np.testing.assert_array_equal(fr.frames(4), f[:, :2])
    with pytest.raises(DataError, match="holds frames for T=4, not T=8"):
        fr.frames(8)


def test_event_npz_errors(tmp_path):
    np.savez(tmp_path / "static.npz", x=np.zeros((3, 2, 5, 7)))
    with pytest.raises(DataError, match="neither 'frames'.*nor raw 'events'"):
        load_events(tmp_path / "static.npz")
    ev = random_events(20)
    np.savez(tmp_path / "nooff.npz", events=ev, sensor_size=np.array([7, 5, 2]))
    with pytest.raises(DataError, match="raw events need 'offsets'"):
        load_events(tmp_path / "nooff.npz")
    np.savez(tmp_path / "badoff.npz", events=ev, offsets=np.array([0, 5]), sensor_size=np.array([7, 5, 2]))
    with pytest.raises(DataError, match="offsets must rise from 0 to the number of events"):
        load_events(tmp_path / "badoff.npz")
    np.savez(tmp_path / "outside.npz", events=ev, offsets=np.array([0, 20]), sensor_size=np.array([3, 5, 2]))
    with pytest.raises(DataError, match="field 'x' must lie in 0..2"):
        load_events(tmp_path / "outside.npz")
    np.savez(tmp_path / "labels.npz", frames=np.zeros((4, 3, 2, 5, 7)), labels=np.zeros(2, np.int64))
    with pytest.raises(DataError, match="one label per sample"):
        load_events(tmp_path / "labels.npz")
    with pytest.raises(DataError, match="no such file; named event sources are digits-events"):
        load_events("digit-events")
    with pytest.raises(DataError, match="structured array"):
        as_events(np.zeros((5, 3)), "here")


def test_event_digits_look_like_n_mnist():
    pytest.importorskip("sklearn", reason="the event digits are made from scikit-learn's digits")
    from snn_onnx.data.digits_events import SENSOR_W, simulate

    tr, te = load_events("digits-events", "train"), load_events("digits-events", "test")
    assert (len(tr), len(te)) == (1346, 451) and te.frame_shape == (2, SENSOR_W, SENSOR_W)
    assert te.labels.tolist() == snn_onnx.data.load("digits", "test").y.tolist()  # the digits' split
    sizes = np.diff(te.offsets)
    assert sizes.min() > 100  # every digit gives events
    on = np.mean(te.events["p"] == 1)
    assert 0.4 < on < 0.6  # the closed saccade path returns: ON and OFF balance
    assert np.all(np.diff(te.sample_events(0)["t"]) >= 0) and te.events["t"].max() < 300_000
    # only motion makes events: a blank image gives none, a brighter digit more
    img = np.zeros((2, 8, 8))
    img[1, 2:6, 3] = 1.0
    ev, off = simulate(img)
    assert off[1] == 0 and off[2] > 0
    # three saccades: the frames of T=3 differ (edges of other orientations)
    f = te.frames(3)[:, 0]
    assert all(f[i].sum() > 0 for i in range(3)) and not np.array_equal(f[0], f[1])
    again = load_events("digits-events", "test", limit=5)  # deterministic
    np.testing.assert_array_equal(again.frames(3), te.frames(3)[:, :5])


def test_session_takes_time_major_event_arrays(tmp_path):
    T, B = 4, 3
    snn = snn_onnx.convert(small_cnn(), time_steps=T, neuron="if", data=inputs(), event_inputs=("x",)).model
    sess = snn_onnx.Session(snn)
    frames = np.random.default_rng(0).uniform(0, 1, (T, B, 1, 6, 6)).astype(np.float32)
    a = sess.run(frames)
    b = sess.run(frames.reshape(T * B, 1, 6, 6))
    np.testing.assert_array_equal(a.outputs["logits"], b.outputs["logits"])
    assert a.outputs["logits"].shape == (B, 10)
    with pytest.raises(DataError, match=r"as \[T, B, ...\] it needs T=4 frames, got 5"):
        sess.run(np.zeros((5, B, 1, 6, 6), np.float32))


@pytest.fixture(scope="module")
def event_cnn():
    pytest.importorskip("sklearn", reason="the event digits need scikit-learn")
    from snn_onnx_models import digits_event_cnn_path

    return str(digits_event_cnn_path())


def test_cli_event_input_convert_info_run(tmp_path, event_cnn):
    out = tmp_path / "ev.snn.onnx"
    res = invoke("convert", event_cnn, "--event-input", "digits-events", "--neuron", "signed-if", "-T", "16",
                 "--num-calib", "128", "-o", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    info = invoke("info", str(out)).output
    assert "event inputs (one frame per step" in info and "calibration data: digits-events:train" in info
    res = invoke("run", str(out), "--event-input", "digits-events", "--limit", "100", "--output", str(tmp_path / "o.npz"))
    assert res.exit_code == 0, res.output
    acc = float(res.output.split("accuracy on 100 labelled samples: ")[1].split("%")[0])
    assert acc >= 90  # the signed IF SNN keeps the ANN's accuracy (96 % on count images)
    # the same frames as a [T, B, ...] array through --input
    frames = load_events("digits-events", "test", limit=10).frames(16)
    np.save(tmp_path / "f.npy", frames)
    res2 = invoke("run", str(out), "--input", str(tmp_path / "f.npy"))
    assert res2.exit_code == 0 and "logits: shape [10, 10]" in res2.output
    # event data that does not fit: frames of another T, a static model
    save_events(tmp_path / "t8.npz", load_events("digits-events", "test", limit=4), time_steps=8)
    res = invoke("run", str(out), "--event-input", str(tmp_path / "t8.npz"))
    assert res.exit_code == 2 and "holds frames for T=8 only" in res.stderr
    static = tmp_path / "static.snn.onnx"
    assert invoke("convert", event_cnn, "-T", "4", "--neuron", "if", "-o", str(static), "--quiet").exit_code == 0
    res = invoke("run", str(static), "--event-input", "digits-events")
    assert res.exit_code == 2 and "needs an SNN with one event input" in res.stderr
    res = invoke("convert", "--event-input", "digits-events", "-o", str(tmp_path / "x.onnx"), "--quiet")
    assert res.exit_code == 1 and "frames of shape [2, 10, 10]" in res.stderr and "[1, 8, 8]" in res.stderr


def test_cli_event_eval_and_report(tmp_path, event_cnn, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("eval", event_cnn, "--event-input", "digits-events", "-T", "2,8", "--neurons", "if,lif,signed-if",
                 "--leak", "0.95", "--limit", "60", "--num-calib", "64", "--quiet", "--json-out", "ev.json")
    assert res.exit_code == 0, res.output
    import json

    rows = json.loads((tmp_path / "ev.json").read_text())["rows"]
    assert [(r["neuron"], r["time_steps"]) for r in rows] == [
        ("if", 2), ("if", 8), ("lif", 2), ("lif", 8), ("signed-if", 2), ("signed-if", 8)]
    acc = {(r["neuron"], r["time_steps"]): r["snn_accuracy"] for r in rows}
    assert acc[("signed-if", 8)] >= acc[("if", 8)]  # taking back early over-firing helps on event data
    res = invoke("report", event_cnn, "--event-input", "digits-events", "-T", "4", "--neuron", "signed-if",
                 "--limit", "40", "--num-calib", "64", "--quiet")
    assert res.exit_code == 0, res.output
    summary = json.loads(next((tmp_path / "runs").glob("*/*/summary.json")).read_text())
    assert summary["headline"]["samples"] == 40 and summary["headline"]["time_steps"] == 4
    assert summary["headline"]["accuracy"] is not None and summary["headline"]["spikes"] > 0
    res = invoke("report", event_cnn, "--event-input", "digits-events", "--data", "digits")
    assert res.exit_code == 2 and "--data does not apply with --event-input" in res.stderr


def test_event_input_refused_where_it_cannot_apply(tmp_path):
    res = invoke("eval", "--event-input", str(tmp_path / "missing.npz"), "--quiet")
    assert res.exit_code == 1 and "no such file" in res.stderr
    onnx.save(small_cnn(), str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "fr.npz", frames=np.zeros((4, 3, 1, 6, 6), np.float32), labels=np.array([0, 1, 2]))
    res = invoke("eval", str(tmp_path / "m.onnx"), "--event-input", str(tmp_path / "fr.npz"), "-T", "2,4", "--quiet")
    assert res.exit_code == 2 and "holds frames for T=4 only" in res.stderr
