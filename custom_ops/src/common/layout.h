// Shapes of an op's run, validated before anything is allocated or launched: the time layout
// of x, sizes that must not overflow (int64 element counts, byte sizes, the int32 spike
// counters), and the layout of scalar / per-channel parameters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "op_common.h"

namespace snn {

// time_steps <= this: the kernels count a neuron's spikes over time in int32.
inline constexpr int64_t kMaxTimeSteps = std::numeric_limits<int32_t>::max();
// Elements of any tensor or scratch buffer a kernel asks for: its size in bytes (8 per element
// at most) fits ptrdiff_t. Anything larger is refused before an allocation is attempted.
inline constexpr int64_t kMaxElements = std::numeric_limits<std::ptrdiff_t>::max() / 8;

// time_steps in [1, kMaxTimeSteps], or an error naming the attribute.
void check_time_steps(const NodeId& id, int64_t T);

// x : [T*B, d1, d2, ...] viewed as [T, B, N] with N = d1*d2*... With static_input, x is one
// step [B, d1, ...] read at every step, and y is still [T*B, d1, ...].
struct TimeLayout {
  int64_t T, B, N;
  bool static_input;
};
// Validates x's shape for T steps: rank >= 1, divisible leading dimension, and that y
// (T*B*N), the spike counts (T*N, summed over B in int32: B <= INT32_MAX) and their products
// fit. `counts`: the node declares the spike-count output.
TimeLayout time_layout(const NodeId& id, const std::vector<int64_t>& x_shape, int64_t T, bool static_input,
                       bool counts);
std::vector<int64_t> y_shape(std::vector<int64_t> x_shape, const TimeLayout& L);       // [T*B, ...]
std::vector<int64_t> counts_shape(std::vector<int64_t> x_shape, const TimeLayout& L);  // [T, ...]

// A scalar or per-channel parameter. Neuron i (flat index over x.shape[1:]) uses
// value[scalar ? 0 : (i / inner) % channels].
struct ParamLayout {
  bool scalar;
  int64_t channels, inner;
};
ParamLayout param_layout(const NodeId& id, const char* name, const std::vector<int64_t>& p_shape,
                         const std::vector<int64_t>& x_shape, int64_t channel_axis);
void check_positive(const NodeId& id, const char* name, const float* p, int64_t n);

// A parameter that broadcasts (NumPy rules) to one sample x_shape[1:]: rank at most one
// sample's, each dimension 1 or the sample's; refused naming the parameter otherwise.
void check_broadcast(const NodeId& id, const char* name, const std::vector<int64_t>& p_shape,
                     const std::vector<int64_t>& x_shape);

// A parameter input in host memory, validated. data == nullptr: an absent optional input.
// `shape`: its shape (kept for parameters that broadcast to one sample).
struct HostParam {
  const float* data = nullptr;
  int64_t size = 0;
  ParamLayout layout{true, 1, 1};
  std::vector<int64_t> shape;
};

// A broadcasting parameter expanded to one sample's N values (row-major over x_shape[1:]);
// `dflt` for an absent one.
void expand_param(const HostParam& p, const std::vector<int64_t>& x_shape, float dflt, std::vector<float>& out);
void check_finite(const NodeId& id, const char* name, const float* p, int64_t n);

}  // namespace snn
