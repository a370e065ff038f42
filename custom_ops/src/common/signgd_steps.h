// SignGD neurons (docs/ops.md#signgd-neurons): the float32 functions a neuron tracks and its
// per-step update, shared by the CPU (cpu/signgd.cc) and CUDA (cuda/signgd.cuh) kernels.
//
// Bit-exact with snn_onnx/ops/signgd_math.py and signgd_reference.py: the same float32
// operations in the same order (no FMA: -ffp-contract=off, nvcc --fmad=false), the same
// selects for NaN (each `c ? a : b` here mirrors an np.where / np.minimum there). The
// transcendental functions use only + - * / sqrt and round-to-nearest, so every compiler and
// device computes the same bits; library expf / erff would not.
#pragma once

#include <math.h>

#include <cstdint>

#include "steps.h"

namespace snn {

// `function` values in the order of schema.py SIGNGD_UNARY_FUNCTIONS / SIGNGD_BINARY_FUNCTIONS.
enum class SgFn : int {
  kRelu, kLeakyRelu, kClip, kAbs, kSquare, kExp, kSigmoid, kSilu, kTanh, kGelu, kGeluTanh, kHardSigmoid,
  kHardSwish
};
inline constexpr int kNumSgFunctions = 13;
enum class SgFn2 : int { kMax, kMin, kMul, kDiv, kDivSqrt };
inline constexpr int kNumSgFunctions2 = 5;

struct SgParams {
  float alpha, beta, lo, hi;
};

// round to nearest even for |v| < 2^22 (as np.rint there)
SNN_HD float sg_rint(float v) { return (v + 12582912.0f) - 12582912.0f; }

SNN_HD float sg_exp(float x) {
  const bool nan = !(x == x);
  const float xc = nan ? 0.0f : (x < -86.0f ? -86.0f : (x > 88.0f ? 88.0f : x));
  const float kf = sg_rint(xc * 1.442695f);
  const float r = (xc - kf * 0.693359375f) - kf * -0.00021219444f;
  float p = 0.0001984127f;
  p = p * r + 0.0013888889f;
  p = p * r + 0.008333334f;
  p = p * r + 0.041666668f;
  p = p * r + 0.16666667f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float y = p * exp2_int(static_cast<int32_t>(kf));
  const float r2 = x > 88.0f ? exp2_int(128) : (x < -86.0f ? 0.0f : y);  // exp2_int(128): +inf
  return nan ? x : r2;  // branch-free: the CPU loops vectorise
}

// erfc(z) for z >= 0 (NaN: the [1, 10) branch's value at z = 1, as the reference's selects)
SNN_HD float sg_erfc(float z) {
  const float u = z * z;
  float p = 7.933494e-05f;
  p = p * u + -0.00080348464f;
  p = p * u + 0.0051912186f;
  p = p * u + -0.0268554f;
  p = p * u + 0.11283626f;
  p = p * u + -0.3761263f;
  p = p * u + 1.1283792f;
  const float small = 1.0f - z * p;
  const float zs = z >= 1.0f ? z : 1.0f;
  const float s = 1.0f / zs;
  float q = -0.05019901f;
  q = q * s + 0.33866704f;
  q = q * s + -1.0117633f;
  q = q * s + 1.7403742f;
  q = q * s + -1.8423328f;
  q = q * s + 1.113147f;
  q = q * s + -0.16603842f;
  q = q * s + -0.2560301f;
  q = q * s + -0.0025708505f;
  q = q * s + 0.56433344f;
  q = q * s + -3.4612438e-06f;
  const float large = sg_exp(-(zs * zs)) * q;
  const float y = z < 1.0f ? small : large;
  return z >= 10.0f ? 0.0f : y;
}

SNN_HD float sg_phi(float x) {
  const float e = sg_erfc(fabsf(x) * 0.70710677f);
  return x >= 0.0f ? 1.0f - 0.5f * e : 0.5f * e;
}

SNN_HD float sg_tanh(float x) {
  const float a = fabsf(x);
  float t = 1.0f - 2.0f / (sg_exp(2.0f * a) + 1.0f);  // exp overflows to +inf: t = 1
  t = a >= 9.0f ? 1.0f : t;
  return x < 0.0f ? -t : t;
}

SNN_HD float sg_sigmoid(float x) { return 1.0f / (1.0f + sg_exp(-x)); }

SNN_HD float sg_hardsigmoid(float x, float alpha, float beta) {
  const float t = alpha * x + beta;
  return t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
}

template <SgFn F>
SNN_HD float sg_unary(float x, const SgParams& p) {
  if constexpr (F == SgFn::kRelu) return x > 0.0f ? x : 0.0f;
  if constexpr (F == SgFn::kLeakyRelu) return x >= 0.0f ? x : p.alpha * x;
  if constexpr (F == SgFn::kClip) return x < p.lo ? p.lo : (x > p.hi ? p.hi : x);
  if constexpr (F == SgFn::kAbs) return fabsf(x);
  if constexpr (F == SgFn::kSquare) return x * x;
  if constexpr (F == SgFn::kExp) return sg_exp(x);
  if constexpr (F == SgFn::kSigmoid) return sg_sigmoid(x);
  if constexpr (F == SgFn::kSilu) return x * sg_sigmoid(x);
  if constexpr (F == SgFn::kTanh) return sg_tanh(x);
  if constexpr (F == SgFn::kGelu) return x * sg_phi(x);
  if constexpr (F == SgFn::kGeluTanh) {
    const float inner = x + 0.044715f * (x * x * x);
    return (0.5f * x) * (1.0f + sg_tanh(0.7978846f * inner));
  }
  if constexpr (F == SgFn::kHardSigmoid) return sg_hardsigmoid(x, p.alpha, p.beta);
  if constexpr (F == SgFn::kHardSwish) return x * sg_hardsigmoid(x, p.alpha, p.beta);
  return x;
}

template <SgFn2 F>
SNN_HD float sg_binary(float a, float b, float floor) {
  if constexpr (F == SgFn2::kMax) return a >= b ? a : b;
  if constexpr (F == SgFn2::kMin) return a <= b ? a : b;
  if constexpr (F == SgFn2::kMul) return a * b;
  const float d = floor > 0.0f ? (b > floor ? b : floor) : b;
  if constexpr (F == SgFn2::kDiv) return a / d;
  if constexpr (F == SgFn2::kDivSqrt) return a / sqrtf(d);
  return a;
}

// An input estimate's step: x̂ = x̂ − η·(2z − offset).
SNN_HD float sg_accumulate(float xh, float z, float offset, float eta) {
  const float g = 2.0f * z - offset;
  return xh - eta * g;
}

// The output estimate's step after comparing with the target; returns whether it fired.
SNN_HD bool sg_fire(float& w, float target, float lam, float eta) {
  const bool fire = w >= target;
  const float a = lam * eta;
  w = fire ? w - a : w + a;
  return fire;
}

// SignGDEncode's code for step t: 0.5 − (w_t − w_{t−1}) / (2·η_t).
SNN_HD float sg_encode(float w, float prev, float eta) { return 0.5f - (w - prev) / (2.0f * eta); }

}  // namespace snn
