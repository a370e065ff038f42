// ORT side of the CUDA CompensatedElementwise (body: compensated.cuh).
#include "cuda_ops.h"
#include "launch.h"

namespace snn::cuda {

template <>
void Kernel<CompensatedElementwiseOp>::compute(Ort::KernelContext& ctx, const RunIO<CompensatedElementwiseOp>& io) {
  const Fn fn = a_.function;
  run_elementwise(id_, ctx, io, [fn](const CompArgs& a, cudaStream_t s) { return launch_compensated(a, fn, s); });
}

}  // namespace snn::cuda
