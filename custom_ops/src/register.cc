// Entry point ONNX Runtime calls after loading the library
// (SessionOptions.register_custom_ops_library / RegisterCustomOpsLibrary).
#include <mutex>
#include <string>
#include <vector>

#include "common/ops.h"
#include "cpu/cpu_ops.h"
#include "cpu/isa.h"
#if SNN_ONNX_WITH_CUDA
#include "cuda/cuda_ops.h"
#endif

#if defined(_WIN32)
#define SNN_EXPORT __declspec(dllexport)
#else
#define SNN_EXPORT __attribute__((visibility("default")))
#endif

namespace {

// The registration table: every op of SNN_ONNX_FOR_EACH_OP (common/ops.h) with its CPU kernel
// and, in a CUDA build, its CUDA kernel, under one name; ORT picks the kernel by the node's
// provider.
template <class Op>
void add_op(std::vector<OrtCustomOp*>& ops) {
  static snn::OpDef<snn::cpu::Kernel<Op>> cpu;
  ops.push_back(&cpu);
#if SNN_ONNX_WITH_CUDA
  static snn::OpDef<snn::cuda::Kernel<Op>> cuda;
  ops.push_back(&cuda);
#endif
}

std::vector<OrtCustomOp*> op_set() {
  std::vector<OrtCustomOp*> ops;
#define SNN_ADD(Op) add_op<snn::Op>(ops);
  SNN_ONNX_FOR_EACH_OP(SNN_ADD)
#undef SNN_ADD
  return ops;
}

// One domain for the process, built on first use and never released: every SessionOptions
// (and every session made from it) keeps a raw pointer to it, and releasing it at exit could
// run after ONNX Runtime itself is gone.
OrtStatus* shared_domain(const OrtApi& api, OrtCustomOpDomain** out) {
  static std::mutex mu;
  static OrtCustomOpDomain* domain = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (domain == nullptr) {
    OrtCustomOpDomain* d = nullptr;
    if (OrtStatus* st = api.CreateCustomOpDomain(snn::kDomain, &d)) return st;
    for (OrtCustomOp* op : op_set()) {
      if (OrtStatus* st = api.CustomOpDomain_Add(d, op)) {
        api.ReleaseCustomOpDomain(d);
        return st;
      }
    }
    domain = d;
  }
  *out = domain;
  return nullptr;
}

}  // namespace

extern "C" SNN_EXPORT OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(snn::kOrtApiTarget);
  if (api == nullptr) {
    // An ONNX Runtime older than 1.21; API version 1 is served by every release and is
    // enough to report that.
    const OrtApi* v1 = api_base->GetApi(1);
    const std::string msg = "libsnn_onnx_ops needs ONNX Runtime with C API version " +
                            std::to_string(snn::kOrtApiTarget) + " or newer; this is ONNX Runtime " +
                            api_base->GetVersionString();
    return v1 ? v1->CreateStatus(ORT_FAIL, msg.c_str()) : nullptr;
  }
  Ort::InitApi(api);
  try {
    OrtCustomOpDomain* domain = nullptr;
    if (OrtStatus* st = shared_domain(*api, &domain)) return st;
    return api->AddCustomOpDomain(options, domain);
  } catch (const std::exception& e) {  // e.g. bad_alloc: never throw into ONNX Runtime
    return api->CreateStatus(ORT_FAIL, (std::string("snn_onnx: ") + e.what()).c_str());
  }
}

// Whether this build has the CUDA kernels: the CUDA runtime version they were built with
// (CUDART_VERSION, e.g. 13000), 0 for a CPU-only build. Read by snn_onnx.library through ctypes,
// so a session asking for CUDAExecutionProvider can say why the library cannot serve it.
extern "C" SNN_EXPORT int snn_onnx_has_cuda(void) {
#if SNN_ONNX_WITH_CUDA
  return snn::cuda::runtime_version();
#else
  return 0;
#endif
}

// The instruction set the CPU kernels run with in this process: "avx2" or "baseline"
// (cpu/isa.h; SNN_ONNX_ISA=baseline forces the latter). Read by the tests through ctypes.
extern "C" SNN_EXPORT const char* snn_onnx_cpu_isa(void) { return snn::cpu::isa_name(snn::cpu::best_isa()); }
