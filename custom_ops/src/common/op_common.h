// Attribute parsing and input validation shared by the CPU and (later) CUDA kernels.
//
// Everything that can go wrong throws snn::OpError with a message that names the op type, the
// node and the offending value; snn::guarded() turns any exception into an ORT status at the
// C ABI boundary, so nothing ever throws into ONNX Runtime or aborts the process.
// Attribute defaults repeat snn_onnx/ops/schema.py (tests/test_kernels.py checks they agree).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ort_api.h"

namespace snn {

inline constexpr const char* kDomain = "snn_onnx";

namespace defaults {  // = snn_onnx/ops/schema.py
inline constexpr float kVInit = 0.5f;
inline constexpr float kLeak = 1.0f;
inline constexpr const char* kReset = "subtract";
inline constexpr int64_t kSigned = 0;
inline constexpr float kSignedEps = 1e-3f;
inline constexpr int64_t kChannelAxis = 1;
inline constexpr int64_t kLevels = 8;          // MultiThresholdNeuron
inline constexpr int64_t kMTChannelAxis = -1;  // MultiThresholdNeuron: features last
inline constexpr int64_t kStaticInput = 0;
}  // namespace defaults

inline constexpr int64_t kMaxLevels = 32;  // = schema.MAX_LEVELS

struct OpError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Which node a kernel belongs to; every error message starts with "<Op> node '<name>': ".
struct NodeId {
  std::string op, name;
  [[noreturn]] void fail(const std::string& msg) const;
  std::string prefix() const { return op + " node '" + name + "': "; }
};

NodeId node_id(const OrtApi& api, const OrtKernelInfo* info, const char* op);

// Attribute readers. A missing attribute takes `dflt` (nullopt: required). Integers are
// accepted for float attributes (onnx.helper.make_node(v_init=1) stores an INT).
int64_t attr_int(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id, const char* name,
                 std::optional<int64_t> dflt);
float attr_float(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id, const char* name,
                 float dflt);
std::string attr_string(const OrtApi& api, const OrtKernelInfo* info, const NodeId& id,
                        const char* name, const char* dflt);

// Whether the node wires up input / output `index` (present and not the empty name).
bool has_input(const OrtApi& api, const OrtKernelInfo* info, size_t index);
bool has_output(const OrtApi& api, const OrtKernelInfo* info, size_t index);

// x : [T*B, d1, d2, ...] viewed as [T, B, N] with N = d1*d2*...
struct TimeLayout {
  int64_t T, B, N;
};
TimeLayout time_layout(const NodeId& id, const std::vector<int64_t>& x_shape, int64_t T);
// static_input: x is one step [B, d1, ...] repeated at every step (B = x_shape[0]).
TimeLayout static_layout(const NodeId& id, const std::vector<int64_t>& x_shape, int64_t T);

// A scalar or per-channel parameter. Neuron i (flat index over x.shape[1:]) uses
// value[scalar ? 0 : (i / inner) % channels].
struct ParamLayout {
  bool scalar;
  int64_t channels, inner;
};
ParamLayout param_layout(const NodeId& id, const char* name, const std::vector<int64_t>& p_shape,
                         const std::vector<int64_t>& x_shape, int64_t channel_axis);
void check_positive(const NodeId& id, const char* name, const float* p, int64_t n);

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
  } catch (const std::exception& e) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (id.prefix() + e.what()).c_str());
  } catch (...) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, (id.prefix() + "unknown error").c_str());
  }
}

}  // namespace snn
