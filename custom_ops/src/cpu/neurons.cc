// CPU kernels of the spiking neurons: IFNeuron and ParaIFNeuron (docs/ops.md).
//
// Bit-exactness with snn_onnx/ops/reference.py: the same float32 expressions in the same
// order, one rounding per operation (the library is built with -ffp-contract=off, never
// -ffast-math), and the same comparisons. Inner loops run over a contiguous block of neurons
// with branch-free selects so the compiler vectorises them; each task body is instantiated
// for the baseline ISA and for AVX2 and picked at run time (isa.h).
//
// static_input (docs/ops.md): x is one step [B, ...] that repeats at every step. The tasks
// read x through a per-step row stride `x_step` (B rows normally, 0 for a static input), so
// both modes share one loop and one float order.
#include "cpu_ops.h"

#include <algorithm>
#include <memory>

#include "../common/op_attrs.h"
#include "isa.h"
#include "parallel.h"

namespace snn::cpu {
namespace {

constexpr const char* kCpu = "CPUExecutionProvider";

// Spike counts [T, N] (the optional output 1), summed over the batch. Tasks own whole columns
// (all samples of a neuron block), so no two tasks add to the same count. They accumulate in
// int32 scratch, which keeps the neuron loops in 32-bit lanes (vectorised), and widen their
// columns into the int64 output at the end.
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

// Allocates the counts output and its scratch when the node declares counts.
Counts make_counts(Ort::KernelContext& ctx, bool wanted, std::vector<int64_t> shape, int64_t T,
                   int64_t N, std::unique_ptr<int32_t[]>& scratch) {
  Counts c;
  if (!wanted) return c;
  shape[0] = T;
  Ort::UnownedValue v = ctx.GetOutput(1, shape);
  if (static_cast<OrtValue*>(v) == nullptr) return c;
  scratch.reset(new int32_t[static_cast<size_t>(T * N)]);
  c.out = v.GetTensorMutableData<int64_t>();
  c.acc = scratch.get();
  c.T = T;
  c.N = N;
  return c;
}

// Shape of y: x's, with T*B rows for a static input ([B, ...] in, [T*B, ...] out).
std::vector<int64_t> output_shape(std::vector<int64_t> xs, const TimeLayout& L) {
  xs[0] = L.T * L.B;
  return xs;
}

// ---------------------------------------------------------------------------------------------
// IFNeuron

struct IFArgs {
  const float* x;
  float* y;
  Counts counts;
  const float* theta;
  ParamLayout th_layout;
  int64_t T, B, N;
  int64_t x_step;  // rows of x between two steps of a sample: B, or 0 for a static input
  float v_init, leak, neg_eps;
};

template <bool kSigned, bool kZero, bool kCounts>
SNN_ALWAYS_INLINE void if_body(const IFArgs& a, int64_t i0, int64_t len, int64_t b0,
                               int64_t b1) noexcept {
  alignas(64) float th[kMaxBlock], v0[kMaxBlock], v[kMaxBlock];
  alignas(64) int32_t net[kMaxBlock];  // net spike count so far (signed neurons)
  fill_param(a.theta, a.th_layout, i0, len, th);
  for (int64_t k = 0; k < len; ++k) v0[k] = a.v_init * th[k];
  if constexpr (kCounts) a.counts.zero(i0, len);

  const float leak = a.leak, neg_eps = a.neg_eps;
  for (int64_t b = b0; b < b1; ++b) {
    std::copy_n(v0, len, v);
    if constexpr (kSigned) std::fill_n(net, len, 0);
    for (int64_t t = 0; t < a.T; ++t) {
      const float* __restrict xr = a.x + (t * a.x_step + b) * a.N + i0;
      float* __restrict yr = a.y + (t * a.B + b) * a.N + i0;
      int32_t* __restrict cr = kCounts ? a.counts.acc + t * a.N + i0 : nullptr;
      for (int64_t k = 0; k < len; ++k) {
        float vk = leak * v[k] + xr[k];
        const float thk = th[k];
        const bool pos = vk >= thk;
        bool neg = false;
        if constexpr (kSigned) {
          // -1 only where +1 did not fire, v <= -eps and the net count so far is positive.
          neg = !pos & (vk <= neg_eps) & (net[k] > 0);
          net[k] += static_cast<int32_t>(pos) - static_cast<int32_t>(neg);
        }
        const float s = pos ? 1.0f : (neg ? -1.0f : 0.0f);
        const float out = s * thk;
        yr[k] = out;
        if constexpr (kZero)
          vk = (pos | neg) ? 0.0f : vk;
        else
          vk = vk - out;
        v[k] = vk;
        if constexpr (kCounts) cr[k] += static_cast<int32_t>(pos | neg);
      }
    }
  }
  if constexpr (kCounts) a.counts.finish(i0, len);
}

template <bool kSigned, bool kZero, bool kCounts>
void if_task(const IFArgs& a, int64_t i0, int64_t len, int64_t b0, int64_t b1) noexcept {
  if_body<kSigned, kZero, kCounts>(a, i0, len, b0, b1);
}
template <bool kSigned, bool kZero, bool kCounts>
SNN_TARGET_AVX2 void if_task_avx2(const IFArgs& a, int64_t i0, int64_t len, int64_t b0,
                                  int64_t b1) noexcept {
  if_body<kSigned, kZero, kCounts>(a, i0, len, b0, b1);
}

using IFTask = void (*)(const IFArgs&, int64_t, int64_t, int64_t, int64_t) noexcept;

constexpr IFTask kIFTasks[2][8] = {
    {if_task<false, false, false>, if_task<false, false, true>, if_task<false, true, false>,
     if_task<false, true, true>, if_task<true, false, false>, if_task<true, false, true>,
     if_task<true, true, false>, if_task<true, true, true>},
    {if_task_avx2<false, false, false>, if_task_avx2<false, false, true>,
     if_task_avx2<false, true, false>, if_task_avx2<false, true, true>,
     if_task_avx2<true, false, false>, if_task_avx2<true, false, true>,
     if_task_avx2<true, true, false>, if_task_avx2<true, true, true>},
};

struct IFNeuronKernel : Guarded<IFNeuronKernel> {
  static constexpr const char* kName = "IFNeuron";
  static constexpr const char* kProvider = kCpu;
  static constexpr size_t kInputs = 2, kRequiredInputs = 2;
  static constexpr bool kHasCounts = true;

  IFNeuronKernel(const OrtApi& api, const OrtKernelInfo* info, NodeId id)
      : id_(std::move(id)), a_(IFAttrs::parse(api, info, id_)), want_counts_(has_output(api, info, 1)) {}

 private:
  friend struct Guarded<IFNeuronKernel>;

  void compute(Ort::KernelContext& ctx) {
    Ort::ConstValue x = ctx.GetInput(0), th = ctx.GetInput(1);
    const std::vector<int64_t> xs = x.GetTensorTypeAndShapeInfo().GetShape();
    const TimeLayout L = a_.static_input ? static_layout(id_, xs, a_.time_steps)
                                         : time_layout(id_, xs, a_.time_steps);
    const auto th_info = th.GetTensorTypeAndShapeInfo();
    const ParamLayout P = param_layout(id_, "threshold", th_info.GetShape(), xs, a_.channel_axis);
    check_positive(id_, "threshold", th.GetTensorData<float>(),
                   static_cast<int64_t>(th_info.GetElementCount()));

    Ort::UnownedValue y = ctx.GetOutput(0, output_shape(xs, L));
    std::unique_ptr<int32_t[]> scratch;
    IFArgs args{x.GetTensorData<float>(), y.GetTensorMutableData<float>(),
                make_counts(ctx, want_counts_, xs, L.T, L.N, scratch), th.GetTensorData<float>(),
                P, L.T, L.B, L.N, a_.static_input ? 0 : L.B, a_.v_init, a_.leak, -a_.signed_eps};
    const bool counts = args.counts.out != nullptr;
    const IFTask task = kIFTasks[static_cast<int>(best_isa())]
                                [4 * a_.is_signed + 2 * a_.reset_zero + counts];
    const Plan plan = make_plan(L.T, L.B, L.N, /*split_b=*/!counts);
    run_plan(ctx, plan, L.N, L.B,
             [&](int64_t i0, int64_t len, int64_t b0, int64_t b1) { task(args, i0, len, b0, b1); });
  }

  NodeId id_;
  IFAttrs a_;
  bool want_counts_;
};

// ---------------------------------------------------------------------------------------------
// ParaIFNeuron: acc = x_1 + ... + x_T (sequential), drive = acc + bias,
// step t (1-based) fires iff drive >= t * theta_pre, output theta_post.

struct ParaArgs {
  const float* x;
  float* y;
  Counts counts;
  const float *theta_pre, *theta_post, *bias;  // theta_post, bias: nullptr when absent
  ParamLayout pre_layout, post_layout, bias_layout;
  int64_t T, B, N;
  int64_t x_step;  // as IFArgs::x_step
  float v_init;
};

template <bool kCounts>
SNN_ALWAYS_INLINE void para_body(const ParaArgs& a, int64_t i0, int64_t len, int64_t b0,
                                 int64_t b1) noexcept {
  alignas(64) float pre[kMaxBlock], post[kMaxBlock], bias[kMaxBlock], drive[kMaxBlock];
  fill_param(a.theta_pre, a.pre_layout, i0, len, pre);
  if (a.theta_post)
    fill_param(a.theta_post, a.post_layout, i0, len, post);
  else
    std::copy_n(pre, len, post);
  if (a.bias)
    fill_param(a.bias, a.bias_layout, i0, len, bias);
  else
    for (int64_t k = 0; k < len; ++k) bias[k] = a.v_init * pre[k];
  if constexpr (kCounts) a.counts.zero(i0, len);

  for (int64_t b = b0; b < b1; ++b) {
    std::copy_n(a.x + b * a.N + i0, len, drive);
    for (int64_t t = 1; t < a.T; ++t) {
      const float* __restrict xr = a.x + (t * a.x_step + b) * a.N + i0;
      for (int64_t k = 0; k < len; ++k) drive[k] = drive[k] + xr[k];
    }
    for (int64_t k = 0; k < len; ++k) drive[k] = drive[k] + bias[k];
    for (int64_t t = 0; t < a.T; ++t) {
      const float step = static_cast<float>(t + 1);
      float* __restrict yr = a.y + (t * a.B + b) * a.N + i0;
      int32_t* __restrict cr = kCounts ? a.counts.acc + t * a.N + i0 : nullptr;
      for (int64_t k = 0; k < len; ++k) {
        const bool fire = drive[k] >= step * pre[k];
        yr[k] = fire ? post[k] : 0.0f;
        if constexpr (kCounts) cr[k] += static_cast<int32_t>(fire);
      }
    }
  }
  if constexpr (kCounts) a.counts.finish(i0, len);
}

template <bool kCounts>
void para_task(const ParaArgs& a, int64_t i0, int64_t len, int64_t b0, int64_t b1) noexcept {
  para_body<kCounts>(a, i0, len, b0, b1);
}
template <bool kCounts>
SNN_TARGET_AVX2 void para_task_avx2(const ParaArgs& a, int64_t i0, int64_t len, int64_t b0,
                                    int64_t b1) noexcept {
  para_body<kCounts>(a, i0, len, b0, b1);
}

using ParaTask = void (*)(const ParaArgs&, int64_t, int64_t, int64_t, int64_t) noexcept;
constexpr ParaTask kParaTasks[2][2] = {{para_task<false>, para_task<true>},
                                       {para_task_avx2<false>, para_task_avx2<true>}};

struct ParaIFNeuronKernel : Guarded<ParaIFNeuronKernel> {
  static constexpr const char* kName = "ParaIFNeuron";
  static constexpr const char* kProvider = kCpu;
  static constexpr size_t kInputs = 4, kRequiredInputs = 2;
  static constexpr bool kHasCounts = true;

  ParaIFNeuronKernel(const OrtApi& api, const OrtKernelInfo* info, NodeId id)
      : id_(std::move(id)),
        a_(ParaIFAttrs::parse(api, info, id_)),
        want_counts_(has_output(api, info, 1)) {}

 private:
  friend struct Guarded<ParaIFNeuronKernel>;

  // An optional parameter input: data (nullptr if absent) and its layout; checked > 0 if asked.
  const float* param(Ort::KernelContext& ctx, size_t index, const char* name,
                     const std::vector<int64_t>& xs, bool positive, ParamLayout* layout) const {
    if (index >= ctx.GetInputCount()) return nullptr;
    Ort::ConstValue v = ctx.GetInput(index);
    if (static_cast<const OrtValue*>(v) == nullptr) return nullptr;
    const auto info = v.GetTensorTypeAndShapeInfo();
    *layout = param_layout(id_, name, info.GetShape(), xs, a_.channel_axis);
    const float* data = v.GetTensorData<float>();
    if (positive) check_positive(id_, name, data, static_cast<int64_t>(info.GetElementCount()));
    return data;
  }

  void compute(Ort::KernelContext& ctx) {
    Ort::ConstValue x = ctx.GetInput(0);
    const std::vector<int64_t> xs = x.GetTensorTypeAndShapeInfo().GetShape();
    const TimeLayout L = a_.static_input ? static_layout(id_, xs, a_.time_steps)
                                         : time_layout(id_, xs, a_.time_steps);
    ParaArgs args{};
    args.theta_pre = param(ctx, 1, "theta_pre", xs, true, &args.pre_layout);
    args.theta_post = param(ctx, 2, "theta_post", xs, true, &args.post_layout);
    args.bias = param(ctx, 3, "bias", xs, false, &args.bias_layout);

    Ort::UnownedValue y = ctx.GetOutput(0, output_shape(xs, L));
    args.x = x.GetTensorData<float>();
    args.y = y.GetTensorMutableData<float>();
    std::unique_ptr<int32_t[]> scratch;
    args.counts = make_counts(ctx, want_counts_, xs, L.T, L.N, scratch);
    args.T = L.T, args.B = L.B, args.N = L.N, args.v_init = a_.v_init;
    args.x_step = a_.static_input ? 0 : L.B;
    const bool counts = args.counts.out != nullptr;
    const ParaTask task = kParaTasks[static_cast<int>(best_isa())][counts];
    const Plan plan = make_plan(L.T, L.B, L.N, /*split_b=*/!counts);
    run_plan(ctx, plan, L.N, L.B,
             [&](int64_t i0, int64_t len, int64_t b0, int64_t b1) { task(args, i0, len, b0, b1); });
  }

  NodeId id_;
  ParaIFAttrs a_;
  bool want_counts_;
};

}  // namespace

void add_neuron_ops(std::vector<OrtCustomOp*>& ops) {
  static OpDef<IFNeuronKernel> if_neuron;
  static OpDef<ParaIFNeuronKernel> para_if_neuron;
  ops.push_back(&if_neuron);
  ops.push_back(&para_if_neuron);
}

}  // namespace snn::cpu
