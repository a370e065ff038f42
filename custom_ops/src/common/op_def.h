// OrtCustomOp definition shared by every op and execution provider: a kernel class supplies
// its name, provider, inputs and whether it has the optional spike-count output.
//
// Kernel requirements:
//   static constexpr const char* kName, kProvider;
//   static constexpr size_t kInputs, kRequiredInputs;   // trailing inputs are optional
//   static constexpr bool kHasCounts;                   // optional output 1: int64 counts
//   Kernel(const OrtApi&, const OrtKernelInfo*, NodeId) // may throw OpError
//   OrtStatusPtr ComputeV2(OrtKernelContext*) noexcept  // usually from Guarded<Kernel>
//
// kFirstHostInput: inputs from this index on are handed to the kernel in CPU memory even when
// it runs on a GPU (ORT keeps such initializers on the host): the CUDA ops read and validate
// their parameters there. The default keeps every input in the provider's memory.
#pragma once

#include <cstddef>

#include "op_common.h"

namespace snn {

// Base (CRTP) that supplies ComputeV2 for a kernel with a member `NodeId id_` and a method
// `void compute(Ort::KernelContext&)`: every error becomes an ORT status naming the node.
// A kernel that keeps both private declares `friend struct Guarded<Kernel>;`.
template <class Impl>
struct Guarded {
  OrtStatusPtr ComputeV2(OrtKernelContext* raw) noexcept {
    Impl& self = static_cast<Impl&>(*this);
    return guarded(self.id_, [&] {
      Ort::KernelContext ctx(raw);
      self.compute(ctx);
    });
  }
};

template <class Kernel, size_t kFirstHostInput = static_cast<size_t>(-1)>
struct OpDef : Ort::CustomOpBase<OpDef<Kernel, kFirstHostInput>, Kernel, /*WithStatus=*/true> {
  // ORT reads the OrtCustomOp fields that exist in this version: pin it to the target API,
  // so headers newer than 1.21 do not make the library require a newer runtime.
  OpDef() { OrtCustomOp::version = kOrtApiTarget; }

  const char* GetName() const { return Kernel::kName; }
  const char* GetExecutionProviderType() const { return Kernel::kProvider; }

  size_t GetInputTypeCount() const { return Kernel::kInputs; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t i) const {
    return i < Kernel::kRequiredInputs ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
  }
  OrtMemType GetInputMemoryType(size_t i) const {
    return i >= kFirstHostInput ? OrtMemTypeCPUInput : OrtMemTypeDefault;
  }

  size_t GetOutputTypeCount() const { return Kernel::kHasCounts ? 2 : 1; }
  ONNXTensorElementDataType GetOutputType(size_t i) const {
    return i == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  }
  OrtCustomOpInputOutputCharacteristic GetOutputCharacteristic(size_t i) const {
    return i == 0 ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
  }

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    *kernel = nullptr;
    NodeId id = node_id(api, info, Kernel::kName);
    return guarded(id, [&] { *kernel = new Kernel(api, info, id); });
  }
};

}  // namespace snn
