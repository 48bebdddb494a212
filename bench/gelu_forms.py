#!/usr/bin/env python3
"""The two forms of GELU (tanh) the bias + GELU kernels use, compared over every finite 16-bit input h with
|h| < 20 (bf16 and fp16), in fp32 as the kernels compute it:

  tanhf's form  ½h(1 + tanh u), u = √(2/π)(h + 0.044715h³)   (ATen's; the kernels' form for fp32 inputs)
  σ form        h·σ(2u) = h / (1 + 2^(−2u·log2 e))           (the kernels' form for 16-bit inputs)

and the derivatives likewise. Prints, per dtype and value, how many rounded 16-bit results differ, the largest
difference in the unit tests' metric (|a − b| / (|b| + rms) in eps), and each form's largest error against
float64 in that metric. numpy's exp2 and division stand in for the device's ex2.approx and rcp.approx (a few
fp32 units further off), so this bounds the formula, not the instructions; bias_gelu_gpu_test measures those.

    python3 bench/gelu_forms.py
"""
import numpy as np
import torch

K = np.float32(0.7978845608028654)
C = np.float32(0.044715)
LOG2E = np.float32(1.4426950408889634)
ONE, HALF = np.float32(1), np.float32(0.5)


def tanh_form(h):
    return HALF * h * (ONE + np.tanh(K * (h + C * (h * h * h))))


def tanh_form_grad(h):
    square = h * h
    t = np.tanh(K * (h + C * (square * h)))
    return HALF * (ONE + t) + HALF * h * (ONE - t * t) * (K * (ONE + np.float32(3) * C * square))


def sigmoid_of_2u(h):
    u = h * (K + (K * C) * (h * h))
    return ONE / (ONE + np.exp2(np.float32(-2) * LOG2E * u))


def sigma_form(h):
    return h * sigmoid_of_2u(h)


def sigma_form_grad(h):
    s = sigmoid_of_2u(h)
    slope = h * (np.float32(2) * K + (np.float32(6) * K * C) * (h * h))
    return s * (ONE + (ONE - s) * slope)


def main():
    for dtype in (torch.bfloat16, torch.float16):
        h = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(dtype).float().numpy()
        h = h[np.isfinite(h) & (np.abs(h) < 20)]
        eps = torch.finfo(dtype).eps
        with np.errstate(all="ignore"):
            for what, reference, fast in (("y", tanh_form, sigma_form), ("dy/dh", tanh_form_grad, sigma_form_grad)):
                want, got = reference(h), fast(h)
                exact = reference(h.astype(np.float64))
                rms = np.sqrt(np.mean(exact ** 2))
                want16 = torch.from_numpy(want).to(dtype).float().numpy()
                got16 = torch.from_numpy(got).to(dtype).float().numpy()
                metric = lambda a, b: np.max(np.abs(a - b) / (np.abs(b) + rms))  # noqa: E731
                print(f"{str(dtype):15} {what:6} {len(h)} inputs: rounded results differ in {int((got16 != want16).sum())},"
                      f" by at most {metric(got16, want16) / eps:.3f} eps; error against float64:"
                      f" tanhf {metric(want, exact):.2e}, σ {metric(got, exact):.2e}")


if __name__ == "__main__":
    main()
