// One traits struct per op of the snn_onnx domain (docs/ops.md): name, parameter inputs,
// whether it has the optional spike-count and membrane-potential outputs, and its attributes, parsed and validated
// once for the CPU and the CUDA kernels (errors surface when the session is created and name
// op, node and attribute). Attribute defaults repeat snn_onnx/ops/schema.py; the kernel tests
// check that both agree. AllOps is the op set the library registers (register.cc).
#pragma once

#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "op_common.h"
#include "signgd_steps.h"
#include "steps.h"

namespace snn {

// A parameter input after x (threshold, scale, bias): a scalar or 1-D along `channel_axis`;
// with `broadcast`, any shape that broadcasts (NumPy rules) to one sample x.shape[1:].
struct ParamSpec {
  const char* name;
  bool required;
  bool positive;  // must be finite and > 0
  bool broadcast = false;
};

// Inputs before the parameters that are data ([T*B, ...], in the provider's memory): 1, or the
// op's kDataInputs (SignGDNeuron2's a and b, which have the same shape).
template <class Op, class = void>
struct DataInputs : std::integral_constant<size_t, 1> {};
template <class Op>
struct DataInputs<Op, std::void_t<decltype(Op::kDataInputs)>> : std::integral_constant<size_t, Op::kDataInputs> {};

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

// ---------------------------------------------------------------------------------------------
// SignGD neurons (docs/ops.md#signgd-neurons). Parameters broadcast to one sample; the step
// sizes eta_t = eta0 * gamma^(t-1) are computed once, at session creation (float64 running
// product of the float32 attributes, each rounded to float32, as signgd_math.eta_table).

// `function` values, in the order of signgd_steps.h SgFn / SgFn2 (= schema.py).
inline constexpr const char* kSgFunctions[kNumSgFunctions] = {
    "relu", "leaky_relu", "clip", "abs", "square", "exp", "sigmoid", "silu", "tanh", "gelu", "gelu_tanh",
    "hardsigmoid", "hardswish"};
inline constexpr const char* kSgFunctions2[kNumSgFunctions2] = {"max", "min", "mul", "div", "div_sqrt"};

struct SignGDAttrs : BaseAttrs {
  float eta0 = 0, gamma = 0;
  std::vector<float> eta;  // [T]
};

struct SignGDNeuronOp {
  static constexpr const char* kName = "SignGDNeuron";
  static constexpr std::array<ParamSpec, 3> kParams{
      {{"offset", false, false, true}, {"bias", false, false, true}, {"amplitude", false, true, true}}};
  static constexpr bool kHasCounts = true;
  static constexpr bool kHasPotentials = false;  // no potential output (docs/ops.md)
  struct Attrs : SignGDAttrs {
    SgFn function = SgFn::kRelu;
    SgParams p{};
  };
  static Attrs parse(const KernelInfo& k);
};

struct SignGDNeuron2Op {
  static constexpr const char* kName = "SignGDNeuron2";
  static constexpr size_t kDataInputs = 2;
  static constexpr std::array<ParamSpec, 5> kParams{{{"offset_a", false, false, true},
                                                     {"bias_a", false, false, true},
                                                     {"offset_b", false, false, true},
                                                     {"bias_b", false, false, true},
                                                     {"amplitude", false, true, true}}};
  static constexpr bool kHasCounts = true;
  static constexpr bool kHasPotentials = false;  // no potential output (docs/ops.md)
  struct Attrs : SignGDAttrs {
    SgFn2 function = SgFn2::kMax;
    float denominator_floor = 0;
  };
  static Attrs parse(const KernelInfo& k);
};

struct SignGDDecodeOp {
  static constexpr const char* kName = "SignGDDecode";
  static constexpr std::array<ParamSpec, 2> kParams{{{"offset", false, false, true}, {"bias", false, false, true}}};
  static constexpr bool kHasCounts = false;
  static constexpr bool kHasPotentials = false;
  using Attrs = SignGDAttrs;
  static Attrs parse(const KernelInfo& k);
};

struct SignGDEncodeOp {
  static constexpr const char* kName = "SignGDEncode";
  static constexpr std::array<ParamSpec, 0> kParams{};
  static constexpr bool kHasCounts = false;
  static constexpr bool kHasPotentials = false;
  using Attrs = SignGDAttrs;
  static Attrs parse(const KernelInfo& k);
};

// The op set, one entry per op, in registration order: X(Op) for each. Every op has a CPU
// kernel (cpu::Kernel<Op>) and, in a CUDA build, a CUDA kernel (cuda::Kernel<Op>) under the
// same name; cpu_ops.h and cuda_ops.h declare them from this list, register.cc registers them.
#define SNN_ONNX_FOR_EACH_OP(X) \
  X(IFNeuronOp) X(ParaIFNeuronOp) X(MultiThresholdNeuronOp) X(TemporalMeanOp) X(TemporalDeltaOp) \
  X(CompensatedElementwiseOp) X(SignGDNeuronOp) X(SignGDNeuron2Op) X(SignGDDecodeOp) X(SignGDEncodeOp)

// Each op's kernel of a provider: the Kernel<Op>::compute specialisation its family file defines.
#define SNN_ONNX_DECLARE_COMPUTE(Op) template <> void Kernel<Op>::compute(Ort::KernelContext&, const RunIO<Op>&);

}  // namespace snn
