#include "runtime.h"

#include <cstring>
#include <string>

namespace snn::cuda {
namespace {

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

}  // namespace

void check(const NodeId& id, const char* what, cudaError_t e) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so the next run starts clean
    id.fail(std::string("CUDA error in ") + what + ": " + describe(e));
  }
}

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

DeviceParams::~DeviceParams() {
  if (dev_ != nullptr) cudaFree(dev_);  // errors ignored: at teardown the driver may be gone
}

bool DeviceParams::same(const HostParam* params, size_t k) const {
  size_t off = 0;
  for (size_t i = 0; i < k; ++i) {
    if (!params[i].data) continue;
    const size_t n = static_cast<size_t>(params[i].size);
    if (off + n > host_.size() || std::memcmp(host_.data() + off, params[i].data, n * sizeof(float)) != 0)
      return false;
    off += n;
  }
  return off == host_.size();
}

void DeviceParams::upload(const NodeId& id, const Device& d, const HostParam* params, size_t k) {
  size_t total = 0;
  for (size_t i = 0; i < k; ++i) total += params[i].data ? static_cast<size_t>(params[i].size) : 0;
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
  for (size_t i = 0; i < k; ++i) {
    if (!params[i].data) continue;
    std::memcpy(host_.data() + off, params[i].data, static_cast<size_t>(params[i].size) * sizeof(float));
    off += static_cast<size_t>(params[i].size);
  }
  // host_ is the source and stays unchanged until the next upload, which synchronises first.
  check(id, "cudaMemcpyAsync",
        cudaMemcpyAsync(dev_, host_.data(), total * sizeof(float), cudaMemcpyHostToDevice, d.stream));
  device_ = d.id;
}

int runtime_version() { return CUDART_VERSION; }

}  // namespace snn::cuda
