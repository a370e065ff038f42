// Parsed and validated attributes of each op (shared by the CPU and CUDA kernels).
// Errors surface when the session is created, naming the node.
#pragma once

#include "op_common.h"

namespace snn {

struct IFAttrs {
  int64_t time_steps;
  float v_init, leak;
  bool reset_zero;  // reset "zero" (else "subtract")
  bool is_signed;
  float signed_eps;
  int64_t channel_axis;
  bool static_input;  // x is one step [B, ...] repeated at every step; y is [T*B, ...]
  static IFAttrs parse(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id);
};

struct ParaIFAttrs {
  int64_t time_steps;
  float v_init;
  int64_t channel_axis;
  bool static_input;  // as IFAttrs::static_input
  static ParaIFAttrs parse(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id);
};

// MultiThresholdNeuron (schema.py MULTI_THRESHOLD_NEURON): level k is worth scale * 2^k.
struct MultiThresholdAttrs {
  int64_t time_steps;
  int64_t levels;  // 1 .. kMaxLevels
  int64_t channel_axis;
  static MultiThresholdAttrs parse(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id);
};

struct TemporalAttrs {  // TemporalMean, TemporalDelta
  int64_t time_steps;
  static TemporalAttrs parse(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id);
};

// CompensatedElementwise's `function` values, in the order of the kernels' function tables
// (reference.py ELEMENTWISE).
inline constexpr const char* kElementwiseFunctions[] = {"gelu",  "gelu_tanh",   "silu",      "sigmoid",
                                                        "tanh",  "hardsigmoid", "hardswish", "relu"};

struct CompensatedAttrs {
  int64_t time_steps;
  int function;  // index into kElementwiseFunctions
  static CompensatedAttrs parse(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id);
};

}  // namespace snn
