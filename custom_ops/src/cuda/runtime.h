// The ONNX Runtime side shared by the CUDA ops: CUDA errors as ORT errors, ORT's compute stream
// and its device, the per-node device copy of the parameters, and the launch of a neuron kernel.
//
// Parameters (thresholds, scales, biases) are declared CPU inputs (Kernel::kParamsOnHost): ORT
// keeps them, normally initializers, in host memory, so they are validated on the host by the
// same code and with the same messages as on the CPU (common/op_def.h), before anything is
// launched — no device flag to copy back and no synchronisation per run. The kernels read them
// from a per-node device copy (DeviceParams) that is uploaded once and again only if the values
// change.
//
// Everything is enqueued on ORT's compute stream (KernelContext_GetGPUComputeStream); nothing
// here waits for the GPU on the normal path. Only the ORT C API is used, no header of ORT's
// CUDA provider.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <mutex>
#include <vector>

#include "../common/layout.h"
#include "temporal.cuh"

namespace snn::cuda {

// Fails with the CUDA error text (and what to do about the errors a user can fix).
void check(const NodeId& id, const char* what, cudaError_t e);

struct Device {
  cudaStream_t stream;
  int id;
  int64_t resident;  // threads the GPU keeps in flight at once (SMs x threads per SM)
};

// ORT's compute stream and its device, made current on this thread for the CUDA runtime
// linked into this library (it keeps its own per-thread current device).
Device device_of(const NodeId& id, Ort::KernelContext& ctx);

// Per-node device copy of the parameters. Uploaded (on the compute stream) on the first run and
// whenever the values differ from the last upload, e.g. parameters fed as graph inputs; the
// comparison is a memcmp of a few floats per run. Launches happen under the lock, so no other
// run can replace the values between an upload and the kernel that reads them; and before
// values already in use are overwritten, the device is synchronised (rare path: changed
// parameters), because a kernel of an earlier run, maybe on another stream, may still read them.
class DeviceParams {
 public:
  DeviceParams() = default;
  DeviceParams(const DeviceParams&) = delete;
  DeviceParams& operator=(const DeviceParams&) = delete;
  ~DeviceParams();

  // Calls launch(p) with p[k] the device view of params[k] (data nullptr where absent).
  template <size_t K, class F>
  void run(const NodeId& id, const Device& d, const std::array<HostParam, K>& params, F&& launch) {
    std::lock_guard<std::mutex> lock(mu_);
    if (d.id != device_ || !same(params.data(), K)) upload(id, d, params.data(), K);
    std::array<Param, K> dev{};
    size_t off = 0;
    for (size_t k = 0; k < K; ++k) {
      if (!params[k].data) continue;
      dev[k] = {dev_ + off, params[k].layout.channels, params[k].layout.inner, params[k].layout.scalar};
      off += static_cast<size_t>(params[k].size);
    }
    launch(dev);
  }

 private:
  bool same(const HostParam* params, size_t k) const;
  void upload(const NodeId& id, const Device& d, const HostParam* params, size_t k);

  std::mutex mu_;
  std::vector<float> host_;  // values of the last upload
  float* dev_ = nullptr;
  size_t cap_ = 0;
  int device_ = -1;
};

// A neuron kernel's run: device, plan, parameters on the device, counts zeroed where the plan
// adds into them; launch(grid, plan, device params, stream) enqueues the kernel. potentials:
// the optional membrane output (nullptr when the node does not declare it).
template <size_t K, class Launch>
void run_neurons(const NodeId& id, Ort::KernelContext& ctx, DeviceParams& dp, const TimeLayout& L,
                 int64_t* counts, float* potentials, const std::array<HostParam, K>& params, Launch&& launch) {
  const Device d = device_of(id, ctx);
  const Plan plan = plan_neurons(L.B, L.N, counts != nullptr, d.resident);
  dp.run(id, d, params, [&](const std::array<Param, K>& dev) {
    const Grid g = make_grid(L.T, L.B, L.N, L.static_input, counts, plan, potentials);
    if (counts_need_zero(g))
      check(id, "cudaMemsetAsync",
            cudaMemsetAsync(counts, 0, static_cast<size_t>(g.T * g.N) * sizeof(int64_t), d.stream));
    if (plan.threads > 0) check(id, "kernel launch", launch(g, plan, dev, d.stream));
  });
}

// An elementwise op's run over x viewed as [T, M]: launch(args, stream) enqueues the kernel.
template <class IO, class Launch>
void run_elementwise(const NodeId& id, Ort::KernelContext& ctx, const IO& io, Launch&& launch) {
  TemporalArgs a;
  a.x = io.x, a.y = io.y;
  a.T = io.L.T;
  a.M = io.L.B * io.L.N;
  if (a.M == 0) return;
  check(id, "kernel launch", launch(a, device_of(id, ctx).stream));
}

}  // namespace snn::cuda
