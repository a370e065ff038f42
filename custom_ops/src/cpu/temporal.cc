// CPU kernels of the expectation-compensation ops TemporalMean and TemporalDelta
// (docs/ops.md). Both are elementwise across neurons and samples, so x is viewed as
// [T, B*N] and tasks take blocks of that flat row.
#include "cpu_ops.h"

#include <algorithm>

#include "../common/op_attrs.h"
#include "isa.h"
#include "parallel.h"

namespace snn::cpu {
namespace {

struct TemporalArgs {
  const float* x;
  float* y;
  int64_t T, M;  // M = B*N elements per step
};

// y_t = (1/t) * sum_{tau<=t} x_tau: sequential float32 sum, then a true division by t
// (not a multiplication by 1/t, which rounds differently).
SNN_ALWAYS_INLINE void mean_body(const TemporalArgs& a, int64_t j0, int64_t len) noexcept {
  alignas(64) float acc[kMaxBlock];
  std::fill_n(acc, len, 0.0f);
  for (int64_t t = 0; t < a.T; ++t) {
    const float* __restrict xr = a.x + t * a.M + j0;
    float* __restrict yr = a.y + t * a.M + j0;
    const float div = static_cast<float>(t + 1);
    for (int64_t k = 0; k < len; ++k) {
      acc[k] = acc[k] + xr[k];
      yr[k] = acc[k] / div;
    }
  }
}

// y_1 = x_1, y_t = t*x_t - (t-1)*x_{t-1}: each product rounded before the subtraction.
SNN_ALWAYS_INLINE void delta_body(const TemporalArgs& a, int64_t j0, int64_t len) noexcept {
  std::copy_n(a.x + j0, len, a.y + j0);
  for (int64_t t = 1; t < a.T; ++t) {
    const float* __restrict xr = a.x + t * a.M + j0;
    const float* __restrict xp = xr - a.M;
    float* __restrict yr = a.y + t * a.M + j0;
    const float ct = static_cast<float>(t + 1), cp = static_cast<float>(t);
    for (int64_t k = 0; k < len; ++k) {
      const float cur = ct * xr[k];
      const float prev = cp * xp[k];
      yr[k] = cur - prev;
    }
  }
}

void mean_task(const TemporalArgs& a, int64_t j0, int64_t len) noexcept { mean_body(a, j0, len); }
SNN_TARGET_AVX2 void mean_task_avx2(const TemporalArgs& a, int64_t j0, int64_t len) noexcept {
  mean_body(a, j0, len);
}
void delta_task(const TemporalArgs& a, int64_t j0, int64_t len) noexcept { delta_body(a, j0, len); }
SNN_TARGET_AVX2 void delta_task_avx2(const TemporalArgs& a, int64_t j0, int64_t len) noexcept {
  delta_body(a, j0, len);
}

template <void (*Task)(const TemporalArgs&, int64_t, int64_t) noexcept,
          void (*TaskAvx2)(const TemporalArgs&, int64_t, int64_t) noexcept>
struct TemporalKernel : Guarded<TemporalKernel<Task, TaskAvx2>> {
  static constexpr const char* kProvider = "CPUExecutionProvider";
  static constexpr size_t kInputs = 1, kRequiredInputs = 1;
  static constexpr bool kHasCounts = false;

  TemporalKernel(const OrtApi& api, const OrtKernelInfo* info, NodeId id)
      : id_(std::move(id)), a_(TemporalAttrs::parse(api, info, id_)) {}

 private:
  friend struct Guarded<TemporalKernel>;

  void compute(Ort::KernelContext& ctx) {
    Ort::ConstValue x = ctx.GetInput(0);
    const std::vector<int64_t> xs = x.GetTensorTypeAndShapeInfo().GetShape();
    const TimeLayout L = time_layout(id_, xs, a_.time_steps);
    Ort::UnownedValue y = ctx.GetOutput(0, xs);
    const TemporalArgs args{x.GetTensorData<float>(), y.GetTensorMutableData<float>(), L.T,
                            L.B * L.N};
    const Plan plan = make_plan(L.T, 1, args.M, /*split_b=*/false);
    const auto task = best_isa() == Isa::kAvx2 ? TaskAvx2 : Task;
    run_plan(ctx, plan, args.M, 1,
             [&](int64_t j0, int64_t len, int64_t, int64_t) { task(args, j0, len); });
  }

  NodeId id_;
  TemporalAttrs a_;
};

struct TemporalMeanKernel : TemporalKernel<mean_task, mean_task_avx2> {
  static constexpr const char* kName = "TemporalMean";
  using TemporalKernel::TemporalKernel;
};
struct TemporalDeltaKernel : TemporalKernel<delta_task, delta_task_avx2> {
  static constexpr const char* kName = "TemporalDelta";
  using TemporalKernel::TemporalKernel;
};

}  // namespace

void add_temporal_ops(std::vector<OrtCustomOp*>& ops) {
  static OpDef<TemporalMeanKernel> mean;
  static OpDef<TemporalDeltaKernel> delta;
  ops.push_back(&mean);
  ops.push_back(&delta);
}

}  // namespace snn::cpu
