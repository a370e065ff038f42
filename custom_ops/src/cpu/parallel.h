// Work splitting for the CPU kernels, and the spike counts they write.
//
// Every kernel views x as [T, B, N] (time, batch, neurons) and keeps a neuron's state across
// the time loop, so tasks are blocks of neurons [i0, i0+len) times a range of samples. When
// spike counts [T, N] are written, a task owns whole columns of counts: it takes every sample
// (b inside the task), so no two tasks add to the same count. Tasks run on ORT's intra-op
// thread pool (KernelContext_ParallelFor), which honours the session's thread settings.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>

#include "../common/layout.h"
#include "isa.h"

namespace snn::cpu {

// Largest neuron block of one task: the kernels keep per-neuron state for it on the stack.
inline constexpr int64_t kMaxBlock = 1024;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Plan {
  int64_t block, n_blocks;   // neurons per task, number of neuron blocks
  int64_t bblock, n_bblocks; // samples per task, number of sample blocks
  size_t tasks() const { return static_cast<size_t>(n_blocks * n_bblocks); }
};

// split_b: tasks may also split the batch (only when no spike counts are written).
// T*B*N <= kMaxElements (time_layout), so the products here do not overflow.
inline Plan make_plan(int64_t T, int64_t B, int64_t N, bool split_b) {
  constexpr int64_t kTaskWork = 1 << 17;  // element-steps per task, amortises scheduling
  constexpr int64_t kMaxTasks = 4096;
  const int64_t want = std::clamp<int64_t>(T * B * N / kTaskWork, 1, kMaxTasks);
  Plan p{};
  p.block = std::min(N, kMaxBlock);
  if (N > 0 && ceil_div(N, p.block) < want) {
    // Smaller blocks for more tasks, but keep them >= 64 and a multiple of 16 floats so the
    // inner loops stay long and neighbouring tasks rarely write the same cache line.
    const int64_t b = (ceil_div(ceil_div(N, want), 16)) * 16;
    p.block = std::min(p.block, std::max<int64_t>(b, 64));
  }
  p.n_blocks = N > 0 ? ceil_div(N, p.block) : 0;
  p.bblock = B;
  p.n_bblocks = 1;
  if (split_b && B > 1 && p.n_blocks > 0 && p.n_blocks < want) {
    p.bblock = ceil_div(B, std::min(B, ceil_div(want, p.n_blocks)));
    p.n_bblocks = ceil_div(B, p.bblock);
  }
  return p;
}

// Runs task(args, range) for every task of the plan, in parallel.
template <class Args>
void run_plan(Ort::KernelContext& ctx, const Plan& p, int64_t N, int64_t B, TaskFn<Args> task, const Args& args) {
  struct Job {
    const Plan* p;
    int64_t N, B;
    TaskFn<Args> task;
    const Args* args;
  } job{&p, N, B, task, &args};
  auto one = [](void* data, size_t k) {
    const Job& j = *static_cast<const Job*>(data);
    const int64_t ib = static_cast<int64_t>(k) % j.p->n_blocks;
    const int64_t bb = static_cast<int64_t>(k) / j.p->n_blocks;
    const int64_t i0 = ib * j.p->block, b0 = bb * j.p->bblock;
    j.task(*j.args, Range{i0, std::min(j.p->block, j.N - i0), b0, std::min(b0 + j.p->bblock, j.B)});
  };
  const size_t n = p.tasks();
  if (n == 0) return;
  if (n == 1) {
    one(&job, 0);
    return;
  }
  ctx.ParallelFor(one, n, 0, &job);
}

// An op elementwise across neurons and samples (TemporalMean, TemporalDelta,
// CompensatedElementwise): x viewed as [T, M], M = B*N; tasks take blocks of the M elements.
struct StepArgs {
  const float* x;
  float* y;
  int64_t T, M;
};

template <class Body, class IO>
void run_elementwise(Ort::KernelContext& ctx, const IO& io) {
  const StepArgs args{io.x, io.y, io.L.T, io.L.B * io.L.N};
  run_plan(ctx, make_plan(args.T, 1, args.M, /*split_b=*/false), args.M, 1, isa_task<Body>(), args);
}

// Expands a scalar or per-channel parameter to the neurons [i0, i0+len).
inline void fill_param(const float* p, const ParamLayout& L, int64_t i0, int64_t len, float* out) {
  if (L.scalar) {
    std::fill(out, out + len, p[0]);
    return;
  }
  for (int64_t k = 0; k < len; ++k) out[k] = p[((i0 + k) / L.inner) % L.channels];
}

// Spike counts [T, N] (the optional output 1), summed over the batch. Tasks own whole columns
// (all samples of a neuron block), so no two tasks add to the same count. They accumulate in
// int32 scratch (B <= INT32_MAX, time_layout), which keeps the neuron loops in 32-bit lanes
// (vectorised), and widen their columns into the int64 output at the end.
struct Counts {
  int64_t* out = nullptr;  // nullptr: the node does not declare counts
  int32_t* acc = nullptr;
  int64_t T = 0, N = 0;

  void zero(int64_t i0, int64_t len) const noexcept {
    for (int64_t t = 0; t < T; ++t) std::fill_n(acc + t * N + i0, len, 0);
  }
  void finish(int64_t i0, int64_t len) const noexcept {
    for (int64_t t = 0; t < T; ++t) std::copy_n(acc + t * N + i0, len, out + t * N + i0);
  }
};

// The counts of a run (out: the output, or nullptr) with their scratch, allocated here, before
// the tasks run (T*N <= kMaxElements, time_layout).
inline Counts make_counts(int64_t* out, const TimeLayout& L, std::unique_ptr<int32_t[]>& scratch) {
  Counts c;
  if (out == nullptr) return c;
  scratch.reset(new int32_t[static_cast<size_t>(L.T * L.N)]);
  c.out = out;
  c.acc = scratch.get();
  c.T = L.T;
  c.N = L.N;
  return c;
}

}  // namespace snn::cpu
