// CPU kernel of CompensatedElementwise: TemporalDelta(f(TemporalMean(x))) in one pass for an
// elementwise f (docs/ops.md#compensatedelementwise); the step and f are common/steps.h's,
// shared with the CUDA kernel. f is branch-free float32, so the loop vectorises; one body per
// function.
#include <algorithm>
#include <utility>

#include "../common/steps.h"
#include "cpu_ops.h"
#include "parallel.h"

namespace snn::cpu {
namespace {

template <Fn F>
struct CompBody {
  using Args = StepArgs;
  static SNN_ALWAYS_INLINE void run(const StepArgs& a, const Range& r) noexcept {
    alignas(64) float acc[kMaxBlock], prev[kMaxBlock];
    std::fill_n(acc, r.len, 0.0f);
    std::fill_n(prev, r.len, 0.0f);
    for (int64_t t = 0; t < a.T; ++t) {
      const float* __restrict xr = a.x + t * a.M + r.i0;
      float* __restrict yr = a.y + t * a.M + r.i0;
      for (int64_t k = 0; k < r.len; ++k) yr[k] = compensated_step<F>(acc[k], prev[k], xr[k], t);
    }
  }
};

template <int... F>
void run_fn(Fn fn, Ort::KernelContext& ctx, const RunIO<CompensatedElementwiseOp>& io,
            std::integer_sequence<int, F...>) {
  using Run = void (*)(Ort::KernelContext&, const RunIO<CompensatedElementwiseOp>&);
  static constexpr Run table[] = {&run_elementwise<CompBody<static_cast<Fn>(F)>, RunIO<CompensatedElementwiseOp>>...};
  table[static_cast<int>(fn)](ctx, io);
}

}  // namespace

template <>
void Kernel<CompensatedElementwiseOp>::compute(Ort::KernelContext& ctx,
                                               const RunIO<CompensatedElementwiseOp>& io) {
  run_fn(a_.function, ctx, io, std::make_integer_sequence<int, kNumFunctions>{});
}

}  // namespace snn::cpu
