// ORT side of the CUDA IFNeuron and ParaIFNeuron (bodies: neurons.cuh).
#include "cuda_ops.h"
#include "launch.h"

namespace snn::cuda {

template <>
void Kernel<IFNeuronOp>::compute(Ort::KernelContext& ctx, const RunIO<IFNeuronOp>& io) {
  run_neurons(id_, ctx, params_, io.L, io.counts, io.potentials, io.params,
              [&](const Grid& g, const Plan& plan, const std::array<Param, 1>& dev, cudaStream_t s) {
                IFArgs a;
                a.g = g;
                a.x = io.x, a.y = io.y;
                a.theta = dev[0];
                a.v_init = a_.v_init, a.leak = a_.leak, a.neg_eps = -a_.signed_eps;
                return launch_if(a, plan, a_.is_signed, a_.reset_zero, s);
              });
}

template <>
void Kernel<ParaIFNeuronOp>::compute(Ort::KernelContext& ctx, const RunIO<ParaIFNeuronOp>& io) {
  run_neurons(id_, ctx, params_, io.L, io.counts, io.potentials, io.params,
              [&](const Grid& g, const Plan& plan, const std::array<Param, 3>& dev, cudaStream_t s) {
                ParaArgs a;
                a.g = g;
                a.x = io.x, a.y = io.y;
                a.pre = dev[0], a.post = dev[1], a.bias = dev[2];
                a.has_post = dev[1].data != nullptr, a.has_bias = dev[2].data != nullptr;
                a.v_init = a_.v_init;
                return launch_para(a, plan, s);
              });
}

}  // namespace snn::cuda
