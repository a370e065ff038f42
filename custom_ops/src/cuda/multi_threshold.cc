// ORT side of the CUDA MultiThresholdNeuron (body: multi_threshold.cuh).
#include "cuda_ops.h"
#include "launch.h"

namespace snn::cuda {

template <>
void Kernel<MultiThresholdNeuronOp>::compute(Ort::KernelContext& ctx, const RunIO<MultiThresholdNeuronOp>& io) {
  run_neurons(id_, ctx, params_, io.L, io.counts, io.potentials, io.params,
              [&](const Grid& g, const Plan& plan, const std::array<Param, 2>& dev, cudaStream_t s) {
                MTArgs a;
                a.g = g;
                a.x = io.x, a.y = io.y;
                a.pos = dev[0], a.neg = dev[1];
                a.levels = a_.levels;
                return launch_mt(a, plan, s);
              });
}

}  // namespace snn::cuda
