// ONNX Runtime side of the CUDA ops: inputs, validation, outputs, ORT's compute stream.
//
// Parameters (thresholds, scales, biases) are declared CPU inputs (OpDef<..., 1>): ORT keeps
// them, normally initializers, in host memory, so they are validated on the host by the same
// code and with the same messages as on the CPU, before anything is launched — no device flag
// to copy back and no synchronisation per run. The kernels read them from a per-node device
// copy (DeviceParams) that is uploaded once and again only if the values change.
//
// Everything is enqueued on ORT's compute stream (KernelContext_GetGPUComputeStream); nothing
// here waits for the GPU on the normal path. Only the ORT C API is used, no header of ORT's
// CUDA provider.
#include "cuda_ops.h"

#include <cstring>
#include <mutex>
#include <string>
#include <utility>

#include "../common/op_attrs.h"
#include "launch.h"

namespace snn::cuda {
namespace {

constexpr const char* kCuda = "CUDAExecutionProvider";

std::string version_str(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// CUDA error text, with what to do about the errors a user can fix.
std::string describe(cudaError_t e) {
  std::string s = std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
  switch (e) {
    case cudaErrorInsufficientDriver:
    case cudaErrorCompatNotSupportedOnDevice:
      s += ": libsnn_onnx_ops' CUDA kernels were built with CUDA " + version_str(CUDART_VERSION) +
           " (runtime linked statically); the NVIDIA driver is older. Update the driver, or rebuild "
           "with SNN_ONNX_CUDA=ON using a CUDA toolkit the driver supports";
      break;
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidKernelImage:
    case cudaErrorUnsupportedPtxVersion:
      s += ": libsnn_onnx_ops has no kernel for this GPU's architecture; rebuild with "
           "CUDAARCHS=<its compute capability, e.g. 90> (or -DCMAKE_CUDA_ARCHITECTURES=native)";
      break;
    default:
      break;
  }
  return s;
}

void check(const NodeId& id, const char* what, cudaError_t e) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so the next run starts clean
    id.fail(std::string("CUDA error in ") + what + ": " + describe(e));
  }
}

// ---------------------------------------------------------------------------------------------
// Stream and device

struct Device {
  cudaStream_t stream;
  int id;
  int64_t resident;  // threads the GPU keeps in flight at once (SMs x threads per SM)
};

int64_t resident_threads(const NodeId& id, int dev) {
  static std::mutex mu;
  static std::vector<int64_t> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (dev >= static_cast<int>(cache.size())) cache.resize(dev + 1, 0);
  if (cache[dev] == 0) {
    int sms = 0, per_sm = 0;
    check(id, "cudaDeviceGetAttribute", cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    check(id, "cudaDeviceGetAttribute",
          cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxThreadsPerMultiProcessor, dev));
    cache[dev] = static_cast<int64_t>(sms) * per_sm;
  }
  return cache[dev];
}

// ORT's compute stream and its device, made current on this thread for the CUDA runtime
// linked into this library (it keeps its own per-thread current device).
Device device_of(const NodeId& id, Ort::KernelContext& ctx) {
  Device d{static_cast<cudaStream_t>(ctx.GetGPUComputeStream()), 0, 0};
#if CUDART_VERSION >= 12080
  check(id, "cudaStreamGetDevice", cudaStreamGetDevice(d.stream, &d.id));
  int current = -1;
  check(id, "cudaGetDevice", cudaGetDevice(&current));
  if (current != d.id) check(id, "cudaSetDevice", cudaSetDevice(d.id));
#else
  check(id, "cudaGetDevice", cudaGetDevice(&d.id));  // ORT made its device current
#endif
  d.resident = resident_threads(id, d.id);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Parameters

// A parameter input in host memory, validated. data == nullptr: an absent optional input.
struct HostParam {
  const float* data = nullptr;
  int64_t size = 0;
  ParamLayout layout{true, 1, 1};
};

HostParam host_param(const NodeId& id, Ort::KernelContext& ctx, size_t index, const char* name,
                     const std::vector<int64_t>& xs, int64_t channel_axis, bool positive) {
  HostParam p;
  if (index >= ctx.GetInputCount()) return p;
  Ort::ConstValue v = ctx.GetInput(index);
  if (static_cast<const OrtValue*>(v) == nullptr) return p;
  const auto info = v.GetTensorTypeAndShapeInfo();
  p.layout = param_layout(id, name, info.GetShape(), xs, channel_axis);
  p.data = v.GetTensorData<float>();
  p.size = static_cast<int64_t>(info.GetElementCount());
  if (positive) check_positive(id, name, p.data, p.size);
  return p;
}

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
  ~DeviceParams() {
    if (dev_ != nullptr) cudaFree(dev_);  // errors ignored: at teardown the driver may be gone
  }

  // Calls launch(p) with p[k] the device address of params[k] (nullptr where absent).
  template <size_t K, class F>
  void run(const NodeId& id, const Device& d, const HostParam* const (&params)[K], F&& launch) {
    size_t total = 0;
    for (const HostParam* p : params) total += p->data ? static_cast<size_t>(p->size) : 0;
    std::lock_guard<std::mutex> lock(mu_);
    if (d.id != device_ || !same(params, total)) upload(id, d, params, total);
    const float* ptrs[K];
    size_t off = 0;
    for (size_t k = 0; k < K; ++k) {
      ptrs[k] = params[k]->data ? dev_ + off : nullptr;
      off += params[k]->data ? static_cast<size_t>(params[k]->size) : 0;
    }
    launch(ptrs);
  }

 private:
  template <size_t K>
  bool same(const HostParam* const (&params)[K], size_t total) const {
    if (total != host_.size()) return false;
    size_t off = 0;
    for (const HostParam* p : params) {
      if (!p->data) continue;
      const size_t n = static_cast<size_t>(p->size);
      if (std::memcmp(host_.data() + off, p->data, n * sizeof(float)) != 0) return false;
      off += n;
    }
    return true;
  }

  template <size_t K>
  void upload(const NodeId& id, const Device& d, const HostParam* const (&params)[K], size_t total) {
    if (dev_ != nullptr) check(id, "cudaDeviceSynchronize", cudaDeviceSynchronize());
    if (dev_ != nullptr && (total > cap_ || d.id != device_)) {
      cudaFree(dev_);
      dev_ = nullptr;
      cap_ = 0;
    }
    device_ = -1;  // invalid until the copy below is enqueued
    if (dev_ == nullptr) {
      check(id, "cudaMalloc", cudaMalloc(reinterpret_cast<void**>(&dev_), total * sizeof(float)));
      cap_ = total;
    }
    host_.resize(total);
    size_t off = 0;
    for (const HostParam* p : params) {
      if (!p->data) continue;
      std::memcpy(host_.data() + off, p->data, static_cast<size_t>(p->size) * sizeof(float));
      off += static_cast<size_t>(p->size);
    }
    // host_ is the source and stays unchanged until the next upload, which synchronises first.
    check(id, "cudaMemcpyAsync",
          cudaMemcpyAsync(dev_, host_.data(), total * sizeof(float), cudaMemcpyHostToDevice, d.stream));
    device_ = d.id;
  }

  std::mutex mu_;
  std::vector<float> host_;  // values of the last upload
  float* dev_ = nullptr;
  size_t cap_ = 0;
  int device_ = -1;
};

Param device_param(const HostParam& p, const float* dev) {
  Param q;
  q.data = dev;
  q.scalar = p.layout.scalar;
  q.channels = p.layout.channels;
  q.inner = p.layout.inner;
  return q;
}

// ---------------------------------------------------------------------------------------------
// Outputs

// Layout of a neuron's input; with static_input x is one step [B, ...] and y is [T*B, ...].
TimeLayout neuron_layout(const NodeId& id, const std::vector<int64_t>& xs, int64_t T, bool static_input) {
  return static_input ? static_layout(id, xs, T) : time_layout(id, xs, T);
}

std::vector<int64_t> y_shape(std::vector<int64_t> xs, const TimeLayout& L) {
  xs[0] = L.T * L.B;
  return xs;
}

// The counts output [T, *x.shape[1:]] when the node declares it, else nullptr.
int64_t* counts_output(Ort::KernelContext& ctx, bool wanted, std::vector<int64_t> shape, int64_t T) {
  if (!wanted) return nullptr;
  shape[0] = T;
  Ort::UnownedValue v = ctx.GetOutput(1, shape);
  if (static_cast<OrtValue*>(v) == nullptr) return nullptr;
  return v.GetTensorMutableData<int64_t>();
}

// Shapes and plan of a neuron kernel (kernels.cuh); zeroes the counts when the plan adds into them.
Grid grid_for(const NodeId& id, const Device& d, const TimeLayout& L, int64_t* counts, const Plan& plan) {
  const Grid g = make_grid(L.T, L.B, L.N, counts, plan);
  if (counts_need_zero(g))
    check(id, "cudaMemsetAsync",
          cudaMemsetAsync(counts, 0, static_cast<size_t>(g.T * g.N) * sizeof(int64_t), d.stream));
  return g;
}

// ---------------------------------------------------------------------------------------------
// Kernels

struct IFNeuronKernel : Guarded<IFNeuronKernel> {
  static constexpr const char* kName = "IFNeuron";
  static constexpr const char* kProvider = kCuda;
  static constexpr size_t kInputs = 2, kRequiredInputs = 2;
  static constexpr bool kHasCounts = true;

  IFNeuronKernel(const OrtApi& api, const OrtKernelInfo* info, NodeId id)
      : id_(std::move(id)), a_(IFAttrs::parse(api, info, id_)), want_counts_(has_output(api, info, 1)) {}

  void compute(Ort::KernelContext& ctx) {
    Ort::ConstValue x = ctx.GetInput(0);
    const std::vector<int64_t> xs = x.GetTensorTypeAndShapeInfo().GetShape();
    const TimeLayout L = neuron_layout(id_, xs, a_.time_steps, a_.static_input);
    const HostParam th = host_param(id_, ctx, 1, "threshold", xs, a_.channel_axis, true);
    Ort::UnownedValue y = ctx.GetOutput(0, y_shape(xs, L));
    int64_t* counts = counts_output(ctx, want_counts_, xs, L.T);
    const Device d = device_of(id_, ctx);
    const Plan plan = plan_neurons(L.B, L.N, counts != nullptr, d.resident);
    const HostParam* const params[1] = {&th};
    params_.run(id_, d, params, [&](const float* const* dev) {
      IFArgs a;
      a.g = grid_for(id_, d, L, counts, plan);
      if (a_.static_input) a.g.x_step = 0;
      a.x = x.GetTensorData<float>();
      a.y = y.GetTensorMutableData<float>();
      a.theta = device_param(th, dev[0]);
      a.v_init = a_.v_init, a.leak = a_.leak, a.neg_eps = -a_.signed_eps;
      if (plan.threads > 0)
        check(id_, "IFNeuron kernel launch", launch_if(a, plan, a_.is_signed, a_.reset_zero, d.stream));
    });
  }

  NodeId id_;
  IFAttrs a_;
  bool want_counts_;
  DeviceParams params_;
};

struct ParaIFNeuronKernel : Guarded<ParaIFNeuronKernel> {
  static constexpr const char* kName = "ParaIFNeuron";
  static constexpr const char* kProvider = kCuda;
  static constexpr size_t kInputs = 4, kRequiredInputs = 2;
  static constexpr bool kHasCounts = true;

  ParaIFNeuronKernel(const OrtApi& api, const OrtKernelInfo* info, NodeId id)
      : id_(std::move(id)), a_(ParaIFAttrs::parse(api, info, id_)), want_counts_(has_output(api, info, 1)) {}

  void compute(Ort::KernelContext& ctx) {
    Ort::ConstValue x = ctx.GetInput(0);
    const std::vector<int64_t> xs = x.GetTensorTypeAndShapeInfo().GetShape();
    const TimeLayout L = neuron_layout(id_, xs, a_.time_steps, a_.static_input);
    const int64_t axis = a_.channel_axis;
    const HostParam pre = host_param(id_, ctx, 1, "theta_pre", xs, axis, true);
    const HostParam post = host_param(id_, ctx, 2, "theta_post", xs, axis, true);
    const HostParam bias = host_param(id_, ctx, 3, "bias", xs, axis, false);
    Ort::UnownedValue y = ctx.GetOutput(0, y_shape(xs, L));
    int64_t* counts = counts_output(ctx, want_counts_, xs, L.T);
    const Device d = device_of(id_, ctx);
    const Plan plan = plan_neurons(L.B, L.N, counts != nullptr, d.resident);
    const HostParam* const params[3] = {&pre, &post, &bias};
    params_.run(id_, d, params, [&](const float* const* dev) {
      ParaArgs a;
      a.g = grid_for(id_, d, L, counts, plan);
      if (a_.static_input) a.g.x_step = 0;
      a.x = x.GetTensorData<float>();
      a.y = y.GetTensorMutableData<float>();
      a.pre = device_param(pre, dev[0]);
      a.has_post = post.data != nullptr;
      if (a.has_post) a.post = device_param(post, dev[1]);
      a.has_bias = bias.data != nullptr;
      if (a.has_bias) a.bias = device_param(bias, dev[2]);
      a.v_init = a_.v_init;
      if (plan.threads > 0) check(id_, "ParaIFNeuron kernel launch", launch_para(a, plan, d.stream));
    });
  }

  NodeId id_;
  ParaIFAttrs a_;
  bool want_counts_;
  DeviceParams params_;
};

struct MultiThresholdNeuronKernel : Guarded<MultiThresholdNeuronKernel> {
  static constexpr const char* kName = "MultiThresholdNeuron";
  static constexpr const char* kProvider = kCuda;
  static constexpr size_t kInputs = 3, kRequiredInputs = 3;
  static constexpr bool kHasCounts = true;

  MultiThresholdNeuronKernel(const OrtApi& api, const OrtKernelInfo* info, NodeId id)
      : id_(std::move(id)),
        a_(MultiThresholdAttrs::parse(api, info, id_)),
        want_counts_(has_output(api, info, 1)) {}

  void compute(Ort::KernelContext& ctx) {
    Ort::ConstValue x = ctx.GetInput(0);
    const std::vector<int64_t> xs = x.GetTensorTypeAndShapeInfo().GetShape();
    const TimeLayout L = time_layout(id_, xs, a_.time_steps);
    const int64_t axis = a_.channel_axis;
    const HostParam sp = host_param(id_, ctx, 1, "scale_pos", xs, axis, true);
    const HostParam sn = host_param(id_, ctx, 2, "scale_neg", xs, axis, true);
    Ort::UnownedValue y = ctx.GetOutput(0, xs);
    int64_t* counts = counts_output(ctx, want_counts_, xs, L.T);
    const Device d = device_of(id_, ctx);
    const Plan plan = plan_neurons(L.B, L.N, counts != nullptr, d.resident);
    const HostParam* const params[2] = {&sp, &sn};
    params_.run(id_, d, params, [&](const float* const* dev) {
      MTArgs a;
      a.g = grid_for(id_, d, L, counts, plan);
      a.x = x.GetTensorData<float>();
      a.y = y.GetTensorMutableData<float>();
      a.pos = device_param(sp, dev[0]);
      a.neg = device_param(sn, dev[1]);
      a.levels = static_cast<int>(a_.levels);
      if (plan.threads > 0) check(id_, "MultiThresholdNeuron kernel launch", launch_mt(a, plan, d.stream));
    });
  }

  NodeId id_;
  MultiThresholdAttrs a_;
  bool want_counts_;
  DeviceParams params_;
};

using TemporalLaunch = cudaError_t (*)(const TemporalArgs&, cudaStream_t);

template <const char* const* kOpName, TemporalLaunch kLaunch>
struct TemporalKernel : Guarded<TemporalKernel<kOpName, kLaunch>> {
  static constexpr const char* kName = *kOpName;
  static constexpr const char* kProvider = kCuda;
  static constexpr size_t kInputs = 1, kRequiredInputs = 1;
  static constexpr bool kHasCounts = false;

  TemporalKernel(const OrtApi& api, const OrtKernelInfo* info, NodeId id)
      : id_(std::move(id)), a_(TemporalAttrs::parse(api, info, id_)) {}

  void compute(Ort::KernelContext& ctx) {
    Ort::ConstValue x = ctx.GetInput(0);
    const std::vector<int64_t> xs = x.GetTensorTypeAndShapeInfo().GetShape();
    const TimeLayout L = time_layout(id_, xs, a_.time_steps);
    Ort::UnownedValue y = ctx.GetOutput(0, xs);
    TemporalArgs a;
    a.T = L.T;
    a.M = L.B * L.N;
    if (a.M == 0) return;
    const Device d = device_of(id_, ctx);
    a.x = x.GetTensorData<float>();
    a.y = y.GetTensorMutableData<float>();
    check(id_, (std::string(kName) + " kernel launch").c_str(), kLaunch(a, d.stream));
  }

  NodeId id_;
  TemporalAttrs a_;
};

struct CompensatedElementwiseKernel : Guarded<CompensatedElementwiseKernel> {
  static constexpr const char* kName = "CompensatedElementwise";
  static constexpr const char* kProvider = kCuda;
  static constexpr size_t kInputs = 1, kRequiredInputs = 1;
  static constexpr bool kHasCounts = false;

  CompensatedElementwiseKernel(const OrtApi& api, const OrtKernelInfo* info, NodeId id)
      : id_(std::move(id)), a_(CompensatedAttrs::parse(api, info, id_)) {}

  void compute(Ort::KernelContext& ctx) {
    Ort::ConstValue x = ctx.GetInput(0);
    const std::vector<int64_t> xs = x.GetTensorTypeAndShapeInfo().GetShape();
    const TimeLayout L = time_layout(id_, xs, a_.time_steps);
    Ort::UnownedValue y = ctx.GetOutput(0, xs);
    CompArgs a;
    a.T = L.T;
    a.M = L.B * L.N;
    a.fn = a_.function;
    if (a.M == 0) return;
    const Device d = device_of(id_, ctx);
    a.x = x.GetTensorData<float>();
    a.y = y.GetTensorMutableData<float>();
    check(id_, "CompensatedElementwise kernel launch", launch_compensated(a, d.stream));
  }

  NodeId id_;
  CompensatedAttrs a_;
};

constexpr const char* kMeanName = "TemporalMean";
constexpr const char* kDeltaName = "TemporalDelta";
using TemporalMeanKernel = TemporalKernel<&kMeanName, launch_temporal_mean>;
using TemporalDeltaKernel = TemporalKernel<&kDeltaName, launch_temporal_delta>;

}  // namespace

std::vector<OrtCustomOp*> ops() {
  // Inputs 1.. (parameters) live in host memory; x and the outputs on the GPU.
  static OpDef<IFNeuronKernel, 1> if_neuron;
  static OpDef<ParaIFNeuronKernel, 1> para_if_neuron;
  static OpDef<MultiThresholdNeuronKernel, 1> multi_threshold;
  static OpDef<TemporalMeanKernel> mean;
  static OpDef<TemporalDeltaKernel> delta;
  static OpDef<CompensatedElementwiseKernel> compensated;
  return {&if_neuron, &para_if_neuron, &multi_threshold, &mean, &delta, &compensated};
}

int runtime_version() { return CUDART_VERSION; }

}  // namespace snn::cuda
