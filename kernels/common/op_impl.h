/* kernels/common/op_impl.h — the two implementations behind each public op:
 * deco_<op>_ref (plain C, kernels/<family>/<op>_ref.c: the spec) and
 * deco_<op>_cuda (kernels/<family>/<op>.cu). Both receive arguments the
 * public entry point (host/ops/) has already validated, and what they need
 * of the caller through a deco_exec_t (common/exec.h). Kernel-level: only
 * public headers of ops and kernels/ headers, no host layer.
 */
#ifndef DECO_KERNELS_OP_IMPL_H
#define DECO_KERNELS_OP_IMPL_H

#include "common/exec.h"
#include "deco/attention.h"
#include "deco/compress.h"
#include "deco/kv.h"
#include "deco/layers.h"
#include "deco/quant.h"
#include "deco/recycle.h"
#include "deco/select.h"
#include "deco/spec_step.h"
#include "deco/superpose_ops.h"
#include "deco/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DECO_DECLARE_OP(name)                                                                  \
  deco_status_t deco_##name##_ref(const deco_exec_t *exec, const deco_##name##_args_t *args);  \
  deco_status_t deco_##name##_cuda(const deco_exec_t *exec, const deco_##name##_args_t *args);

DECO_DECLARE_OP(embedding)
DECO_DECLARE_OP(rmsnorm)
DECO_DECLARE_OP(rope)
DECO_DECLARE_OP(matmul)
DECO_DECLARE_OP(matmul_batched)
DECO_DECLARE_OP(swiglu)
DECO_DECLARE_OP(fill_random)
DECO_DECLARE_OP(convert)
DECO_DECLARE_OP(dequant)
DECO_DECLARE_OP(kv_append)
DECO_DECLARE_OP(kv_compact)
DECO_DECLARE_OP(attention)

DECO_DECLARE_OP(tree_attention)
DECO_DECLARE_OP(tree_accept_greedy)
DECO_DECLARE_OP(tree_accept_sample)
DECO_DECLARE_OP(spec_prepare)
DECO_DECLARE_OP(spec_commit)
DECO_DECLARE_OP(draft_chain)

DECO_DECLARE_OP(topk_rows)
DECO_DECLARE_OP(recycle_draft)
DECO_DECLARE_OP(recycle_update)

DECO_DECLARE_OP(superpose_embed)
DECO_DECLARE_OP(ngram_lookup)
DECO_DECLARE_OP(superpose_select)

DECO_DECLARE_OP(kv_gram)

/* The CPU backend's matmul: a batch-invariant blocked SIMD path
 * (linear/matmul_cpu.c); deco_matmul_ref stays the op's spec. */
deco_status_t deco_matmul_cpu(const deco_exec_t *exec, const deco_matmul_args_t *args);

size_t deco_attention_workspace_size_cuda(const deco_exec_t *exec, const deco_attention_args_t *args);
const char *deco_attention_path_cuda(const deco_exec_t *exec, const deco_attention_args_t *args);
size_t deco_tree_attention_workspace_size_cuda(const deco_exec_t *exec, const deco_tree_attention_args_t *args);
const char *deco_tree_attention_path_cuda(const deco_exec_t *exec, const deco_tree_attention_args_t *args);
size_t deco_tree_accept_greedy_workspace_size_cuda(const deco_exec_t *exec, const deco_tree_accept_greedy_args_t *args);
size_t deco_tree_accept_sample_workspace_size_cuda(const deco_exec_t *exec, const deco_tree_accept_sample_args_t *args);
size_t deco_topk_rows_workspace_size_cuda(const deco_exec_t *exec, const deco_topk_rows_args_t *args);
size_t deco_recycle_update_workspace_size_cuda(const deco_exec_t *exec, const deco_recycle_update_args_t *args);

#ifdef __cplusplus
}
#endif
#endif
