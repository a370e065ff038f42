// Host emulation of the CUDA kernels, for tests on machines without a GPU.
//
// Runs the kernels' own per-thread bodies (neurons.cuh, multi_threshold.cuh, temporal.cuh,
// compensated.cuh, signgd.cuh), through the same plan, grid and dispatch as the GPU launch in kernels.cu /
// runtime.h, one thread after another (in reverse order: nothing may depend on thread order).
// What this does not cover: the CUDA compiler's code generation, the launch itself, and the
// ONNX Runtime side (stream, memory placement); tests/test_cuda.py runs those on a GPU.
//
// Not part of the library: tests/test_cuda.py compiles this file alone,
//   c++ -std=c++17 -O2 -ffp-contract=off -shared -fPIC -I custom_ops/src emulate.cc
// and calls it through ctypes. Return value: 0, or kBadPlan for a plan no kernel exists for.
#include <cstring>

#include "compensated.cuh"
#include "multi_threshold.cuh"
#include "neurons.cuh"
#include "signgd.cuh"
#include "temporal.cuh"

namespace {

using namespace snn::cuda;

struct HostLauncher {
  template <class Body, class Args>
  int run(const Args& a, int64_t threads) {
    for (int64_t tid = threads - 1; tid >= 0; --tid) Body::run(a, tid);
    return 0;
  }
};

Param param(const float* data, int64_t channels, int64_t inner) {
  return {data, channels, inner, channels <= 1};
}

// The plan and grid of a neuron kernel, counts zeroed where the plan adds into them.
Grid grid(int64_t T, int64_t B, int64_t N, int static_input, int64_t* counts, const Plan& p, float* pot) {
  Grid g = make_grid(T, B, N, static_input != 0, counts, p, pot);
  if (counts_need_zero(g)) std::memset(counts, 0, static_cast<size_t>(T * N) * sizeof(int64_t));
  return g;
}

}  // namespace

extern "C" {

// Parameters: (data, channels, inner); channels <= 1 means a scalar. counts may be null.
// static_input: x holds one step [B, N] read at every step; y is still [T, B, N].
// resident: the GPU's resident threads for the plan; force_bpt > 0 overrides the plan's choice.
// pot: the membrane potentials [T, B, N] (the optional debug output), or null.

int snn_emu_if(const float* x, float* y, int64_t* counts, int64_t T, int64_t B, int64_t N,
               const float* theta, int64_t channels, int64_t inner, float v_init, float leak,
               int is_signed, float signed_eps, int reset_zero, int64_t resident, int force_bpt,
               int static_input, float* pot) {
  const Plan p = plan_neurons(B, N, counts != nullptr, resident, force_bpt);
  IFArgs a;
  a.g = grid(T, B, N, static_input, counts, p, pot);
  a.x = x, a.y = y;
  a.theta = param(theta, channels, inner);
  a.v_init = v_init, a.leak = leak, a.neg_eps = -signed_eps;
  HostLauncher l;
  return p.threads > 0 ? dispatch_if(l, a, p, is_signed != 0, reset_zero != 0) : 0;
}

int snn_emu_para(const float* x, float* y, int64_t* counts, int64_t T, int64_t B, int64_t N,
                 const float* pre, int64_t pre_ch, int64_t pre_in, const float* post, int64_t post_ch,
                 int64_t post_in, const float* bias, int64_t bias_ch, int64_t bias_in, float v_init,
                 int64_t resident, int force_bpt, int static_input, float* pot) {
  const Plan p = plan_neurons(B, N, counts != nullptr, resident, force_bpt);
  ParaArgs a;
  a.g = grid(T, B, N, static_input, counts, p, pot);
  a.x = x, a.y = y;
  a.pre = param(pre, pre_ch, pre_in);
  a.post = param(post, post_ch, post_in);
  a.bias = param(bias, bias_ch, bias_in);
  a.has_post = post != nullptr, a.has_bias = bias != nullptr;
  a.v_init = v_init;
  HostLauncher l;
  return p.threads > 0 ? dispatch_para(l, a, p) : 0;
}

int snn_emu_mt(const float* x, float* y, int64_t* counts, int64_t T, int64_t B, int64_t N,
               const float* sp, int64_t sp_ch, int64_t sp_in, const float* sn, int64_t sn_ch,
               int64_t sn_in, int levels, int64_t resident, int force_bpt, float* pot) {
  const Plan p = plan_neurons(B, N, counts != nullptr, resident, force_bpt);
  MTArgs a;
  a.g = grid(T, B, N, 0, counts, p, pot);
  a.x = x, a.y = y;
  a.pos = param(sp, sp_ch, sp_in);
  a.neg = param(sn, sn_ch, sn_in);
  a.levels = levels;
  HostLauncher l;
  return p.threads > 0 ? dispatch_mt(l, a, p) : 0;
}

int snn_emu_temporal(int delta, const float* x, float* y, int64_t T, int64_t M) {
  TemporalArgs a;
  a.x = x, a.y = y, a.T = T, a.M = M;
  HostLauncher l;
  return delta ? l.run<DeltaBody>(a, M) : l.run<MeanBody>(a, M);
}

// fn: index into the `function` values (common/ops.h kElementwiseFunctions).
int snn_emu_compensated(int fn, const float* x, float* y, int64_t T, int64_t M) {
  if (fn < 0 || fn >= snn::kNumFunctions) return kBadPlan;
  CompArgs a;
  a.x = x, a.y = y, a.T = T, a.M = M;
  HostLauncher l;
  return dispatch_compensated(l, a, static_cast<snn::Fn>(fn));
}

// SignGD: parameters already expanded to one value per neuron ([N]), eta [T]. binary: a two-input
// neuron (fn indexes SgFn2), else fn indexes SgFn.
int snn_emu_sg_neuron(const float* a, const float* b, float* y, int64_t* counts, int64_t T, int64_t B, int64_t N,
                      const float* off_a, const float* bias_a, const float* off_b, const float* bias_b,
                      const float* lam, const float* eta, int binary, int fn, float alpha, float beta, float lo,
                      float hi, float floor, int64_t resident, int force_bpt) {
  if (fn < 0 || fn >= (binary ? snn::kNumSgFunctions2 : snn::kNumSgFunctions)) return kBadPlan;
  const Plan p = plan_neurons(B, N, counts != nullptr, resident, force_bpt);
  SgArgs s;
  s.g = grid(T, B, N, 0, counts, p, nullptr);
  s.a = a, s.b = b, s.y = y;
  s.off_a = param(off_a, N, 1), s.bias_a = param(bias_a, N, 1), s.lam = param(lam, N, 1);
  s.off_a.scalar = s.bias_a.scalar = s.lam.scalar = false;
  if (binary) {
    s.off_b = param(off_b, N, 1), s.bias_b = param(bias_b, N, 1);
    s.off_b.scalar = s.bias_b.scalar = false;
  }
  s.eta = param(eta, T, 1);
  s.eta.scalar = false;
  s.p = {alpha, beta, lo, hi};
  s.floor = floor;
  HostLauncher l;
  if (p.threads <= 0) return 0;
  return binary ? dispatch_sg_neuron2(l, s, p, static_cast<snn::SgFn2>(fn))
                : dispatch_sg_neuron(l, s, p, static_cast<snn::SgFn>(fn));
}

// SignGDDecode (encode = 0; offset, bias [N]) or SignGDEncode (encode = 1; static_input).
int snn_emu_sg_codec(int encode, const float* x, float* y, int64_t T, int64_t B, int64_t N, const float* off,
                     const float* bias, const float* eta, int static_input, int64_t resident) {
  const Plan p = plan_neurons(B, N, false, resident);
  SgArgs s;
  s.g = grid(T, B, N, static_input, nullptr, p, nullptr);
  s.a = x, s.y = y;
  if (!encode) {
    s.off_a = param(off, N, 1), s.bias_a = param(bias, N, 1);
    s.off_a.scalar = s.bias_a.scalar = false;
  }
  s.eta = param(eta, T, 1);
  s.eta.scalar = false;
  HostLauncher l;
  if (p.threads <= 0) return 0;
  return encode ? dispatch_sg_encode(l, s, p) : dispatch_sg_decode(l, s, p);
}

// The plan the GPU would use: writes bpt, groups, threads, counts_direct.
void snn_emu_plan(int64_t B, int64_t N, int counts, int64_t resident, int64_t* out) {
  const Plan p = plan_neurons(B, N, counts != 0, resident);
  out[0] = p.bpt, out[1] = p.groups, out[2] = p.threads, out[3] = p.counts_direct;
}

}  // extern "C"
