/* kernels/attention/attention_mma.h — deco_attention's tensor-core path:
 * head dims 64/128 in f16/bf16 with 16-byte aligned buffers run on the
 * tree-attention mma.sync kernel in its causal mode (attention_mma.cu);
 * attention.cu dispatches here when deco_attention_mma_cuda_eligible.
 * Host-side C++ functions of the CUDA build.
 */
#ifndef DECO_KERNELS_ATTENTION_MMA_H
#define DECO_KERNELS_ATTENTION_MMA_H

#include "common/exec.h"
#include "deco/attention.h"

int deco_attention_mma_cuda_eligible(const deco_attention_args_t *a);
size_t deco_attention_mma_workspace_cuda(const deco_exec_t *exec, const deco_attention_args_t *a);
const char *deco_attention_mma_path_cuda(const deco_exec_t *exec, const deco_attention_args_t *a);
deco_status_t deco_attention_mma_cuda(const deco_exec_t *exec, const deco_attention_args_t *a);

#endif
