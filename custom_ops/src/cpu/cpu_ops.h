// The CPU execution provider's kernels of the snn_onnx ops: one class template, whose compute
// each op family's file specialises (neurons.cc, multi_threshold.cc, temporal.cc,
// compensated.cc). register.cc registers Kernel<Op> for every op of AllOps.
#pragma once

#include "../common/op_def.h"

namespace snn::cpu {

template <class Op>
struct Kernel : KernelBase<Kernel<Op>, Op> {
  static constexpr const char* kProvider = "CPUExecutionProvider";
  static constexpr bool kParamsOnHost = false;
  using KernelBase<Kernel<Op>, Op>::KernelBase;
  void compute(Ort::KernelContext& ctx, const RunIO<Op>& io);
};

SNN_ONNX_FOR_EACH_OP(SNN_ONNX_DECLARE_COMPUTE)

}  // namespace snn::cpu
