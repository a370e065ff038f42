// The CPU execution provider's ops of the snn_onnx domain.
#pragma once

#include <vector>

#include "../common/op_def.h"

namespace snn::cpu {

void add_neuron_ops(std::vector<OrtCustomOp*>& ops);    // IFNeuron, ParaIFNeuron
void add_temporal_ops(std::vector<OrtCustomOp*>& ops);  // TemporalMean, TemporalDelta
void add_multi_threshold_ops(std::vector<OrtCustomOp*>& ops);  // MultiThresholdNeuron
void add_compensated_ops(std::vector<OrtCustomOp*>& ops);  // CompensatedElementwise

inline std::vector<OrtCustomOp*> ops() {
  std::vector<OrtCustomOp*> v;
  add_neuron_ops(v);
  add_temporal_ops(v);
  add_multi_threshold_ops(v);
  add_compensated_ops(v);
  return v;
}

}  // namespace snn::cpu
