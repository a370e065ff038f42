// ORT side of the CUDA SignGD family (bodies: signgd.cuh). Parameters are validated on the host
// like the CPU kernels' and expanded to one value per neuron; DeviceParams keeps them and the
// step sizes on the device, uploaded again only when they change.
#include <vector>

#include "cuda_ops.h"
#include "launch.h"

namespace snn::cuda {
namespace {

// A [n] host array as a per-element parameter (Param::at(i) = data[i]).
HostParam per_element(const std::vector<float>& v) {
  HostParam p;
  p.data = v.data();
  p.size = static_cast<int64_t>(v.size());
  p.layout = {false, p.size > 0 ? p.size : 1, 1};
  return p;
}

std::vector<float> expand(const NodeId& id, const HostParam& p, const std::vector<int64_t>& xs, float dflt,
                          const char* name, bool finite) {
  if (finite && p.data) check_finite(id, name, p.data, p.size);
  std::vector<float> out;
  expand_param(p, xs, dflt, out);
  if (out.empty()) out.push_back(dflt);  // an empty sample: keep one value, never read
  return out;
}

}  // namespace

template <>
void Kernel<SignGDNeuronOp>::compute(Ort::KernelContext& ctx, const RunIO<SignGDNeuronOp>& io) {
  const auto off = expand(id_, io.params[0], io.x_shape, 1.0f, "offset", true);
  const auto bias = expand(id_, io.params[1], io.x_shape, 0.0f, "bias", true);
  const auto lam = expand(id_, io.params[2], io.x_shape, 1.0f, "amplitude", false);
  const std::array<HostParam, 4> hp{per_element(off), per_element(bias), per_element(lam), per_element(a_.eta)};
  run_neurons(id_, ctx, params_, io.L, io.counts, nullptr, hp,
              [&](const Grid& g, const Plan& plan, const std::array<Param, 4>& dev, cudaStream_t s) {
                SgArgs a;
                a.g = g;
                a.a = io.x, a.y = io.y;
                a.off_a = dev[0], a.bias_a = dev[1], a.lam = dev[2], a.eta = dev[3];
                a.p = a_.p;
                return launch_sg_neuron(a, plan, a_.function, s);
              });
}

template <>
void Kernel<SignGDNeuron2Op>::compute(Ort::KernelContext& ctx, const RunIO<SignGDNeuron2Op>& io) {
  const auto off_a = expand(id_, io.params[0], io.x_shape, 1.0f, "offset_a", true);
  const auto bias_a = expand(id_, io.params[1], io.x_shape, 0.0f, "bias_a", true);
  const auto off_b = expand(id_, io.params[2], io.x_shape, 1.0f, "offset_b", true);
  const auto bias_b = expand(id_, io.params[3], io.x_shape, 0.0f, "bias_b", true);
  const auto lam = expand(id_, io.params[4], io.x_shape, 1.0f, "amplitude", false);
  const std::array<HostParam, 6> hp{per_element(off_a), per_element(bias_a), per_element(off_b),
                                    per_element(bias_b), per_element(lam),   per_element(a_.eta)};
  run_neurons(id_, ctx, params_, io.L, io.counts, nullptr, hp,
              [&](const Grid& g, const Plan& plan, const std::array<Param, 6>& dev, cudaStream_t s) {
                SgArgs a;
                a.g = g;
                a.a = io.x, a.b = io.x2, a.y = io.y;
                a.off_a = dev[0], a.bias_a = dev[1], a.off_b = dev[2], a.bias_b = dev[3], a.lam = dev[4];
                a.eta = dev[5];
                a.floor = a_.denominator_floor;
                return launch_sg_neuron2(a, plan, a_.function, s);
              });
}

template <>
void Kernel<SignGDDecodeOp>::compute(Ort::KernelContext& ctx, const RunIO<SignGDDecodeOp>& io) {
  const auto off = expand(id_, io.params[0], io.x_shape, 1.0f, "offset", true);
  const auto bias = expand(id_, io.params[1], io.x_shape, 0.0f, "bias", true);
  const std::array<HostParam, 3> hp{per_element(off), per_element(bias), per_element(a_.eta)};
  run_neurons(id_, ctx, params_, io.L, nullptr, nullptr, hp,
              [&](const Grid& g, const Plan& plan, const std::array<Param, 3>& dev, cudaStream_t s) {
                SgArgs a;
                a.g = g;
                a.a = io.x, a.y = io.y;
                a.off_a = dev[0], a.bias_a = dev[1], a.eta = dev[2];
                return launch_sg_decode(a, plan, s);
              });
}

template <>
void Kernel<SignGDEncodeOp>::compute(Ort::KernelContext& ctx, const RunIO<SignGDEncodeOp>& io) {
  const std::array<HostParam, 1> hp{per_element(a_.eta)};
  run_neurons(id_, ctx, params_, io.L, nullptr, nullptr, hp,
              [&](const Grid& g, const Plan& plan, const std::array<Param, 1>& dev, cudaStream_t s) {
                SgArgs a;
                a.g = g;
                a.a = io.x, a.y = io.y;
                a.eta = dev[0];
                return launch_sg_encode(a, plan, s);
              });
}

}  // namespace snn::cuda
