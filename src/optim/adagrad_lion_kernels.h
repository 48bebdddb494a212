#pragma once
// Internal: one Adagrad or Lion update of one parameter, two ways. The reference is LibTorch tensor ops (any
// device and dtype; what device parameters take). The host kernel is one pass over fp32 CPU memory (reads p,
// g and the state once, writes p and the state once), for ZeRO-Offload's host masters: the reference's five
// or six passes cost ~3-5× as much there (docs/benchmarks.md). Formulas in deepspeed/optim/adagrad_lion.h;
// the two agree to fp32 rounding (tests/unit/optimizer_test.cpp).

#include <ATen/core/Tensor.h>

#include "deepspeed/optim/optimizer.h"

namespace deepspeed::optim::detail {

void adagrad_reference(at::Tensor& p, at::Tensor g, at::Tensor& sum, const Hyper& h);
void lion_reference(at::Tensor& p, at::Tensor g, at::Tensor& momentum, const Hyper& h);

/// Whether the host kernels take this parameter: fp32 contiguous CPU p and state, an fp32 or bf16 contiguous
/// CPU gradient of the same size.
bool host_kernel_applies(const at::Tensor& p, const at::Tensor& g, const at::Tensor& state);
/// Call only where host_kernel_applies(). Threads: LibTorch's intra-op pool.
void adagrad_host(at::Tensor& p, const at::Tensor& g, at::Tensor& sum, const Hyper& h);
void lion_host(at::Tensor& p, const at::Tensor& g, at::Tensor& momentum, const Hyper& h);

}  // namespace deepspeed::optim::detail
