// CPU kernel of MultiThresholdNeuron (docs/ops.md#multithresholdneuron).
//
// Bit-exact with snn_onnx/ops/reference.py: level = s * 2^k (exact), half = s * 0.5,
// thr = level - half, compared with v (positive side) or -v (negative side); levels are tried
// in ascending k and a later one that fires replaces an earlier one. The loops over a block
// of neurons are branch-free selects, so the compiler vectorises them.
#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "../common/op_attrs.h"
#include "cpu_ops.h"
#include "parallel.h"

namespace snn::cpu {
namespace {

// 2^e as a float, for 0 <= e < kMaxLevels (built from the exponent bits: exact).
inline float pow2_of(int32_t e) {
  const int32_t bits = (e + 127) << 23;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

struct MTArgs {
  const float* x;
  float* y;
  int64_t* counts;  // [T, N] or nullptr
  const float *scale_pos, *scale_neg;
  ParamLayout pos_layout, neg_layout;
  int64_t T, B, N, levels;
};

// One task: neurons [i0, i0+len) of samples [b0, b1). kLevels is a compile-time constant so
// the level loop unrolls and the loop over neurons vectorises with the membrane and the two
// candidate outputs in registers. kScalar: both scales are scalars, so the levels and
// thresholds (the same float expressions) are computed once per task instead of per neuron.
template <int kLevels, bool kScalar, bool kCounts>
void mt_task(const MTArgs& a, int64_t i0, int64_t len, int64_t b0, int64_t b1) noexcept {
  alignas(64) float sp[kMaxBlock], sn[kMaxBlock], v[kMaxBlock];
  float pow2[kLevels], LP[kLevels], LN[kLevels], TP[kLevels], TN[kLevels];
  for (int l = 0; l < kLevels; ++l) pow2[l] = static_cast<float>(int64_t{1} << l);
  const float s_p = a.scale_pos[0], s_n = a.scale_neg[0];
  if constexpr (kScalar) {
    const float h_p = s_p * 0.5f, h_n = s_n * 0.5f;
    for (int l = 0; l < kLevels; ++l) {
      LP[l] = s_p * pow2[l];
      LN[l] = s_n * pow2[l];
      TP[l] = LP[l] - h_p;
      TN[l] = LN[l] - h_n;
    }
  } else {
    fill_param(a.scale_pos, a.pos_layout, i0, len, sp);
    fill_param(a.scale_neg, a.neg_layout, i0, len, sn);
  }
  // A task writing counts owns all samples of its neuron block (make_plan, split_b = false),
  // so no other task adds to the same counts. It counts in int32 (keeps the neuron loop in
  // 32-bit lanes, vectorised) and widens into the int64 output at the end.
  std::vector<int32_t> cnt;
  if constexpr (kCounts) cnt.assign(static_cast<size_t>(a.T * len), 0);

  for (int64_t b = b0; b < b1; ++b) {
    std::fill_n(v, len, 0.0f);
    for (int64_t t = 0; t < a.T; ++t) {
      const int64_t row = (t * a.B + b) * a.N + i0;
      const float* __restrict xr = a.x + row;
      float* __restrict yr = a.y + row;
      int32_t* __restrict cr = kCounts ? cnt.data() + t * len : nullptr;
      for (int64_t k = 0; k < len; ++k) {
        const float vk = v[k] + xr[k];
        const float nvk = -vk;
        float op = 0.0f, on = 0.0f;
        if constexpr (kScalar) {
          // The thresholds grow with l (s*2^l is exact, minus the same half), so the levels
          // that fire are 0 .. c-1 and the largest is c-1: count them, then build the level
          // s*2^(c-1) from its exponent (the same exact product as LP[c-1]).
          int32_t cp = 0, cn = 0;
          for (int l = 0; l < kLevels; ++l) {
            cp += static_cast<int32_t>(vk >= TP[l]);
            cn += static_cast<int32_t>(nvk >= TN[l]);
          }
          op = cp > 0 ? s_p * pow2_of(cp - 1) : 0.0f;
          on = cn > 0 ? s_n * pow2_of(cn - 1) : 0.0f;
        } else {
          const float spk = sp[k], snk = sn[k];
          const float hp = spk * 0.5f, hn = snk * 0.5f;
          for (int l = 0; l < kLevels; ++l) {
            const float lp = spk * pow2[l], ln = snk * pow2[l];
            const float tp = lp - hp, tn = ln - hn;
            op = vk >= tp ? lp : op;
            on = nvk >= tn ? ln : on;
          }
        }
        const float out = op > 0.0f ? op : 0.0f - on;  // +0.0 when silent
        yr[k] = out;
        v[k] = vk - out;
        if constexpr (kCounts) cr[k] += static_cast<int32_t>(out != 0.0f);
      }
    }
  }
  if constexpr (kCounts)
    for (int64_t t = 0; t < a.T; ++t)
      std::copy_n(cnt.data() + t * len, len, a.counts + t * a.N + i0);
}

using MTTask = void (*)(const MTArgs&, int64_t, int64_t, int64_t, int64_t) noexcept;

template <bool kScalar, bool kCounts, int... L>
constexpr std::array<MTTask, sizeof...(L)> task_table(std::integer_sequence<int, L...>) {
  return {mt_task<L + 1, kScalar, kCounts>...};
}

MTTask pick_task(int64_t levels, bool scalar, bool counts) {
  using Seq = std::make_integer_sequence<int, kMaxLevels>;
  static const auto t00 = task_table<false, false>(Seq{});
  static const auto t01 = task_table<false, true>(Seq{});
  static const auto t10 = task_table<true, false>(Seq{});
  static const auto t11 = task_table<true, true>(Seq{});
  const auto& t = scalar ? (counts ? t11 : t10) : (counts ? t01 : t00);
  return t[static_cast<size_t>(levels - 1)];
}

struct MultiThresholdNeuronKernel : Guarded<MultiThresholdNeuronKernel> {
  static constexpr const char* kName = "MultiThresholdNeuron";
  static constexpr const char* kProvider = "CPUExecutionProvider";
  static constexpr size_t kInputs = 3, kRequiredInputs = 3;
  static constexpr bool kHasCounts = true;

  MultiThresholdNeuronKernel(const OrtApi& api, const OrtKernelInfo* info, NodeId id)
      : id_(std::move(id)),
        a_(MultiThresholdAttrs::parse(api, info, id_)),
        want_counts_(has_output(api, info, 1)) {}

 private:
  friend struct Guarded<MultiThresholdNeuronKernel>;

  const float* scale(Ort::KernelContext& ctx, size_t index, const char* name,
                     const std::vector<int64_t>& xs, ParamLayout* layout) const {
    Ort::ConstValue v = ctx.GetInput(index);
    if (static_cast<const OrtValue*>(v) == nullptr) id_.fail(std::string("input ") + name + " is missing");
    const auto info = v.GetTensorTypeAndShapeInfo();
    *layout = param_layout(id_, name, info.GetShape(), xs, a_.channel_axis);
    const float* data = v.GetTensorData<float>();
    check_positive(id_, name, data, static_cast<int64_t>(info.GetElementCount()));
    return data;
  }

  void compute(Ort::KernelContext& ctx) {
    Ort::ConstValue x = ctx.GetInput(0);
    const std::vector<int64_t> xs = x.GetTensorTypeAndShapeInfo().GetShape();
    const TimeLayout L = time_layout(id_, xs, a_.time_steps);
    MTArgs args{};
    args.scale_pos = scale(ctx, 1, "scale_pos", xs, &args.pos_layout);
    args.scale_neg = scale(ctx, 2, "scale_neg", xs, &args.neg_layout);
    Ort::UnownedValue y = ctx.GetOutput(0, xs);
    args.x = x.GetTensorData<float>();
    args.y = y.GetTensorMutableData<float>();
    if (want_counts_) {
      std::vector<int64_t> cs = xs;
      cs[0] = L.T;
      Ort::UnownedValue c = ctx.GetOutput(1, cs);
      if (static_cast<OrtValue*>(c) != nullptr) args.counts = c.GetTensorMutableData<int64_t>();
    }
    args.T = L.T, args.B = L.B, args.N = L.N, args.levels = a_.levels;
    const bool counts = args.counts != nullptr;
    const MTTask task = pick_task(a_.levels, args.pos_layout.scalar && args.neg_layout.scalar, counts);
    const Plan plan = make_plan(L.T, L.B, L.N, /*split_b=*/!counts);
    run_plan(ctx, plan, L.N, L.B,
             [&](int64_t i0, int64_t len, int64_t b0, int64_t b1) { task(args, i0, len, b0, b1); });
  }

  NodeId id_;
  MultiThresholdAttrs a_;
  bool want_counts_;
};

}  // namespace

void add_multi_threshold_ops(std::vector<OrtCustomOp*>& ops) {
  static OpDef<MultiThresholdNeuronKernel> mt;
  ops.push_back(&mt);
}

}  // namespace snn::cpu
