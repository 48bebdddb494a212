#pragma once
// Torch-free launchers of the fused residual-add + LayerNorm kernels (add_layer_norm_kernel.cu), so nvcc never
// parses ATen.

#include <cstdint>
#include <initializer_list>

#include <cuda_runtime_api.h>

#include "src/ops/element_type.h"

namespace deepspeed::ops::detail {

/// Longest row the kernels take: a row is held in registers, 16 values per thread, at most 512 threads per row.
inline constexpr std::int64_t kAddLayerNormMaxColumns = 8192;

/// Per row r of residual, branch [rows, columns] (contiguous, `type`): h = round(residual + b) in `type` with
/// b = branch, or b = round(branch + branch_bias) in `type` when branch_bias is not null; mean[r] and
/// rstd[r] = 1/sqrt(var + eps) of that rounded h (fp32, biased variance), and y = (h − mean)·rstd·weight + bias
/// in `type`. branch_bias, weight and bias [columns] are `param_type`, which is `type` or kFloat32.
/// 1 ≤ columns ≤ kAddLayerNormMaxColumns. Asynchronous on `stream`; returns the launch error.
cudaError_t launch_add_layer_norm_forward(ElementType type, ElementType param_type, const void* residual,
                                          const void* branch, const void* branch_bias, const void* weight,
                                          const void* bias, void* h, void* y, float* mean, float* rstd,
                                          std::int64_t rows, std::int64_t columns, float eps, cudaStream_t stream);

/// Rows of the fp32 workspace launch_add_layer_norm_backward needs: it takes [2, parts, columns] floats, or
/// [3, parts, columns] with a branch bias (one partial dweight, dbias and dbranch_bias row per block of the
/// backward grid, which is sized to fill the device once). Depends on the current device's SM count.
std::int64_t add_layer_norm_backward_parts(std::int64_t rows, std::int64_t columns);

/// With x̂ = (h − mean)·rstd and g = dy·weight, per row: dh = dh_out + rstd·(g − mean(g) − x̂·mean(g·x̂)) in
/// `type` (dh_out may be null: zero); over all rows: dweight = Σ dy·x̂, dbias = Σ dy and, when dbranch_bias is
/// not null, dbranch_bias = Σ dh (of dh as stored, rounded to `type`), summed in fp32 in a fixed order
/// (deterministic) and rounded once to `param_type`. `workspace` holds 2 × parts × columns floats (3 × with
/// dbranch_bias), parts from add_layer_norm_backward_parts(rows, columns). Asynchronous on `stream`; returns
/// the launch error.
cudaError_t launch_add_layer_norm_backward(ElementType type, ElementType param_type, const void* dy, const void* h,
                                           const float* mean, const float* rstd, const void* weight,
                                           const void* dh_out, void* dh, void* dweight, void* dbias,
                                           void* dbranch_bias, float* workspace, std::int64_t parts, std::int64_t rows,
                                           std::int64_t columns, cudaStream_t stream);

/// The same contract as launch_add_layer_norm_backward, computed in two passes (add_layer_norm_split_kernel.cu):
/// dh per row, then the parameters' gradients as column sums that read dy, h (and dh) again. dh is the fused
/// kernel's arithmetic; the parameter gradients differ from its by summation order. Takes the same workspace
/// (parts from add_layer_norm_backward_parts) and uses as many of its rows as its own grid needs.
/// launch_add_layer_norm_backward calls it when DS_ADD_LAYER_NORM_SPLIT=1 (read at every launch).
cudaError_t launch_add_layer_norm_backward_split(ElementType type, ElementType param_type, const void* dy,
                                                 const void* h, const float* mean, const float* rstd,
                                                 const void* weight, const void* dh_out, void* dh, void* dweight,
                                                 void* dbias, void* dbranch_bias, float* workspace,
                                                 std::int64_t parts, std::int64_t rows, std::int64_t columns,
                                                 cudaStream_t stream);

/// The backward with one 16-byte pack a thread (add_layer_norm_wide_kernel.cu), the same contract as
/// launch_add_layer_norm_backward for 16-bit `type` with columns a multiple of 8 up to 2048 and 16-byte aligned
/// pointers (add_layer_norm_wide_fits); `ahead` (1 or 2): rows whose loads are in flight while one is reduced.
/// dh is the default kernel's arithmetic with its row sums grouped otherwise (it may differ in the last bit);
/// the parameters' gradients are summed in a fixed order grouped by its own grid (deterministic, not the
/// default's bits). launch_add_layer_norm_backward calls it when DS_ADD_LAYER_NORM_WIDE=1 or 2 (read at every
/// launch; add_layer_norm_wide_ahead) and the case fits.
cudaError_t launch_add_layer_norm_backward_wide(ElementType type, ElementType param_type, const void* dy,
                                                const void* h, const float* mean, const float* rstd,
                                                const void* weight, const void* dh_out, void* dh, void* dweight,
                                                void* dbias, void* dbranch_bias, float* workspace, std::int64_t parts,
                                                std::int64_t rows, std::int64_t columns, int ahead,
                                                cudaStream_t stream);

/// DS_ADD_LAYER_NORM_WIDE: the rows ahead, 1 for "1" and 2 for "2"; 0 (the default kernel) unset or otherwise.
int add_layer_norm_wide_ahead();

/// Whether the wide backward takes this case: 16-bit values, columns % 8 == 0 and ≤ 2048, aligned pointers.
bool add_layer_norm_wide_fits(ElementType type, std::int64_t columns, std::initializer_list<const void*> pointers);

/// Workspace rows the wide backward may use (0 where its shape does not fit); add_layer_norm_backward_parts
/// takes the larger of this and its own while DS_ADD_LAYER_NORM_WIDE is set.
std::int64_t add_layer_norm_backward_wide_parts(std::int64_t rows, std::int64_t columns);

}  // namespace deepspeed::ops::detail
