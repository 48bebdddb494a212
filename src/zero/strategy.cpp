// What every ZeRO layout shares: the norm across shards, and the layout entries of a checkpoint.
#include "deepspeed/zero/strategy.h"

#include <map>

#include <ATen/ATen.h>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::zero {

Strategy::Strategy(int stage, std::int64_t bucket_numel, std::shared_ptr<torch::nn::Module> module,
                   std::shared_ptr<comm::Communicator> comm)
    : stage_(stage), bucket_numel_(bucket_numel), module_(std::move(module)), comm_(std::move(comm)) {}

Strategy::~Strategy() = default;

double Strategy::sum_over_shards(double local_sum) const {
  comm::CallerScope caller("gradient_norm");
  return sharded() ? comm_->all_reduce_scalar(local_sum, comm::ReduceOp::kSum) : local_sum;
}

std::optional<at::Tensor> Strategy::device_squared_gradient_norm(const std::vector<at::Tensor>& grads,
                                                                 const SquaredNormTensor& local) const {
  if (grads.empty()) return std::nullopt;
  for (const auto& g : grads) {
    // Sharded layouts without offload hold every piece on the rank's device, on every rank alike.
    if (g.device() != grads.front().device()) return std::nullopt;
  }
  at::Tensor squared = local(grads).reshape({1});
  if (sharded()) {
    comm::CallerScope caller("gradient_norm");
    comm_->all_reduce(squared, comm::ReduceOp::kSum).wait();
  }
  return squared.reshape({});
}

void Strategy::save_layout(checkpoint::SaveTarget& target, const std::vector<FlatGroup*>& groups,
                           int layout_world_size) const {
  std::map<const c10::TensorImpl*, std::string> name_of;
  for (const auto& item : module_->named_parameters()) name_of[item.value().unsafeGetTensorImpl()] = item.key();
  c10::impl::GenericList shapes_per_group(c10::AnyType::get());
  for (const auto* g : groups) {
    checkpoint::Dict shapes = checkpoint::new_dict();
    for (std::size_t i = 0; i < g->params.size(); ++i) {
      shapes.insert(name_of.at(g->params[i].unsafeGetTensorImpl()), c10::List<std::int64_t>(g->shapes[i]));
    }
    shapes_per_group.push_back(shapes);
  }
  auto& states = target.model_states;
  states.insert("param_shapes", shapes_per_group);
  checkpoint::Dict layout = checkpoint::new_dict();
  layout.insert("bucket_numel", bucket_numel_);
  layout.insert("alignment", kAlignment);
  layout.insert("world_size", static_cast<std::int64_t>(layout_world_size));
  states.insert("layout", layout);
  states.insert("zero_stage", static_cast<std::int64_t>(stage_));
}

void Strategy::check_saved_stage(checkpoint::LoadSource& source, const std::function<bool(int)>& compatible) const {
  const int saved = static_cast<int>(source.model_entry("zero_stage").toInt());
  if (!compatible(saved)) {
    throw UsageError(util::cat("load_checkpoint: '", source.dir(), "' was saved with ZeRO stage ", saved,
                               " and this engine runs stage ", stage_,
                               "; optimizer state moves between stages 1 and 2 only, not to or from stage 0 or 3 "
                               "(load_module_only=true loads the weights alone)"));
  }
}

}  // namespace deepspeed::zero
