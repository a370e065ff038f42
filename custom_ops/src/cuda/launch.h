// Host entry points of the CUDA kernels (kernels.cu), called by the ONNX Runtime ops
// (neurons.cc, multi_threshold.cc, temporal.cc, compensated.cc). Each enqueues one kernel on
// `stream` and returns the launch's error code; nothing waits for the GPU.
#pragma once

#include <cuda_runtime_api.h>

#include "compensated.cuh"
#include "multi_threshold.cuh"
#include "neurons.cuh"
#include "signgd.cuh"
#include "temporal.cuh"

namespace snn::cuda {

cudaError_t launch_if(const IFArgs& a, const Plan& p, bool is_signed, bool reset_zero, cudaStream_t s);
cudaError_t launch_para(const ParaArgs& a, const Plan& p, cudaStream_t s);
cudaError_t launch_mt(const MTArgs& a, const Plan& p, cudaStream_t s);
cudaError_t launch_temporal_mean(const TemporalArgs& a, cudaStream_t s);
cudaError_t launch_temporal_delta(const TemporalArgs& a, cudaStream_t s);
cudaError_t launch_compensated(const CompArgs& a, Fn fn, cudaStream_t s);
cudaError_t launch_sg_neuron(const SgArgs& a, const Plan& p, SgFn fn, cudaStream_t s);
cudaError_t launch_sg_neuron2(const SgArgs& a, const Plan& p, SgFn2 fn, cudaStream_t s);
cudaError_t launch_sg_decode(const SgArgs& a, const Plan& p, cudaStream_t s);
cudaError_t launch_sg_encode(const SgArgs& a, const Plan& p, cudaStream_t s);

}  // namespace snn::cuda
