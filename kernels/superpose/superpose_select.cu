/* kernels/superpose/superpose_select.cu — one superposed-decoding selection
 * on the GPU (deco/superpose_ops.h, Shen et al. 2024): one block per
 * prompt. Thread t scores pair (draft t / m, candidate t % m), the block
 * ranks the k·m pairs by counting, for each pair, the pairs that precede
 * it (a total order, so ranks are distinct and the result does not depend
 * on timing), and thread 0 updates the drafts with the same serial code as
 * the C reference (superpose_common.h).
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"
#include "superpose/superpose_common.h"

#define SELECT_THREADS (DECO_SUPERPOSE_MAX_K * DECO_SUPERPOSE_MAX_M) /* 256: one thread per pair */

static __global__ void __launch_bounds__(SELECT_THREADS)
    superpose_select_kernel(deco_superpose_select_args_t a) {
  const int b = blockIdx.x, t = threadIdx.x, k = a.k, m = a.m;
  const deco_sp_rows_t r = deco_sp_rows(&a.drafts, b, k, a.max_steps);
  __shared__ double s_lp[DECO_SUPERPOSE_MAX_M];
  __shared__ float s_logits[DECO_SUPERPOSE_MAX_M];
  __shared__ int s_go, s_n_alive;
  __shared__ int s_any[DECO_SUPERPOSE_MAX_K];
  __shared__ deco_sp_pair_t s_pair[SELECT_THREADS];
  __shared__ deco_sp_pair_t s_ranked[SELECT_THREADS];

  if (t == 0) {
    const deco_superpose_prompt_t info = *r.info;
    int go = !info.done;
    if (go) {
      for (int j = 0; j < m; ++j) s_logits[j] = a.cand_logits[(size_t)b * m + j];
      if (!deco_sp_all_finite(s_logits, m)) {
        r.info->nonfinite = 1;
        r.info->done = 1;
        go = 0;
      } else {
        double lp[DECO_SUPERPOSE_MAX_M];
        deco_sp_log_probs(s_logits, m, a.temperature, lp);
        for (int j = 0; j < m; ++j) s_lp[j] = lp[j];
      }
    }
    s_go = go;
    s_n_alive = info.n_alive < k ? info.n_alive : k;
  }
  if (t < DECO_SUPERPOSE_MAX_K) s_any[t] = 0;
  __syncthreads();
  if (!s_go) return; /* uniform over the block */

  const int use_ngram = a.alpha != 0.0f;
  const int d = t / m, j = t % m;
  const bool mine = d < s_n_alive; /* n_alive <= k, so d < k */
  double term = DECO_SP_NEG_INF;
  if (mine) {
    term = use_ngram ? deco_sp_mix(s_lp[j], a.ngram_probs[((size_t)b * k + d) * m + j], a.alpha) : s_lp[j];
    if (term != DECO_SP_NEG_INF) s_any[d] = 1; /* every writer stores 1 */
  }
  __syncthreads();
  deco_sp_pair_t p;
  p.s = DECO_SP_NEG_INF;
  p.draft = d;
  p.token = mine ? a.cand_ids[(size_t)b * m + j] : 0;
  p.cand = j;
  if (mine) {
    if (use_ngram && !s_any[d]) term = deco_sp_penalised(s_lp[j], a.alpha, a.penalty);
    p.s = DECO_SP_ADD(r.score[d], term);
  }
  const bool valid = mine && p.s > DECO_SP_NEG_INF;
  s_pair[t] = p;
  const int n = __syncthreads_count(valid);
  if (valid) {
    int rank = 0;
    for (int u = 0; u < SELECT_THREADS; ++u) {
      const deco_sp_pair_t q = s_pair[u];
      /* Pair u is valid when its draft is alive and its score finite. */
      if (u != t && q.draft < s_n_alive && q.s > DECO_SP_NEG_INF && deco_sp_before(&q, &p)) ++rank;
    }
    s_ranked[rank] = p;
  }
  __syncthreads();
  if (t == 0)
    deco_sp_commit(&r, k, s_ranked, n, a.stop_ids, a.n_stop_ids, a.positions ? a.positions + b : NULL,
                   a.kv_lens ? a.kv_lens + b : NULL);
}

deco_status_t deco_superpose_select_cuda(const deco_exec_t *exec, const deco_superpose_select_args_t *a) {
  superpose_select_kernel<<<a->n_prompts, SELECT_THREADS, 0, DECO_CUDA_STREAM(exec)>>>(*a);
  DECO_CUDA_CHECK_LAUNCH(exec, "superpose_select_kernel");
  return DECO_STATUS_SUCCESS;
}
