"""One neuron vocabulary (paraif, if, lif, signed-if) in Python and on the CLI: each neuron's
options reach its op, options it lacks are refused (never ignored), and the SNN computes what
the op's NumPy reference says for that neuron."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx_builders import inputs, small_cnn
from snn_onnx_cli.main import cli

import snn_onnx
from snn_onnx import NeuronConfig
from snn_onnx.errors import ConversionError
from snn_onnx.ops import reference as ref


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def neuron_node(model: onnx.ModelProto) -> onnx.NodeProto:
    (node,) = [n for n in model.graph.node if n.domain == "snn_onnx" and n.op_type.endswith("Neuron")]
    return node


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "paraif", "leak": 0.9}, "the paraif neuron has no leak"),
    ({"kind": "paraif", "reset": "zero"}, "the paraif neuron has no reset"),
    ({"kind": "paraif", "signed": True}, "does not fire negative spikes"),
    ({"kind": "paraif", "signed_eps": 0.1}, "the paraif neuron has no signed_eps"),
    ({"kind": "if", "leak": 0.9}, "the if neuron has no leak (got leak=0.9); leak is an option of the lif neuron"),
    ({"kind": "if", "signed": True}, "use the signed-if neuron"),
    ({"kind": "lif"}, "the lif neuron needs a leak in (0, 1)"),
    ({"kind": "lif", "leak": 1.5}, "needs a leak in (0, 1)"),
    ({"kind": "signed-if", "leak": 0.9}, "the signed-if neuron has no leak"),
    ({"kind": "lif", "leak": 0.9, "signed_eps": 0.01}, "the lif neuron has no signed_eps"),
    ({"kind": "izhikevich"}, "neuron must be one of paraif, if, lif, signed-if"),
    ({"kind": "if", "reset": "half"}, "reset must be one of subtract, zero"),
])
def test_python_refuses_options_a_neuron_lacks(kwargs, message):
    with pytest.raises(ConversionError) as err:
        NeuronConfig(**kwargs)
    assert message in str(err.value)


def test_from_options_refuses_given_defaults():
    with pytest.raises(ConversionError, match="the paraif neuron has no reset"):
        NeuronConfig.from_options("paraif", reset="subtract")
    with pytest.raises(ConversionError, match="the if neuron has no leak"):
        NeuronConfig.from_options("if", leak=1.0)
    cfg = NeuronConfig.from_options("signed-if", reset="zero", signed_eps=0.01, v_init=0.0)
    assert (cfg.kind, cfg.signed, cfg.reset, cfg.signed_eps, cfg.v_init) == ("signed-if", True, "zero", 0.01, 0.0)
    assert NeuronConfig.from_options("paraif", v_init=0.25).describe() == {"kind": "paraif", "v_init": 0.25, "signed": False}


@pytest.mark.parametrize("cfg, expect", [
    (NeuronConfig(kind="lif", leak=0.8, reset="zero"), {"leak": 0.8, "reset": b"zero", "signed": 0}),
    (NeuronConfig(kind="signed-if", signed_eps=0.01), {"leak": 1.0, "signed": 1, "signed_eps": 0.01}),
    (NeuronConfig(kind="if", v_init=0.0), {"leak": 1.0, "signed": 0, "v_init": 0.0}),
])
def test_each_neuron_reaches_its_op_and_matches_the_reference(cfg, expect):
    """The first neuron of a conv net sees the same input at every step: its spikes are the
    NumPy reference's for this neuron's attributes (bit for bit)."""
    T = 6
    x = inputs(8)
    res = snn_onnx.convert(small_cnn(), time_steps=T, neuron=cfg, data=x, optimize_graph=False)
    node = neuron_node(res.model)
    a = attrs(node)
    assert node.op_type == "IFNeuron" and res.neuron == cfg.kind
    for k, v in expect.items():
        assert a[k] == pytest.approx(v) if isinstance(v, float) else a[k] == v, (k, a[k], v)
    assert snn_onnx.metadata.read(res.model)["neuron"]["kind"] == cfg.kind
    # run the SNN, compare its spike counts with the reference on the conv output
    import onnxruntime as ort

    ann = onnx.load_from_string(small_cnn().SerializeToString())
    ann.graph.output.append(onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, None))
    conv = ort.InferenceSession(ann.SerializeToString(), providers=["CPUExecutionProvider"]).run(["c"], {"x": x})[0]
    th = np.asarray(res.sites[0].threshold, np.float32)
    _, counts = ref.if_neuron(np.tile(conv, (T, 1, 1, 1)), th[0] if th.size == 1 else th, time_steps=T,
                              v_init=a["v_init"], leak=a["leak"], reset=a["reset"].decode(), signed=a["signed"],
                              signed_eps=a.get("signed_eps", 1e-3))
    out = snn_onnx.Session(res.model).run(x)
    np.testing.assert_array_equal(out.spike_counts[res.sites[0].site], counts)


def test_cli_neuron_flags_reach_the_model(tmp_path):
    onnx.save(small_cnn(), str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "c.npz", x=inputs(32))
    for flags, expect in [
        (["--neuron", "lif", "--leak", "0.75", "--reset", "zero"], {"leak": 0.75, "reset": b"zero"}),
        (["--neuron", "signed-if", "--signed-eps", "0.02", "--v-init", "0"], {"signed": 1, "signed_eps": 0.02, "v_init": 0.0}),
        (["--neuron", "paraif", "--v-init", "0.25"], {"v_init": 0.25}),
    ]:
        out = tmp_path / f"{flags[1]}.onnx"
        res = invoke("convert", str(tmp_path / "m.onnx"), "--data", str(tmp_path / "c.npz"), "-T", "4", "-o", str(out),
                     "--quiet", *flags)
        assert res.exit_code == 0, res.output
        a = attrs(neuron_node(onnx.load(str(out))))
        for k, v in expect.items():
            assert a[k] == pytest.approx(v) if isinstance(v, float) else a[k] == v, (flags, k, a[k])
        info = invoke("info", str(out)).output
        assert f"neuron: {flags[1]}" in info


@pytest.mark.parametrize("args, message", [
    (["--neuron", "paraif", "--leak", "0.9"], "--leak does not apply to the paraif neuron (it is an option of lif)"),
    (["--neuron", "if", "--leak", "0.9"], "--leak does not apply to the if neuron"),
    (["--neuron", "paraif", "--reset", "subtract"], "--reset does not apply to the paraif neuron"),
    (["--neuron", "lif", "--signed-eps", "0.1", "--leak", "0.9"], "--signed-eps does not apply to the lif neuron"),
    (["--neuron", "lif"], "the lif neuron needs --leak"),
    (["--neuron", "lif", "--leak", "1"], "needs a leak in (0, 1)"),
    (["--leak", "0.9"], "--leak does not apply to the paraif neuron"),  # the default neuron
])
def test_cli_refuses_neuron_options(tmp_path, args, message):
    out = tmp_path / "never.onnx"
    res = invoke("convert", "-o", str(out), "--quiet", *args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not out.exists()


def test_eval_with_every_neuron():
    pytest.importorskip("sklearn", reason="the digits example needs scikit-learn")
    res = invoke("eval", "-T", "2,8", "--neurons", "if,lif,signed-if,paraif", "--leak", "0.9", "--limit", "60", "--quiet")
    assert res.exit_code == 0, res.output
    rows = [ln.split() for ln in res.output.splitlines() if ln.split() and ln.split()[0] in ("if", "lif", "signed-if", "paraif")]
    assert [(r[0], r[1]) for r in rows] == [("if", "2"), ("if", "8"), ("lif", "2"), ("lif", "8"), ("signed-if", "2"),
                                            ("signed-if", "8"), ("paraif", "2"), ("paraif", "8")]
    res = invoke("eval", "--neurons", "if,if", "--quiet")
    assert res.exit_code == 2 and "repeats a neuron" in res.stderr
    res = invoke("eval", "--neurons", "if,paraif", "--signed-eps", "0.1", "--quiet")
    assert res.exit_code == 2 and "--signed-eps applies to none of the neurons if,paraif" in res.stderr
