// ORT side of the CUDA TemporalMean and TemporalDelta (bodies: temporal.cuh).
#include "cuda_ops.h"
#include "launch.h"

namespace snn::cuda {

template <>
void Kernel<TemporalMeanOp>::compute(Ort::KernelContext& ctx, const RunIO<TemporalMeanOp>& io) {
  run_elementwise(id_, ctx, io, launch_temporal_mean);
}

template <>
void Kernel<TemporalDeltaOp>::compute(Ort::KernelContext& ctx, const RunIO<TemporalDeltaOp>& io) {
  run_elementwise(id_, ctx, io, launch_temporal_delta);
}

}  // namespace snn::cuda
