// CPU kernels of the spiking neurons IFNeuron and ParaIFNeuron (docs/ops.md); their update is
// common/steps.h's, shared with the CUDA kernels.
//
// Inner loops run over a contiguous block of neurons with the state in arrays, so the compiler
// vectorises the (branch-free) step; each body is compiled for the baseline ISA and for AVX2
// and picked at run time (isa.h).
//
// Potentials (docs/ops.md, a debug output): a kPot variant of each body also stores the
// membrane of every neuron and step; the bodies without it are unchanged.
//
// static_input (docs/ops.md): x is one step [B, ...] that repeats at every step. The bodies
// read x through a per-step row stride `x_step` (B rows normally, 0 for a static input), so
// both modes share one loop and one float order.
#include <algorithm>

#include "../common/dispatch.h"
#include "../common/steps.h"
#include "cpu_ops.h"
#include "parallel.h"

namespace snn::cpu {
namespace {

// ---------------------------------------------------------------------------------------------
// IFNeuron

struct IFArgs {
  const float* x;
  float* y;
  float* pot;  // [T, B, N] like y; written by the kPot variants only
  Counts counts;
  const float* theta;
  ParamLayout th_layout;
  int64_t T, B, N;
  int64_t x_step;  // rows of x between two steps of a sample: B, or 0 for a static input
  float v_init, leak, neg_eps;
};

template <bool kSigned, bool kZero, bool kCounts, bool kPot>
struct IFBody {
  using Args = IFArgs;
  static SNN_ALWAYS_INLINE void run(const IFArgs& a, const Range& r) noexcept {
    const int64_t i0 = r.i0, len = r.len;
    alignas(64) float th[kMaxBlock], v0[kMaxBlock], v[kMaxBlock];
    alignas(64) int32_t net[kMaxBlock];  // net spike count so far (signed neurons)
    fill_param(a.theta, a.th_layout, i0, len, th);
    for (int64_t k = 0; k < len; ++k) v0[k] = a.v_init * th[k];
    if constexpr (kCounts) a.counts.zero(i0, len);
    const float leak = a.leak, neg_eps = a.neg_eps;
    for (int64_t b = r.b0; b < r.b1; ++b) {
      std::copy_n(v0, len, v);
      if constexpr (kSigned) std::fill_n(net, len, 0);
      for (int64_t t = 0; t < a.T; ++t) {
        const float* __restrict xr = a.x + (t * a.x_step + b) * a.N + i0;
        float* __restrict yr = a.y + (t * a.B + b) * a.N + i0;
        float* __restrict pr = kPot ? a.pot + (t * a.B + b) * a.N + i0 : nullptr;
        int32_t* __restrict cr = kCounts ? a.counts.acc + t * a.N + i0 : nullptr;
        for (int64_t k = 0; k < len; ++k) {
          const float vk = if_integrate(v[k], xr[k], leak);
          if constexpr (kPot) pr[k] = vk;
          const float out = if_fire<kSigned, kZero>(v[k], net[k], vk, th[k], neg_eps);
          yr[k] = out;
          if constexpr (kCounts) cr[k] += static_cast<int32_t>(out != 0.0f);
        }
      }
    }
    if constexpr (kCounts) a.counts.finish(i0, len);
  }
};

struct PickIF {
  template <bool kSigned, bool kZero, bool kCounts, bool kPot>
  TaskFn<IFArgs> get() const {
    return isa_task<IFBody<kSigned, kZero, kCounts, kPot>>();
  }
};

// ---------------------------------------------------------------------------------------------
// ParaIFNeuron

struct ParaArgs {
  const float* x;
  float* y;
  float* pot;  // as IFArgs::pot
  Counts counts;
  HostParam pre, post, bias;  // post, bias: data nullptr when absent
  int64_t T, B, N;
  int64_t x_step;  // as IFArgs::x_step
  float v_init;
};

template <bool kCounts, bool kPot>
struct ParaBody {
  using Args = ParaArgs;
  static SNN_ALWAYS_INLINE void run(const ParaArgs& a, const Range& r) noexcept {
    const int64_t i0 = r.i0, len = r.len;
    alignas(64) float pre[kMaxBlock], post[kMaxBlock], bias[kMaxBlock], drive[kMaxBlock];
    alignas(64) int32_t fired[kMaxBlock];  // spikes so far (kPot: the membrane potential)
    fill_param(a.pre.data, a.pre.layout, i0, len, pre);
    if (a.post.data)
      fill_param(a.post.data, a.post.layout, i0, len, post);
    else
      std::copy_n(pre, len, post);
    if (a.bias.data)
      fill_param(a.bias.data, a.bias.layout, i0, len, bias);
    else
      for (int64_t k = 0; k < len; ++k) bias[k] = a.v_init * pre[k];
    if constexpr (kCounts) a.counts.zero(i0, len);
    for (int64_t b = r.b0; b < r.b1; ++b) {
      std::copy_n(a.x + b * a.N + i0, len, drive);
      for (int64_t t = 1; t < a.T; ++t) {
        const float* __restrict xr = a.x + (t * a.x_step + b) * a.N + i0;
        for (int64_t k = 0; k < len; ++k) drive[k] = drive[k] + xr[k];
      }
      for (int64_t k = 0; k < len; ++k) drive[k] = drive[k] + bias[k];
      if constexpr (kPot) std::fill_n(fired, len, 0);
      for (int64_t t = 0; t < a.T; ++t) {
        float* __restrict yr = a.y + (t * a.B + b) * a.N + i0;
        float* __restrict pr = kPot ? a.pot + (t * a.B + b) * a.N + i0 : nullptr;
        int32_t* __restrict cr = kCounts ? a.counts.acc + t * a.N + i0 : nullptr;
        for (int64_t k = 0; k < len; ++k) {
          const bool fire = para_fires(drive[k], para_threshold(t, pre[k]));
          if constexpr (kPot) {
            pr[k] = para_potential(drive[k], fired[k], pre[k]);
            fired[k] += static_cast<int32_t>(fire);
          }
          yr[k] = fire ? post[k] : 0.0f;
          if constexpr (kCounts) cr[k] += static_cast<int32_t>(fire);
        }
      }
    }
    if constexpr (kCounts) a.counts.finish(i0, len);
  }
};

struct PickPara {
  template <bool kCounts, bool kPot>
  TaskFn<ParaArgs> get() const {
    return isa_task<ParaBody<kCounts, kPot>>();
  }
};

}  // namespace

template <>
void Kernel<IFNeuronOp>::compute(Ort::KernelContext& ctx, const RunIO<IFNeuronOp>& io) {
  const TimeLayout& L = io.L;
  std::unique_ptr<int32_t[]> scratch;
  const HostParam& th = io.params[0];
  const IFArgs args{io.x,      io.y,      io.potentials, make_counts(io.counts, L, scratch),
                    th.data,   th.layout, L.T, L.B, L.N, L.static_input ? 0 : L.B,
                    a_.v_init, a_.leak,  -a_.signed_eps};
  const bool counts = io.counts != nullptr;
  run_plan(ctx, make_plan(L.T, L.B, L.N, /*split_b=*/!counts), L.N, L.B,
           with_flags(PickIF{}, a_.is_signed, a_.reset_zero, counts, io.potentials != nullptr), args);
}

template <>
void Kernel<ParaIFNeuronOp>::compute(Ort::KernelContext& ctx, const RunIO<ParaIFNeuronOp>& io) {
  const TimeLayout& L = io.L;
  std::unique_ptr<int32_t[]> scratch;
  const ParaArgs args{io.x,          io.y,         io.potentials, make_counts(io.counts, L, scratch),
                      io.params[0],  io.params[1], io.params[2], L.T, L.B, L.N, L.static_input ? 0 : L.B,
                      a_.v_init};
  const bool counts = io.counts != nullptr;
  run_plan(ctx, make_plan(L.T, L.B, L.N, /*split_b=*/!counts), L.N, L.B,
           with_flags(PickPara{}, counts, io.potentials != nullptr), args);
}

}  // namespace snn::cpu
