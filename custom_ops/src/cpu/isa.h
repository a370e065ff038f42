// Runtime instruction-set dispatch for the CPU kernels.
//
// The library is built for the compiler's baseline ISA (SSE2 on x86-64), so one binary runs
// on every CPU of its architecture. The hot loops are written once, as always-inline bodies,
// and instantiated twice: in a baseline function and in a function compiled for AVX2
// (__attribute__((target("avx2")))); best_isa() picks one at run time with
// __builtin_cpu_supports. AVX2 does not imply FMA, and the library is built with
// -ffp-contract=off, so both variants round every operation exactly as the scalar code and
// the NumPy reference do: the choice changes speed, never a spike.
//
// SNN_ONNX_ISA=baseline in the environment (read once, when the library is loaded) forces
// the baseline code: the tests use it to check both variants against the reference.
#pragma once

#include <cstdlib>
#include <cstring>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define SNN_HAVE_AVX2_DISPATCH 1
#define SNN_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define SNN_HAVE_AVX2_DISPATCH 0
#define SNN_TARGET_AVX2
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SNN_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define SNN_ALWAYS_INLINE inline
#endif

namespace snn::cpu {

enum class Isa : int { kBaseline = 0, kAvx2 = 1 };

inline Isa detect_isa() noexcept {
  const char* env = std::getenv("SNN_ONNX_ISA");
  if (env != nullptr && std::strcmp(env, "baseline") == 0) return Isa::kBaseline;
#if SNN_HAVE_AVX2_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) return Isa::kAvx2;
#endif
  return Isa::kBaseline;
}

// The ISA the kernels use in this process (decided once).
inline Isa best_isa() noexcept {
  static const Isa isa = detect_isa();
  return isa;
}

inline const char* isa_name(Isa isa) noexcept {
  return isa == Isa::kAvx2 ? "avx2" : "baseline";
}

}  // namespace snn::cpu
