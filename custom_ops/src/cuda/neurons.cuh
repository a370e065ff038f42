// CUDA bodies of IFNeuron and ParaIFNeuron (one thread: one neuron, kBpt samples, the whole
// time loop); the update is common/steps.h's, shared with the CPU kernels.
#pragma once

#include "device.cuh"

namespace snn::cuda {

struct IFArgs {
  Grid g;
  const float* x = nullptr;
  float* y = nullptr;
  Param theta;
  float v_init = 0.5f, leak = 1.0f, neg_eps = -1e-3f;  // neg_eps = -signed_eps
};

template <bool kSigned, bool kZero, bool kCounts, int kBpt>
struct IFBody {
  static SNN_HD void run(const IFArgs& a, int64_t tid) {
    const Thread th = thread_of(a.g, tid, kBpt);
    const int64_t N = a.g.N, step = a.g.B * N, xstep = a.g.xstep();
    const float* SNN_RESTRICT x = a.x + th.first(a.g);  // element (t, b0 + j, i): x[t*xstep + j*N]
    float* SNN_RESTRICT y = a.y + th.first(a.g);        // and y[t*step + j*N]
    float* SNN_RESTRICT pot = a.g.pot ? a.g.pot + th.first(a.g) : nullptr;  // as y
    const float theta = a.theta.at(th.i);
    float v[kBpt];
    int32_t net[kBpt];
    SNN_UNROLL
    for (int j = 0; j < kBpt; ++j) {
      v[j] = a.v_init * theta;
      net[j] = 0;
    }
    for (int64_t t = 0, o = 0, ox = 0; t < a.g.T; ++t, o += step, ox += xstep) {  // offsets of step t
      int32_t fired = 0;
      SNN_UNROLL
      for (int j = 0; j < kBpt; ++j) {
        if (j >= th.nb) break;
        const float vk = if_integrate(v[j], x[ox + j * N], a.leak);
        if (pot) pot[o + j * N] = vk;
        const float out = if_fire<kSigned, kZero>(v[j], net[j], vk, theta, a.neg_eps);
        y[o + j * N] = out;
        fired += static_cast<int32_t>(out != 0.0f);
      }
      if (kCounts) add_count(a.g.counts + t * N + th.i, fired, a.g.counts_direct);
    }
  }
};

template <bool kSigned, bool kZero>
struct IFFor {
  template <bool kCounts, int kBpt>
  using Body = IFBody<kSigned, kZero, kCounts, kBpt>;
};

template <class L>
int dispatch_if(L& l, const IFArgs& a, const Plan& p, bool is_signed, bool zero) {
  if (is_signed)
    return zero ? by_plan<IFFor<true, true>::Body>(l, a, p) : by_plan<IFFor<true, false>::Body>(l, a, p);
  return zero ? by_plan<IFFor<false, true>::Body>(l, a, p) : by_plan<IFFor<false, false>::Body>(l, a, p);
}

struct ParaArgs {
  Grid g;
  const float* x = nullptr;
  float* y = nullptr;
  Param pre, post, bias;
  bool has_post = false, has_bias = false;  // absent: post = pre, bias = v_init * pre
  float v_init = 0.5f;
};

template <bool kCounts, int kBpt>
struct ParaBody {
  static SNN_HD void run(const ParaArgs& a, int64_t tid) {
    const Thread th = thread_of(a.g, tid, kBpt);
    const int64_t N = a.g.N, step = a.g.B * N, xstep = a.g.xstep();
    const float* SNN_RESTRICT x = a.x + th.first(a.g);
    float* SNN_RESTRICT y = a.y + th.first(a.g);
    float* SNN_RESTRICT pot = a.g.pot ? a.g.pot + th.first(a.g) : nullptr;  // as y
    const float pre = a.pre.at(th.i);
    const float post = a.has_post ? a.post.at(th.i) : pre;
    const float bias = a.has_bias ? a.bias.at(th.i) : a.v_init * pre;
    float drive[kBpt] = {};
    SNN_UNROLL
    for (int j = 0; j < kBpt; ++j) {
      if (j >= th.nb) break;
      drive[j] = x[j * N];
    }
    for (int64_t t = 1, ox = xstep; t < a.g.T; ++t, ox += xstep) {
      SNN_UNROLL
      for (int j = 0; j < kBpt; ++j) {
        if (j >= th.nb) break;
        drive[j] = drive[j] + x[ox + j * N];
      }
    }
    SNN_UNROLL
    for (int j = 0; j < kBpt; ++j) drive[j] = drive[j] + bias;
    int32_t fired_so_far[kBpt] = {};  // for the potentials
    for (int64_t t = 0, o = 0; t < a.g.T; ++t, o += step) {
      const float thr = para_threshold(t, pre);
      int32_t fired = 0;
      SNN_UNROLL
      for (int j = 0; j < kBpt; ++j) {
        if (j >= th.nb) break;
        const bool fire = para_fires(drive[j], thr);
        if (pot) {
          pot[o + j * N] = para_potential(drive[j], fired_so_far[j], pre);
          fired_so_far[j] += static_cast<int32_t>(fire);
        }
        y[o + j * N] = fire ? post : 0.0f;
        fired += static_cast<int32_t>(fire);
      }
      if (kCounts) add_count(a.g.counts + t * N + th.i, fired, a.g.counts_direct);
    }
  }
};

template <class L>
int dispatch_para(L& l, const ParaArgs& a, const Plan& p) {
  return by_plan<ParaBody>(l, a, p);
}

}  // namespace snn::cuda
