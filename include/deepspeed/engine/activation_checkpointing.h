#pragma once
/// \file
/// Activation checkpointing, the counterpart of `deepspeed.checkpointing`: run a piece of the forward without
/// keeping its intermediate activations, and recompute it during backward.
///
///   x = deepspeed::checkpointing::checkpoint([b = block.ptr()](const at::Tensor& h) { return b->forward(h); }, x);
///
/// (Capture the module's shared_ptr: a captured ModuleHolder is const inside the lambda, and its forward is not.)
///
/// Only the inputs are kept. In backward the function runs again under grad mode with the CPU and CUDA random
/// generators set back to their state at the forward (so dropout draws the same masks), and the gradient is
/// backpropagated through the recomputed graph: into the inputs and into every parameter the function uses,
/// even when no input requires grad. It is the reentrant scheme of DeepSpeed and torch.utils.checkpoint
/// (use_reentrant=True): `torch::autograd::grad()` through a checkpoint is refused, as there.
///
/// `activation_checkpointing` settings, set by configure():
///   - cpu_checkpointing: the saved inputs are copied to host memory in the forward (pinned, asynchronous
///     from the GPU) and brought back in backward. Only floating-point inputs move, as in DeepSpeed.
///   - partition_activations: each rank of a *model-parallel* group keeps 1/N of every saved floating-point
///     input and the group all-gathers them in backward. DeepSpeed partitions across the tensor-parallel
///     group, whose ranks hold identical activations; deepspeed.cpp has data parallelism only, where every
///     rank's activations differ, so partitioning needs a group passed to configure() explicitly and is a
///     no-op (with a warning) without one — as in DeepSpeed without an `mpu`.
///   - contiguous_memory_optimization (+ number_checkpoints): DeepSpeed copies the partitions into
///     preallocated per-layer buffers to fight fragmentation. Not implemented: the setting is validated
///     as DeepSpeed does (needs partition_activations and number_checkpoints) and otherwise ignored; the
///     CUDA caching allocator's segments already serve the equal-sized saved inputs of a transformer.
///   - synchronize_checkpoint_boundary: the device is synchronized at the start and end of every
///     checkpointed forward and backward.
///   - profile: rank 0 logs the time of every checkpointed forward and backward (device synchronized).

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/config/config.h"

namespace deepspeed {

namespace comm {
class Communicator;
}

namespace checkpointing {

/// Sets how checkpoint() behaves from the next call on (DeepSpeed's `checkpointing.configure`). Call it once,
/// before training, from the thread that runs the forward; every rank of a partition group must pass the same
/// settings. `partition_group`: the ranks among which saved inputs are split (they must all compute identical
/// checkpoint inputs); null keeps whole copies. Throws UsageError where DeepSpeed asserts:
/// contiguous_memory_optimization without partition_activations, or without number_checkpoints.
void configure(const config::ActivationCheckpointingConfig& settings,
               std::shared_ptr<comm::Communicator> partition_group = nullptr);

/// True once configure() has been called (DeepSpeed's is_configured()). checkpoint() works either way,
/// with all settings off until then.
bool is_configured();

/// The settings in force.
config::ActivationCheckpointingConfig settings();

/// Back to the defaults (nothing configured). For tests.
void reset();

/// The function checkpoint_tensors() runs: tensors in, tensors out.
using TensorFunction = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>;

/// Runs `fn(inputs)` keeping only the inputs (on the device, on the host, or partitioned, per configure()),
/// and returns its outputs, which carry a gradient function that recomputes `fn` in backward.
/// Contract: `fn` is stored until backward runs (or the graph is freed) and is called again from the
/// autograd thread there, so it must capture by value what it uses (module holders, not references to
/// locals) and compute the same function of its inputs and parameters (randomness is replayed; other state
/// must not change between forward and backward). Inputs must be defined; integer inputs are passed through
/// without gradients, and so are integer outputs. Outputs must not be inputs returned unchanged.
/// Under no-grad mode (evaluation) this is `fn(inputs)`: nothing is saved.
std::vector<at::Tensor> checkpoint_tensors(TensorFunction fn, std::vector<at::Tensor> inputs);

namespace detail {
template <typename T>
struct IsTensorTuple : std::false_type {};
template <typename... T>
struct IsTensorTuple<std::tuple<T...>> : std::bool_constant<(std::same_as<T, at::Tensor> && ...)> {};

template <typename R>
std::vector<at::Tensor> to_tensors(R&& r) {
  using D = std::decay_t<R>;
  if constexpr (std::same_as<D, at::Tensor>) {
    return {std::forward<R>(r)};
  } else if constexpr (std::same_as<D, std::vector<at::Tensor>>) {
    return std::forward<R>(r);
  } else {
    return std::apply([](auto&&... t) { return std::vector<at::Tensor>{std::forward<decltype(t)>(t)...}; },
                      std::forward<R>(r));
  }
}

template <typename R, std::size_t... I>
R from_tensors(std::vector<at::Tensor>&& v, std::index_sequence<I...>) {
  return R(std::move(v[I])...);
}
}  // namespace detail

/// deepspeed.checkpointing.checkpoint(function, *args): `fn` takes the tensors `inputs...` and returns an
/// at::Tensor, a std::vector<at::Tensor> or a std::tuple of tensors; checkpoint returns the same type.
/// See checkpoint_tensors() for the contract on `fn`.
template <typename Fn, typename... Inputs>
  requires(sizeof...(Inputs) > 0 && (std::same_as<std::decay_t<Inputs>, at::Tensor> && ...))
auto checkpoint(Fn fn, const Inputs&... inputs) {
  using R = std::decay_t<std::invoke_result_t<Fn&, const Inputs&...>>;
  static_assert(std::same_as<R, at::Tensor> || std::same_as<R, std::vector<at::Tensor>> ||
                    detail::IsTensorTuple<R>::value,
                "checkpoint: the function must return at::Tensor, std::vector<at::Tensor> or std::tuple<at::Tensor...>");
  TensorFunction erased = [fn = std::move(fn)](const std::vector<at::Tensor>& in) mutable {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return detail::to_tensors(fn(in[I]...));
    }(std::index_sequence_for<Inputs...>{});
  };
  std::vector<at::Tensor> outputs = checkpoint_tensors(std::move(erased), {inputs...});
  if constexpr (std::same_as<R, at::Tensor>) {
    return std::move(outputs.at(0));
  } else if constexpr (std::same_as<R, std::vector<at::Tensor>>) {
    return outputs;
  } else {
    return detail::from_tensors<R>(std::move(outputs), std::make_index_sequence<std::tuple_size_v<R>>{});
  }
}

}  // namespace checkpointing
}  // namespace deepspeed
