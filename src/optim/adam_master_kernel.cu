// Adam/AdamW over fp32 master weights in one pass per element: read the gradient (fp32 or 16-bit, scaled as it
// is read), the master, both moments; write the master, both moments and the model's 16-bit copy of the
// weight. LibTorch's fused kernel does the same arithmetic but reads a gradient already scaled by a separate
// pass (8 bytes per element) and leaves the 16-bit copy to another pass that reads the master again (6 bytes):
// 42 bytes per element there, 30 here with fp32 gradients. The arithmetic follows torch.optim's fused
// kernel term for term (fma for the moments, the bias corrections in fp32 as LibTorch 2.11 computes them), so the two
// agree to rounding; the GPU test holds them together.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>

#include "src/optim/adam_master_kernel.h"
#include "src/util/chunk_table.h"
#include "src/util/cuda_values.cuh"

namespace deepspeed::optim::detail {
namespace {

constexpr int kThreads = 256;
constexpr int kVec = 4;  // elements per thread per access: float4 of fp32, 8 bytes of 16-bit values
static_assert(kAdamChunk % (kThreads * kVec) == 0);

using ::deepspeed::cuda::from_float;
using ::deepspeed::cuda::to_float;

// kVec values of T at p (aligned to kVec·sizeof(T)), as floats.
template <typename T>
__device__ __forceinline__ void load_vec(const T* __restrict__ p, float (&out)[kVec]) {
  if constexpr (sizeof(T) == 4) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
  } else {
    const uint2 raw = *reinterpret_cast<const uint2*>(p);
    T values[kVec];
    memcpy(values, &raw, sizeof raw);
#pragma unroll
    for (int k = 0; k < kVec; ++k) out[k] = to_float(values[k]);
  }
}

template <typename T>
__device__ __forceinline__ void store_vec(T* __restrict__ p, const float (&in)[kVec]) {
  if constexpr (sizeof(T) == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(in[0], in[1], in[2], in[3]);
  } else {
    T values[kVec];
#pragma unroll
    for (int k = 0; k < kVec; ++k) values[k] = from_float<T>(in[k]);
    uint2 raw;
    memcpy(&raw, values, sizeof raw);
    *reinterpret_cast<uint2*>(p) = raw;
  }
}

struct Coefficients {
  float lr, beta1, beta2, eps, weight_decay, grad_scale, step_size, bias_correction2_sqrt;
  bool adam_w_mode;
};

// torch.optim's fused Adam(W) step for one element, in its order of operations.
__device__ __forceinline__ void adam_element(float& param, float grad, float& m, float& v, const Coefficients& c) {
  // Rounded on its own, as the separate scaling pass stores it: contracted into Adam's L2 term below
  // (fma(grad, scale, param·wd)) it rounded differently (adam_upcast_test, H200).
  grad = __fmul_rn(grad, c.grad_scale);
  if (c.weight_decay != 0.0f) {
    if (c.adam_w_mode) param -= c.lr * c.weight_decay * param;
    else grad += param * c.weight_decay;
  }
  m = fmaf(c.beta1, m, fmaf(-c.beta1, grad, grad));
  v = fmaf(c.beta2, v, fmaf(-c.beta2, grad * grad, grad * grad));
  const float denom = (sqrtf(v) / c.bias_correction2_sqrt) + c.eps;
  param -= c.step_size * m / denom;
}

template <typename G, typename C>
__global__ void __launch_bounds__(kThreads)
    adam_master_step(const AdamTensorArgs* __restrict__ tensors, int count, AdamLaunchHyper hyper) {
  __shared__ int tensor_index;
  const std::int64_t chunk = blockIdx.x;
  if (threadIdx.x == 0) tensor_index = util::chunk_owner(tensors, count, chunk);
  __syncthreads();
  const AdamTensorArgs t = tensors[tensor_index];
  Coefficients c;
  c.lr = static_cast<float>(hyper.lr);
  c.beta1 = static_cast<float>(hyper.beta1);
  c.beta2 = static_cast<float>(hyper.beta2);
  c.eps = static_cast<float>(hyper.eps);
  c.weight_decay = static_cast<float>(hyper.weight_decay);
  c.grad_scale = hyper.grad_scale_on_device != nullptr ? *hyper.grad_scale_on_device : hyper.grad_scale;
  const float step = *t.step;
  const float bias_correction1 = 1.0f - powf(c.beta1, step);
  c.step_size = c.lr / bias_correction1;
  c.bias_correction2_sqrt = sqrtf(1.0f - powf(c.beta2, step));
  c.adam_w_mode = hyper.adam_w_mode;

  const std::int64_t begin = (chunk - t.first_chunk) * kAdamChunk;
  const std::int64_t end = min(t.numel, begin + kAdamChunk);
  const G* grad = static_cast<const G*>(t.grad);
  C* copy = static_cast<C*>(t.copy);
  std::int64_t i = begin + static_cast<std::int64_t>(threadIdx.x) * kVec;
  if (t.vector) {
    for (; i + kVec <= end; i += kThreads * kVec) {
      float p[kVec], g[kVec], m[kVec], v[kVec];
      load_vec(t.param + i, p);
      load_vec(grad + i, g);
      load_vec(t.exp_avg + i, m);
      load_vec(t.exp_avg_sq + i, v);
#pragma unroll
      for (int k = 0; k < kVec; ++k) adam_element(p[k], g[k], m[k], v[k], c);
      store_vec(t.param + i, p);
      store_vec(t.exp_avg + i, m);
      store_vec(t.exp_avg_sq + i, v);
      if (copy != nullptr) store_vec(copy + i, p);
    }
  }
  // Element by element: unaligned tensors, and the last few elements of an aligned one (one thread's group).
  for (; i < end; i += kThreads * kVec) {
    for (std::int64_t j = i; j < min(end, i + kVec); ++j) {
      float p = t.param[j], m = t.exp_avg[j], v = t.exp_avg_sq[j];
      adam_element(p, to_float(grad[j]), m, v, c);
      t.param[j] = p;
      t.exp_avg[j] = m;
      t.exp_avg_sq[j] = v;
      if (copy != nullptr) copy[j] = from_float<C>(p);
    }
  }
}

template <typename G>
cudaError_t launch_for_grad(AdamValueType copy_type, const AdamTensorArgs* tensors, int count,
                            std::int64_t total_chunks, const AdamLaunchHyper& hyper, cudaStream_t stream) {
  const auto grid = static_cast<unsigned>(total_chunks);
  switch (copy_type) {
    case AdamValueType::kBFloat16:
      adam_master_step<G, __nv_bfloat16><<<grid, kThreads, 0, stream>>>(tensors, count, hyper);
      break;
    case AdamValueType::kFloat16:
      adam_master_step<G, __half><<<grid, kThreads, 0, stream>>>(tensors, count, hyper);
      break;
    default:
      adam_master_step<G, float><<<grid, kThreads, 0, stream>>>(tensors, count, hyper);
      break;
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_adam_master_step(AdamValueType grad_type, AdamValueType copy_type, const AdamTensorArgs* tensors,
                                    int count, std::int64_t total_chunks, const AdamLaunchHyper& hyper,
                                    cudaStream_t stream) {
  if (count <= 0 || total_chunks <= 0) return cudaSuccess;
  if (total_chunks > 0x7fffffff) return cudaErrorInvalidValue;
  switch (grad_type) {
    case AdamValueType::kBFloat16:
      return launch_for_grad<__nv_bfloat16>(copy_type, tensors, count, total_chunks, hyper, stream);
    case AdamValueType::kFloat16:
      return launch_for_grad<__half>(copy_type, tensors, count, total_chunks, hyper, stream);
    default:
      return launch_for_grad<float>(copy_type, tensors, count, total_chunks, hyper, stream);
  }
}

}  // namespace deepspeed::optim::detail
