// CUDA bodies of the SignGD family (one thread: one neuron, kBpt samples, the whole time loop);
// the updates are common/signgd_steps.h's, shared with the CPU kernels. Parameters reach the
// device expanded to one value per neuron (cuda/signgd.cc), the step sizes as a [T] table.
#pragma once

#include <utility>

#include "../common/signgd_steps.h"
#include "device.cuh"

namespace snn::cuda {

struct SgArgs {
  Grid g;
  const float* a = nullptr;
  const float* b = nullptr;  // SignGDNeuron2's second input
  float* y = nullptr;
  Param off_a, bias_a, off_b, bias_b, lam, eta;  // eta: [T]
  SgParams p{};
  float floor = 0.0f;
};

template <SgFn F>
struct SgUnary {
  static constexpr bool kTwo = false;
  static SNN_HD float f(float x, float, const SgArgs& a) { return sg_unary<F>(x, a.p); }
};
template <SgFn2 F>
struct SgBinary {
  static constexpr bool kTwo = true;
  static SNN_HD float f(float x, float y, const SgArgs& a) { return sg_binary<F>(x, y, a.floor); }
};

// SignGDNeuron (F = SgUnary) and SignGDNeuron2 (F = SgBinary).
template <class F, bool kCounts, int kBpt>
struct SgNeuronBody {
  static SNN_HD void run(const SgArgs& a, int64_t tid) {
    const Thread th = thread_of(a.g, tid, kBpt);
    const int64_t N = a.g.N, step = a.g.B * N;
    const float* SNN_RESTRICT xa = a.a + th.first(a.g);
    const float* SNN_RESTRICT xb = F::kTwo ? a.b + th.first(a.g) : nullptr;
    float* SNN_RESTRICT y = a.y + th.first(a.g);
    const float oa = a.off_a.at(th.i), lam = a.lam.at(th.i);
    const float ob = F::kTwo ? a.off_b.at(th.i) : 0.0f;
    float ha[kBpt], hb[kBpt], w[kBpt];
    SNN_UNROLL
    for (int j = 0; j < kBpt; ++j) {
      ha[j] = a.bias_a.at(th.i);
      hb[j] = F::kTwo ? a.bias_b.at(th.i) : 0.0f;
      w[j] = 0.0f;
    }
    for (int64_t t = 0, o = 0; t < a.g.T; ++t, o += step) {
      const float eta = a.eta.at(t);
      int32_t fired = 0;
      SNN_UNROLL
      for (int j = 0; j < kBpt; ++j) {
        if (j >= th.nb) break;
        ha[j] = sg_accumulate(ha[j], xa[o + j * N], oa, eta);
        if (F::kTwo) hb[j] = sg_accumulate(hb[j], xb[o + j * N], ob, eta);
        const bool fire = sg_fire(w[j], F::f(ha[j], hb[j], a), lam, eta);
        y[o + j * N] = fire ? lam : 0.0f;
        fired += static_cast<int32_t>(fire);
      }
      if (kCounts) add_count(a.g.counts + t * N + th.i, fired, a.g.counts_direct);
    }
  }
};

template <class F>
struct SgFor {
  template <bool kCounts, int kBpt>
  using Body = SgNeuronBody<F, kCounts, kBpt>;
};

// SignGDDecode: the input estimate after every step (no counts: bpt 1).
template <bool kCounts, int kBpt>
struct SgDecodeBody {
  static SNN_HD void run(const SgArgs& a, int64_t tid) {
    const Thread th = thread_of(a.g, tid, 1);
    const int64_t N = a.g.N, step = a.g.B * N;
    const float* SNN_RESTRICT z = a.a + th.first(a.g);
    float* SNN_RESTRICT y = a.y + th.first(a.g);
    const float off = a.off_a.at(th.i);
    float h = a.bias_a.at(th.i);
    for (int64_t t = 0, o = 0; t < a.g.T; ++t, o += step) {
      h = sg_accumulate(h, z[o], off, a.eta.at(t));
      y[o] = h;
    }
  }
};

// SignGDEncode: codes of w (static_input: x_step 0, w read from one step).
template <bool kCounts, int kBpt>
struct SgEncodeBody {
  static SNN_HD void run(const SgArgs& a, int64_t tid) {
    const Thread th = thread_of(a.g, tid, 1);
    const int64_t N = a.g.N, step = a.g.B * N, xstep = a.g.xstep();
    const float* SNN_RESTRICT w = a.a + th.first(a.g);
    float* SNN_RESTRICT y = a.y + th.first(a.g);
    float prev = 0.0f;
    for (int64_t t = 0, o = 0, ox = 0; t < a.g.T; ++t, o += step, ox += xstep) {
      const float cur = w[ox];
      y[o] = sg_encode(cur, prev, a.eta.at(t));
      prev = cur;
    }
  }
};

template <class L, size_t... I>
int dispatch_sg_unary(L& l, const SgArgs& a, const Plan& p, SgFn fn, std::index_sequence<I...>) {
  int rc = kBadPlan;
  ((static_cast<int>(fn) == static_cast<int>(I)
        ? (rc = by_plan<SgFor<SgUnary<static_cast<SgFn>(I)>>::template Body>(l, a, p), 0)
        : 0),
   ...);
  return rc;
}

template <class L, size_t... I>
int dispatch_sg_binary(L& l, const SgArgs& a, const Plan& p, SgFn2 fn, std::index_sequence<I...>) {
  int rc = kBadPlan;
  ((static_cast<int>(fn) == static_cast<int>(I)
        ? (rc = by_plan<SgFor<SgBinary<static_cast<SgFn2>(I)>>::template Body>(l, a, p), 0)
        : 0),
   ...);
  return rc;
}

template <class L>
int dispatch_sg_neuron(L& l, const SgArgs& a, const Plan& p, SgFn fn) {
  return dispatch_sg_unary(l, a, p, fn, std::make_index_sequence<kNumSgFunctions>{});
}
template <class L>
int dispatch_sg_neuron2(L& l, const SgArgs& a, const Plan& p, SgFn2 fn) {
  return dispatch_sg_binary(l, a, p, fn, std::make_index_sequence<kNumSgFunctions2>{});
}
template <class L>
int dispatch_sg_decode(L& l, const SgArgs& a, const Plan& p) {
  return by_plan<SgDecodeBody>(l, a, p);
}
template <class L>
int dispatch_sg_encode(L& l, const SgArgs& a, const Plan& p) {
  return by_plan<SgEncodeBody>(l, a, p);
}

}  // namespace snn::cuda
