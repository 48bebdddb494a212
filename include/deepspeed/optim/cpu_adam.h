#pragma once
/// \file
/// DeepSpeedCPUAdam: Adam/AdamW on the CPU over fp32 master parameters and fp32 moments, the optimizer of
/// ZeRO-Offload. Its kernel fuses, in one pass over memory, the up-cast of 16-bit gradients, the moment and
/// parameter update, and the down-cast of the updated parameters into a 16-bit copy (the buffer the GPU's
/// bf16/fp16 weights are refreshed from). The pass is memory-bound, so touching each byte once is the point.
///
/// Two layers: a raw kernel over flat shards (pointers + length) that ZeRO calls on its partitions, and the
/// `CpuAdam` optimizer that drives the same kernel through the Optimizer interface.
///
/// Arithmetic is fp32 in a fixed order (FMA where the SIMD path uses FMA), so the AVX-512, AVX2 and scalar
/// paths produce bit-identical results for any length and any thread count. 16-bit write-back rounds to
/// nearest-even, as at::kBFloat16 / at::kHalf conversions do.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/optim/optimizer.h"

namespace deepspeed::optim {

/// Element type of a gradient or parameter-copy buffer handed to the CPU Adam kernel.
enum class ElemType : std::uint8_t { kFloat32, kBFloat16, kFloat16 };

/// Instruction set of a CPU Adam kernel. Chosen at run time; the library is built without -march flags.
enum class CpuIsa : std::uint8_t { kScalar, kAvx2, kAvx512 };

/// Best kernel this CPU runs: AVX-512 (needs avx512f+bw+vl), else AVX2 (needs avx2+fma+f16c), else scalar.
CpuIsa best_cpu_isa();
/// Whether this CPU can run kernels of `isa`.
bool cpu_isa_supported(CpuIsa isa);
/// "AVX512", "AVX2" or "scalar" (DeepSpeed's log wording).
const char* cpu_isa_name(CpuIsa isa);

/// One flat shard as the kernel sees it. All arrays hold `numel` elements and must not overlap; no alignment
/// is required. `params`, `exp_avg`, `exp_avg_sq` are fp32 and updated in place. `grads` is read only.
/// `param_copy` (optional; nullptr = none) receives the updated parameters in `copy_type`.
struct CpuAdamShard {
  float* params = nullptr;
  const void* grads = nullptr;
  ElemType grad_type = ElemType::kFloat32;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  void* param_copy = nullptr;
  ElemType copy_type = ElemType::kBFloat16;
  std::size_t numel = 0;
  /// Every gradient is multiplied by this first (the engine's unscale / clipping factor, folded into the pass
  /// instead of a separate one over the gradients); 1 leaves them as they are.
  float grad_scale = 1.0f;
  /// Optional (nullptr = none): 3·numel floats that receive the values params, exp_avg and exp_avg_sq had
  /// before this update, in that order, each run numel long — what an update made before it is known to be
  /// the right one (ZeRO-Offload's speculation, zero/step_speculation.h) is undone from. Saved block by block
  /// just before the block is updated, so the update reads them from cache: the pass writes 12 more bytes per
  /// element and reads none more. Must not overlap the other arrays.
  float* backup = nullptr;
};

/// Execution knobs of the kernel.
struct CpuAdamExec {
  CpuIsa isa = best_cpu_isa();  ///< must satisfy cpu_isa_supported()
  /// Split the shard over OpenMP threads (omp_get_max_threads(); set it with omp_set_num_threads or
  /// at::set_num_threads, which share LibTorch's libgomp). Small shards always run on the calling thread.
  bool parallel = true;
  /// With `parallel`: at most this many threads; 0 takes omp_get_max_threads() of the calling thread.
  int threads = 0;
  /// Write the 16-bit copy with non-temporal stores (SIMD paths, aligned runs): ZeRO-Offload's copies are
  /// read next by the upload's DMA, and a cached store first reads the line it overwrites (2 more bytes per
  /// element on a pass of 28). Results are the same either way.
  bool stream_copy = true;
};

/// How super_offload shares `total` CPU threads while backward goes on: `adam` for its speculative updates,
/// `norm` for summing the landed gradients' ‖g‖² beside them — round(cores_perc × total) and the rest, each
/// at least 1 (so with one thread both get one).
struct SpeculationThreads {
  int adam = 1;
  int norm = 1;
};
SpeculationThreads speculation_threads(double cores_perc, int total);

/// One Adam step on a shard, DeepSpeed's Adam_Optimizer::Step semantics: with `h.adam_w_mode` the decay is
/// decoupled (p *= 1 - lr·wd), otherwise it is L2 (g += wd·p); decay applies only when weight_decay > 0;
/// denominator sqrt(v)/sqrt(1-β2^t) + eps. Constants are folded in double and rounded to fp32 the way
/// torch.optim and FusedAdam round them, so the offloaded step tracks the on-device one to fp32 noise.
/// `step` is 1-based (the count after incrementing). h.amsgrad is rejected. Thread-safe for disjoint shards;
/// `exec.parallel` splits one shard over OpenMP threads.
void cpu_adam_step(const Hyper& h, std::int64_t step, const CpuAdamShard& shard, const CpuAdamExec& exec = {});

/// Tensor form of cpu_adam_step: `params`, `exp_avg`, `exp_avg_sq` contiguous fp32 CPU tensors of equal numel;
/// `grads` contiguous CPU fp32, bf16 or fp16 of the same numel; `param_copy` undefined (no write-back) or a
/// contiguous CPU bf16/fp16 tensor of the same numel (may be pinned memory). Throws std::invalid_argument on
/// any other layout.
void cpu_adam_step(const Hyper& h, std::int64_t step, const at::Tensor& params, const at::Tensor& grads,
                   const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq, const at::Tensor& param_copy = {},
                   const CpuAdamExec& exec = {}, float grad_scale = 1.0f);

/// DeepSpeed's DeepSpeedCPUAdam over fp32 parameters. State per parameter: "step" (0-dim fp32 tensor beside
/// the parameter, the torch.optim layout), "exp_avg", "exp_avg_sq" (fp32, shaped like the parameter). CPU
/// parameters take the CPU kernel; parameters on a device (the masters a partial offload, ratio < 1, leaves
/// there) take LibTorch's fused multi-tensor step, so one optimizer serves both.
class CpuAdam : public Optimizer {
 public:
  /// Every parameter must be a contiguous fp32 tensor; throws std::invalid_argument otherwise, or when a
  /// group asks for amsgrad.
  explicit CpuAdam(std::vector<ParamGroup> groups, CpuIsa isa = best_cpu_isa());

  std::string name() const override { return "DeepSpeedCPUAdam"; }

  /// Updates every parameter whose grad() is defined. grad() may be fp32, bf16 or fp16 (ZeRO-Offload points
  /// it at the 16-bit gradient buffer it copied from the GPU; the up-cast happens inside the kernel). A copy
  /// registered with set_param_copy() is rewritten from the updated parameter in the same pass.
  void step() override;

  /// Steps one parameter with an explicit gradient (fp32/bf16/fp16, contiguous CPU, same numel, multiplied by
  /// `grad_scale` on the way in) and optional 16-bit copy to write the updated values into; increments that
  /// parameter's step count.
  void step_fused(std::size_t group, std::size_t index, const at::Tensor& grad, const at::Tensor& param_copy = {},
                  float grad_scale = 1.0f);

  /// Folds the engine's gradient factor into the next step() (the kernel multiplies as it reads, so no pass
  /// over the gradients is spent on it).
  bool take_gradient_scale(double coefficient) override {
    grad_scale_ = coefficient;
    return true;
  }
  /// The host kernel up-casts as it reads; masters a partial offload left on the device go through
  /// FusedAdam's sliced up-cast.
  bool upcasts_gradients() const override { return true; }

  /// Registers (or clears, with an undefined tensor) the 16-bit tensor step() writes parameter (group, index)
  /// into: contiguous CPU bf16/fp16 of the parameter's numel.
  void set_param_copy(std::size_t group, std::size_t index, at::Tensor copy);

  /// ZeRO-Offload's layout steps the CPU tensors that have a 16-bit copy itself, range by range from its
  /// worker thread (zero::HostStepper): step() then updates only the others (a partial offload's) and, for
  /// those, advances their step counts and keeps the gradient scale for the ranges that follow — unless
  /// begin_host_step() already did so for this step.
  void set_external_host_steps(bool on) { external_host_ = on; }
  /// For an update the layout runs during backward, before step(): advances the CPU tensors' counts now.
  void begin_host_step();
  /// After step(): the factor the layout's ranges of this step multiply their gradients by (the engine's
  /// unscale × clipping coefficient, 1 when it gave none).
  float host_gradient_scale() const { return host_scale_; }
  /// Updates elements [offset, offset + numel) of CPU tensor (group, index) from `grad` (those elements'
  /// gradient: fp32/bf16/fp16, contiguous CPU, multiplied by `grad_scale` as it is read) with the step count
  /// in force and the hyper-parameters of the step (as begin_host_step(), else step(), found them: the LR
  /// scheduler may move on while ranges are still queued), writing the registered copy's elements too; with `backup`, first saves
  /// the range's old values there (CpuAdamShard::backup). Ranges of one step may run concurrently with each
  /// other and with step()'s device work; not with set_param_copy() or a state load.
  void step_host_range(std::size_t group, std::size_t index, std::int64_t offset, std::int64_t numel,
                       const at::Tensor& grad, float grad_scale, float* backup = nullptr);
  /// Puts back the values a step_host_range() over the same range saved into `backup` (the registered copy
  /// is left as it is: the range's next update rewrites it). Same threading rules.
  void restore_host_range(std::size_t group, std::size_t index, std::int64_t offset, std::int64_t numel,
                          const float* backup);

  CpuIsa isa() const { return exec_.isa; }
  /// Threads are OpenMP's; `parallel=false` keeps each step on the calling thread.
  void set_parallel(bool parallel) { exec_.parallel = parallel; }
  /// Threads for the ranges step_host_range() updates with a backup (speculatively, while the gradient
  /// norm is still being summed on other threads); 0, the default, leaves them at exec's count.
  void set_speculative_threads(int threads) { speculative_threads_ = threads; }

 private:
  void snapshot_host_hyper();
  bool layout_steps(std::size_t group, std::size_t index) const {
    return external_host_ && copies_.at(group).at(index).defined();
  }

  CpuAdamExec exec_;
  std::vector<std::vector<at::Tensor>> copies_;
  double grad_scale_ = 1.0;  // for the next step() only
  bool external_host_ = false;
  bool host_begun_ = false;  // begin_host_step() ran for the coming step()
  float host_scale_ = 1.0f;  // the gradient scale step() took for the layout's ranges
  std::vector<Hyper> host_hyper_;  // per group: the hyper-parameters of the step the layout's ranges belong to
  int speculative_threads_ = 0;
};

}  // namespace deepspeed::optim
