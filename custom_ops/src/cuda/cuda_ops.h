// The CUDA execution provider's ops of the snn_onnx domain (built with -DSNN_ONNX_CUDA=ON).
#pragma once

#include <vector>

#include "../common/op_def.h"

namespace snn::cuda {

// IFNeuron, ParaIFNeuron, MultiThresholdNeuron, TemporalMean, TemporalDelta for
// "CUDAExecutionProvider": same names, domain, attributes, inputs and outputs as the CPU ops.
std::vector<OrtCustomOp*> ops();

// CUDA runtime version the kernels were built with (CUDART_VERSION, e.g. 13000).
int runtime_version();

}  // namespace snn::cuda
