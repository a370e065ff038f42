// CPU kernel of MultiThresholdNeuron (docs/ops.md#multithresholdneuron).
//
// Bit-exact with snn_onnx/ops/reference.py: level = s * 2^k (exact), half = s * 0.5,
// thr = level - half, compared with v (positive side) or -v (negative side); levels are tried
// in ascending k and a later one that fires replaces an earlier one. The loops over a block
// of neurons are branch-free selects, so the compiler vectorises them.
#include <algorithm>
#include <array>
#include <memory>
#include <utility>

#include "../common/op_attrs.h"
#include "cpu_ops.h"
#include "parallel.h"

namespace snn::cpu {
namespace {

struct MTArgs {
  const float* x;
  float* y;
  int64_t* counts;  // [T, N] or nullptr
  const float *scale_pos, *scale_neg;
  ParamLayout pos_layout, neg_layout;
  int64_t T, B, N, levels;
};

// One task: neurons [i0, i0+len) of samples [b0, b1). kLevels is a compile-time constant so
// the level loop unrolls and the loop over neurons vectorises with the membrane, the two
// candidate outputs and the scales in registers.
template <int kLevels, bool kCounts>
void mt_task(const MTArgs& a, int64_t i0, int64_t len, int64_t b0, int64_t b1) noexcept {
  alignas(64) float sp[kMaxBlock], sn[kMaxBlock], v[kMaxBlock];
  fill_param(a.scale_pos, a.pos_layout, i0, len, sp);
  fill_param(a.scale_neg, a.neg_layout, i0, len, sn);
  float pow2[kLevels];
  for (int l = 0; l < kLevels; ++l) pow2[l] = static_cast<float>(int64_t{1} << l);
  // A task writing counts owns all samples of its neuron block (make_plan, split_b = false),
  // so no other task adds to the same counts.
  if constexpr (kCounts)
    for (int64_t t = 0; t < a.T; ++t) std::fill_n(a.counts + t * a.N + i0, len, int64_t{0});

  for (int64_t b = b0; b < b1; ++b) {
    std::fill_n(v, len, 0.0f);
    for (int64_t t = 0; t < a.T; ++t) {
      const int64_t row = (t * a.B + b) * a.N + i0;
      const float* __restrict xr = a.x + row;
      float* __restrict yr = a.y + row;
      int64_t* __restrict cr = kCounts ? a.counts + t * a.N + i0 : nullptr;
      for (int64_t k = 0; k < len; ++k) {
        const float vk = v[k] + xr[k];
        const float nvk = -vk;
        const float spk = sp[k], snk = sn[k];
        const float hp = spk * 0.5f, hn = snk * 0.5f;
        float op = 0.0f, on = 0.0f;
        for (int l = 0; l < kLevels; ++l) {  // ascending: a larger level that fires replaces
          const float lp = spk * pow2[l], ln = snk * pow2[l];
          const float tp = lp - hp, tn = ln - hn;
          op = vk >= tp ? lp : op;
          on = nvk >= tn ? ln : on;
        }
        const float out = op > 0.0f ? op : 0.0f - on;  // +0.0 when silent
        yr[k] = out;
        v[k] = vk - out;
        if constexpr (kCounts) cr[k] += static_cast<int64_t>(out != 0.0f);
      }
    }
  }
}

using MTTask = void (*)(const MTArgs&, int64_t, int64_t, int64_t, int64_t) noexcept;

template <int... L>
constexpr std::array<MTTask, sizeof...(L)> task_table(bool counts, std::integer_sequence<int, L...>) {
  return counts ? std::array<MTTask, sizeof...(L)>{mt_task<L + 1, true>...}
                : std::array<MTTask, sizeof...(L)>{mt_task<L + 1, false>...};
}

MTTask pick_task(int64_t levels, bool counts) {
  static const auto with = task_table(true, std::make_integer_sequence<int, kMaxLevels>{});
  static const auto without = task_table(false, std::make_integer_sequence<int, kMaxLevels>{});
  return (counts ? with : without)[static_cast<size_t>(levels - 1)];
}

struct MultiThresholdNeuronKernel {
  static constexpr const char* kName = "MultiThresholdNeuron";
  static constexpr const char* kProvider = "CPUExecutionProvider";
  static constexpr size_t kInputs = 3, kRequiredInputs = 3;
  static constexpr bool kHasCounts = true;

  MultiThresholdNeuronKernel(const OrtApi& api, const OrtKernelInfo* info, NodeId id)
      : id_(std::move(id)),
        a_(MultiThresholdAttrs::parse(api, info, id_)),
        want_counts_(has_output(api, info, 1)) {}

  OrtStatusPtr ComputeV2(OrtKernelContext* raw) noexcept {
    return guarded(id_, [&] { compute(raw); });
  }

 private:
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

  void compute(OrtKernelContext* raw) {
    Ort::KernelContext ctx(raw);
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
    const MTTask task = pick_task(a_.levels, counts);
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
