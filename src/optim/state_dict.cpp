// Optimizer state in PyTorch's state_dict layout (checkpoints and torch.load interoperability).
#include <ATen/ATen.h>
#include <ATen/core/Dict.h>

#include "deepspeed/optim/optimizer.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::optim {

using util::cat;

namespace {

c10::impl::GenericDict string_dict() { return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()); }

c10::impl::GenericDict hyper_dict(const Hyper& h) {
  auto d = string_dict();
  d.insert("lr", h.lr);
  d.insert("betas", c10::ivalue::Tuple::create({h.beta1, h.beta2}));
  d.insert("eps", h.eps);
  d.insert("weight_decay", h.weight_decay);
  d.insert("adam_w_mode", h.adam_w_mode);
  d.insert("bias_correction", h.bias_correction);
  d.insert("amsgrad", h.amsgrad);
  d.insert("momentum", h.momentum);
  d.insert("dampening", h.dampening);
  d.insert("nesterov", h.nesterov);
  d.insert("max_coeff", h.max_coeff);
  d.insert("min_coeff", h.min_coeff);
  return d;
}

void read_hyper(const c10::impl::GenericDict& d, Hyper& h) {
  const auto get = [&](const char* key) -> c10::IValue {
    const auto it = d.find(std::string(key));
    if (it == d.end()) throw UsageError(cat("optimizer state: param_groups entry has no \"", key, "\""));
    return it->value();
  };
  h.lr = get("lr").toDouble();
  const auto betas = get("betas").toTupleRef().elements();
  h.beta1 = betas.at(0).toDouble();
  h.beta2 = betas.at(1).toDouble();
  h.eps = get("eps").toDouble();
  h.weight_decay = get("weight_decay").toDouble();
  h.momentum = get("momentum").toDouble();
  h.dampening = get("dampening").toDouble();
}

}  // namespace

c10::IValue Optimizer::state_dict() const {
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  c10::impl::GenericList param_groups(c10::AnyType::get());
  std::int64_t index = 0;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    auto entry = hyper_dict(groups_[g].hyper);
    c10::List<std::int64_t> params;
    for (std::size_t i = 0; i < groups_[g].params.size(); ++i, ++index) {
      params.push_back(index);
      const auto& s = state_[g][i];
      if (s.empty()) continue;
      c10::Dict<std::string, at::Tensor> tensors;
      for (const auto& [name, t] : s) tensors.insert(name, t.detach().cpu().clone());
      state.insert(index, tensors);
    }
    entry.insert("params", params);
    param_groups.push_back(entry);
  }
  auto out = string_dict();
  out.insert("state", state);
  out.insert("param_groups", param_groups);
  return out;
}

void Optimizer::load_state_dict(const c10::IValue& value) {
  if (!value.isGenericDict()) throw UsageError("optimizer state: expected a dict with \"state\" and \"param_groups\"");
  const auto dict = value.toGenericDict();
  if (!dict.contains("state") || !dict.contains("param_groups")) {
    throw UsageError("optimizer state: expected a dict with \"state\" and \"param_groups\"");
  }
  const auto groups = dict.at("param_groups").toList();
  if (groups.size() != groups_.size()) {
    throw UsageError(cat("optimizer state has ", groups.size(), " parameter groups, this optimizer ", groups_.size()));
  }
  std::vector<std::pair<std::size_t, std::size_t>> where;  // flat index → (group, param)
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const auto entry = groups.get(g).toGenericDict();
    const auto n = entry.at("params").toList().size();
    if (n != groups_[g].params.size()) {
      throw UsageError(cat("optimizer state: group ", g, " has ", n, " parameters, this optimizer ",
                           groups_[g].params.size()));
    }
    read_hyper(entry, groups_[g].hyper);
    for (std::size_t i = 0; i < n; ++i) where.emplace_back(g, i);
  }
  for (auto& group_state : state_) {
    for (auto& s : group_state) s.clear();
  }
  for (const auto& item : dict.at("state").toGenericDict()) {
    const auto index = static_cast<std::size_t>(item.key().toInt());
    if (index >= where.size()) throw UsageError(cat("optimizer state: parameter index ", index, " out of range"));
    const auto [g, i] = where[index];
    const auto& param = groups_[g].params[i];
    for (const auto& t : item.value().toGenericDict()) {
      const std::string name = t.key().toStringRef();
      at::Tensor tensor = t.value().toTensor();
      if (name != "step" && tensor.sizes() != param.sizes()) {
        throw UsageError(cat("optimizer state: \"", name, "\" of parameter ", index, " has shape ", tensor.sizes(),
                             ", the parameter ", param.sizes()));
      }
      // Moments follow the parameter; "step" keeps float32 on the parameter's device (fused kernels read it).
      const auto dtype = name == "step" ? at::kFloat : param.scalar_type();
      state_[g][i][name] = tensor.to(param.device(), dtype, /*non_blocking=*/false, /*copy=*/true);
    }
  }
}

}  // namespace deepspeed::optim
