#pragma once
/// \file
/// One fp32 state dict from a checkpoint (DeepSpeed's zero_to_fp32.py): for ZeRO stages 1–3 the fp32 master
/// shards of every rank are reassembled; for stage 0 the fp32 masters (16-bit training) or the fp32 module
/// weights are used. Buffers come from the module weights. Reads files only: no process group, no GPU.
/// checkpoint::save_state_dict (files.h) writes the result as a file torch.load reads.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace deepspeed::zero {

/// Parameter (and buffer) name → full fp32 tensor, in the model's order. `tag` defaults to `latest`.
/// Throws UsageError naming the file when the checkpoint is incomplete or not ours.
std::vector<std::pair<std::string, at::Tensor>> fp32_state_dict(const std::string& checkpoint_dir,
                                                                std::optional<std::string> tag = std::nullopt);

}  // namespace deepspeed::zero
