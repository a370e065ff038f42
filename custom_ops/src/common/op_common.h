// Errors and attribute reading shared by the CPU and CUDA kernels.
//
// Everything that can go wrong throws snn::OpError with a message that names the op type, the
// node and the offending value; snn::guarded() turns any exception into an ORT status at the
// C ABI boundary, so nothing ever throws into ONNX Runtime or aborts the process.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ort_api.h"

namespace snn {

inline constexpr const char* kDomain = "snn_onnx";

struct OpError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Which node a kernel belongs to; every error message starts with "<Op> node '<name>': ".
struct NodeId {
  std::string op, name;
  [[noreturn]] void fail(const std::string& msg) const;
  std::string prefix() const { return op + " node '" + name + "': "; }
};

// What a kernel is created from: ORT's kernel info and the node it is for.
struct KernelInfo {
  const OrtApi& api;
  const OrtKernelInfo* info;
  NodeId id;

  static KernelInfo of(const OrtApi& api, const OrtKernelInfo* info, const char* op);

  // Attribute readers. A missing attribute takes `dflt` (nullopt: required). Integers are
  // accepted for float attributes (onnx.helper.make_node(v_init=1) stores an INT).
  int64_t attr_int(const char* name, std::optional<int64_t> dflt) const;
  float attr_float(const char* name, float dflt) const;
  std::string attr_string(const char* name, const char* dflt) const;
  // A float attribute that must be finite.
  float attr_finite(const char* name, float dflt) const;

  // Whether the node wires up input / output `index` (present and not the empty name).
  bool has_input(size_t index) const;
  bool has_output(size_t index) const;
};

std::string shape_str(const std::vector<int64_t>& shape);

// Runs f(); returns nullptr, or an ORT status carrying the error (prefixed with the node).
template <class F>
OrtStatusPtr guarded(const NodeId& id, F&& f) noexcept {
  try {
    f();
    return nullptr;
  } catch (const OpError& e) {
    return Ort::GetApi().CreateStatus(ORT_INVALID_ARGUMENT, e.what());
  } catch (const Ort::Exception& e) {
    return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), (id.prefix() + e.what()).c_str());
  } catch (const std::bad_alloc&) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (id.prefix() + "out of memory").c_str());
  } catch (const std::exception& e) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (id.prefix() + e.what()).c_str());
  } catch (...) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (id.prefix() + "unknown error").c_str());
  }
}

}  // namespace snn
