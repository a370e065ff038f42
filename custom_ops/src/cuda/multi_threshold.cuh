// CUDA body of MultiThresholdNeuron (one thread: one neuron, kBpt samples, the whole time loop);
// the emitted spike is common/steps.h's mt_emit, shared with the CPU kernel.
#pragma once

#include "device.cuh"

namespace snn::cuda {

struct MTArgs {
  Grid g;
  const float* x = nullptr;
  float* y = nullptr;
  Param pos, neg;  // scale_pos, scale_neg
  int levels = 8;
};

template <bool kCounts, int kBpt>
struct MTBody {
  static SNN_HD void run(const MTArgs& a, int64_t tid) {
    const Thread th = thread_of(a.g, tid, kBpt);
    const int64_t N = a.g.N, step = a.g.B * N;
    const float* SNN_RESTRICT x = a.x + th.first(a.g);
    float* SNN_RESTRICT y = a.y + th.first(a.g);
    float* SNN_RESTRICT pot = a.g.pot ? a.g.pot + th.first(a.g) : nullptr;  // as y
    const float sp = a.pos.at(th.i), sn = a.neg.at(th.i);
    float v[kBpt];
    SNN_UNROLL
    for (int j = 0; j < kBpt; ++j) v[j] = 0.0f;
    for (int64_t t = 0, o = 0; t < a.g.T; ++t, o += step) {  // o: offset of step t
      int32_t fired = 0;
      SNN_UNROLL
      for (int j = 0; j < kBpt; ++j) {
        if (j >= th.nb) break;
        const float vk = v[j] + x[o + j * N];
        if (pot) pot[o + j * N] = vk;
        const float e = mt_emit(vk, sp, sn, a.levels);
        y[o + j * N] = e;
        v[j] = vk - e;
        fired += static_cast<int32_t>(e != 0.0f);
      }
      if (kCounts) add_count(a.g.counts + t * N + th.i, fired, a.g.counts_direct);
    }
  }
};

template <class L>
int dispatch_mt(L& l, const MTArgs& a, const Plan& p) {
  return by_plan<MTBody>(l, a, p);
}

}  // namespace snn::cuda
