// Runtime instruction-set dispatch for the CPU kernels.
//
// The library is built for the compiler's baseline ISA (SSE2 on x86-64), so one binary runs
// on every CPU of its architecture. Every kernel body (a struct with an always-inline static
// `run`) is instantiated twice by IsaTask: in a baseline function and in a function compiled
// for AVX2 (__attribute__((target("avx2")))); isa_task() picks one at run time with
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

inline const char* isa_name(Isa isa) noexcept { return isa == Isa::kAvx2 ? "avx2" : "baseline"; }

// A block of work: neurons (or elements) [i0, i0 + len) of samples [b0, b1).
struct Range {
  int64_t i0, len, b0, b1;
};

template <class Args>
using TaskFn = void (*)(const Args&, const Range&) noexcept;

// Body: `using Args = ...; static SNN_ALWAYS_INLINE void run(const Args&, const Range&) noexcept`.
template <class Body>
struct IsaTask {
  static void baseline(const typename Body::Args& a, const Range& r) noexcept { Body::run(a, r); }
  SNN_TARGET_AVX2 static void avx2(const typename Body::Args& a, const Range& r) noexcept { Body::run(a, r); }
};

// Body::run compiled for the best ISA of this CPU.
template <class Body>
TaskFn<typename Body::Args> isa_task() {
  return best_isa() == Isa::kAvx2 ? &IsaTask<Body>::avx2 : &IsaTask<Body>::baseline;
}

}  // namespace snn::cpu
