// The neuron-step (update) function of every op, written once for the CPU kernels (cpu/) and
// the CUDA kernels (cuda/), which only decide which neuron, sample and step each call is for.
//
// Plain float32 C++ marked __host__ __device__ under nvcc: no ONNX Runtime and no CUDA header.
// Bit-exactness with snn_onnx/ops/reference.py (docs/ops.md): the same float32 expressions in
// the same order, one rounding per operation (both compilers run without FMA contraction), the
// same comparisons. The CPU loops call these on a block of neurons and must still vectorise, so
// the functions are branch-free selects and are always inlined.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SNN_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define SNN_HD inline __attribute__((always_inline))
#else
#define SNN_HD inline
#endif

namespace snn {

// Float32 value of step t + 1 (t 0-based), as the reference's F32(t + 1).
SNN_HD float step_count(int64_t t) { return static_cast<float>(t + 1); }

// ---------------------------------------------------------------------------------------------
// IFNeuron: v = leak*v + x (if_integrate: the membrane potential, docs/ops.md); +1 if
// v >= theta; with kSigned, otherwise -1 if v <= -signed_eps and the net spike count so far is
// positive; output s*theta; reset subtract (v -= output) or zero (if_fire). Returns the output;
// it is non-zero exactly when the neuron fires (theta > 0). if_step is both.
SNN_HD float if_integrate(float v, float x, float leak) { return leak * v + x; }

template <bool kSigned, bool kZero>
SNN_HD float if_fire(float& v, int32_t& net, float vk, float theta, float neg_eps) {
  const bool pos = vk >= theta;
  bool neg = false;
  if constexpr (kSigned) {
    neg = !pos & (vk <= neg_eps) & (net > 0);
    net += static_cast<int32_t>(pos) - static_cast<int32_t>(neg);
  }
  const float s = pos ? 1.0f : (neg ? -1.0f : 0.0f);
  const float out = s * theta;
  if constexpr (kZero)
    v = (pos | neg) ? 0.0f : vk;
  else
    v = vk - out;
  return out;
}

template <bool kSigned, bool kZero>
SNN_HD float if_step(float& v, int32_t& net, float x, float theta, float leak, float neg_eps) {
  return if_fire<kSigned, kZero>(v, net, if_integrate(v, x, leak), theta, neg_eps);
}

// ---------------------------------------------------------------------------------------------
// ParaIFNeuron: drive = (x_1 + x_2 + ... + x_T) + bias, summed sequentially; step t (0-based)
// fires iff drive >= (t + 1) * theta_pre.
SNN_HD float para_threshold(int64_t t, float theta_pre) { return step_count(t) * theta_pre; }
SNN_HD bool para_fires(float drive, float threshold) { return drive >= threshold; }
// Its membrane potential (docs/ops.md): the equivalent IF neuron that receives the whole charge
// at once, after `fired` spikes in the steps before this one: drive - fired*theta_pre.
SNN_HD float para_potential(float drive, int32_t fired, float theta_pre) {
  return drive - static_cast<float>(fired) * theta_pre;
}

// ---------------------------------------------------------------------------------------------
// MultiThresholdNeuron: the spike emitted for the membrane v (v already holds + x_t): the
// nearest level, i.e. the largest s_p*2^k with v >= s_p*m_k, where m_k is the midpoint between
// level k and the next lower one (m_0 = 0.5, m_k = 0.75*2^k), else the largest s_n*2^k with
// -v >= s_n*m_k (emitted as -s_n*2^k), else +0.0; the caller subtracts it from v. Levels are
// tried in ascending k and a later one that passes replaces an earlier one.
inline constexpr int kMaxLevels = 32;  // = schema.MAX_LEVELS; the `levels` attribute's bound

// 2^k as a float32, exact for 0 <= k < kMaxLevels.
SNN_HD float pow2(int k) { return static_cast<float>(uint32_t{1} << k); }

// m_k: exact in float32 (0.5, or 3 * 2^(k-2)); the threshold s * m_k is one rounding.
SNN_HD float mt_midpoint(int k) { return k == 0 ? 0.5f : 0.75f * pow2(k); }

SNN_HD float mt_emit(float v, float s_pos, float s_neg, int levels) {
  const float nv = -v;
  float out_p = 0.0f, out_n = 0.0f;
  for (int k = 0; k < levels; ++k) {
    const float p2 = pow2(k), m = mt_midpoint(k);
    out_p = v >= s_pos * m ? s_pos * p2 : out_p;
    out_n = nv >= s_neg * m ? s_neg * p2 : out_n;
  }
  return out_p > 0.0f ? out_p : 0.0f - out_n;
}

// ---------------------------------------------------------------------------------------------
// TemporalMean: acc += x_t, y_t = acc / (t + 1) (a true division). TemporalDelta:
// y_t = (t+1)*x_t - t*x_{t-1}, each product rounded before the subtraction (y_0 = x_0).
SNN_HD float mean_step(float& acc, float x, int64_t t) {
  acc = acc + x;
  return acc / step_count(t);
}
SNN_HD float delta_step(float cur, float prev, int64_t t) {
  const float c = step_count(t) * cur;
  const float p = static_cast<float>(t) * prev;
  return c - p;
}

// ---------------------------------------------------------------------------------------------
// CompensatedElementwise: TemporalDelta(f(TemporalMean(x))) in one pass, with the two steps
// above around f. f is float32 and branch-free (exp: Cephes-style range reduction and
// polynomial; erf: Abramowitz & Stegun 7.1.26, |error| < 1.5e-7); the reference computes f in
// float64, so values agree to float tolerance. Special values follow the reference's formulas
// (docs/ops.md, "NaN and infinity"): NaN propagates, exp overflows to +inf and underflows
// gradually to 0, so e.g. silu(-3.4e38) = -0 and silu(-inf) = -inf * 0 = NaN.

// In the order of the `function` attribute's values (ops.h kElementwiseFunctions).
enum class Fn : int { kGelu, kGeluTanh, kSilu, kSigmoid, kTanh, kHardSigmoid, kHardSwish, kRelu };
inline constexpr int kNumFunctions = 8;

// 2^k for -127 < k < 128, from the exponent bits.
SNN_HD float exp2_int(int32_t k) {
  const int32_t bits = (k + 127) * (int32_t{1} << 23);
#if defined(__CUDA_ARCH__)
  return __int_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

SNN_HD float exp_f(float x) {
  // Below -104 exp is 0 in float32, above 88.73 it is +inf: clamping there keeps n (and the
  // integer conversion) in range and still rounds to 0 / overflows to inf below.
  x = x < -104.0f ? -104.0f : (x > 88.73f ? 88.73f : x);
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // NaN stays in r and p; n must be a number for the conversion.
  n = n == n ? n : 0.0f;
  // 2^n as 2^(n/2) * 2^(n - n/2): both factors are normal floats for n in [-150, 128], so
  // gradual underflow and overflow happen in the last (correctly rounded) product.
  const int32_t k = static_cast<int32_t>(n), k1 = k / 2;
  return (p * exp2_int(k1)) * exp2_int(k - k1);
}

SNN_HD float erf_f(float x) {
  const float a = x < 0.0f ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly =
      ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
  const float y = 1.0f - poly * exp_f(-(a * a));
  return x < 0.0f ? -y : y;
}

SNN_HD float tanh_f(float x) {
  const float a = x < 0.0f ? -x : x;
  const float y = 1.0f - 2.0f / (exp_f(2.0f * a) + 1.0f);
  return x < 0.0f ? -y : y;
}

SNN_HD float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

// clip(v, 0, 1), NaN kept (as np.clip).
SNN_HD float clip01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

template <Fn F>
SNN_HD float elementwise(float m) {
  if constexpr (F == Fn::kGelu) return 0.5f * m * (1.0f + erf_f(m * 0.70710678118654752f));
  if constexpr (F == Fn::kGeluTanh) {
    const float inner = 0.79788456080286536f * (m + 0.044715f * (m * m * m));
    return 0.5f * m * (1.0f + tanh_f(inner));
  }
  if constexpr (F == Fn::kSilu) return m * sigmoid_f(m);
  if constexpr (F == Fn::kSigmoid) return sigmoid_f(m);
  if constexpr (F == Fn::kTanh) return tanh_f(m);
  if constexpr (F == Fn::kHardSigmoid) return clip01(m / 6.0f + 0.5f);
  if constexpr (F == Fn::kHardSwish) return m * clip01(m / 6.0f + 0.5f);
  if constexpr (F == Fn::kRelu) return m < 0.0f ? 0.0f : m;  // NaN kept (as np.maximum)
  return m;
}

// One step of one element: acc, prev (f of the previous step's mean) carry over between steps.
template <Fn F>
SNN_HD float compensated_step(float& acc, float& prev, float x, int64_t t) {
  const float f = elementwise<F>(mean_step(acc, x, t));
  const float y = delta_step(f, prev, t);
  prev = f;
  return y;
}

}  // namespace snn
