#include "op_common.h"

#include <cmath>
#include <sstream>

namespace snn {
namespace {

// Calls an ORT C function that returns a status; true on success (the status is released).
template <class F>
bool ok(const OrtApi& api, F&& call) {
  OrtStatus* st = call();
  if (st == nullptr) return true;
  api.ReleaseStatus(st);
  return false;
}

bool try_int(const OrtApi& api, const OrtKernelInfo* info, const char* name, int64_t* out) {
  return ok(api, [&] { return api.KernelInfoGetAttribute_int64(info, name, out); });
}
bool try_float(const OrtApi& api, const OrtKernelInfo* info, const char* name, float* out) {
  return ok(api, [&] { return api.KernelInfoGetAttribute_float(info, name, out); });
}
bool try_string(const OrtApi& api, const OrtKernelInfo* info, const char* name, std::string* out) {
  size_t size = 0;
  if (!ok(api, [&] { return api.KernelInfoGetAttribute_string(info, name, nullptr, &size); }))
    return false;
  std::string s(size, '\0');
  if (!ok(api, [&] { return api.KernelInfoGetAttribute_string(info, name, s.data(), &size); }))
    return false;
  s.resize(size > 0 ? size - 1 : 0);  // size counts the terminating NUL
  *out = std::move(s);
  return true;
}

// The attribute exists, under some other type than the one asked for.
[[noreturn]] void wrong_type(const NodeId& id, const char* name, const char* want) {
  id.fail(std::string("attribute '") + name + "' must be " + want);
}

std::string name_at(const OrtApi& api, const OrtKernelInfo* info, size_t index, bool input) {
  size_t size = 0;
  auto get = [&](char* out) {
    return input ? api.KernelInfo_GetInputName(info, index, out, &size)
                 : api.KernelInfo_GetOutputName(info, index, out, &size);
  };
  if (!ok(api, [&] { return get(nullptr); })) return "";
  std::string s(size, '\0');
  if (!ok(api, [&] { return get(s.data()); })) return "";
  s.resize(size > 0 ? size - 1 : 0);
  return s;
}

}  // namespace

void NodeId::fail(const std::string& msg) const { throw OpError(prefix() + msg); }

NodeId node_id(const OrtApi& api, const OrtKernelInfo* info, const char* op) {
  NodeId id{op, ""};
  size_t size = 0;
  if (ok(api, [&] { return api.KernelInfo_GetNodeName(info, nullptr, &size); }) && size > 0) {
    std::string s(size, '\0');
    if (ok(api, [&] { return api.KernelInfo_GetNodeName(info, s.data(), &size); })) {
      s.resize(size - 1);
      id.name = std::move(s);
    }
  }
  return id;
}

int64_t attr_int(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id, const char* name,
                 std::optional<int64_t> dflt) {
  int64_t v = 0;
  float f = 0;
  std::string s;
  if (try_int(api, info, name, &v)) return v;
  if (try_float(api, info, name, &f) || try_string(api, info, name, &s))
    wrong_type(id, name, "an integer");
  if (!dflt) id.fail(std::string("required attribute '") + name + "' is missing");
  return *dflt;
}

float attr_float(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id, const char* name,
                 float dflt) {
  float f = 0;
  int64_t v = 0;
  std::string s;
  if (try_float(api, info, name, &f)) return f;
  if (try_int(api, info, name, &v)) return static_cast<float>(v);
  if (try_string(api, info, name, &s)) wrong_type(id, name, "a float");
  return dflt;
}

std::string attr_string(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id,
                        const char* name, const char* dflt) {
  std::string s;
  int64_t v = 0;
  float f = 0;
  if (try_string(api, info, name, &s)) return s;
  if (try_int(api, info, name, &v) || try_float(api, info, name, &f))
    wrong_type(id, name, "a string");
  return dflt;
}

bool has_input(const OrtApi& api, const OrtKernelInfo* info, size_t index) {
  size_t n = 0;
  if (!ok(api, [&] { return api.KernelInfo_GetInputCount(info, &n); }) || index >= n) return false;
  return !name_at(api, info, index, true).empty();
}

bool has_output(const OrtApi& api, const OrtKernelInfo* info, size_t index) {
  size_t n = 0;
  if (!ok(api, [&] { return api.KernelInfo_GetOutputCount(info, &n); }) || index >= n) return false;
  return !name_at(api, info, index, false).empty();
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

TimeLayout time_layout(const NodeId& id, const std::vector<int64_t>& x_shape, int64_t T) {
  if (T < 1) id.fail("time_steps must be >= 1, got " + std::to_string(T));
  if (x_shape.empty())
    id.fail("input x must have at least one dimension (the T*B axis), got a scalar");
  if (x_shape[0] % T != 0)
    id.fail("leading dimension " + std::to_string(x_shape[0]) + " of input x " +
            shape_str(x_shape) + " is not divisible by time_steps " + std::to_string(T));
  int64_t n = 1;
  for (size_t i = 1; i < x_shape.size(); ++i) n *= x_shape[i];
  return {T, x_shape[0] / T, n};
}

TimeLayout static_layout(const NodeId& id, const std::vector<int64_t>& x_shape, int64_t T) {
  if (T < 1) id.fail("time_steps must be >= 1, got " + std::to_string(T));
  if (x_shape.empty())
    id.fail("input x must have at least one dimension (the batch axis), got a scalar");
  int64_t n = 1;
  for (size_t i = 1; i < x_shape.size(); ++i) n *= x_shape[i];
  return {T, x_shape[0], n};
}

ParamLayout param_layout(const NodeId& id, const char* name, const std::vector<int64_t>& p_shape,
                         const std::vector<int64_t>& x_shape, int64_t channel_axis) {
  int64_t size = 1;
  for (int64_t d : p_shape) size *= d;
  if (size == 1) return {true, 1, 1};  // any shape holding one value is a scalar (as reference.py)
  if (p_shape.size() != 1)
    id.fail(std::string(name) + " must be a scalar or 1-D per-channel, got shape " +
            shape_str(p_shape));
  const int64_t rank = static_cast<int64_t>(x_shape.size());
  const int64_t axis = channel_axis < 0 ? channel_axis + rank : channel_axis;
  if (axis < 1 || axis >= rank)  // axis 0 is time*batch: never a channel axis
    id.fail("channel_axis " + std::to_string(channel_axis) + " is out of range for input x " +
            shape_str(x_shape) + " of rank " + std::to_string(rank));
  if (x_shape[axis] != p_shape[0])
    id.fail(std::string(name) + " has " + std::to_string(p_shape[0]) +
            " values but input dimension " + std::to_string(axis) + " of x " +
            shape_str(x_shape) + " is " + std::to_string(x_shape[axis]));
  int64_t inner = 1;
  for (int64_t i = axis + 1; i < rank; ++i) inner *= x_shape[i];
  return {false, p_shape[0], inner};
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
