// The ops/ kernels' per-value arithmetic, run on the CPU: the same __host__ __device__ functions the kernels call
// (gelu_math.cuh, softmax_sum.cuh, grid_stride.cuh), against float64 references and the kernels' documented
// rules for −∞, +∞ and NaN. CI has no GPU, so this is where a formula's algebra and its special values are held;
// the GPU tests hold the special-function unit's last bits (fast_exp2 is the C library's exp2 here, ex2.approx there).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "src/ops/gelu_math.cuh"
#include "src/ops/grid_stride.cuh"
#include "src/ops/softmax_sum.cuh"
#include "src/util/cuda_values.cuh"

namespace {

using deepspeed::cuda::from_float;
using deepspeed::cuda::round_to;
using deepspeed::cuda::to_float;
namespace detail = deepspeed::ops::detail;

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------------------------
// GELU (tanh approximation)

// In float64, written without cancellation: ½(1 + tanh u) = 1/(1 + e^(−2u)) and 1 − tanh² u = 4σ(2u)σ(−2u); the
// formula as ATen writes it cancels to 0 for h below about −6.7 even in float64.
double half_one_plus_tanh(double u, bool negated = false) { return 1.0 / (1.0 + std::exp(negated ? 2 * u : -2 * u)); }

double gelu_u(double h) { return std::sqrt(2.0 / M_PI) * (h + 0.044715 * h * h * h); }

double gelu_reference(double h) { return h * half_one_plus_tanh(gelu_u(h)); }

double gelu_grad_reference(double h) {
  const double u = gelu_u(h), s = half_one_plus_tanh(u), one_minus_s = half_one_plus_tanh(u, true);
  return s + 2.0 * h * s * one_minus_s * std::sqrt(2.0 / M_PI) * (1.0 + 3.0 * 0.044715 * h * h);
}

template <typename T>
std::uint16_t bits_of(T v) {
  std::uint16_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

template <typename T>
T from_bits(std::uint16_t b) {
  T v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// Position of a 16-bit float on the number line, in units of its last place (−0 and +0 both 0).
template <typename T>
std::int32_t ordinal(float x) {
  const std::uint16_t b = bits_of(from_float<T>(x));
  const std::int32_t magnitude = b & 0x7fff;
  return (b & 0x8000) ? -magnitude : magnitude;
}

// Units of T between x and y, both rounded to T (two NaNs: 0).
template <typename T>
std::int32_t units_apart(float x, float y) {
  if (std::isnan(x) && std::isnan(y)) return 0;
  return std::abs(ordinal<T>(x) - ordinal<T>(y));
}

// x rounded to T from a double, in one rounding.
template <typename T>
float rounded(double x) {
  if constexpr (std::is_same_v<T, __half>) return to_float(__double2half(x));
  else return to_float(__double2bfloat16(x));
}

struct FormError {
  std::int32_t max_units = 0;  // rounded to T, against the float64 value rounded to T
  int off_by_one = 0;          // inputs whose rounded result is the neighbour of the reference's
  int nan = 0;                 // inputs where one is NaN and the other not
  int inputs = 0;
};

// Every finite value of T as the GELU input (what the kernels feed the function: round_to<T>(x + b)), except
// those whose reference is smaller than `floor` in magnitude.
template <typename T, typename Fn, typename Ref>
FormError over_every_input(Fn fn, Ref ref, double floor = 0.0) {
  FormError e;
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const float h = to_float(from_bits<T>(static_cast<std::uint16_t>(b)));
    const double r = ref(h);
    if (!std::isfinite(h) || std::fabs(r) < floor) continue;
    const float y = round_to<T>(fn(h));
    if (std::isnan(y) != std::isnan(r)) {
      ++e.nan;
      continue;
    }
    const std::int32_t u = units_apart<T>(y, rounded<T>(r));
    e.max_units = std::max(e.max_units, u);
    e.off_by_one += u == 1;
    ++e.inputs;
  }
  return e;
}

// Below ~1e-37 the σ form gives 0 (σ = 1/(1 + e^(−2u)) from the unit's reciprocal, 0 for a denominator above
// 2¹²⁶; GELU(h < −10) ≈ h·e^(2u)), where bf16 could still hold the value: held only above 1e-36.
constexpr double kSigmaFloor = 1e-36;

template <typename T>
void expect_sigma_form_within_one_unit(const char* type) {
  const auto y = over_every_input<T>(detail::gelu_sigmoid, gelu_reference, kSigmaFloor);
  const auto dy = over_every_input<T>(detail::gelu_sigmoid_grad, gelu_grad_reference, kSigmaFloor);
  // ATen's form, which the fp32 kernels take (bit for bit ATen's on the GPU; glibc's tanhf here), for the
  // record, not held: 1 + tanh u cancels to 0 below h ≈ −6.7 (GELU ≈ −1e-14, which bf16 holds) and 1 − t² near
  // t = ±1 leaves the derivative a few units off.
  const auto y_tanhf = over_every_input<T>(detail::gelu_tanh, gelu_reference, 1e-6);
  const auto dy_tanhf = over_every_input<T>(detail::gelu_tanh_grad, gelu_grad_reference, 1e-6);
  std::printf("%s: σ form one unit off at %d of %d inputs (derivative %d); tanhf's form at most %d units off "
              "(derivative %d, and NaN at %d inputs) where |GELU| ≥ 1e-6\n",
              type, y.off_by_one, y.inputs, dy.off_by_one, y_tanhf.max_units, dy_tanhf.max_units, dy_tanhf.nan);
  // One unit is a rounding that lands on the other side of a tie; two would be a wrong formula.
  EXPECT_LE(y.max_units, 1) << type << " σ form";
  EXPECT_LE(dy.max_units, 1) << type << " σ form's derivative";
  EXPECT_EQ(y.nan + dy.nan, 0) << type << " σ form: NaN where the value is a number, or the other way";
}

TEST(GeluMath, EveryBf16InputRoundsToTheFloat64ValueOrItsNeighbour) {
  expect_sigma_form_within_one_unit<__nv_bfloat16>("bf16");
}

TEST(GeluMath, EveryFp16InputRoundsToTheFloat64ValueOrItsNeighbour) {
  expect_sigma_form_within_one_unit<__half>("fp16");
}

// The derivative in fp32, before the kernels multiply it by dy and round: within a few fp32 units of the
// float64 value, relative to the size of its terms (the derivative crosses zero near h = −0.75, where a
// relative error of the difference says nothing).
TEST(GeluMath, DerivativeIsCloseToFloat64InFp32) {
  double worst_sigma = 0, worst_tanhf = 0;
  for (float h = -12.0f; h <= 12.0f; h += 1.0f / 1024) {
    const double ref = gelu_grad_reference(h);
    const double scale = std::max(1.0, std::fabs(static_cast<double>(h)));
    worst_sigma = std::max(worst_sigma, std::fabs(detail::gelu_sigmoid_grad(h) - ref) / scale);
    worst_tanhf = std::max(worst_tanhf, std::fabs(detail::gelu_tanh_grad(h) - ref) / scale);
  }
  const double eps = std::numeric_limits<float>::epsilon();
  // Measured (glibc's exp2 and tanhf): σ form 3.3 eps, at h ≈ 5, where 1 − σ is a few fp32 units and the slope
  // ~34; tanhf's 1.0 eps. On the GPU ex2.approx and the reciprocal add about two units of σ.
  EXPECT_LT(worst_sigma, 6 * eps);
  EXPECT_LT(worst_tanhf, 3 * eps);
}

// At the edges of bf16's range, where h² or h³ overflow fp32: the σ form's GELU is ATen's form's value, and its
// derivative the true one (1 or 0; ATen's form gives NaN once h² overflows, at |h| > 1.8e19). NaN stays NaN;
// ±∞ give GELU's ∞ and NaN (−∞·0) as ATen does, and the derivative's limits 1 and 0 where ATen gives NaN.
TEST(GeluMath, SigmaFormIsFiniteWhereFp32Overflows) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (float h : {0.0f, -0.0f, 10.0f, -10.0f, 20.0f, -20.0f, 21.0f, -21.0f, 1e6f, -1e6f, 1e13f, -1e13f, 1e14f,
                  -1e14f, 1e19f, -1e19f, 1e20f, -1e20f, 4e36f, -4e36f, 3e38f, -3e38f}) {
    const std::string at = "h = " + std::to_string(h);
    const float y_sigma = detail::gelu_sigmoid(h), y_tanhf = detail::gelu_tanh(h);
    EXPECT_NEAR(y_sigma, gelu_reference(h), 1e-30 + 1e-7 * std::fabs(y_tanhf)) << at;
    if (h >= -6.0f) EXPECT_EQ(y_sigma, y_tanhf) << at;  // below, ATen's form cancels to −0
    const float g = detail::gelu_sigmoid_grad(h);
    EXPECT_FALSE(std::isnan(g)) << at;
    EXPECT_NEAR(g, gelu_grad_reference(h), 1e-6) << at;
  }
  EXPECT_EQ(detail::gelu_sigmoid(inf), inf);
  EXPECT_TRUE(std::isnan(detail::gelu_sigmoid(-inf)));
  EXPECT_TRUE(std::isnan(detail::gelu_tanh(-inf)));
  EXPECT_TRUE(std::isnan(detail::gelu_sigmoid(nan)));
  EXPECT_EQ(detail::gelu_sigmoid_grad(inf), 1.0f);
  EXPECT_EQ(detail::gelu_sigmoid_grad(-inf), 0.0f);
  EXPECT_TRUE(std::isnan(detail::gelu_sigmoid_grad(nan)));
}

// ---------------------------------------------------------------------------------------------------------------
// The cross-entropy's running max / sum of e^(x − max)

float log_sum_exp(const detail::MaxSum& s) { return s.max + std::log(s.sum); }

double log_sum_exp_reference(const std::vector<float>& row) {
  double m = -kInf;
  for (float v : row) m = std::max(m, static_cast<double>(v));
  if (m == -kInf) return -kInf;
  double sum = 0;
  for (float v : row) sum += std::exp(static_cast<double>(v) - m);
  return m + std::log(sum);
}

// The kernel's forward as it runs over one row: `threads` threads striding over the row's packs of kPack values
// (accumulate_pack; `per_value`: the element kernel's accumulate instead), then the threads' states combined
// in a butterfly, as block_reduce's shuffles pair lanes.
template <int kPack>
detail::MaxSum row_state(const std::vector<float>& row, int threads, bool per_value) {
  std::vector<detail::MaxSum> state(static_cast<std::size_t>(threads), detail::MaxSum{-INFINITY, 0.0f});
  if (per_value) {
    for (std::size_t i = 0; i < row.size(); ++i) detail::accumulate(state[i % threads], row[i]);
  } else {
    for (std::size_t p = 0; p * kPack < row.size(); ++p) {
      float v[kPack];
      for (int k = 0; k < kPack; ++k) v[k] = row[p * kPack + k];
      detail::accumulate_pack(state[p % threads], v);
    }
  }
  for (int offset = 1; offset < threads; offset <<= 1) {
    std::vector<detail::MaxSum> next(state.size());
    for (int t = 0; t < threads; ++t) next[t] = detail::combine(state[t], state[t ^ offset]);
    state = next;
  }
  return state[0];
}

std::vector<float> normal_row(std::mt19937& rng, std::size_t n, float mean, float stddev) {
  std::normal_distribution<float> d(mean, stddev);
  std::vector<float> row(n);
  for (auto& v : row) v = d(rng);
  return row;
}

TEST(SoftmaxSum, FiniteRowsMatchFloat64InEveryLayout) {
  std::mt19937 rng(7);
  for (std::size_t n : {8u, 64u, 1000u, 50304u}) {
    for (float mean : {0.0f, -30.0f, 1e4f}) {
      for (float stddev : {1.0f, 10.0f}) {
        const auto row = normal_row(rng, n, mean, stddev);
        const double ref = log_sum_exp_reference(row);
        const double tolerance = 2e-6 * std::max(1.0, std::fabs(ref));
        for (int threads : {1, 32, 512}) {
          for (bool per_value : {false, true}) {
            const float lse = log_sum_exp(row_state<8>(row, threads, per_value));
            EXPECT_NEAR(lse, ref, tolerance) << "n " << n << " mean " << mean << " σ " << stddev << ", " << threads
                                             << " threads" << (per_value ? ", per value" : ", packs");
          }
        }
      }
    }
  }
}

// The rules for non-finite logits, in every layout (one thread or many; per value or per pack), as ATen's
// log_softmax has them: −∞ logits drop out (a row of only −∞ has lse −∞); a NaN anywhere makes the lse NaN,
// even where one thread saw only NaN and −∞ (the combine bug fixed in c498490); a +∞ logit makes it NaN too
// (ATen: e^(∞ − ∞) in the sum).
TEST(SoftmaxSum, NonFiniteLogitsFollowATensRules) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::mt19937 rng(11);
  struct Case {
    std::string name;
    std::vector<float> row;
    bool nan_lse;
    double lse;  // when not NaN
  };
  std::vector<Case> cases;
  {
    std::vector<float> all_minus(1024, -inf);
    cases.push_back({"only -inf", all_minus, false, -kInf});
  }
  {
    auto row = normal_row(rng, 1024, 0.0f, 1.0f);
    for (std::size_t i = 0; i < 512; ++i) row[i] = -inf;
    const std::vector<float> finite(row.begin() + 512, row.end());
    cases.push_back({"half -inf", row, false, log_sum_exp_reference(finite)});
  }
  const auto with = [](std::vector<float> row, std::size_t at, float value) {
    row[at] = value;
    return row;
  };
  for (std::size_t at : {0u, 5u, 517u, 1023u}) {
    const auto finite = normal_row(rng, 1024, 0.0f, 1.0f), masked = std::vector<float>(1024, -inf);
    const std::string where = " at " + std::to_string(at);
    cases.push_back({"NaN among finite" + where, with(finite, at, nan), true, 0});
    cases.push_back({"NaN among -inf" + where, with(masked, at, nan), true, 0});
    cases.push_back({"+inf among finite" + where, with(finite, at, inf), true, 0});
    cases.push_back({"+inf among -inf" + where, with(masked, at, inf), true, 0});
  }
  for (const auto& c : cases) {
    for (int threads : {1, 32, 512}) {
      for (bool per_value : {false, true}) {
        const float lse = log_sum_exp(row_state<8>(c.row, threads, per_value));
        const std::string where =
            c.name + ", " + std::to_string(threads) + " threads" + (per_value ? ", per value" : ", packs");
        if (c.nan_lse) {
          EXPECT_TRUE(std::isnan(lse)) << where << ": lse " << lse;
        } else if (std::isinf(c.lse)) {
          EXPECT_EQ(lse, c.lse) << where;
        } else {
          EXPECT_NEAR(lse, c.lse, 2e-6 * std::max(1.0, std::fabs(c.lse))) << where;
        }
      }
    }
  }
}

// An empty state is the identity of combine, on either side; combine is symmetric.
TEST(SoftmaxSum, EmptyStateIsTheIdentity) {
  const detail::MaxSum empty{-INFINITY, 0.0f};
  for (detail::MaxSum s : {detail::MaxSum{1.5f, 3.0f}, detail::MaxSum{-80.0f, 1.0f}, empty}) {
    const auto left = detail::combine(empty, s), right = detail::combine(s, empty);
    EXPECT_EQ(left.max, s.max);
    EXPECT_EQ(left.sum, s.sum);
    EXPECT_EQ(right.max, s.max);
    EXPECT_EQ(right.sum, s.sum);
  }
  const detail::MaxSum a{2.0f, 5.0f}, b{-1.0f, 7.0f};
  EXPECT_EQ(detail::combine(a, b).max, detail::combine(b, a).max);
  EXPECT_FLOAT_EQ(detail::combine(a, b).sum, detail::combine(b, a).sum);
  EXPECT_NEAR(log_sum_exp(detail::combine(a, b)),
              std::log(5.0 * std::exp(2.0) + 7.0 * std::exp(-1.0)), 1e-6);
}

// ---------------------------------------------------------------------------------------------------------------
// The forward's bias column over a grid-stride loop

TEST(ColumnCursor, CarriedColumnEqualsTheModuloAtEveryStride) {
  struct Shape {
    std::int64_t columns;
    int vec;
    std::int64_t stride;  // packs between a thread's packs: grid × block
  };
  const std::int64_t big = std::int64_t{2147483647} / 8 * 8;  // the largest row the launchers take, in packs of 8
  for (const Shape s : {Shape{8, 8, 256}, Shape{24, 8, 33}, Shape{1600, 8, 132 * 8 * 256}, Shape{6400, 8, 1},
                        Shape{3, 1, 7}, Shape{50257, 1, 132 * 256}, Shape{big, 8, 132 * 8 * 256},
                        Shape{big, 8, big / 8 - 1}, Shape{big, 1, 3 * (big / 4)}}) {
    for (std::int64_t first : {std::int64_t{0}, std::int64_t{1}, s.stride - 1, std::int64_t{12345}}) {
      if (first < 0) continue;
      detail::ColumnCursor cursor(first, s.stride, s.vec, static_cast<int>(s.columns));
      std::int64_t i = first;
      for (int step = 0; step < 2000; ++step, i += s.stride) {
        ASSERT_EQ(cursor.column, static_cast<unsigned>(i * s.vec % s.columns))
            << "columns " << s.columns << " vec " << s.vec << " stride " << s.stride << " first " << first
            << " step " << step;
        cursor.advance();
      }
    }
  }
}

}  // namespace
