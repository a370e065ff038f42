// What the CUDA kernels of every op family share: the thread layout, spike-count accumulation,
// the launch plan and the dispatch of a body variant.
//
// Everything here is plain C++ marked __host__ __device__ (SNN_HD): kernels.cu wraps each body
// (neurons.cuh, multi_threshold.cuh, temporal.cuh, compensated.cuh) in a __global__ function,
// and emulate.cc runs the very same bodies on the host, one "thread" after another, so
// tests/test_cuda.py can check the indexing, the batch grouping and the spike-count
// accumulation against the NumPy reference on machines without a GPU. The neuron update itself
// is common/steps.h's, shared with the CPU kernels. No ONNX Runtime and no CUDA runtime header
// is needed to compile this file.
//
// Layout (docs/ops.md): x is [T, B, N] (row t*B + b of the folded [T*B, ...] tensor, N neurons
// per sample). A neuron-kernel thread owns one neuron i and a group of up to kBpt samples; it
// keeps their state in registers and runs the time loop itself, so x is read once and y written
// once. Threads with consecutive ids take consecutive i: every warp load and store is coalesced.
#pragma once

#include <cstdint>

#include "../common/steps.h"

#if defined(__CUDACC__)
#define SNN_UNROLL _Pragma("unroll")
#else
#define SNN_UNROLL
#endif
// x and y never overlap (ORT gives an op distinct input and output buffers): lets the compiler
// issue the next step's loads before this step's stores, and read x through the read-only path.
#define SNN_RESTRICT __restrict__

namespace snn::cuda {

// A scalar or per-channel parameter in the memory the body runs against (device on the GPU).
// Neuron i (flat index over x.shape[1:]) uses data[scalar ? 0 : (i / inner) % channels], as
// snn::ParamLayout in common/layout.h.
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
  // Membrane potentials [T, B, N] like y (docs/ops.md, a debug output); nullptr: not declared.
  // Tested per step at run time: the branch is the same for every thread of the launch.
  float* pot = nullptr;
};

// Thread tid of a neuron kernel: neuron i of samples [b0, b0 + nb); its first element of x and
// of y is at b0*N + i (then x steps by xstep, y by B*N, and sample j by N).
struct Thread {
  int64_t i, b0, nb;
  SNN_HD int64_t first(const Grid& g) const { return b0 * g.N + i; }
};
SNN_HD Thread thread_of(const Grid& g, int64_t tid, int bpt) {
  Thread th;
  th.i = tid % g.N;
  th.b0 = (tid / g.N) * bpt;
  th.nb = g.B - th.b0 < bpt ? g.B - th.b0 : bpt;
  return th;
}

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
// overrides the choice. B*N <= kMaxElements (common/layout.h), so nothing here overflows.
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
inline Grid make_grid(int64_t T, int64_t B, int64_t N, bool static_input, int64_t* counts, const Plan& p,
                      float* potentials = nullptr) {
  Grid g;
  g.T = T, g.B = B, g.N = N;
  if (static_input) g.x_step = 0;
  g.counts = counts;
  g.pot = potentials;
  g.counts_direct = p.counts_direct && p.threads > 0;
  return g;
}
inline bool counts_need_zero(const Grid& g) { return g.counts != nullptr && !g.counts_direct && g.T * g.N > 0; }

// ---------------------------------------------------------------------------------------------
// Dispatch: the body instantiation for a node's attributes and plan. `L` runs it: kernels.cu
// launches a grid on the GPU, emulate.cc loops over the threads on the host, so both run the
// same choice. L::run<Body>(args, threads) returns 0 or an error code; kBadPlan: no body exists
// for the plan (only bpt 1 without counts; bpt one of kBptChoices with counts).

inline constexpr int kBadPlan = -1;

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

}  // namespace snn::cuda
