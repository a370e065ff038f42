#include "ops.h"

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

}  // namespace snn
