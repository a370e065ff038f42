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
// A string ORT returns through (buffer, size): size first, then the text (size counts the NUL).
template <class Get>
bool try_text(const OrtApi& api, Get&& get, std::string* out) {
  size_t size = 0;
  if (!ok(api, [&] { return get(nullptr, &size); })) return false;
  std::string s(size, '\0');
  if (!ok(api, [&] { return get(s.data(), &size); })) return false;
  s.resize(size > 0 ? size - 1 : 0);
  *out = std::move(s);
  return true;
}
bool try_string(const OrtApi& api, const OrtKernelInfo* info, const char* name, std::string* out) {
  return try_text(api, [&](char* b, size_t* n) { return api.KernelInfoGetAttribute_string(info, name, b, n); },
                  out);
}

std::string name_at(const OrtApi& api, const OrtKernelInfo* info, size_t index, bool input) {
  std::string s;
  try_text(api, [&](char* b, size_t* n) {
    return input ? api.KernelInfo_GetInputName(info, index, b, n) : api.KernelInfo_GetOutputName(info, index, b, n);
  }, &s);
  return s;
}

}  // namespace

void NodeId::fail(const std::string& msg) const { throw OpError(prefix() + msg); }

KernelInfo KernelInfo::of(const OrtApi& api, const OrtKernelInfo* info, const char* op) {
  NodeId id{op, ""};
  try_text(api, [&](char* b, size_t* n) { return api.KernelInfo_GetNodeName(info, b, n); }, &id.name);
  return {api, info, std::move(id)};
}

int64_t KernelInfo::attr_int(const char* name, std::optional<int64_t> dflt) const {
  int64_t v = 0;
  float f = 0;
  std::string s;
  if (try_int(api, info, name, &v)) return v;
  if (try_float(api, info, name, &f) || try_string(api, info, name, &s))
    id.fail(std::string("attribute '") + name + "' must be an integer");
  if (!dflt) id.fail(std::string("required attribute '") + name + "' is missing");
  return *dflt;
}

float KernelInfo::attr_float(const char* name, float dflt) const {
  float f = 0;
  int64_t v = 0;
  std::string s;
  if (try_float(api, info, name, &f)) return f;
  if (try_int(api, info, name, &v)) return static_cast<float>(v);
  if (try_string(api, info, name, &s)) id.fail(std::string("attribute '") + name + "' must be a float");
  return dflt;
}

float KernelInfo::attr_finite(const char* name, float dflt) const {
  const float f = attr_float(name, dflt);
  if (!std::isfinite(f)) {
    std::ostringstream os;
    os << name << " must be finite, got " << f;
    id.fail(os.str());
  }
  return f;
}

std::string KernelInfo::attr_string(const char* name, const char* dflt) const {
  std::string s;
  int64_t v = 0;
  float f = 0;
  if (try_string(api, info, name, &s)) return s;
  if (try_int(api, info, name, &v) || try_float(api, info, name, &f))
    id.fail(std::string("attribute '") + name + "' must be a string");
  return dflt;
}

bool KernelInfo::has_input(size_t index) const {
  size_t n = 0;
  if (!ok(api, [&] { return api.KernelInfo_GetInputCount(info, &n); }) || index >= n) return false;
  return !name_at(api, info, index, true).empty();
}

bool KernelInfo::has_output(size_t index) const {
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

}  // namespace snn
