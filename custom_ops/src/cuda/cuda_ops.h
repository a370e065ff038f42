// The CUDA execution provider's kernels of the snn_onnx ops (built with -DSNN_ONNX_CUDA=ON):
// one class template, whose compute each op family's file specialises (neurons.cc,
// multi_threshold.cc, temporal.cc, compensated.cc); same names, domain, attributes, inputs,
// outputs and validation as the CPU kernels. register.cc registers Kernel<Op> for every op.
#pragma once

#include "../common/op_def.h"
#include "runtime.h"

namespace snn::cuda {

template <class Op>
struct Kernel : KernelBase<Kernel<Op>, Op> {
  static constexpr const char* kProvider = "CUDAExecutionProvider";
  static constexpr bool kParamsOnHost = true;  // validated on the host, copied by DeviceParams
  using KernelBase<Kernel<Op>, Op>::KernelBase;
  void compute(Ort::KernelContext& ctx, const RunIO<Op>& io);

 private:
  DeviceParams params_;
};

SNN_ONNX_FOR_EACH_OP(SNN_ONNX_DECLARE_COMPUTE)

// CUDA runtime version the kernels were built with (CUDART_VERSION, e.g. 13000).
int runtime_version();

}  // namespace snn::cuda
