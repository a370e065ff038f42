// CPU kernels of the SignGD family (docs/ops.md#signgd-neurons): SignGDNeuron, SignGDNeuron2,
// SignGDDecode, SignGDEncode. The per-element updates are common/signgd_steps.h's, shared with
// the CUDA kernels.
//
// Tasks are blocks of neurons times samples (parallel.h); each keeps its estimates for the
// block in arrays across the time loop. The parameters broadcast to one sample, so they are
// expanded once per run to one value per neuron (N floats each, expand_param); a neuron block
// reads them contiguously. f is chosen at compile time (one body per function), so the inner
// loop has no switch.
#include <algorithm>
#include <utility>
#include <vector>

#include "../common/dispatch.h"
#include "../common/signgd_steps.h"
#include "cpu_ops.h"
#include "parallel.h"

namespace snn::cpu {
namespace {

// One sample's parameters, one value per neuron.
struct Expanded {
  std::vector<float> v;
  const float* data() const { return v.data(); }
};

Expanded expand(const NodeId& id, const HostParam& p, const std::vector<int64_t>& xs, float dflt, const char* name,
                bool finite) {
  if (finite && p.data) check_finite(id, name, p.data, p.size);
  Expanded e;
  expand_param(p, xs, dflt, e.v);
  return e;
}

// ---------------------------------------------------------------------------------------------
// SignGDNeuron / SignGDNeuron2

struct NeuronArgs {
  const float* a;
  const float* b;  // SignGDNeuron2's second input
  float* y;
  Counts counts;
  const float *off_a, *bias_a, *off_b, *bias_b, *lam;  // [N]
  const float* eta;                                     // [T]
  SgParams p;
  float floor;
  int64_t T, B, N;
};

template <class F, bool kTwo, bool kCounts>
struct NeuronBody {
  using Args = NeuronArgs;
  static SNN_ALWAYS_INLINE void run(const NeuronArgs& a, const Range& r) noexcept {
    const int64_t i0 = r.i0, len = r.len, N = a.N;
    alignas(64) float xa[kMaxBlock], xb[kMaxBlock], w[kMaxBlock];
    const float* __restrict oa = a.off_a + i0;
    const float* __restrict ob = kTwo ? a.off_b + i0 : nullptr;
    const float* __restrict lam = a.lam + i0;
    if constexpr (kCounts) a.counts.zero(i0, len);
    for (int64_t b = r.b0; b < r.b1; ++b) {
      std::copy_n(a.bias_a + i0, len, xa);
      if constexpr (kTwo) std::copy_n(a.bias_b + i0, len, xb);
      std::fill_n(w, len, 0.0f);
      for (int64_t t = 0; t < a.T; ++t) {
        const float eta = a.eta[t];
        const int64_t row = (t * a.B + b) * N + i0;
        const float* __restrict ar = a.a + row;
        const float* __restrict br = kTwo ? a.b + row : nullptr;
        float* __restrict yr = a.y + row;
        int32_t* __restrict cr = kCounts ? a.counts.acc + t * N + i0 : nullptr;
        for (int64_t k = 0; k < len; ++k) {
          xa[k] = sg_accumulate(xa[k], ar[k], oa[k], eta);
          float target;
          if constexpr (kTwo) {
            xb[k] = sg_accumulate(xb[k], br[k], ob[k], eta);
            target = F::f(xa[k], xb[k], a);
          } else {
            target = F::f(xa[k], 0.0f, a);
          }
          const bool fire = sg_fire(w[k], target, lam[k], eta);
          yr[k] = fire ? lam[k] : 0.0f;
          if constexpr (kCounts) cr[k] += static_cast<int32_t>(fire);
        }
      }
    }
    if constexpr (kCounts) a.counts.finish(i0, len);
  }
};

template <SgFn F>
struct Unary {
  static SNN_ALWAYS_INLINE float f(float x, float, const NeuronArgs& a) { return sg_unary<F>(x, a.p); }
};
template <SgFn2 F>
struct Binary {
  static SNN_ALWAYS_INLINE float f(float x, float y, const NeuronArgs& a) { return sg_binary<F>(x, y, a.floor); }
};

template <size_t... I>
TaskFn<NeuronArgs> pick_unary(SgFn fn, bool counts, std::index_sequence<I...>) {
  using Get = TaskFn<NeuronArgs> (*)();
  static constexpr Get with[] = {&isa_task<NeuronBody<Unary<static_cast<SgFn>(I)>, false, true>>...};
  static constexpr Get without[] = {&isa_task<NeuronBody<Unary<static_cast<SgFn>(I)>, false, false>>...};
  return (counts ? with : without)[static_cast<int>(fn)]();
}

template <size_t... I>
TaskFn<NeuronArgs> pick_binary(SgFn2 fn, bool counts, std::index_sequence<I...>) {
  using Get = TaskFn<NeuronArgs> (*)();
  static constexpr Get with[] = {&isa_task<NeuronBody<Binary<static_cast<SgFn2>(I)>, true, true>>...};
  static constexpr Get without[] = {&isa_task<NeuronBody<Binary<static_cast<SgFn2>(I)>, true, false>>...};
  return (counts ? with : without)[static_cast<int>(fn)]();
}

// ---------------------------------------------------------------------------------------------
// SignGDDecode / SignGDEncode

struct CodecArgs {
  const float* x;
  float* y;
  const float *off, *bias;  // [N] (decoder)
  const float* eta;         // [T]
  int64_t T, B, N;
  int64_t x_step;  // rows of x between two steps: B, or 0 for a static input (encoder)
};

struct DecodeBody {
  using Args = CodecArgs;
  static SNN_ALWAYS_INLINE void run(const CodecArgs& a, const Range& r) noexcept {
    const int64_t i0 = r.i0, len = r.len, N = a.N;
    alignas(64) float xh[kMaxBlock];
    const float* __restrict off = a.off + i0;
    for (int64_t b = r.b0; b < r.b1; ++b) {
      std::copy_n(a.bias + i0, len, xh);
      for (int64_t t = 0; t < a.T; ++t) {
        const float eta = a.eta[t];
        const float* __restrict xr = a.x + (t * a.B + b) * N + i0;
        float* __restrict yr = a.y + (t * a.B + b) * N + i0;
        for (int64_t k = 0; k < len; ++k) {
          xh[k] = sg_accumulate(xh[k], xr[k], off[k], eta);
          yr[k] = xh[k];
        }
      }
    }
  }
};

struct EncodeBody {
  using Args = CodecArgs;
  static SNN_ALWAYS_INLINE void run(const CodecArgs& a, const Range& r) noexcept {
    const int64_t i0 = r.i0, len = r.len, N = a.N;
    alignas(64) float prev[kMaxBlock];
    for (int64_t b = r.b0; b < r.b1; ++b) {
      std::fill_n(prev, len, 0.0f);
      for (int64_t t = 0; t < a.T; ++t) {
        const float eta = a.eta[t];
        const float* __restrict xr = a.x + (t * a.x_step + b) * N + i0;
        float* __restrict yr = a.y + (t * a.B + b) * N + i0;
        for (int64_t k = 0; k < len; ++k) {
          yr[k] = sg_encode(xr[k], prev[k], eta);
          prev[k] = xr[k];
        }
      }
    }
  }
};

}  // namespace

template <>
void Kernel<SignGDNeuronOp>::compute(Ort::KernelContext& ctx, const RunIO<SignGDNeuronOp>& io) {
  const TimeLayout& L = io.L;
  const Expanded off = expand(id_, io.params[0], io.x_shape, 1.0f, "offset", true);
  const Expanded bias = expand(id_, io.params[1], io.x_shape, 0.0f, "bias", true);
  const Expanded lam = expand(id_, io.params[2], io.x_shape, 1.0f, "amplitude", false);
  std::unique_ptr<int32_t[]> scratch;
  NeuronArgs args{io.x,        nullptr,   io.y,          make_counts(io.counts, L, scratch), off.data(), bias.data(),
                  nullptr,     nullptr,   lam.data(),    a_.eta.data(), a_.p, 0.0f, L.T, L.B, L.N};
  const bool counts = io.counts != nullptr;
  run_plan(ctx, make_plan(L.T, L.B, L.N, /*split_b=*/!counts), L.N, L.B,
           pick_unary(a_.function, counts, std::make_index_sequence<kNumSgFunctions>{}), args);
}

template <>
void Kernel<SignGDNeuron2Op>::compute(Ort::KernelContext& ctx, const RunIO<SignGDNeuron2Op>& io) {
  const TimeLayout& L = io.L;
  const Expanded off_a = expand(id_, io.params[0], io.x_shape, 1.0f, "offset_a", true);
  const Expanded bias_a = expand(id_, io.params[1], io.x_shape, 0.0f, "bias_a", true);
  const Expanded off_b = expand(id_, io.params[2], io.x_shape, 1.0f, "offset_b", true);
  const Expanded bias_b = expand(id_, io.params[3], io.x_shape, 0.0f, "bias_b", true);
  const Expanded lam = expand(id_, io.params[4], io.x_shape, 1.0f, "amplitude", false);
  std::unique_ptr<int32_t[]> scratch;
  NeuronArgs args{io.x,          io.x2,        io.y,          make_counts(io.counts, L, scratch),
                  off_a.data(),  bias_a.data(), off_b.data(), bias_b.data(), lam.data(), a_.eta.data(),
                  SgParams{},    a_.denominator_floor, L.T, L.B, L.N};
  const bool counts = io.counts != nullptr;
  run_plan(ctx, make_plan(L.T, L.B, L.N, /*split_b=*/!counts), L.N, L.B,
           pick_binary(a_.function, counts, std::make_index_sequence<kNumSgFunctions2>{}), args);
}

template <>
void Kernel<SignGDDecodeOp>::compute(Ort::KernelContext& ctx, const RunIO<SignGDDecodeOp>& io) {
  const TimeLayout& L = io.L;
  const Expanded off = expand(id_, io.params[0], io.x_shape, 1.0f, "offset", true);
  const Expanded bias = expand(id_, io.params[1], io.x_shape, 0.0f, "bias", true);
  const CodecArgs args{io.x, io.y, off.data(), bias.data(), a_.eta.data(), L.T, L.B, L.N, L.B};
  run_plan(ctx, make_plan(L.T, L.B, L.N, /*split_b=*/true), L.N, L.B, isa_task<DecodeBody>(), args);
}

template <>
void Kernel<SignGDEncodeOp>::compute(Ort::KernelContext& ctx, const RunIO<SignGDEncodeOp>& io) {
  const TimeLayout& L = io.L;
  const CodecArgs args{io.x, io.y, nullptr, nullptr, a_.eta.data(), L.T, L.B, L.N, L.static_input ? 0 : L.B};
  run_plan(ctx, make_plan(L.T, L.B, L.N, /*split_b=*/true), L.N, L.B, isa_task<EncodeBody>(), args);
}

}  // namespace snn::cpu
