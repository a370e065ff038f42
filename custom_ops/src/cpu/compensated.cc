// CPU kernel of CompensatedElementwise: TemporalDelta(f(TemporalMean(x))) in one pass for an
// elementwise f (docs/ops.md#compensatedelementwise).
//
// The running sum and the delta use TemporalMean's and TemporalDelta's float32 expressions
// (the mean multiplies by 1/t where TemporalMean divides: within an ulp); f is computed in float32 with branch-free approximations (exp: Cephes-style range
// reduction and polynomial; erf: Abramowitz & Stegun 7.1.26, |error| < 1.5e-7), so the whole
// loop vectorises. The reference (snn_onnx/ops/reference.py) computes f in float64: results
// agree to float tolerance, not bit for bit (no spikes depend on them directly).
#include <algorithm>
#include <cstring>
#include <string>

#include "../common/op_attrs.h"
#include "cpu_ops.h"
#include "parallel.h"

namespace snn::cpu {
namespace {

// In the order of kElementwiseFunctions (common/op_attrs.h).
enum class Fn { kGelu, kGeluTanh, kSilu, kSigmoid, kTanh, kHardSigmoid, kHardSwish, kRelu };

inline float exp_f(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float erf_f(float x) {
  const float a = x < 0.0f ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly =
      ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
  const float y = 1.0f - poly * exp_f(-(a * a));
  return x < 0.0f ? -y : y;
}

inline float tanh_f(float x) {
  const float a = x < 0.0f ? -x : x;
  const float y = 1.0f - 2.0f / (exp_f(2.0f * a) + 1.0f);
  return x < 0.0f ? -y : y;
}

inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

inline float clip01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

template <Fn F>
inline float apply(float m) {
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
  if constexpr (F == Fn::kRelu) return m > 0.0f ? m : 0.0f;
  return m;
}

struct Args {
  const float* x;
  float* y;
  int64_t T, M;  // M = B*N elements per step
};

template <Fn F>
void task(const Args& a, int64_t j0, int64_t len) noexcept {
  alignas(64) float acc[kMaxBlock], prev[kMaxBlock];
  std::fill_n(acc, len, 0.0f);
  std::fill_n(prev, len, 0.0f);
  for (int64_t t = 0; t < a.T; ++t) {
    const float* __restrict xr = a.x + t * a.M + j0;
    float* __restrict yr = a.y + t * a.M + j0;
    const float ct = static_cast<float>(t + 1), cp = static_cast<float>(t);
    const float inv_t = 1.0f / ct;
    float* __restrict ac = acc;
    float* __restrict pv = prev;
    for (int64_t k = 0; k < len; ++k) {
      const float s = ac[k] + xr[k];
      ac[k] = s;
      const float f = apply<F>(s * inv_t);  // the running mean (within an ulp of TemporalMean's)
      const float cur = ct * f;          // TemporalDelta: products rounded, then subtracted
      const float old = cp * pv[k];
      yr[k] = cur - old;
      pv[k] = f;
    }
  }
}

using Task = void (*)(const Args&, int64_t, int64_t) noexcept;
constexpr Task kTasks[] = {task<Fn::kGelu>,        task<Fn::kGeluTanh>,  task<Fn::kSilu>,
                           task<Fn::kSigmoid>,     task<Fn::kTanh>,      task<Fn::kHardSigmoid>,
                           task<Fn::kHardSwish>,   task<Fn::kRelu>};

struct CompensatedElementwiseKernel : Guarded<CompensatedElementwiseKernel> {
  static constexpr const char* kName = "CompensatedElementwise";
  static constexpr const char* kProvider = "CPUExecutionProvider";
  static constexpr size_t kInputs = 1, kRequiredInputs = 1;
  static constexpr bool kHasCounts = false;

  CompensatedElementwiseKernel(const OrtApi& api, const OrtKernelInfo* info, NodeId id)
      : id_(std::move(id)), a_(CompensatedAttrs::parse(api, info, id_)), task_(kTasks[a_.function]) {}

 private:
  friend struct Guarded<CompensatedElementwiseKernel>;

  void compute(Ort::KernelContext& ctx) {
    Ort::ConstValue x = ctx.GetInput(0);
    const std::vector<int64_t> xs = x.GetTensorTypeAndShapeInfo().GetShape();
    const TimeLayout L = time_layout(id_, xs, a_.time_steps);
    Ort::UnownedValue y = ctx.GetOutput(0, xs);
    const Args args{x.GetTensorData<float>(), y.GetTensorMutableData<float>(), L.T, L.B * L.N};
    const Plan plan = make_plan(L.T, 1, args.M, /*split_b=*/false);
    const Task t = task_;
    run_plan(ctx, plan, args.M, 1, [&](int64_t j0, int64_t len, int64_t, int64_t) { t(args, j0, len); });
  }

  NodeId id_;
  CompensatedAttrs a_;
  Task task_ = nullptr;
};

}  // namespace

void add_compensated_ops(std::vector<OrtCustomOp*>& ops) {
  static OpDef<CompensatedElementwiseKernel> op;
  ops.push_back(&op);
}

}  // namespace snn::cpu
