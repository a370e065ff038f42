// CUDA body of CompensatedElementwise: TemporalDelta(f(TemporalMean(x))) per element in one
// pass; the step and f are common/steps.h's, shared with the CPU kernel (one body per f).
#pragma once

#include "temporal.cuh"

namespace snn::cuda {

using CompArgs = TemporalArgs;

template <Fn F>
struct CompBody {
  static SNN_HD void run(const CompArgs& a, int64_t j) {
    const float* SNN_RESTRICT x = a.x + j;
    float* SNN_RESTRICT y = a.y + j;
    float acc = 0.0f, prev = 0.0f;
    for (int64_t t = 0, o = 0; t < a.T; ++t, o += a.M) y[o] = compensated_step<F>(acc, prev, x[o], t);
  }
};

template <class L>
int dispatch_compensated(L& l, const CompArgs& a, Fn fn) {
  switch (fn) {
    case Fn::kGelu: return l.template run<CompBody<Fn::kGelu>>(a, a.M);
    case Fn::kGeluTanh: return l.template run<CompBody<Fn::kGeluTanh>>(a, a.M);
    case Fn::kSilu: return l.template run<CompBody<Fn::kSilu>>(a, a.M);
    case Fn::kSigmoid: return l.template run<CompBody<Fn::kSigmoid>>(a, a.M);
    case Fn::kTanh: return l.template run<CompBody<Fn::kTanh>>(a, a.M);
    case Fn::kHardSigmoid: return l.template run<CompBody<Fn::kHardSigmoid>>(a, a.M);
    case Fn::kHardSwish: return l.template run<CompBody<Fn::kHardSwish>>(a, a.M);
    case Fn::kRelu: return l.template run<CompBody<Fn::kRelu>>(a, a.M);
  }
  return kBadPlan;
}

}  // namespace snn::cuda
