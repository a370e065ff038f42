#include "op_def.h"

namespace snn {

HostParam read_param(const NodeId& id, Ort::KernelContext& ctx, size_t index, const ParamSpec& spec,
                     const std::vector<int64_t>& x_shape, int64_t channel_axis) {
  HostParam p;
  Ort::ConstValue v{nullptr};
  if (index < ctx.GetInputCount()) v = ctx.GetInput(index);
  if (static_cast<const OrtValue*>(v) == nullptr) {
    if (spec.required) id.fail(std::string("input ") + spec.name + " is missing");
    return p;
  }
  const auto info = v.GetTensorTypeAndShapeInfo();
  if (spec.broadcast) {
    p.shape = info.GetShape();
    check_broadcast(id, spec.name, p.shape, x_shape);
  } else {
    p.layout = param_layout(id, spec.name, info.GetShape(), x_shape, channel_axis);
  }
  p.data = v.GetTensorData<float>();
  p.size = static_cast<int64_t>(info.GetElementCount());
  if (spec.positive) check_positive(id, spec.name, p.data, p.size);
  return p;
}

}  // namespace snn
