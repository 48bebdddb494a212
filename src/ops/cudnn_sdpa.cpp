#include "src/ops/cudnn_sdpa.h"

#ifdef DS_WITH_CUDNN_FRONTEND
#include <dlfcn.h>

#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include <ATen/cudnn/Handle.h>
#include <c10/cuda/CUDACachingAllocator.h>

// Our copy of cuDNN's header-only frontend lives in a namespace of its own: LibTorch carries another version of
// the same classes, and inline functions of one name from two versions would be merged by the dynamic linker.
// Its backend calls go through dlsym on LibTorch's libcudnn (no link-time cuDNN); no JSON serialisation.
#define cudnn_frontend ds_cudnn_frontend
#define NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING
#define CUDNN_FRONTEND_SKIP_JSON_LIB
#include <cudnn_frontend.h>

namespace ds_cudnn_frontend {
void* cudnn_dlhandle = nullptr;  // the frontend's dlsym target, set by library() below
}  // namespace ds_cudnn_frontend
#endif

namespace deepspeed::ops::detail {

#ifdef DS_WITH_CUDNN_FRONTEND
namespace {

namespace fe = ds_cudnn_frontend;

// The process's cuDNN: LibTorch's CUDA library depends on libcudnn.so.9, so it is loaded before any of this
// runs. RTLD_NOLOAD: never map a second copy.
void* library() {
  static void* const handle = [] {
    void* h = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_NOLOAD);
    fe::cudnn_dlhandle = h;
    return h;
  }();
  return handle;
}

enum Uid : std::int64_t { kQ = 1, kK, kV, kO, kDo, kStats, kDq, kDk, kDv };

// Stats as a 4-D tensor, as the graph takes them (LibTorch may keep them as [B, H, T]).
at::Tensor stats_4d(const at::Tensor& stats) { return stats.dim() == 3 ? stats.unsqueeze(-1) : stats; }

std::vector<std::int64_t> cache_key(const SdpaBackwardArgs& a) {
  std::vector<std::int64_t> key{a.q.get_device(), static_cast<std::int64_t>(a.q.scalar_type()), a.causal,
                                a.deterministic};
  std::int32_t scale_bits = 0;
  std::memcpy(&scale_bits, &a.scale, sizeof scale_bits);
  key.push_back(scale_bits);
  const at::Tensor stats = stats_4d(a.stats);
  for (const at::Tensor* t : {&a.q, &a.k, &a.v, &a.o, &a.d_o, &stats, &a.d_q, &a.d_k, &a.d_v}) {
    key.insert(key.end(), t->sizes().begin(), t->sizes().end());
    key.insert(key.end(), t->strides().begin(), t->strides().end());
  }
  return key;
}

std::shared_ptr<fe::graph::Tensor_attributes> input(fe::graph::Graph& graph, std::int64_t uid, const char* name,
                                                    const at::Tensor& t) {
  return graph.tensor(fe::graph::Tensor_attributes()
                          .set_uid(uid)
                          .set_name(name)
                          .set_dim(t.sizes().vec())
                          .set_stride(t.strides().vec()));
}

void output(const std::shared_ptr<fe::graph::Tensor_attributes>& node, std::int64_t uid, const at::Tensor& t) {
  node->set_uid(uid).set_output(true).set_dim(t.sizes().vec()).set_stride(t.strides().vec());
}

// A graph for these shapes and strides, or null with `why` set.
std::shared_ptr<fe::graph::Graph> build(const SdpaBackwardArgs& a, cudnnHandle_t handle, std::string& why) {
  auto graph = std::make_shared<fe::graph::Graph>();
  graph->set_io_data_type(a.q.scalar_type() == at::kBFloat16 ? fe::DataType_t::BFLOAT16 : fe::DataType_t::HALF)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto attributes = fe::graph::SDPA_backward_attributes()
                        .set_name("ds_qkv_attention_backward")
                        .set_causal_mask(a.causal)
                        .set_attn_scale(a.scale)
                        .set_deterministic_algorithm(a.deterministic);
  auto stats = input(*graph, kStats, "stats", stats_4d(a.stats));
  stats->set_data_type(fe::DataType_t::FLOAT);
  auto [d_q, d_k, d_v] =
      graph->sdpa_backward(input(*graph, kQ, "q", a.q), input(*graph, kK, "k", a.k), input(*graph, kV, "v", a.v),
                           input(*graph, kO, "o", a.o), input(*graph, kDo, "d_o", a.d_o), stats, attributes);
  output(d_q, kDq, a.d_q);
  output(d_k, kDk, a.d_k);
  output(d_v, kDv, a.d_v);
  // Each stage only after the one before it succeeded.
  auto failed = [&](fe::error_t status) {
    if (status.is_good()) return false;
    why = status.get_message();
    return true;
  };
  if (failed(graph->validate()) || failed(graph->build_operation_graph(handle)) ||
      failed(graph->create_execution_plans({fe::HeurMode_t::A})) || failed(graph->check_support(handle)) ||
      failed(graph->build_plans(handle))) {
    return nullptr;
  }
  return graph;
}

}  // namespace

bool cudnn_sdpa_available() { return library() != nullptr; }

bool cudnn_sdpa_backward(const SdpaBackwardArgs& a, std::string& why) {
  if (library() == nullptr) {
    why = "libcudnn.so.9 is not loaded in this process";
    return false;
  }
  // Shapes cuDNN turned down are remembered with its reason, so they fail fast.
  thread_local std::map<std::vector<std::int64_t>, std::shared_ptr<fe::graph::Graph>> graphs;
  thread_local std::map<std::vector<std::int64_t>, std::string> refusals;
  const std::vector<std::int64_t> key = cache_key(a);
  if (auto it = refusals.find(key); it != refusals.end()) {
    why = it->second;
    return false;
  }
  try {
    cudnnHandle_t handle = at::native::getCudnnHandle();  // bound to the current stream
    auto found = graphs.find(key);
    if (found == graphs.end()) {
      auto graph = build(a, handle, why);
      if (!graph) {
        refusals.emplace(key, why);
        return false;
      }
      found = graphs.emplace(key, std::move(graph)).first;
    }
    const fe::graph::Graph& graph = *found->second;
    const at::Tensor stats = stats_4d(a.stats);
    std::unordered_map<std::int64_t, void*> pointers{
        {kQ, a.q.data_ptr()},         {kK, a.k.data_ptr()},     {kV, a.v.data_ptr()},
        {kO, a.o.data_ptr()},         {kDo, a.d_o.data_ptr()},  {kStats, stats.data_ptr()},
        {kDq, a.d_q.data_ptr()},      {kDk, a.d_k.data_ptr()},  {kDv, a.d_v.data_ptr()}};
    // Freed at the end of this call: the caching allocator hands the block only to work queued after this on the
    // same stream, so it outlives the backward's kernels.
    c10::DataPtr workspace = c10::cuda::CUDACachingAllocator::get()->allocate(graph.get_workspace_size());
    fe::error_t status = graph.execute(handle, pointers, workspace.get());
    if (!status.is_good()) {
      why = status.get_message();
      refusals.emplace(key, why);
      graphs.erase(key);
      return false;
    }
    return true;
  } catch (const std::exception& e) {  // the frontend throws where a symbol or library cannot be found
    why = e.what();
    refusals.emplace(key, why);
    graphs.erase(key);
    return false;
  }
}

#else

bool cudnn_sdpa_available() { return false; }

bool cudnn_sdpa_backward(const SdpaBackwardArgs&, std::string& why) {
  why = "built without cuDNN's frontend headers";
  return false;
}

#endif

}  // namespace deepspeed::ops::detail
