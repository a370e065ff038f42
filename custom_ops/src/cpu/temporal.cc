// CPU kernels of the expectation-compensation ops TemporalMean and TemporalDelta (docs/ops.md);
// their steps are common/steps.h's, shared with the CUDA kernels. Both are elementwise across
// neurons and samples, so x is viewed as [T, B*N] and tasks take blocks of that flat row.
#include <algorithm>

#include "../common/steps.h"
#include "cpu_ops.h"
#include "parallel.h"

namespace snn::cpu {
namespace {

struct MeanBody {
  using Args = StepArgs;
  static SNN_ALWAYS_INLINE void run(const StepArgs& a, const Range& r) noexcept {
    alignas(64) float acc[kMaxBlock];
    std::fill_n(acc, r.len, 0.0f);
    for (int64_t t = 0; t < a.T; ++t) {
      const float* __restrict xr = a.x + t * a.M + r.i0;
      float* __restrict yr = a.y + t * a.M + r.i0;
      for (int64_t k = 0; k < r.len; ++k) yr[k] = mean_step(acc[k], xr[k], t);
    }
  }
};

struct DeltaBody {
  using Args = StepArgs;
  static SNN_ALWAYS_INLINE void run(const StepArgs& a, const Range& r) noexcept {
    std::copy_n(a.x + r.i0, r.len, a.y + r.i0);
    for (int64_t t = 1; t < a.T; ++t) {
      const float* __restrict xr = a.x + t * a.M + r.i0;
      const float* __restrict xp = xr - a.M;
      float* __restrict yr = a.y + t * a.M + r.i0;
      for (int64_t k = 0; k < r.len; ++k) yr[k] = delta_step(xr[k], xp[k], t);
    }
  }
};

}  // namespace

template <>
void Kernel<TemporalMeanOp>::compute(Ort::KernelContext& ctx, const RunIO<TemporalMeanOp>& io) {
  run_elementwise<MeanBody>(ctx, io);
}

template <>
void Kernel<TemporalDeltaOp>::compute(Ort::KernelContext& ctx, const RunIO<TemporalDeltaOp>& io) {
  run_elementwise<DeltaBody>(ctx, io);
}

}  // namespace snn::cpu
