#include "ops.h"

#include <cmath>
#include <iterator>
#include <string>

#include "layout.h"

namespace snn {
namespace {

// = snn_onnx/ops/schema.py
namespace defaults {
constexpr float kVInit = 0.5f;
constexpr float kLeak = 1.0f;
constexpr const char* kReset = "subtract";
constexpr int64_t kSigned = 0;
constexpr float kSignedEps = 1e-3f;
constexpr int64_t kChannelAxis = 1;
constexpr int64_t kLevels = 8;
constexpr int64_t kMTChannelAxis = -1;  // MultiThresholdNeuron: features last
constexpr int64_t kStaticInput = 0;
constexpr float kEta0 = 0.15f;   // SignGD step sizes
constexpr float kGamma = 0.95f;
constexpr float kAlpha = 0.01f;  // SignGDNeuron leaky_relu / hardsigmoid slope
constexpr float kBeta = 0.5f;
constexpr float kFloor = 0.0f;   // SignGDNeuron2 denominator_floor
}  // namespace defaults

// time_steps; channel_axis (default `channel_axis`) for ops with parameters; static_input.
BaseAttrs base(const KernelInfo& k, bool has_static_input, std::optional<int64_t> channel_axis = std::nullopt) {
  BaseAttrs a;
  a.time_steps = k.attr_int("time_steps", std::nullopt);
  check_time_steps(k.id, a.time_steps);
  if (channel_axis) a.channel_axis = k.attr_int("channel_axis", *channel_axis);
  if (has_static_input) {
    const int64_t v = k.attr_int("static_input", defaults::kStaticInput);
    if (v != 0 && v != 1) k.id.fail("static_input must be 0 or 1, got " + std::to_string(v));
    a.static_input = v == 1;
  }
  return a;
}

}  // namespace

IFNeuronOp::Attrs IFNeuronOp::parse(const KernelInfo& k) {
  Attrs a{base(k, true, defaults::kChannelAxis)};
  a.v_init = k.attr_finite("v_init", defaults::kVInit);
  a.leak = k.attr_finite("leak", defaults::kLeak);
  const std::string reset = k.attr_string("reset", defaults::kReset);
  if (reset != "subtract" && reset != "zero")
    k.id.fail("reset must be one of ('subtract', 'zero'), got '" + reset + "'");
  a.reset_zero = reset == "zero";
  a.is_signed = k.attr_int("signed", defaults::kSigned) != 0;  // truthy, as reference.py
  a.signed_eps = k.attr_finite("signed_eps", defaults::kSignedEps);
  return a;
}

ParaIFNeuronOp::Attrs ParaIFNeuronOp::parse(const KernelInfo& k) {
  Attrs a{base(k, true, defaults::kChannelAxis)};
  a.v_init = k.attr_finite("v_init", defaults::kVInit);
  return a;
}

MultiThresholdNeuronOp::Attrs MultiThresholdNeuronOp::parse(const KernelInfo& k) {
  Attrs a{base(k, false, defaults::kMTChannelAxis)};
  const int64_t levels = k.attr_int("levels", defaults::kLevels);
  if (levels < 1 || levels > kMaxLevels)
    k.id.fail("levels must be in [1, " + std::to_string(kMaxLevels) + "], got " + std::to_string(levels));
  a.levels = static_cast<int>(levels);
  return a;
}

TemporalMeanOp::Attrs TemporalMeanOp::parse(const KernelInfo& k) { return base(k, false); }
TemporalDeltaOp::Attrs TemporalDeltaOp::parse(const KernelInfo& k) { return base(k, false); }

CompensatedElementwiseOp::Attrs CompensatedElementwiseOp::parse(const KernelInfo& k) {
  Attrs a{base(k, false)};
  const std::string fn = k.attr_string("function", "");
  if (fn.empty()) k.id.fail("required attribute 'function' is missing");
  int found = -1;
  for (int i = 0; i < kNumFunctions; ++i)
    if (fn == kElementwiseFunctions[i]) found = i;
  if (found < 0) {
    std::string all;
    for (const char* n : kElementwiseFunctions) all += std::string(all.empty() ? "" : ", ") + "'" + n + "'";
    k.id.fail("function must be one of (" + all + "), got '" + fn + "'");
  }
  a.function = static_cast<Fn>(found);
  return a;
}

// ---------------------------------------------------------------------------------------------
// SignGD

namespace {

SignGDAttrs signgd_base(const KernelInfo& k, bool has_static_input) {
  SignGDAttrs a;
  static_cast<BaseAttrs&>(a) = base(k, has_static_input);
  a.eta0 = k.attr_float("eta0", defaults::kEta0);
  a.gamma = k.attr_float("gamma", defaults::kGamma);
  if (!(std::isfinite(a.eta0) && a.eta0 > 0.0f)) k.id.fail("eta0 must be finite and > 0, got " + std::to_string(a.eta0));
  if (!(std::isfinite(a.gamma) && a.gamma > 0.0f && a.gamma <= 1.0f))
    k.id.fail("gamma must be in (0, 1], got " + std::to_string(a.gamma));
  // eta_t = eta0 * gamma^(t-1): a float64 running product, each rounded to float32
  a.eta.resize(static_cast<size_t>(a.time_steps));
  double e = a.eta0;
  for (auto& v : a.eta) {
    v = static_cast<float>(e);
    e = e * static_cast<double>(a.gamma);
  }
  return a;
}

template <size_t N>
int function_index(const KernelInfo& k, const char* const (&names)[N]) {
  const std::string fn = k.attr_string("function", "");
  if (fn.empty()) k.id.fail("required attribute 'function' is missing");
  for (size_t i = 0; i < N; ++i)
    if (fn == names[i]) return static_cast<int>(i);
  std::string all;
  for (const char* n : names) all += std::string(all.empty() ? "" : ", ") + "'" + n + "'";
  k.id.fail("function must be one of (" + all + "), got '" + fn + "'");
}

}  // namespace

SignGDNeuronOp::Attrs SignGDNeuronOp::parse(const KernelInfo& k) {
  Attrs a;
  static_cast<SignGDAttrs&>(a) = signgd_base(k, false);
  a.function = static_cast<SgFn>(function_index(k, kSgFunctions));
  a.p.alpha = k.attr_finite("alpha", defaults::kAlpha);
  a.p.beta = k.attr_finite("beta", defaults::kBeta);
  a.p.lo = k.attr_float("lo", -INFINITY);
  a.p.hi = k.attr_float("hi", INFINITY);
  if (a.function == SgFn::kClip && !(a.p.lo <= a.p.hi))
    k.id.fail("clip needs lo <= hi, got lo=" + std::to_string(a.p.lo) + ", hi=" + std::to_string(a.p.hi));
  return a;
}

SignGDNeuron2Op::Attrs SignGDNeuron2Op::parse(const KernelInfo& k) {
  Attrs a;
  static_cast<SignGDAttrs&>(a) = signgd_base(k, false);
  a.function = static_cast<SgFn2>(function_index(k, kSgFunctions2));
  a.denominator_floor = k.attr_float("denominator_floor", defaults::kFloor);
  if (!(std::isfinite(a.denominator_floor) && a.denominator_floor >= 0.0f))
    k.id.fail("denominator_floor must be finite and >= 0, got " + std::to_string(a.denominator_floor));
  return a;
}

SignGDDecodeOp::Attrs SignGDDecodeOp::parse(const KernelInfo& k) { return signgd_base(k, false); }
SignGDEncodeOp::Attrs SignGDEncodeOp::parse(const KernelInfo& k) { return signgd_base(k, true); }

}  // namespace snn
