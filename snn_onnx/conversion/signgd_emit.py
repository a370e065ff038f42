"""SignGD mode: the graph rewrite. Sites become SignGD neurons, leftovers are compensated on
decoded values, static values are encoded where they meet the spiking part and every output
is decoded (docs/signgd.md).

Every neuron input and every decoder input is an *accumulation point*: its ``offset`` and
``bias`` are placeholders here, measured afterwards by ``signgd_probe`` from the finished
graph. Every neuron output and encoder output is a *code source* with its excite value
(the neuron's amplitude, 1 for an encoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx_ir as ir

from ..errors import ConversionError
from ..ops import schema
from .graph_utils import add_initializer, insert_after_producer, is_float, make_node
from .rewrite import SnnBuilder
from .rules import tag
from .rules.base import unique_name
from .rules.signgd import Leftover, SgSite
from .signgd_calibrate import SiteCalibration

NEURON_OPS = frozenset({schema.SIGNGD_NEURON.name, schema.SIGNGD_NEURON2.name})
SOURCE_OPS = NEURON_OPS | {schema.SIGNGD_ENCODE.name}
RULE = "signgd"


@dataclass
class Point:
    """An accumulation input: node ``node``'s input ``index`` (one sample: ``shape``)."""

    node: str
    index: int
    offset: str  # initializer names
    bias: str
    shape: tuple[int, ...]


@dataclass
class Source:
    """A code source: node ``node``'s output 0, excite value ``excite`` (broadcasts to ``shape``)."""

    node: str
    shape: tuple[int, ...]
    excite: np.ndarray


def time_varying(graph: ir.Graph) -> set[ir.Value]:
    """Values that differ between steps: codes of neurons and encoders and all computed from them."""
    tv: set[ir.Value] = set()
    for node in graph:
        if node.domain == schema.DOMAIN:
            if node.op_type in SOURCE_OPS or any(v is not None and v in tv for v in node.inputs):
                tv.update(node.outputs)  # codes, spike counts, estimates: one row per step
            continue
        if node.op_type in ("Shape", "Size"):
            continue
        if any(v is not None and v in tv for v in node.inputs):
            tv.update(node.outputs)
    return tv


class Emitter:
    def __init__(self, builder: SnnBuilder, config, cal: SiteCalibration, spike_counts: bool):
        self.b, self.graph, self.T = builder, builder.graph, builder.T
        self.cfg, self.cal, self.counts = config, cal, spike_counts
        self.points: list[Point] = []
        self.sources: list[Source] = []
        self.records: list[dict] = []
        self.forms: list[dict] = []
        self.analog: set[ir.Node] = set()  # compensated nodes: they read decoded (analog) values
        self.n_encoders = self.n_decoders = 0
        self._labels: set[str] = set()
        self._encoded: dict[ir.Value, ir.Value] = {}
        self._tiled: dict[ir.Value, ir.Value] = {}
        # names -> one sample's shapes, from a run of the ANN (values the calibration did not fetch)
        self.fetch_shapes: Callable[[list[str]], dict[str, tuple[int, ...]]] | None = None

    # -- helpers ---------------------------------------------------------------------------
    def _step_attrs(self) -> dict:
        return {"time_steps": self.T, "eta0": float(self.cfg.eta0), "gamma": float(self.cfg.gamma)}

    def _placeholder(self, base: str, value: float) -> ir.Value:
        return add_initializer(self.graph, self.b.namer, base, np.asarray(value, np.float32))

    def _node(self, op: str, inputs: list, attrs: dict | None, name: str, domain: str = "", n_out: int = 1,
              shape: tuple[int, ...] | None = None, out_names: list[str] | None = None) -> ir.Node:
        node = make_node(self.b.namer, op, inputs, attrs, domain=domain, num_outputs=n_out, name=name,
                         output_names=out_names)
        tag(node, RULE)
        y = node.outputs[0]
        y.dtype = ir.DataType.FLOAT
        if shape is not None:
            y.shape = ir.Shape(["N", *shape])
        return node

    def _known(self, v: ir.Value) -> bool:
        return v.name in self.cal.shapes or (v.shape is not None and len(v.shape) > 0
                                             and all(isinstance(d, int) for d in list(v.shape)[1:]))

    def _shape(self, v: ir.Value) -> tuple[int, ...]:
        if v.name in self.cal.shapes:
            return self.cal.shapes[v.name]
        if self._known(v):
            return tuple(int(d) for d in list(v.shape)[1:])
        raise ConversionError(f"the shape of '{v.name}' is unknown; cannot place SignGD ops on it")

    def neuron(self, site: SgSite, fn: str, ins: list[ir.Value], shape: tuple[int, ...], label: str,
               after: list[ir.Node], attrs: dict | None = None) -> ir.Value:
        """A SignGD neuron tracking ``fn`` of ``ins`` (one or two values of one sample shape
        ``shape``); appended to ``after`` (nodes to insert); returns its code output."""
        label = unique_name(label, self._labels)
        lam = np.asarray(self.cal.amplitude[site.name], np.float32)
        binary = len(ins) == 2
        op = schema.SIGNGD_NEURON2 if binary else schema.SIGNGD_NEURON
        inputs: list = list(ins)
        params: list[ir.Value] = []
        for j in range(len(ins)):
            sfx = "_ab"[j] if binary else ""
            off = self._placeholder(f"{label}/offset{sfx}", 1.0)
            bias = self._placeholder(f"{label}/bias{sfx}", 0.0)
            params += [off, bias]
        inputs = inputs + params + [self.b.const(f"{label}/amplitude", lam)]
        a = {**self._step_attrs(), "function": fn, **(attrs or {})}
        node = self._node(op.name, inputs, a, f"{label}/{op.name}", domain=schema.DOMAIN,
                          n_out=2 if self.counts else 1, shape=shape,
                          out_names=[f"{label}/spikes", f"{label}/spike_counts"])
        after.append(node)
        for j in range(len(ins)):
            self.points.append(Point(node.name, j, params[2 * j].name, params[2 * j + 1].name, shape))
        self.sources.append(Source(node.name, shape, lam))
        counts = None
        if self.counts:
            cnt = node.outputs[1]
            cnt.dtype = ir.DataType.INT64
            cnt.shape = ir.Shape([self.T, *shape])
            self.graph.outputs.append(cnt)
            counts = cnt.name
        axis = self.cal.channel_axis.get(site.name)
        self.records.append({
            "site": label, "kind": "signgd", "op": op.name, "node": node.name,
            "input": ", ".join(v.name for v in ins), "output": node.outputs[0].name, "counts": counts,
            "threshold": [float(v) for v in lam.ravel()], "channel_axis": None if axis is None else axis + 1,
            "threshold_source": f"calibration:{self.cal.method} (amplitude λ)", "function": fn,
            "nonlinearity": site.name, "recognised_as": site.recognised(), "dead_channels": 0, "levels": None,
        })
        return node.outputs[0]

    def _replace(self, site: SgSite, code: ir.Value, new_nodes: list[ir.Node]) -> None:
        self.graph.insert_after(site.nodes[-1], new_nodes)
        y = site.output
        name = y.name
        for i, out in enumerate(self.graph.outputs):
            if out is y:
                self.graph.outputs[i] = code
        ir.convenience.replace_all_uses_with(y, code)
        for n in reversed(site.nodes):
            self.graph.remove(n, safe=True)
        code.name = name
        self.forms.append({"nonlinearity": site.name, "ops": [n.op_type for n in site.nodes], "form": "signgd",
                           "function": site.function, "kind": site.kind,
                           "neurons": sum(1 for r in self.records if r["nonlinearity"] == site.name)})

    def _expand(self, v: ir.Value, shape: tuple[int, ...], base: str, out: list[ir.Node]) -> ir.Value:
        have = self._shape(v)
        if have == tuple(shape):
            return v
        if len(have) != len(shape):
            raise ConversionError(f"'{v.name}' has rank {len(have) + 1}, its partner {len(shape) + 1}: a two-input "
                                  "neuron needs both with the batch axis first", base)
        target = self.b.const(f"{base}/expand_shape", np.array([1, *shape], np.int64))
        node = self._node("Expand", [v, target], None, f"{base}/expand", shape=tuple(shape))
        out.append(node)
        return node.outputs[0]

    def _slice(self, v: ir.Value, axis: int, start: int, end: int, step: int, shape: tuple[int, ...], base: str,
               out: list[ir.Node]) -> ir.Value:
        c = self.b.const
        node = self._node("Slice", [v, c(f"{base}/starts", np.array([start], np.int64)),
                                    c(f"{base}/ends", np.array([end], np.int64)),
                                    c(f"{base}/axes", np.array([axis], np.int64)),
                                    c(f"{base}/steps", np.array([step], np.int64))], None, base, shape=shape)
        out.append(node)
        return node.outputs[0]

    # -- sites -----------------------------------------------------------------------------
    def site(self, site: SgSite) -> None:
        getattr(self, f"_site_{site.kind}")(site)

    def _site_unary(self, site: SgSite) -> None:
        shape = self._shape(site.output)
        if self._shape(site.inputs[0]) != shape:
            raise ConversionError(f"'{site.name}': input and output shapes differ for an elementwise function",
                                  site.nodes[-1].name, site.nodes[-1].op_type)
        new: list[ir.Node] = []
        attrs = {k: float(v) for k, v in site.attrs.items()}
        code = self.neuron(site, site.function, [site.inputs[0]], shape, site.name, new, attrs)
        self._replace(site, code, new)

    def _site_binary(self, site: SgSite) -> None:
        shape = self._shape(site.output)
        new: list[ir.Node] = []
        a = self._expand(site.inputs[0], shape, f"{site.name}/a", new)
        b = self._expand(site.inputs[1], shape, f"{site.name}/b", new)
        attrs = {}
        if site.function in ("div", "div_sqrt"):
            attrs["denominator_floor"] = float(self.cal.floor.get(site.name, 0.0))
        code = self.neuron(site, site.function, [a, b], shape, site.name, new, attrs)
        self._replace(site, code, new)

    def _tree(self, site: SgSite, values: list[ir.Value], shape: tuple[int, ...], base: str,
              new: list[ir.Node]) -> ir.Value:
        """Balanced tree of two-input max neurons over ``values`` (all of shape ``shape``)."""
        level = 0
        while len(values) > 1:
            nxt = []
            for i in range(0, len(values) - 1, 2):
                nxt.append(self.neuron(site, "max", [values[i], values[i + 1]], shape, f"{base}.{level}.{i // 2}", new))
            if len(values) % 2:
                nxt.append(values[-1])
            values, level = nxt, level + 1
        return values[0]

    def _site_pool(self, site: SgSite) -> None:
        node = site.nodes[0]
        x = site.inputs[0]
        cur_shape = list(self._shape(x))
        out_shape = self._shape(site.output)
        nsp = len(cur_shape) - 1
        k = list(node.attributes.get_ints("kernel_shape"))
        strides = list(node.attributes.get_ints("strides", [1] * nsp))
        dil = list(node.attributes.get_ints("dilations", [1] * nsp))
        pads = list(node.attributes.get_ints("pads", [0] * (2 * nsp)))
        if node.attributes.get_string("auto_pad", "NOTSET") == "VALID":
            pads = [0] * (2 * nsp)
        pad_value = self.cal.pad[site.name]
        new: list[ir.Node] = []
        cur = x
        for i in range(nsp):
            axis = 2 + i  # full rank: N, C, spatial...
            L, n_out = cur_shape[1 + i], out_shape[1 + i]
            need = (n_out - 1) * strides[i] + dil[i] * (k[i] - 1) + 1
            pb = pads[i]
            pe = max(need - L - pb, 0)
            base = f"{site.name}/axis{axis}"
            if pb or pe:
                p = [0] * (2 * (nsp + 2))
                p[axis], p[axis + nsp + 2] = pb, pe
                cur_shape[1 + i] = L + pb + pe
                pn = self._node("Pad", [cur, self.b.const(f"{base}/pads", np.array(p, np.int64)),
                                        self.b.const(f"{base}/pad_value", np.array(pad_value, np.float32))],
                                {"mode": "constant"}, f"{base}/pad", shape=tuple(cur_shape))
                new.append(pn)
                cur = pn.outputs[0]
            sl_shape = list(cur_shape)
            sl_shape[1 + i] = n_out
            parts = [self._slice(cur, axis, j * dil[i], j * dil[i] + (n_out - 1) * strides[i] + 1, strides[i],
                                 tuple(sl_shape), f"{base}/window{j}", new) for j in range(k[i])]
            cur_shape = sl_shape
            cur = self._tree(site, parts, tuple(cur_shape), f"{site.name}/max{axis}", new)
        if tuple(cur_shape) != tuple(out_shape):
            raise ConversionError(f"internal error: MaxPool tree gives {cur_shape}, the ANN {list(out_shape)}",
                                  node.name, node.op_type)
        self._replace(site, cur, new)

    def _site_reduce_max(self, site: SgSite) -> None:
        node = site.nodes[0]
        x = site.inputs[0]
        shape = list(self._shape(x))
        rank = len(shape) + 1
        if site.attrs.get("global"):
            axes, keep = list(range(2, rank)), 1
        else:
            axes = node.attributes.get_ints("axes", None)
            if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
                from .graph_utils import const_array

                arr = const_array(node.inputs[1])
                if arr is None:
                    raise ConversionError("ReduceMax axes computed at run time", node.name, node.op_type)
                axes = arr.ravel().tolist()
            keep = node.attributes.get_int("keepdims", 1)
            if not axes:
                raise ConversionError("ReduceMax over every axis would reduce over the batch (and time)", node.name,
                                      node.op_type)
            axes = sorted(int(a) + rank if int(a) < 0 else int(a) for a in axes)
            if 0 in axes:
                raise ConversionError("ReduceMax along the batch axis", node.name, node.op_type)
        new: list[ir.Node] = []
        cur = x
        for axis in axes:
            n = shape[axis - 1]
            level = 0
            while n > 1:
                h = n // 2
                base = f"{site.name}/axis{axis}.{level}"
                half = list(shape)
                half[axis - 1] = h
                lo = self._slice(cur, axis, 0, h, 1, tuple(half), f"{base}/lo", new)
                hi = self._slice(cur, axis, h, 2 * h, 1, tuple(half), f"{base}/hi", new)
                m = self.neuron(site, "max", [lo, hi], tuple(half), f"{site.name}/max{axis}.{level}", new)
                if n % 2:
                    rest = list(shape)
                    rest[axis - 1] = 1
                    tail = self._slice(cur, axis, 2 * h, n, 1, tuple(rest), f"{base}/odd", new)
                    half[axis - 1] = h + 1
                    cat = self._node("Concat", [m, tail], {"axis": axis}, f"{base}/concat", shape=tuple(half))
                    new.append(cat)
                    m = cat.outputs[0]
                cur, shape, n, level = m, half, half[axis - 1], level + 1
        if not keep:
            sq = self._node("Squeeze", [cur, self.b.const(f"{site.name}/axes", np.array(axes, np.int64))], None,
                            f"{site.name}/squeeze", shape=self._shape(site.output))
            new.append(sq)
            cur = sq.outputs[0]
        self._replace(site, cur, new)

    def _site_matmul(self, site: SgSite) -> None:
        a, b = site.inputs
        sa, sb, so = self._shape(a), self._shape(b), self._shape(site.output)
        n, kk, m = sa[-2], sa[-1], sb[-1]
        full = tuple(so[:-2]) + (n, kk, m)
        new: list[ir.Node] = []
        c = self.b.const
        ua = self._node("Unsqueeze", [a, c(f"{site.name}/axis_last", np.array([-1], np.int64))], None,
                        f"{site.name}/a_unsqueeze", shape=tuple(sa) + (1,))
        ub = self._node("Unsqueeze", [b, c(f"{site.name}/axis_m3", np.array([-3], np.int64))], None,
                        f"{site.name}/b_unsqueeze", shape=tuple(sb[:-2]) + (1, kk, m))
        new += [ua, ub]
        self.cal.shapes[ua.outputs[0].name] = tuple(sa) + (1,)
        self.cal.shapes[ub.outputs[0].name] = tuple(sb[:-2]) + (1, kk, m)
        ea = self._expand(ua.outputs[0], full, f"{site.name}/a", new)
        eb = self._expand(ub.outputs[0], full, f"{site.name}/b", new)
        prod = self.neuron(site, "mul", [ea, eb], full, f"{site.name}/products", new)
        red = self._node("ReduceSum", [prod, c(f"{site.name}/axis_k", np.array([-2], np.int64))], {"keepdims": 0},
                         f"{site.name}/sum_k", shape=tuple(so))
        new.append(red)
        self._replace(site, red.outputs[0], new)

    # -- leftovers ---------------------------------------------------------------------------
    def compensate(self, lo: Leftover, tv: set[ir.Value]) -> None:
        """Decode the leftover's time-varying inputs, run its nodes on the estimates at every
        step, encode its outputs: ``SignGDEncode(f(SignGDDecode(x)))``."""
        members = set(lo.nodes)
        first = lo.nodes[0]
        self.analog.update(lo.nodes)
        decoded: dict[ir.Value, ir.Value] = {}
        for n in lo.nodes:
            for i, v in enumerate(n.inputs):
                if v is None or v not in tv or v.producer() in members:
                    continue
                if not is_float(v):
                    raise ConversionError("a time-varying non-float input cannot be decoded", n.name, n.op_type)
                if v not in decoded:
                    shape = self._shape(v)
                    off = self._placeholder(f"{lo.name}/decode_offset", 1.0)
                    bias = self._placeholder(f"{lo.name}/decode_bias", 0.0)
                    dec = self._node(schema.SIGNGD_DECODE.name, [v, off, bias], self._step_attrs(),
                                     f"{lo.name}/{schema.SIGNGD_DECODE.name}", domain=schema.DOMAIN, shape=shape)
                    self.graph.insert_before(first, [dec])
                    self.points.append(Point(dec.name, 0, off.name, bias.name, shape))
                    self.n_decoders += 1
                    decoded[v] = dec.outputs[0]
                n.replace_input_with(i, decoded[v])
        for n in lo.nodes:
            for o in n.outputs:
                outside = [u for u in o.uses() if u.node not in members]
                if not outside and not o.is_graph_output():
                    continue
                if not is_float(o):
                    raise ConversionError("its non-float output is used outside; compensation carries float values only",
                                          n.name, n.op_type)
                enc = self._encoder(o, static=False, anchor=n)
                for u in outside:
                    u.node.replace_input_with(u.idx, enc)
                self._take_output(o, enc)

    def _encoder(self, v: ir.Value, static: bool, anchor: ir.Node | None = None) -> ir.Value:
        shape = self._shape(v)
        attrs = {**self._step_attrs(), **({"static_input": 1} if static else {})}
        enc = self._node(schema.SIGNGD_ENCODE.name, [v], attrs, f"{v.name}/{schema.SIGNGD_ENCODE.name}",
                         domain=schema.DOMAIN, shape=shape, out_names=[f"{v.name}/codes"])
        if anchor is not None:
            self.graph.insert_after(anchor, [enc])
        else:
            insert_after_producer(self.graph, v, [enc])
        self.sources.append(Source(enc.name, shape, np.asarray(1.0, np.float32)))
        self.n_encoders += 1
        return enc.outputs[0]

    def _take_output(self, old: ir.Value, new: ir.Value) -> None:
        if not old.is_graph_output():
            return
        name = old.name
        old.name = self.b.namer(f"{name}/analog")
        new.name = name
        for i, out in enumerate(self.graph.outputs):
            if out is old:
                self.graph.outputs[i] = new

    # -- time ---------------------------------------------------------------------------------
    def time_entry(self, data: set[ir.Value]) -> None:
        """Where a static value (computed from the inputs, the same at every step) meets the
        spiking part: codes (``SignGDEncode``, static_input = 1) for a neuron or an affine op
        on codes, the value repeated T times for a compensated op (it reads analog values)."""
        tv = time_varying(self.graph)
        static = {v for v in data if v not in tv}
        meeting = [v for node in self.graph for v in node.inputs
                   if v is not None and v in static and (any(u is not None and u in tv for u in node.inputs)
                                                          or node.domain == schema.DOMAIN)]
        meeting += [v for v in self.graph.outputs if v in static]
        missing = [v.name for v in dict.fromkeys(meeting) if not self._known(v)]
        if missing and self.fetch_shapes is not None:
            self.cal.shapes.update(self.fetch_shapes(missing))
        for node in list(self.graph):
            spiking = node.domain == schema.DOMAIN and node.op_type in NEURON_OPS
            if not spiking and not any(v is not None and v in tv for v in node.inputs):
                continue
            for i, v in enumerate(node.inputs):
                if v is None or v not in static:
                    continue
                if node in self.analog or not is_float(v):
                    node.replace_input_with(i, self._tile(v))
                else:
                    if v not in self._encoded:
                        self._encoded[v] = self._encoder(v, static=True)
                    node.replace_input_with(i, self._encoded[v])
        for i, out in enumerate(list(self.graph.outputs)):
            if out in static and is_float(out):
                enc = self._encoder(out, static=True)
                self._take_output(out, enc)

    def _index(self, i: int) -> ir.Value:
        """A 0-d int64 initializer (``add_initializer`` would make it 1-d)."""
        name = self.b.namer("last_step")
        v = ir.Value(name=name, const_value=ir.tensor(np.array(i, np.int64), name=name))
        v.shape, v.dtype = ir.Shape([]), ir.DataType.INT64
        self.graph.register_initializer(v)
        return v

    def _tile(self, v: ir.Value) -> ir.Value:
        if v not in self._tiled:
            rank = len(v.shape) if v.shape is not None else len(self._shape(v)) + 1
            reps = self.b.const("time_repeats", np.array([self.T] + [1] * (rank - 1), np.int64))
            t = self._node("Tile", [v, reps], None, f"{v.name}/repeat_T")
            t.outputs[0].dtype = v.dtype
            insert_after_producer(self.graph, v, [t])
            self._tiled[v] = t.outputs[0]
        return self._tiled[v]

    def time_exit(self, per_step: bool) -> dict[str, str]:
        """Each output's codes are decoded: ``<name>`` is the estimate after step T, ``<name>_per_step``
        (``[T, B, ...]``) the estimate after every step."""
        per_step_names: dict[str, str] = {}
        new_outputs: list[ir.Value] = []
        for y in list(self.graph.outputs):
            if y.dtype == ir.DataType.INT64 and y.name.endswith("/spike_counts"):
                new_outputs.append(y)
                continue
            if not is_float(y):
                raise ConversionError(f"graph output '{y.name}' is not a float tensor; cannot decode it")
            name, shape = y.name, self._shape(y)
            y.name = self.b.namer(f"{name}/codes")
            off = self._placeholder(f"{name}/decode_offset", 1.0)
            bias = self._placeholder(f"{name}/decode_bias", 0.0)
            dec = self._node(schema.SIGNGD_DECODE.name, [y, off, bias], self._step_attrs(),
                             f"{name}/{schema.SIGNGD_DECODE.name}", domain=schema.DOMAIN, shape=shape)
            self.points.append(Point(dec.name, 0, off.name, bias.name, shape))
            self.n_decoders += 1
            target = self.b._time_split_shape(dec.outputs[0])
            steps = self._node("Reshape", [dec.outputs[0], target], None, f"{name}/per_step",
                               out_names=[f"{name}_per_step" if per_step else f"{name}/per_step"])
            steps.outputs[0].shape = ir.Shape([self.T, "N", *shape])
            last = self._node("Gather", [steps.outputs[0], self._index(self.T - 1)],
                              {"axis": 0}, f"{name}/last_step", shape=shape)
            last.outputs[0].name = name
            self.graph.extend([dec, steps, last])
            new_outputs.append(last.outputs[0])
            if per_step:
                new_outputs.append(steps.outputs[0])
                per_step_names[name] = steps.outputs[0].name
        self.graph.outputs.clear()
        self.graph.outputs.extend(new_outputs)
        return per_step_names
