// CUDA bodies of TemporalMean and TemporalDelta: elementwise over the M = B*N elements of a step;
// a thread owns one element and runs the time loop. The steps are common/steps.h's.
#pragma once

#include "device.cuh"

namespace snn::cuda {

struct TemporalArgs {
  const float* x = nullptr;
  float* y = nullptr;
  int64_t T = 0, M = 0;
};

struct MeanBody {
  static SNN_HD void run(const TemporalArgs& a, int64_t j) {
    const float* SNN_RESTRICT x = a.x + j;
    float* SNN_RESTRICT y = a.y + j;
    float acc = 0.0f;
    for (int64_t t = 0, o = 0; t < a.T; ++t, o += a.M) y[o] = mean_step(acc, x[o], t);
  }
};

// The previous step stays in a register, so x is read once.
struct DeltaBody {
  static SNN_HD void run(const TemporalArgs& a, int64_t j) {
    const float* SNN_RESTRICT x = a.x + j;
    float* SNN_RESTRICT y = a.y + j;
    float prev = x[0];
    y[0] = prev;
    for (int64_t t = 1, o = a.M; t < a.T; ++t, o += a.M) {
      const float cur = x[o];
      y[o] = delta_step(cur, prev, t);
      prev = cur;
    }
  }
};

}  // namespace snn::cuda
