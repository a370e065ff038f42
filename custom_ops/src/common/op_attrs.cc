#include "op_attrs.h"

#include <iterator>
#include <string>

namespace snn {
namespace {

int64_t parse_time_steps(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id) {
  const int64_t T = attr_int(api, info, id, "time_steps", std::nullopt);
  if (T < 1) id.fail("time_steps must be >= 1, got " + std::to_string(T));
  return T;
}

bool parse_static_input(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id) {
  const int64_t v = attr_int(api, info, id, "static_input", defaults::kStaticInput);
  if (v != 0 && v != 1) id.fail("static_input must be 0 or 1, got " + std::to_string(v));
  return v == 1;
}

}  // namespace

IFAttrs IFAttrs::parse(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id) {
  IFAttrs a{};
  a.time_steps = parse_time_steps(api, info, id);
  a.v_init = attr_float(api, info, id, "v_init", defaults::kVInit);
  a.leak = attr_float(api, info, id, "leak", defaults::kLeak);
  const std::string reset = attr_string(api, info, id, "reset", defaults::kReset);
  if (reset != "subtract" && reset != "zero")
    id.fail("reset must be one of ('subtract', 'zero'), got '" + reset + "'");
  a.reset_zero = reset == "zero";
  a.is_signed = attr_int(api, info, id, "signed", defaults::kSigned) != 0;  // truthy, as reference.py
  a.signed_eps = attr_float(api, info, id, "signed_eps", defaults::kSignedEps);
  a.channel_axis = attr_int(api, info, id, "channel_axis", defaults::kChannelAxis);
  a.static_input = parse_static_input(api, info, id);
  return a;
}

ParaIFAttrs ParaIFAttrs::parse(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id) {
  ParaIFAttrs a{};
  a.time_steps = parse_time_steps(api, info, id);
  a.v_init = attr_float(api, info, id, "v_init", defaults::kVInit);
  a.channel_axis = attr_int(api, info, id, "channel_axis", defaults::kChannelAxis);
  a.static_input = parse_static_input(api, info, id);
  return a;
}

MultiThresholdAttrs MultiThresholdAttrs::parse(const OrtApi& api, const OrtKernelInfo* info,
                                               const NodeId& id) {
  MultiThresholdAttrs a{};
  a.time_steps = parse_time_steps(api, info, id);
  a.levels = attr_int(api, info, id, "levels", defaults::kLevels);
  if (a.levels < 1 || a.levels > kMaxLevels)
    id.fail("levels must be in [1, " + std::to_string(kMaxLevels) + "], got " +
            std::to_string(a.levels));
  a.channel_axis = attr_int(api, info, id, "channel_axis", defaults::kMTChannelAxis);
  return a;
}

TemporalAttrs TemporalAttrs::parse(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id) {
  return {parse_time_steps(api, info, id)};
}

CompensatedAttrs CompensatedAttrs::parse(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id) {
  CompensatedAttrs a{parse_time_steps(api, info, id), -1};
  const std::string fn = attr_string(api, info, id, "function", "");
  if (fn.empty()) id.fail("required attribute 'function' is missing");
  for (int i = 0; i < static_cast<int>(std::size(kElementwiseFunctions)); ++i)
    if (fn == kElementwiseFunctions[i]) a.function = i;
  if (a.function < 0) {
    std::string all;
    for (const char* n : kElementwiseFunctions) all += std::string(all.empty() ? "" : ", ") + "'" + n + "'";
    id.fail("function must be one of (" + all + "), got '" + fn + "'");
  }
  return a;
}

}  // namespace snn
