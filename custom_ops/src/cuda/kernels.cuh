// Per-thread bodies of the CUDA kernels of the snn_onnx ops, and the launch plan.
//
// Everything here is plain C++ marked __host__ __device__ (SNN_HD): kernels.cu wraps each body
// in a __global__ function, and src/cuda/emulate.cc runs the very same bodies on the host, one
// "thread" after another, so tests/test_cuda.py can check the indexing, the batch grouping and
// the spike-count accumulation against the NumPy reference on machines without a GPU.
// No ONNX Runtime and no CUDA runtime header is needed to compile this file.
//
// Layout (docs/ops.md): x is [T, B, N] (row t*B + b of the folded [T*B, ...] tensor, N neurons
// per sample). A thread owns one neuron i and a group of up to kBpt samples; it keeps their
// membranes in registers and runs the time loop itself, so x is read once and y written once.
// Threads with consecutive ids take consecutive i: every warp load and store is coalesced.
//
// Bit-exactness: the same float32 expressions, in the same order, as snn_onnx/ops/reference.py
// and the CPU kernels; kernels.cu is compiled with --fmad=false (no FMA contraction) and IEEE
// division, so spikes match the reference exactly.
#pragma once

#include <cstdint>
#include <math.h>  // erff, tanhf, expf: host and device

#if defined(__CUDACC__)
#define SNN_HD __host__ __device__ __forceinline__
#define SNN_UNROLL _Pragma("unroll")
#else
#define SNN_HD inline
#define SNN_UNROLL
#endif
// x and y never overlap (ORT gives an op distinct input and output buffers): lets the compiler
// issue the next step's loads before this step's stores, and read x through the read-only path.
#define SNN_RESTRICT __restrict__

namespace snn::cuda {

// A scalar or per-channel parameter in the memory the body runs against (device on the GPU).
// Neuron i (flat index over x.shape[1:]) uses data[scalar ? 0 : (i / inner) % channels], as
// snn::ParamLayout in common/op_common.h.
struct Param {
  const float* data = nullptr;
  int64_t channels = 1, inner = 1;
  bool scalar = true;
  SNN_HD float at(int64_t i) const { return scalar ? data[0] : data[(i / inner) % channels]; }
};

// Spike counts [T, N], summed over the batch. A thread holds the sum over its own samples; when
// one group of samples covers the whole batch it stores it (no atomics, no zeroing), otherwise
// the groups add into counts zeroed beforehand, one atomic per (step, neuron, group) — never one
// per spike.
SNN_HD void add_count(int64_t* c, int32_t n, bool direct) {
  if (direct) {
    *c = n;
    return;
  }
#if defined(__CUDA_ARCH__)
  if (n != 0) atomicAdd(reinterpret_cast<unsigned long long*>(c), static_cast<unsigned long long>(n));
#else
  *c += n;
#endif
}

// What every neuron kernel shares: shapes, the sample grouping and the outputs.
struct Grid {
  int64_t T = 0, B = 0, N = 0;
  // Elements of x between two steps: B*N, or 0 when x is one step [B, ...] repeated at every
  // step (the neurons' static_input mode; y is still [T*B, ...]). -1 means B*N.
  int64_t x_step = -1;
  SNN_HD int64_t xstep() const { return x_step < 0 ? B * N : x_step; }
  int64_t* counts = nullptr;  // nullptr: the node declares no counts
  bool counts_direct = false; // one group spans the batch: store counts instead of adding
};

// ---------------------------------------------------------------------------------------------
// IFNeuron: v = leak*v + x_t; +1 if v >= theta; (signed) -1 if v <= -eps and the net count so
// far is positive; y = s*theta; reset subtract (v -= y) or zero.

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
    const int64_t N = a.g.N, B = a.g.B, step = B * N, xstep = a.g.xstep();
    const int64_t i = tid % N, b0 = (tid / N) * kBpt;
    const int64_t nb = B - b0 < kBpt ? B - b0 : kBpt;
    const float* SNN_RESTRICT x = a.x + b0 * N + i;  // element (t, b0 + j, i): x[t*xstep + j*N]
    float* SNN_RESTRICT y = a.y + b0 * N + i;        // and y[t*step + j*N]
    const float th = a.theta.at(i);
    const float v0 = a.v_init * th;
    float v[kBpt];
    int32_t net[kBpt];
    SNN_UNROLL
    for (int j = 0; j < kBpt; ++j) {
      v[j] = v0;
      net[j] = 0;
    }
    for (int64_t t = 0, o = 0, ox = 0; t < a.g.T; ++t, o += step, ox += xstep) {  // offsets of step t
      int32_t fired = 0;
      SNN_UNROLL
      for (int j = 0; j < kBpt; ++j) {
        if (j >= nb) break;
        float vk = a.leak * v[j] + x[ox + j * N];
        const bool pos = vk >= th;
        bool neg = false;
        if (kSigned) {
          neg = !pos && vk <= a.neg_eps && net[j] > 0;
          net[j] += static_cast<int32_t>(pos) - static_cast<int32_t>(neg);
        }
        const float s = pos ? 1.0f : (neg ? -1.0f : 0.0f);
        const float out = s * th;
        y[o + j * N] = out;
        if (kZero)
          vk = (pos || neg) ? 0.0f : vk;
        else
          vk = vk - out;
        v[j] = vk;
        fired += static_cast<int32_t>(pos || neg);
      }
      if (kCounts) add_count(a.g.counts + t * N + i, fired, a.g.counts_direct);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// ParaIFNeuron: acc = x_1 + ... + x_T (sequential), drive = acc + bias; step t (1-based) fires
// iff drive >= t * theta_pre, output theta_post.

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
    const int64_t N = a.g.N, B = a.g.B, step = B * N, xstep = a.g.xstep();
    const int64_t i = tid % N, b0 = (tid / N) * kBpt;
    const int64_t nb = B - b0 < kBpt ? B - b0 : kBpt;
    const float* SNN_RESTRICT x = a.x + b0 * N + i;
    float* SNN_RESTRICT y = a.y + b0 * N + i;
    const float pre = a.pre.at(i);
    const float post = a.has_post ? a.post.at(i) : pre;
    const float bias = a.has_bias ? a.bias.at(i) : a.v_init * pre;
    float drive[kBpt] = {};
    SNN_UNROLL
    for (int j = 0; j < kBpt; ++j) {
      if (j >= nb) break;
      drive[j] = x[j * N];
    }
    for (int64_t t = 1, ox = xstep; t < a.g.T; ++t, ox += xstep) {
      SNN_UNROLL
      for (int j = 0; j < kBpt; ++j) {
        if (j >= nb) break;
        drive[j] = drive[j] + x[ox + j * N];
      }
    }
    SNN_UNROLL
    for (int j = 0; j < kBpt; ++j) {
      if (j >= nb) break;
      drive[j] = drive[j] + bias;
    }
    for (int64_t t = 0, o = 0; t < a.g.T; ++t, o += step) {
      const float thr = static_cast<float>(t + 1) * pre;
      int32_t fired = 0;
      SNN_UNROLL
      for (int j = 0; j < kBpt; ++j) {
        if (j >= nb) break;
        const bool fire = drive[j] >= thr;
        y[o + j * N] = fire ? post : 0.0f;
        fired += static_cast<int32_t>(fire);
      }
      if (kCounts) add_count(a.g.counts + t * N + i, fired, a.g.counts_direct);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// MultiThresholdNeuron (docs/ops.md; spec in DESIGN.md): v starts at 0; each step v += x_t; emit
// the largest s_p*2^k (k < levels) with v >= (s_p*2^k) - (s_p*0.5), else the largest -s_n*2^k
// with -v >= (s_n*2^k) - (s_n*0.5), else nothing; v -= emitted. At most one spike per step.

inline constexpr int kMaxLevels = 32;  // = op_attrs.cc's bound on the `levels` attribute

struct MTArgs {
  Grid g;
  const float* x = nullptr;
  float* y = nullptr;
  Param pos, neg;  // scale_pos, scale_neg
  int levels = 8;
};

// 2^k as float32, exact for 0 <= k < kMaxLevels.
SNN_HD float pow2(int k) { return static_cast<float>(1u << k); }

template <bool kCounts, int kBpt>
struct MTBody {
  static SNN_HD void run(const MTArgs& a, int64_t tid) {
    const int64_t N = a.g.N, B = a.g.B, step = B * N;
    const int64_t i = tid % N, b0 = (tid / N) * kBpt;
    const int64_t nb = B - b0 < kBpt ? B - b0 : kBpt;
    const float* SNN_RESTRICT x = a.x + b0 * N + i;
    float* SNN_RESTRICT y = a.y + b0 * N + i;
    const float sp = a.pos.at(i), sn = a.neg.at(i);
    const float hp = sp * 0.5f, hn = sn * 0.5f;
    float v[kBpt];
    SNN_UNROLL
    for (int j = 0; j < kBpt; ++j) v[j] = 0.0f;
    for (int64_t t = 0, o = 0; t < a.g.T; ++t, o += step) {  // o: offset of step t
      int32_t fired = 0;
      SNN_UNROLL
      for (int j = 0; j < kBpt; ++j) {
        if (j >= nb) break;
        const float vk = v[j] + x[o + j * N];
        float e = 0.0f;
        bool spike = false;
        // Largest level first: the first level that passes is the largest that passes.
        for (int k = a.levels - 1; k >= 0 && !spike; --k) {
          const float p = sp * pow2(k);
          if (vk >= p - hp) {
            e = p;
            spike = true;
          }
        }
        if (!spike) {
          const float nv = -vk;
          for (int k = a.levels - 1; k >= 0 && !spike; --k) {
            const float q = sn * pow2(k);
            if (nv >= q - hn) {
              e = -q;
              spike = true;
            }
          }
        }
        y[o + j * N] = e;
        v[j] = vk - e;
        fired += static_cast<int32_t>(spike);
      }
      if (kCounts) add_count(a.g.counts + t * N + i, fired, a.g.counts_direct);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// TemporalMean / TemporalDelta: elementwise over the M = B*N elements of a step; a thread owns
// one element and runs the time loop.

struct TemporalArgs {
  const float* x = nullptr;
  float* y = nullptr;
  int64_t T = 0, M = 0;
};

// y_t = (1/t) * sum_{tau<=t} x_tau: sequential sum from 0, then a true division by t.
struct MeanBody {
  static SNN_HD void run(const TemporalArgs& a, int64_t j) {
    const float* SNN_RESTRICT x = a.x + j;
    float* SNN_RESTRICT y = a.y + j;
    float acc = 0.0f;
    for (int64_t t = 0, o = 0; t < a.T; ++t, o += a.M) {
      acc = acc + x[o];
      y[o] = acc / static_cast<float>(t + 1);
    }
  }
};

// y_1 = x_1, y_t = t*x_t - (t-1)*x_{t-1}: each product rounded before the subtraction; the
// previous step stays in a register, so x is read once.
struct DeltaBody {
  static SNN_HD void run(const TemporalArgs& a, int64_t j) {
    const float* SNN_RESTRICT x = a.x + j;
    float* SNN_RESTRICT y = a.y + j;
    float prev = x[0];
    y[0] = prev;
    for (int64_t t = 1, o = a.M; t < a.T; ++t, o += a.M) {
      const float cur = x[o];
      const float c = static_cast<float>(t + 1) * cur;
      const float p = static_cast<float>(t) * prev;
      y[o] = c - p;
      prev = cur;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// CompensatedElementwise: TemporalDelta(f(TemporalMean(x))) for an elementwise f in one pass.
// The running sum and the delta use the expressions of MeanBody / DeltaBody; f is float32 from
// the math library, so results match the float64 reference to float tolerance (as on the CPU).

struct CompArgs {
  const float* x = nullptr;
  float* y = nullptr;
  int64_t T = 0, M = 0;
  int fn = 0;  // index into kElementwiseFunctions (common/op_attrs.h)
};

SNN_HD float comp_sigmoid(float m) { return 1.0f / (1.0f + expf(-m)); }
SNN_HD float comp_clip01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

SNN_HD float comp_apply(int fn, float m) {
  switch (fn) {
    case 0: return 0.5f * m * (1.0f + erff(m * 0.70710678118654752f));                          // gelu
    case 1: return 0.5f * m * (1.0f + tanhf(0.79788456080286536f * (m + 0.044715f * (m * m * m))));  // gelu_tanh
    case 2: return m * comp_sigmoid(m);                                                       // silu
    case 3: return comp_sigmoid(m);                                                           // sigmoid
    case 4: return tanhf(m);                                                                  // tanh
    case 5: return comp_clip01(m / 6.0f + 0.5f);                                              // hardsigmoid
    case 6: return m * comp_clip01(m / 6.0f + 0.5f);                                          // hardswish
    default: return m > 0.0f ? m : 0.0f;                                                      // relu
  }
}

struct CompBody {
  static SNN_HD void run(const CompArgs& a, int64_t j) {
    const float* SNN_RESTRICT x = a.x + j;
    float* SNN_RESTRICT y = a.y + j;
    float acc = 0.0f, prev = 0.0f;
    for (int64_t t = 0, o = 0; t < a.T; ++t, o += a.M) {
      acc = acc + x[o];
      const float f = comp_apply(a.fn, acc / static_cast<float>(t + 1));
      const float c = static_cast<float>(t + 1) * f;
      const float p = static_cast<float>(t) * prev;
      y[o] = c - p;
      prev = f;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Launch plan of the neuron kernels: samples per thread (kBpt) and how many threads.

inline constexpr int kBlock = 256;  // threads per block
inline constexpr int kBptChoices[] = {1, 4, 16};

struct Plan {
  int bpt = 1;           // samples per thread: one of kBptChoices
  int64_t groups = 0;    // ceil(B / bpt)
  int64_t threads = 0;   // N * groups
  bool counts_direct = false;
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Without counts every (sample, neuron) pair gets its own thread: the most parallelism. With
// counts, more samples per thread means fewer groups adding into the same count (and none at
// all once a group spans the batch); a thread's samples are independent loads per step, so
// memory parallelism stays the same, but fewer threads hide less latency. So take the largest
// bpt that still leaves a quarter of `resident` threads (what the GPU keeps in flight at once:
// 16 of 64 warps per SM). Untuned guess, not measured: see docs/cuda.md. force_bpt (tests)
// overrides the choice.
inline Plan plan_neurons(int64_t B, int64_t N, bool counts, int64_t resident, int force_bpt = 0) {
  Plan p;
  if (force_bpt > 0) {
    p.bpt = force_bpt;
  } else if (counts) {
    for (int c : kBptChoices)
      if (ceil_div(B, c) < ceil_div(B, p.bpt) && 4 * N * ceil_div(B, c) >= resident) p.bpt = c;
  }
  p.groups = B > 0 ? ceil_div(B, p.bpt) : 0;
  p.threads = N * p.groups;
  p.counts_direct = p.groups <= 1;
  return p;
}

// The shared part of a neuron kernel's arguments for a plan. Counts are stored directly when
// one group spans the batch; otherwise (and for an empty batch, where no thread runs) the
// caller zeroes them first: counts_need_zero.
inline Grid make_grid(int64_t T, int64_t B, int64_t N, int64_t* counts, const Plan& p) {
  Grid g;
  g.T = T, g.B = B, g.N = N;
  g.counts = counts;
  g.counts_direct = p.counts_direct && p.threads > 0;
  return g;
}
inline bool counts_need_zero(const Grid& g) {
  return g.counts != nullptr && !g.counts_direct && g.T * g.N > 0;
}

// ---------------------------------------------------------------------------------------------
// Dispatch: the body instantiation for a node's attributes and plan. `L` runs it: kernels.cu
// launches a grid on the GPU, emulate.cc loops over the threads on the host, so both run the
// same choice. L::run<Body>(args, threads) returns 0 or an error code; kBadPlan: no body exists
// for the plan (only bpt 1 without counts; bpt one of kBptChoices with counts).

inline constexpr int kBadPlan = -1;

namespace detail {
template <template <bool, int> class Body, class L, class Args>
int by_plan(L& l, const Args& a, const Plan& p) {
  if (a.g.counts == nullptr) return p.bpt == 1 ? l.template run<Body<false, 1>>(a, p.threads) : kBadPlan;
  switch (p.bpt) {
    case 1: return l.template run<Body<true, 1>>(a, p.threads);
    case 4: return l.template run<Body<true, 4>>(a, p.threads);
    case 16: return l.template run<Body<true, 16>>(a, p.threads);
    default: return kBadPlan;
  }
}
template <bool kSigned, bool kZero>
struct IFFor {
  template <bool kCounts, int kBpt>
  using Body = IFBody<kSigned, kZero, kCounts, kBpt>;
};
}  // namespace detail

template <class L>
int dispatch_if(L& l, const IFArgs& a, const Plan& p, bool is_signed, bool zero) {
  using namespace detail;
  if (is_signed)
    return zero ? by_plan<IFFor<true, true>::Body>(l, a, p) : by_plan<IFFor<true, false>::Body>(l, a, p);
  return zero ? by_plan<IFFor<false, true>::Body>(l, a, p) : by_plan<IFFor<false, false>::Body>(l, a, p);
}
template <class L>
int dispatch_para(L& l, const ParaArgs& a, const Plan& p) {
  return detail::by_plan<ParaBody>(l, a, p);
}
template <class L>
int dispatch_mt(L& l, const MTArgs& a, const Plan& p) {
  return detail::by_plan<MTBody>(l, a, p);
}

}  // namespace snn::cuda
