# The CUDA kernels (-DSNN_ONNX_CUDA=ON), included by CMakeLists.txt after the snn_onnx_ops target.
#
# * Any CUDA toolkit >= 11.8 (sm_90). Architectures: CMAKE_CUDA_ARCHITECTURES or $CUDAARCHS when
#   set (e.g. CUDAARCHS=90 for a quick H100/H200-only build, or "native"); otherwise real code for
#   every datacenter / desktop generation the toolkit supports (Turing .. Hopper, plus Blackwell
#   with CUDA >= 12.8; Volta too before CUDA 13, which dropped it) and PTX of the oldest one, which
#   the driver JIT-compiles on GPUs newer than the list.
# * The CUDA runtime is linked statically: the library needs only the driver (libcuda, loaded
#   lazily by the runtime), loads on machines without any CUDA, and does not care which CUDA
#   runtime onnxruntime-gpu was built against. The driver must support this toolkit's version.
# * --fmad=false: no FMA contraction, so spikes match the NumPy reference bit for bit (IEEE
#   division and square root and no flush-to-zero are nvcc's defaults and are kept).
# * Only the ORT C API headers are used (no header of ORT's CUDA provider).
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
  set(_snn_default_archs ON)
endif()
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(FATAL_ERROR
    "snn_onnx: SNN_ONNX_CUDA=ON but no CUDA compiler was found. Install the CUDA toolkit (>= 11.8) "
    "and put nvcc on PATH, or set CMAKE_CUDA_COMPILER / $CUDACXX; or build without CUDA.")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
if(CMAKE_CUDA_COMPILER_VERSION VERSION_LESS 11.8)
  message(FATAL_ERROR "snn_onnx: CUDA ${CMAKE_CUDA_COMPILER_VERSION} is too old; need >= 11.8 (sm_90)")
endif()

if(_snn_default_archs)
  if(CMAKE_CUDA_COMPILER_VERSION VERSION_LESS 13.0)
    set(_snn_archs 70-real 75-real 80-real 86-real 89-real 90-real)
    set(_snn_ptx 70-virtual)
  else()
    set(_snn_archs 75-real 80-real 86-real 89-real 90-real)
    set(_snn_ptx 75-virtual)
  endif()
  if(CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.8)
    list(APPEND _snn_archs 100-real 120-real)
  endif()
  set(_snn_archs ${_snn_archs} ${_snn_ptx})
else()
  set(_snn_archs ${CMAKE_CUDA_ARCHITECTURES})
endif()
message(STATUS "snn_onnx: CUDA ${CMAKE_CUDA_COMPILER_VERSION} kernels for architectures: ${_snn_archs}")

# Object library: its own flags (nvcc does not take the C++ flags of snn_onnx_ops), linked into
# the one shared library.
add_library(snn_onnx_cuda OBJECT
  src/cuda/kernels.cu
  src/cuda/runtime.cc
  src/cuda/neurons.cc
  src/cuda/multi_threshold.cc
  src/cuda/temporal.cc
  src/cuda/compensated.cc
  src/cuda/signgd.cc)
target_include_directories(snn_onnx_cuda PRIVATE "${_ort_inc}" src ${CUDAToolkit_INCLUDE_DIRS})
target_compile_features(snn_onnx_cuda PRIVATE cxx_std_17 cuda_std_17)
set_target_properties(snn_onnx_cuda PROPERTIES
  CUDA_ARCHITECTURES "${_snn_archs}"
  POSITION_INDEPENDENT_CODE ON
  CXX_EXTENSIONS OFF
  CUDA_EXTENSIONS OFF
  CXX_VISIBILITY_PRESET hidden
  CUDA_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
target_compile_options(snn_onnx_cuda PRIVATE
  # --threads=0: nvcc compiles the architectures in parallel (the long pole of the build).
  $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false -Xcompiler=-ffp-contract=off --threads=0>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU,Clang>>:-O3 -ffp-contract=off -Wall -Wextra>)

target_sources(snn_onnx_ops PRIVATE $<TARGET_OBJECTS:snn_onnx_cuda>)
target_compile_definitions(snn_onnx_ops PRIVATE SNN_ONNX_WITH_CUDA=1)
target_include_directories(snn_onnx_ops PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(snn_onnx_ops PRIVATE CUDA::cudart_static)
