/* kernels/recycle/recycle_draft.cu — Token Recycling draft (Luo et al. 2024):
 * fills B copies of a static tree template from the adjacency matrix,
 * tokens[b][0] = roots[b], tokens[b][j] = table[tokens[b][parent[j]]][rank[j]].
 * roots [B], parent/rank [n] (context memory), table [vocab][k],
 * tokens [B][n]. Same contract as recycle_draft_ref.c.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"

#define DRAFT_PENDING (-2)

/* One block per tree, one thread per node. A node resolves in the round
 * after its parent, so the loop runs depth + 1 rounds, each one dependent
 * table read. Reads of the shared tokens and writes to them are separated
 * by a barrier, so no round sees a half-written value. Invalid nodes (bad
 * parent or rank) and the children of a token outside [0, vocab) get -1. */
static __global__ void recycle_draft_kernel(const int32_t *__restrict__ roots,   /* [B] */
                                            const int32_t *__restrict__ parent,  /* [n] */
                                            const int32_t *__restrict__ rank,    /* [n] */
                                            const int32_t *__restrict__ table,   /* [vocab][k] */
                                            int n, int vocab, int k, int32_t *__restrict__ tokens /* [B][n] */) {
  __shared__ int32_t tok[DECO_TREE_MAX_NODES]; /* resolved tokens, -1 = unusable as a parent */
  const int b = blockIdx.x, j = threadIdx.x;
  int32_t *out = tokens + (size_t)b * n;
  int p = 0, r = 0;
  bool pending = false;
  if (j == 0) {
    const int32_t root = roots[b];
    out[0] = root;
    tok[0] = root >= 0 && root < vocab ? root : -1;
  } else if (j < n) {
    p = parent[j];
    r = rank[j];
    if (p < 0 || p >= j || r < 0 || r >= k) {
      out[j] = -1;
      tok[j] = -1;
    } else {
      tok[j] = DRAFT_PENDING;
      pending = true;
    }
  }
  __syncthreads();
  for (;;) {
    bool act = false;
    int32_t v = 0;
    if (pending) {
      const int32_t pt = tok[p];
      if (pt != DRAFT_PENDING) {
        act = true;
        v = pt >= 0 ? table[(size_t)pt * k + r] : -1;
      }
    }
    __syncthreads(); /* every read of this round is done before any write */
    if (act) {
      out[j] = v;
      tok[j] = v >= 0 && v < vocab ? v : -1;
      pending = false;
    }
    if (!__syncthreads_or(act)) break;
  }
}

deco_status_t deco_recycle_draft_cuda(const deco_exec_t *exec, const deco_recycle_draft_args_t *a) {
  const int threads = (a->n_nodes + 31) / 32 * 32;
  recycle_draft_kernel<<<a->n_trees, threads, 0, DECO_CUDA_STREAM(exec)>>>(a->roots, a->parent, a->rank, a->table,
                                                                          a->n_nodes, a->vocab, a->k, a->tokens);
  DECO_CUDA_CHECK_LAUNCH(exec, "recycle_draft_kernel");
  return DECO_STATUS_SUCCESS;
}
