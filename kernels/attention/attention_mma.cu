/* kernels/attention/attention_mma.cu — the tensor-core path of causal
 * attention (deco_attention): a ragged batch of sequences is run as a batch
 * of chains on the tree-attention mma.sync kernel in its causal mode
 * (tree_attention_common.cuh: the mask is a comparison, no ancestor sets),
 * with the same plan, KV splits and merge as tree attention
 * (tree_attention.cu). Head dims 64/128, f16/bf16, 16-byte aligned q, out
 * and pools; q, out [n_tokens][n_heads][head_dim].
 */
#include "attention/attention_mma.h"
#include "attention/tree_attention_common.cuh"

using namespace deco_tree;

static Shape causal_shape(const deco_attention_args_t *a) {
  return make_shape(1, &a->cache, a->n_heads, a->batch.n_seqs, a->batch.n_tokens, a->q, a->q_stride, a->out);
}

int deco_attention_mma_cuda_eligible(const deco_attention_args_t *a) { return mma_shape(causal_shape(a)); }

size_t deco_attention_mma_workspace_cuda(const deco_exec_t *exec, const deco_attention_args_t *a) {
  return shape_workspace(exec, causal_shape(a));
}

const char *deco_attention_mma_path_cuda(const deco_exec_t *exec, const deco_attention_args_t *a) {
  return shape_path(exec, causal_shape(a));
}

deco_status_t deco_attention_mma_cuda(const deco_exec_t *exec, const deco_attention_args_t *a) {
  return shape_run(exec, "deco_attention", causal_shape(a),
                   base_params(&a->cache, a->n_heads, a->scale, a->q, a->q_stride, a->out), a->batch.q_indptr, nullptr,
                   a->batch.kv_lens);
}
