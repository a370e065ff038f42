// What every kernel of every op and provider shares: construction (attributes parsed and
// validated: errors at session creation), the inputs and outputs of a run, validated before
// anything is allocated (RunIO), and the OrtCustomOp definition ORT registers (OpDef).
//
// A provider's kernel for op Op is Kernel : KernelBase<Kernel, Op> with
//   static constexpr const char* kProvider;
//   static constexpr bool kParamsOnHost;   // parameter inputs in CPU memory (the CUDA kernels)
//   void compute(Ort::KernelContext&, const RunIO<Op>&);   // may throw OpError
// compute sees x, y and counts in the provider's memory and parameters in host memory.
#pragma once

#include <array>
#include <cstddef>
#include <vector>

#include "layout.h"
#include "ops.h"

namespace snn {

template <class Op>
struct RunIO {
  std::vector<int64_t> x_shape;
  TimeLayout L;
  const float* x = nullptr;
  const float* x2 = nullptr;  // the second data input (DataInputs<Op> == 2), shape of x
  float* y = nullptr;
  int64_t* counts = nullptr;  // [T, N]; nullptr when the node does not declare counts
  float* potentials = nullptr;  // [T*B, N] like y; nullptr when the node does not declare them
  std::array<HostParam, Op::kParams.size()> params{};
};

// Input `index` as a parameter `spec` of x: layout validated (and values, if spec.positive).
HostParam read_param(const NodeId& id, Ort::KernelContext& ctx, size_t index, const ParamSpec& spec,
                     const std::vector<int64_t>& x_shape, int64_t channel_axis);

template <class Impl, class Op>
class KernelBase {
 public:
  using Traits = Op;

  explicit KernelBase(const KernelInfo& k)
      : id_(k.id),
        a_(Op::parse(k)),
        want_counts_(Op::kHasCounts && k.has_output(1)),
        want_potentials_(Op::kHasPotentials && k.has_output(2)) {}

  OrtStatusPtr ComputeV2(OrtKernelContext* raw) noexcept {
    return guarded(id_, [&] {
      Ort::KernelContext ctx(raw);
      static_cast<Impl&>(*this).compute(ctx, prepare(ctx));
    });
  }

 protected:
  RunIO<Op> prepare(Ort::KernelContext& ctx) const {
    RunIO<Op> io;
    Ort::ConstValue x = ctx.GetInput(0);
    io.x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
    io.L = time_layout(id_, io.x_shape, a_.time_steps, a_.static_input, want_counts_);
    constexpr size_t kData = DataInputs<Op>::value;
    if constexpr (kData == 2) {
      Ort::ConstValue x2 = ctx.GetInput(1);
      const auto s2 = x2.GetTensorTypeAndShapeInfo().GetShape();
      if (s2 != io.x_shape)
        id_.fail("inputs a " + shape_str(io.x_shape) + " and b " + shape_str(s2) + " must have the same shape");
      io.x2 = x2.GetTensorData<float>();
    }
    for (size_t k = 0; k < Op::kParams.size(); ++k)
      io.params[k] = read_param(id_, ctx, k + kData, Op::kParams[k], io.x_shape, a_.channel_axis);
    io.x = x.GetTensorData<float>();
    Ort::UnownedValue y = ctx.GetOutput(0, y_shape(io.x_shape, io.L));
    io.y = y.GetTensorMutableData<float>();
    if (want_counts_) {
      Ort::UnownedValue c = ctx.GetOutput(1, counts_shape(io.x_shape, io.L));
      if (static_cast<OrtValue*>(c) != nullptr) io.counts = c.GetTensorMutableData<int64_t>();
    }
    if (want_potentials_) {
      Ort::UnownedValue p = ctx.GetOutput(2, y_shape(io.x_shape, io.L));
      if (static_cast<OrtValue*>(p) != nullptr) io.potentials = p.GetTensorMutableData<float>();
    }
    return io;
  }

  NodeId id_;
  typename Op::Attrs a_;
  bool want_counts_;
  bool want_potentials_;
};

template <class Kernel>
struct OpDef : Ort::CustomOpBase<OpDef<Kernel>, Kernel, /*WithStatus=*/true> {
  using Op = typename Kernel::Traits;
  static_assert(!Op::kHasPotentials || Op::kHasCounts, "potentials are output 2, after the counts");

  // ORT reads the OrtCustomOp fields that exist in this version: pin it to the target API,
  // so headers newer than 1.21 do not make the library require a newer runtime.
  OpDef() { OrtCustomOp::version = kOrtApiTarget; }

  const char* GetName() const { return Op::kName; }
  const char* GetExecutionProviderType() const { return Kernel::kProvider; }

  static constexpr size_t kData = DataInputs<Op>::value;
  size_t GetInputTypeCount() const { return kData + Op::kParams.size(); }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t i) const {
    if constexpr (Op::kParams.empty()) {
      return INPUT_OUTPUT_REQUIRED;
    } else {
      return i < kData || Op::kParams[i - kData].required ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
    }
  }
  // Parameters (normally initializers) stay in host memory for a kernel that validates them
  // there; the data inputs and the outputs live in the provider's memory.
  OrtMemType GetInputMemoryType(size_t i) const {
    return i >= kData && Kernel::kParamsOnHost ? OrtMemTypeCPUInput : OrtMemTypeDefault;
  }

  // y; counts (optional); potentials (optional, float32 like y; only ops that have counts)
  size_t GetOutputTypeCount() const { return Op::kHasPotentials ? 3 : (Op::kHasCounts ? 2 : 1); }
  ONNXTensorElementDataType GetOutputType(size_t i) const {
    return i == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  OrtCustomOpInputOutputCharacteristic GetOutputCharacteristic(size_t i) const {
    return i == 0 ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
  }

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    *kernel = nullptr;
    const KernelInfo k = KernelInfo::of(api, info, Op::kName);
    return guarded(k.id, [&] { *kernel = new Kernel(k); });
  }
};

}  // namespace snn
