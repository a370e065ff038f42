#include "layout.h"

#include <cmath>
#include <sstream>
#include <string>

namespace snn {
namespace {

// a * b for a, b >= 0, or nullopt when it exceeds kMaxElements (0 stays 0 whatever the other).
std::optional<int64_t> mul(int64_t a, int64_t b) {
  if (a == 0 || b == 0) return 0;
  if (a > kMaxElements / b) return std::nullopt;
  return a * b;
}

std::string n_str(int64_t v) { return std::to_string(v); }

// Elements per sample (product of x_shape[1:]); 0 if any of them is 0.
int64_t per_sample(const NodeId& id, const std::vector<int64_t>& xs) {
  int64_t n = 1;
  bool zero = false;
  for (size_t i = 1; i < xs.size(); ++i) zero = zero || xs[i] == 0;
  if (zero) return 0;
  for (size_t i = 1; i < xs.size(); ++i) {
    const auto m = mul(n, xs[i]);
    if (!m) id.fail("input x " + shape_str(xs) + " has more elements per sample than a tensor can hold");
    n = *m;
  }
  return n;
}

}  // namespace

void check_time_steps(const NodeId& id, int64_t T) {
  if (T < 1) id.fail("time_steps must be >= 1, got " + n_str(T));
  if (T > kMaxTimeSteps)
    id.fail("time_steps must be <= " + n_str(kMaxTimeSteps) + " (spikes are counted in int32), got " + n_str(T));
}

TimeLayout time_layout(const NodeId& id, const std::vector<int64_t>& xs, int64_t T, bool static_input,
                       bool counts) {
  check_time_steps(id, T);
  if (xs.empty())
    id.fail(std::string("input x must have at least one dimension (the ") +
            (static_input ? "batch" : "T*B") + " axis), got a scalar");
  for (int64_t d : xs)
    if (d < 0) id.fail("input x has a negative dimension: " + shape_str(xs));
  TimeLayout L{T, 0, per_sample(id, xs), static_input};
  if (static_input) {
    L.B = xs[0];
  } else {
    if (xs[0] % T != 0)
      id.fail("leading dimension " + n_str(xs[0]) + " of input x " + shape_str(xs) +
              " is not divisible by time_steps " + n_str(T));
    L.B = xs[0] / T;
  }
  const auto rows = mul(T, L.B);
  if (!rows || !mul(*rows, L.N))
    id.fail("output y of time_steps " + n_str(T) + " x batch " + n_str(L.B) + " x " + n_str(L.N) +
            " values per sample is too large for a tensor (more than " + n_str(kMaxElements) + " elements)");
  if (counts) {
    if (!mul(T, L.N))
      id.fail("spike counts [time_steps " + n_str(T) + ", " + n_str(L.N) +
              " neurons] are too large for a tensor (more than " + n_str(kMaxElements) + " elements)");
    if (L.B > std::numeric_limits<int32_t>::max())
      id.fail("batch " + n_str(L.B) + " exceeds the spike counters' range (int32 per step and neuron); "
              "split the batch");
  }
  return L;
}

std::vector<int64_t> y_shape(std::vector<int64_t> xs, const TimeLayout& L) {
  xs[0] = L.T * L.B;
  return xs;
}

std::vector<int64_t> counts_shape(std::vector<int64_t> xs, const TimeLayout& L) {
  xs[0] = L.T;
  return xs;
}

ParamLayout param_layout(const NodeId& id, const char* name, const std::vector<int64_t>& p_shape,
                         const std::vector<int64_t>& x_shape, int64_t channel_axis) {
  bool one = true;  // any shape holding one value is a scalar (as reference.py)
  for (int64_t d : p_shape) one = one && d == 1;
  if (one) return {true, 1, 1};
  if (p_shape.size() != 1)
    id.fail(std::string(name) + " must be a scalar or 1-D per-channel, got shape " + shape_str(p_shape));
  const int64_t rank = static_cast<int64_t>(x_shape.size());
  const int64_t axis = channel_axis < 0 ? channel_axis + rank : channel_axis;
  if (axis < 1 || axis >= rank)  // axis 0 is time*batch: never a channel axis
    id.fail("channel_axis " + n_str(channel_axis) + " is out of range for input x " + shape_str(x_shape) +
            " of rank " + n_str(rank));
  if (x_shape[axis] != p_shape[0])
    id.fail(std::string(name) + " has " + n_str(p_shape[0]) + " values but input dimension " + n_str(axis) +
            " of x " + shape_str(x_shape) + " is " + n_str(x_shape[axis]));
  int64_t inner = 1;
  for (int64_t i = axis + 1; i < rank; ++i) inner *= x_shape[i];  // <= N, validated by time_layout
  return {false, p_shape[0], inner};
}

void check_broadcast(const NodeId& id, const char* name, const std::vector<int64_t>& ps,
                     const std::vector<int64_t>& xs) {
  const size_t sample = xs.empty() ? 0 : xs.size() - 1;
  if (ps.size() > sample)
    id.fail(std::string(name) + " has rank " + n_str(static_cast<int64_t>(ps.size())) + ", more than one sample's rank " +
            n_str(static_cast<int64_t>(sample)) + " (shape " + shape_str(ps) + " vs x " + shape_str(xs) +
            "); it has no batch axis");
  for (size_t k = 0; k < ps.size(); ++k) {
    const int64_t d = ps[ps.size() - 1 - k], s = xs[xs.size() - 1 - k];
    if (d != 1 && d != s)
      id.fail(std::string(name) + " of shape " + shape_str(ps) + " does not broadcast to one sample of x " +
              shape_str(xs));
  }
}

void expand_param(const HostParam& p, const std::vector<int64_t>& xs, float dflt, std::vector<float>& out) {
  int64_t n = 1;
  for (size_t i = 1; i < xs.size(); ++i) n *= xs[i];
  out.assign(static_cast<size_t>(n), dflt);
  if (p.data == nullptr || n == 0) return;
  const size_t rank = xs.size() - 1, pr = p.shape.size();
  // strides of p along each sample axis (0 where p broadcasts)
  std::vector<int64_t> stride(rank, 0);
  int64_t s = 1;
  for (size_t k = 0; k < pr; ++k) {
    const size_t ax = rank - 1 - k, pax = pr - 1 - k;
    stride[ax] = p.shape[pax] == 1 ? 0 : s;
    s *= p.shape[pax];
  }
  std::vector<int64_t> idx(rank, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (size_t ax = 0; ax < rank; ++ax) off += idx[ax] * stride[ax];
    out[static_cast<size_t>(i)] = p.data[off];
    for (size_t ax = rank; ax-- > 0;) {  // next index, last axis fastest
      if (++idx[ax] < xs[ax + 1]) break;
      idx[ax] = 0;
    }
  }
}

void check_finite(const NodeId& id, const char* name, const float* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i])) {
      std::ostringstream os;
      os << name << " must be finite, got " << p[i];
      if (n > 1) os << " at index " << i;
      id.fail(os.str());
    }
  }
}

void check_positive(const NodeId& id, const char* name, const float* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!(std::isfinite(p[i]) && p[i] > 0.0f)) {
      std::ostringstream os;
      os << name << " must be finite and > 0, got " << p[i];
      if (n > 1) os << " at index " << i;
      id.fail(os.str());
    }
  }
}

}  // namespace snn
