// The ONNX Runtime C/C++ API as this library uses it.
//
// The library is not linked against libonnxruntime: it must load into whatever ORT the user
// runs, from 1.21 on. So the C++ wrapper is compiled with ORT_API_MANUAL_INIT and the API
// table is installed from the OrtApiBase* handed to RegisterCustomOps (see register.cc), and
// the library asks for C API version kOrtApiTarget (21 = ORT 1.21) even when built against
// newer headers: nothing newer than that version may be called.
#pragma once

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

namespace snn {
inline constexpr uint32_t kOrtApiTarget = 21;
static_assert(ORT_API_VERSION >= kOrtApiTarget, "ONNX Runtime headers older than 1.21");
}  // namespace snn
