// The CUDA kernels: each __global__ function runs one body (neurons.cuh, multi_threshold.cuh,
// temporal.cuh, compensated.cuh, signgd.cuh) per thread.
// Compiled with --fmad=false (see custom_ops/cmake/cuda.cmake): bit-exact spikes need every
// product rounded before it is added.
#include <climits>

#include "launch.h"

namespace snn::cuda {
namespace {

template <class Body, class Args>
__global__ void __launch_bounds__(kBlock) body_kernel(const Args a, int64_t threads) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x;
  if (tid < threads) Body::run(a, tid);
}

// Runs a body over `threads` threads on one stream (the dispatch's launcher).
struct GpuLauncher {
  cudaStream_t stream;

  template <class Body, class Args>
  int run(const Args& a, int64_t threads) {
    if (threads <= 0) return cudaSuccess;
    const int64_t blocks = ceil_div(threads, kBlock);
    if (blocks > INT_MAX) return cudaErrorInvalidConfiguration;
    body_kernel<Body, Args><<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(a, threads);
    return cudaGetLastError();
  }
};

cudaError_t result(int rc) {
  return rc == kBadPlan ? cudaErrorInvalidValue : static_cast<cudaError_t>(rc);
}

}  // namespace

cudaError_t launch_if(const IFArgs& a, const Plan& p, bool is_signed, bool reset_zero, cudaStream_t s) {
  GpuLauncher l{s};
  return result(dispatch_if(l, a, p, is_signed, reset_zero));
}

cudaError_t launch_para(const ParaArgs& a, const Plan& p, cudaStream_t s) {
  GpuLauncher l{s};
  return result(dispatch_para(l, a, p));
}

cudaError_t launch_mt(const MTArgs& a, const Plan& p, cudaStream_t s) {
  GpuLauncher l{s};
  return result(dispatch_mt(l, a, p));
}

cudaError_t launch_temporal_mean(const TemporalArgs& a, cudaStream_t s) {
  GpuLauncher l{s};
  return static_cast<cudaError_t>(l.run<MeanBody>(a, a.M));
}

cudaError_t launch_temporal_delta(const TemporalArgs& a, cudaStream_t s) {
  GpuLauncher l{s};
  return static_cast<cudaError_t>(l.run<DeltaBody>(a, a.M));
}

cudaError_t launch_compensated(const CompArgs& a, Fn fn, cudaStream_t s) {
  GpuLauncher l{s};
  return result(dispatch_compensated(l, a, fn));
}

cudaError_t launch_sg_neuron(const SgArgs& a, const Plan& p, SgFn fn, cudaStream_t s) {
  GpuLauncher l{s};
  return result(dispatch_sg_neuron(l, a, p, fn));
}

cudaError_t launch_sg_neuron2(const SgArgs& a, const Plan& p, SgFn2 fn, cudaStream_t s) {
  GpuLauncher l{s};
  return result(dispatch_sg_neuron2(l, a, p, fn));
}

cudaError_t launch_sg_decode(const SgArgs& a, const Plan& p, cudaStream_t s) {
  GpuLauncher l{s};
  return result(dispatch_sg_decode(l, a, p));
}

cudaError_t launch_sg_encode(const SgArgs& a, const Plan& p, cudaStream_t s) {
  GpuLauncher l{s};
  return result(dispatch_sg_encode(l, a, p));
}

}  // namespace snn::cuda
