// CPU kernel of MultiThresholdNeuron (docs/ops.md#multithresholdneuron); the emitted spike is
// common/steps.h's mt_emit, shared with the CUDA kernel.
//
// The number of levels is a compile-time constant of each body, so the level loop unrolls and
// the loop over a block of neurons vectorises with the membrane and the two candidate outputs
// in registers. kScalar: both scales are scalars, so the levels and thresholds (loop-invariant
// products) are computed once per task instead of per neuron.
//
// Potentials (docs/ops.md, a debug output) come from one more body, MTBody<0, false, ...,
// kPot = true>, which reads the number of levels at run time and the scales per neuron: slower
// and compiled twice (with and without counts) instead of once per level count.
#include <algorithm>
#include <utility>

#include "../common/dispatch.h"
#include "../common/steps.h"
#include "cpu_ops.h"
#include "parallel.h"

namespace snn::cpu {
namespace {

struct MTArgs {
  const float* x;
  float* y;
  float* pot;  // [T, B, N] like y; written by the kPot body only
  Counts counts;
  HostParam pos, neg;  // scale_pos, scale_neg
  int64_t T, B, N;
  int levels;
};

// kLevels = 0: the number of levels is a.levels, read at run time.
template <int kLevels, bool kScalar, bool kCounts, bool kPot = false>
struct MTBody {
  using Args = MTArgs;
  static SNN_ALWAYS_INLINE void run(const MTArgs& a, const Range& r) noexcept {
    const int64_t i0 = r.i0, len = r.len;
    alignas(64) float sp[kMaxBlock], sn[kMaxBlock], v[kMaxBlock];
    const float s_p = a.pos.data[0], s_n = a.neg.data[0];
    const int levels = kLevels > 0 ? kLevels : a.levels;
    if constexpr (!kScalar) {
      fill_param(a.pos.data, a.pos.layout, i0, len, sp);
      fill_param(a.neg.data, a.neg.layout, i0, len, sn);
    }
    if constexpr (kCounts) a.counts.zero(i0, len);
    for (int64_t b = r.b0; b < r.b1; ++b) {
      std::fill_n(v, len, 0.0f);
      for (int64_t t = 0; t < a.T; ++t) {
        const int64_t row = (t * a.B + b) * a.N + i0;
        const float* __restrict xr = a.x + row;
        float* __restrict yr = a.y + row;
        float* __restrict pr = kPot ? a.pot + row : nullptr;
        int32_t* __restrict cr = kCounts ? a.counts.acc + t * a.N + i0 : nullptr;
        for (int64_t k = 0; k < len; ++k) {
          const float vk = v[k] + xr[k];
          if constexpr (kPot) pr[k] = vk;
          const float out = mt_emit(vk, kScalar ? s_p : sp[k], kScalar ? s_n : sn[k], levels);
          yr[k] = out;
          v[k] = vk - out;
          if constexpr (kCounts) cr[k] += static_cast<int32_t>(out != 0.0f);
        }
      }
    }
    if constexpr (kCounts) a.counts.finish(i0, len);
  }
};

template <bool kScalar, bool kCounts, int... L>
TaskFn<MTArgs> by_levels(int levels, std::integer_sequence<int, L...>) {
  static const TaskFn<MTArgs> table[] = {isa_task<MTBody<L + 1, kScalar, kCounts>>()...};
  return table[levels - 1];
}

struct PickMT {
  int levels;  // 1 .. kMaxLevels (MultiThresholdNeuronOp::parse)
  template <bool kScalar, bool kCounts, bool kPot>
  TaskFn<MTArgs> get() const {
    if constexpr (kPot)
      return isa_task<MTBody<0, false, kCounts, true>>();
    else
      return by_levels<kScalar, kCounts>(levels, std::make_integer_sequence<int, kMaxLevels>{});
  }
};

}  // namespace

template <>
void Kernel<MultiThresholdNeuronOp>::compute(Ort::KernelContext& ctx, const RunIO<MultiThresholdNeuronOp>& io) {
  const TimeLayout& L = io.L;
  std::unique_ptr<int32_t[]> scratch;
  const MTArgs args{io.x,         io.y,         io.potentials, make_counts(io.counts, L, scratch),
                    io.params[0], io.params[1], L.T,           L.B, L.N, a_.levels};
  const bool counts = io.counts != nullptr;
  const bool scalar = args.pos.layout.scalar && args.neg.layout.scalar;
  run_plan(ctx, make_plan(L.T, L.B, L.N, /*split_b=*/!counts), L.N, L.B,
           with_flags(PickMT{a_.levels}, scalar, counts, io.potentials != nullptr), args);
}

}  // namespace snn::cpu
