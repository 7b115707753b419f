/* kernels/verify/tree_accept_greedy.cu — greedy acceptance over a ragged
 * batch of draft trees (Medusa / EAGLE / Token Recycling verification), the
 * rule of tree_accept_greedy_ref.c. logits [n_nodes][vocab] f32 or bf16.
 *
 * One launch: a team of G CTAs per request (a cluster on sm_90, G <= 8,
 * each CTA an argmax over its vocabulary slice, combined in rank order, ties
 * to the lowest id) walks the tree level by level and reduces only the rows of
 * the matched frontier (nodes whose whole root path matches): those are the
 * rows the decision needs, so bytes read = the floor. The alternative, one
 * wide argmax over every node, reads n rows instead of ~accept_len but needs
 * no barrier per level; on trees of 64 nodes that is ~10x the bytes.
 * The longest path with the smallest index per depth is found in shared
 * memory. A malformed tree gets accept_len 0, bonus -1, path -1. The
 * non-finite flag covers exactly the rows reduced (the ok nodes), as in the
 * reference.
 */
#include <cuda_runtime.h>

#include "common/op_impl.h"
#include "verify/accept_device.cuh"

namespace {

struct greedy_params {
  deco_tree_batch_t tree;
  const int32_t *tokens;
  const void *logits;
  int vocab;
  deco_tree_verify_out_t out;
};

struct greedy_smem {
  acc_tree tree;
  acc_xch xch;
  acc_red red;
  int depth[DECO_TREE_MAX_NODES];
  int argmax[DECO_TREE_MAX_NODES];
  unsigned char ok[DECO_TREE_MAX_NODES];
  unsigned char reach[DECO_TREE_MAX_NODES];
  uint32_t level[DECO_TREE_MAX_NODES / 32]; /* ok nodes of the current level */
  int path[DECO_TREE_MAX_NODES];
  int any;
  int next;
  int nonfinite; /* 1 + smallest node whose row was not finite, or 0 */
};

template <typename T>
__global__ void __launch_bounds__(ACC_THREADS) tree_accept_greedy_kernel(greedy_params P) {
  __shared__ greedy_smem sm;
  const acc_team tm = acc_team_get();
  const int b = blockIdx.x / tm.size;
  if (!acc_begin(P.tree, P.out, b, tm, &sm.tree, &sm.xch)) return;
  const int n = sm.tree.n, node0 = sm.tree.node0, V = P.vocab;
  int lo, hi;
  acc_chunk(V, tm, lo, hi);
  /* depth by walking up (parallel over nodes; trees are shallow) */
  for (int i = threadIdx.x; i < DECO_TREE_MAX_NODES; i += blockDim.x) {
    int d = 0;
    if (i < n)
      for (int p = i; p > 0; p = sm.tree.par[p]) ++d;
    sm.depth[i] = i < n ? d : -1;
    sm.ok[i] = i == 0;
    sm.reach[i] = 0;
  }
  if (threadIdx.x == 0) sm.nonfinite = 0;
  __syncthreads();
  int max_depth = 0;
  for (int d = 0;; ++d) {
    __syncthreads(); /* every thread is done reading the previous level's set */
    /* the ok nodes of level d, in index order */
    for (int i = threadIdx.x; i < DECO_TREE_MAX_NODES; i += blockDim.x) {
      uint32_t m = __ballot_sync(0xffffffffu, sm.ok[i] && sm.depth[i] == d);
      if ((i & 31) == 0) sm.level[i / 32] = m;
    }
    __syncthreads();
    bool empty = true;
    for (int w = 0; w < DECO_TREE_MAX_NODES / 32; ++w) empty = empty && sm.level[w] == 0;
    if (empty) break;
    max_depth = d;
    for (int w = 0; w < DECO_TREE_MAX_NODES / 32; ++w) {
      uint32_t m = sm.level[w];
      while (m) {
        const int v = w * 32 + __ffs(m) - 1;
        m &= m - 1;
        float best;
        int id;
        bool nonfinite;
        acc_team_argmax((const T *)P.logits + (size_t)(node0 + v) * V, lo, hi, &sm.xch, &sm.red, best, id, nonfinite);
        if (threadIdx.x == 0) {
          sm.argmax[v] = id;
          if (nonfinite && (sm.nonfinite == 0 || v + 1 < sm.nonfinite)) sm.nonfinite = v + 1;
        }
        /* children that carry the argmax become ok */
        for (int c = v + 1 + (int)threadIdx.x; c < n; c += blockDim.x)
          if (sm.tree.par[c] == v && P.tokens[node0 + c] == id) sm.ok[c] = 1;
        __syncthreads();
      }
    }
  }
  /* mark the ok nodes on a path to the deepest level, bottom up */
  for (int i = threadIdx.x; i < n; i += blockDim.x) sm.reach[i] = sm.ok[i] && sm.depth[i] == max_depth;
  __syncthreads();
  for (int d = max_depth; d > 0; --d) {
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      if (sm.depth[i] == d && sm.reach[i]) sm.reach[sm.tree.par[i]] = 1;
    __syncthreads();
  }
  /* descend through the smallest marked child */
  int v = 0;
  if (threadIdx.x == 0) sm.path[0] = 0;
  for (int d = 1; d <= max_depth; ++d) {
    if (threadIdx.x == 0) sm.next = 0x7fffffff;
    __syncthreads();
    for (int c = v + 1 + (int)threadIdx.x; c < n; c += blockDim.x)
      if (sm.tree.par[c] == v && sm.reach[c]) atomicMin(&sm.next, c);
    __syncthreads();
    v = sm.next;
    if (threadIdx.x == 0) sm.path[d] = v;
    __syncthreads();
  }
  acc_finish(P.out, b, tm, sm.path, max_depth + 1, sm.argmax[v], sm.nonfinite);
}

}  // namespace

extern "C" size_t deco_tree_accept_greedy_workspace_size_cuda(const deco_exec_t *exec,
                                                              const deco_tree_accept_greedy_args_t *a) {
  (void)exec;
  (void)a;
  return 0; /* teams exchange partials through distributed shared memory */
}

extern "C" deco_status_t deco_tree_accept_greedy_cuda(const deco_exec_t *exec,
                                                      const deco_tree_accept_greedy_args_t *a) {
  greedy_params p;
  p.tree = a->tree;
  p.tokens = a->tokens;
  p.logits = a->logits;
  p.vocab = a->vocab;
  p.out = a->out;
  return acc_run(exec, "deco_tree_accept_greedy", tree_accept_greedy_kernel<float>,
                 tree_accept_greedy_kernel<__nv_bfloat16>, a->logits_dtype, a->tree.n_trees, a->vocab, p);
}
