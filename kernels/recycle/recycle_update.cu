/* kernels/recycle/recycle_update.cu — Token Recycling's update (Luo et al.
 * 2024): table[tokens[j]] <- topk[j] for the nodes j in [tree_indptr[0],
 * tree_indptr[B]), the last node carrying a token winning, as if written one
 * after another. tree_indptr [B+1], tokens [n_nodes], topk [n_nodes][k],
 * table [vocab][k]; workspace int32 [vocab].
 *
 * Deterministic in three phases: (1) every node's token slot of the
 * workspace is set to -1, (2) atomicMax leaves there the largest node index
 * carrying the token, (3) that node alone writes the row. One block runs the
 * phases between barriers for small batches; bigger ones take three launches.
 * Nodes whose token or any top-k id is outside [0, vocab) take no part.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"

#define UPDATE_ONE_BLOCK_MAX 8192 /* node capacity up to which one block does it all */
#define UPDATE_THREADS 1024

struct update_view {
  const int32_t *tree_indptr;
  const int32_t *tokens;
  const int32_t *topk;
  int32_t *table;
  int32_t *last; /* workspace [vocab] */
  int n_trees, n_nodes, vocab, k;
};

/* The batch's node range, clamped to the capacity. */
__device__ __forceinline__ void update_range(const update_view &v, int *lo, int *hi) {
  int a = v.tree_indptr[0], b = v.tree_indptr[v.n_trees];
  a = a < 0 ? 0 : a;
  b = b > v.n_nodes ? v.n_nodes : b;
  *lo = a;
  *hi = b;
}

__device__ __forceinline__ bool update_valid(const update_view &v, int j) {
  const int32_t t = v.tokens[j];
  if (t < 0 || t >= v.vocab) return false;
  for (int c = 0; c < v.k; ++c) {
    const int32_t id = v.topk[(size_t)j * v.k + c];
    if (id < 0 || id >= v.vocab) return false;
  }
  return true;
}

__device__ __forceinline__ void update_phase_reset(const update_view &v, int j) {
  if (update_valid(v, j)) v.last[v.tokens[j]] = -1;
}
__device__ __forceinline__ void update_phase_claim(const update_view &v, int j) {
  if (update_valid(v, j)) atomicMax(&v.last[v.tokens[j]], j);
}
__device__ __forceinline__ void update_phase_write(const update_view &v, int j) {
  if (!update_valid(v, j)) return; /* else last[] of its token may be stale */
  const int32_t t = v.tokens[j];
  if (__ldcg(&v.last[t]) != j) return; /* L2: where the atomics landed */
  const int32_t *src = v.topk + (size_t)j * v.k;
  int32_t *dst = v.table + (size_t)t * v.k;
  for (int c = 0; c < v.k; ++c) dst[c] = src[c];
}

static __global__ void __launch_bounds__(UPDATE_THREADS) recycle_update_one_block_kernel(update_view v) {
  int lo, hi;
  update_range(v, &lo, &hi);
  for (int j = lo + (int)threadIdx.x; j < hi; j += blockDim.x) update_phase_reset(v, j);
  __syncthreads(); /* __syncthreads also orders the block's global writes */
  for (int j = lo + (int)threadIdx.x; j < hi; j += blockDim.x) update_phase_claim(v, j);
  __syncthreads();
  for (int j = lo + (int)threadIdx.x; j < hi; j += blockDim.x) update_phase_write(v, j);
}

template <int PHASE> static __global__ void recycle_update_phase_kernel(update_view v) {
  int lo, hi;
  update_range(v, &lo, &hi);
  const int j = lo + (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (j >= hi) return;
  if (PHASE == 0) update_phase_reset(v, j);
  else if (PHASE == 1) update_phase_claim(v, j);
  else update_phase_write(v, j);
}

size_t deco_recycle_update_workspace_size_cuda(const deco_exec_t *exec, const deco_recycle_update_args_t *a) {
  return sizeof(int32_t) * (size_t)a->vocab;
}

deco_status_t deco_recycle_update_cuda(const deco_exec_t *exec, const deco_recycle_update_args_t *a) {
  const size_t ws = deco_recycle_update_workspace_size_cuda(exec, a);
  if (exec->workspace == NULL || exec->workspace_bytes < ws)
    return DECO_EXEC_FAIL(
        exec, DECO_STATUS_WORKSPACE_TOO_SMALL,
        "deco_recycle_update: needs a workspace of %zu bytes (one int32 per token of vocab = %d), the "
        "context has %zu; see deco_recycle_update_workspace_size",
        ws, a->vocab, exec->workspace_bytes);
  if (!deco_aligned(exec->workspace, sizeof(int32_t)))
    return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "deco_recycle_update: workspace is not 4-byte aligned");
  update_view v;
  v.tree_indptr = a->tree_indptr;
  v.tokens = a->tokens;
  v.topk = a->topk;
  v.table = a->table;
  v.last = (int32_t *)exec->workspace;
  v.n_trees = a->n_trees;
  v.n_nodes = a->n_nodes;
  v.vocab = a->vocab;
  v.k = a->k;
  const cudaStream_t st = DECO_CUDA_STREAM(exec);
  if (a->n_nodes <= UPDATE_ONE_BLOCK_MAX) {
    recycle_update_one_block_kernel<<<1, UPDATE_THREADS, 0, st>>>(v);
    DECO_CUDA_CHECK_LAUNCH(exec, "recycle_update_one_block_kernel");
    return DECO_STATUS_SUCCESS;
  }
  const int threads = 256, blocks = (a->n_nodes + threads - 1) / threads;
  recycle_update_phase_kernel<0><<<blocks, threads, 0, st>>>(v);
  DECO_CUDA_CHECK_LAUNCH(exec, "recycle_update_phase_kernel<reset>");
  recycle_update_phase_kernel<1><<<blocks, threads, 0, st>>>(v);
  DECO_CUDA_CHECK_LAUNCH(exec, "recycle_update_phase_kernel<claim>");
  recycle_update_phase_kernel<2><<<blocks, threads, 0, st>>>(v);
  DECO_CUDA_CHECK_LAUNCH(exec, "recycle_update_phase_kernel<write>");
  return DECO_STATUS_SUCCESS;
}
