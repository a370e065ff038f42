// One traits struct per op of the snn_onnx domain (docs/ops.md): name, parameter inputs,
// whether it has the optional spike-count and membrane-potential outputs, and its attributes, parsed and validated
// once for the CPU and the CUDA kernels (errors surface when the session is created and name
// op, node and attribute). Attribute defaults repeat snn_onnx/ops/schema.py; the kernel tests
// check that both agree. AllOps is the op set the library registers (register.cc).
#pragma once

#include <array>
#include <cstdint>

#include "op_common.h"
#include "steps.h"

namespace snn {

// A parameter input after x (threshold, scale, bias): a scalar or 1-D along `channel_axis`.
struct ParamSpec {
  const char* name;
  bool required;
  bool positive;  // must be finite and > 0
};

// The attributes the shared validation reads; an op without channel_axis / static_input keeps
// the defaults.
struct BaseAttrs {
  int64_t time_steps = 0;
  int64_t channel_axis = 1;
  bool static_input = false;  // x is one step [B, ...] repeated at every step; y is [T*B, ...]
};

struct IFNeuronOp {
  static constexpr const char* kName = "IFNeuron";
  static constexpr std::array<ParamSpec, 1> kParams{{{"threshold", true, true}}};
  static constexpr bool kHasCounts = true;
  static constexpr bool kHasPotentials = true;  // output 2, a debug output (docs/ops.md)
  struct Attrs : BaseAttrs {
    float v_init = 0, leak = 0, signed_eps = 0;
    bool reset_zero = false;  // reset "zero" (else "subtract")
    bool is_signed = false;
  };
  static Attrs parse(const KernelInfo& k);
};

struct ParaIFNeuronOp {
  static constexpr const char* kName = "ParaIFNeuron";
  static constexpr std::array<ParamSpec, 3> kParams{
      {{"theta_pre", true, true}, {"theta_post", false, true}, {"bias", false, false}}};
  static constexpr bool kHasCounts = true;
  static constexpr bool kHasPotentials = true;  // output 2, a debug output (docs/ops.md)
  struct Attrs : BaseAttrs {
    float v_init = 0;
  };
  static Attrs parse(const KernelInfo& k);
};

struct MultiThresholdNeuronOp {
  static constexpr const char* kName = "MultiThresholdNeuron";
  static constexpr std::array<ParamSpec, 2> kParams{{{"scale_pos", true, true}, {"scale_neg", true, true}}};
  static constexpr bool kHasCounts = true;
  static constexpr bool kHasPotentials = true;  // output 2, a debug output (docs/ops.md)
  struct Attrs : BaseAttrs {
    int levels = 0;  // 1 .. kMaxLevels: level k is worth scale * 2^k
  };
  static Attrs parse(const KernelInfo& k);
};

// Ops elementwise over time, with no parameter inputs and no spike counts.
struct ElementwiseOp {
  static constexpr std::array<ParamSpec, 0> kParams{};
  static constexpr bool kHasCounts = false;
  static constexpr bool kHasPotentials = false;
};

struct TemporalMeanOp : ElementwiseOp {
  static constexpr const char* kName = "TemporalMean";
  using Attrs = BaseAttrs;
  static Attrs parse(const KernelInfo& k);
};

struct TemporalDeltaOp : ElementwiseOp {
  static constexpr const char* kName = "TemporalDelta";
  using Attrs = BaseAttrs;
  static Attrs parse(const KernelInfo& k);
};

// `function` values, in the order of steps.h Fn (= reference.py ELEMENTWISE, schema.py).
inline constexpr const char* kElementwiseFunctions[kNumFunctions] = {
    "gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "hardsigmoid", "hardswish", "relu"};

struct CompensatedElementwiseOp : ElementwiseOp {
  static constexpr const char* kName = "CompensatedElementwise";
  struct Attrs : BaseAttrs {
    Fn function = Fn::kRelu;
  };
  static Attrs parse(const KernelInfo& k);
};

// The op set, one entry per op, in registration order: X(Op) for each. Every op has a CPU
// kernel (cpu::Kernel<Op>) and, in a CUDA build, a CUDA kernel (cuda::Kernel<Op>) under the
// same name; cpu_ops.h and cuda_ops.h declare them from this list, register.cc registers them.
#define SNN_ONNX_FOR_EACH_OP(X) \
  X(IFNeuronOp) X(ParaIFNeuronOp) X(MultiThresholdNeuronOp) X(TemporalMeanOp) X(TemporalDeltaOp) \
  X(CompensatedElementwiseOp)

// Each op's kernel of a provider: the Kernel<Op>::compute specialisation its family file defines.
#define SNN_ONNX_DECLARE_COMPUTE(Op) template <> void Kernel<Op>::compute(Ort::KernelContext&, const RunIO<Op>&);

}  // namespace snn
