/* kernels/spec/draft_chain_common.h — the bookkeeping of a model-drafted
 * chain inside the device-resident step (deco_draft_chain, deco/spec_step.h),
 * shared word for word by the C reference and the CUDA kernel: the order
 * the argmax ranks values by, the batch of a draft forward, what one
 * thread writes once the argmax (or the draw) is known, and two pieces of
 * a sampled chain's draw (its uniform; which rows it samples); and, for C
 * only, the serial q and draw that the reference shares with the host
 * model drafter (host/draft/model_draft.c).
 */
#ifndef DECO_KERNELS_DRAFT_CHAIN_COMMON_H
#define DECO_KERNELS_DRAFT_CHAIN_COMMON_H

#include "common/hd.h"
#include "deco/philox.h"
#include "deco/spec_step.h"

/* 1 if (value x, id i) ranks above (y, j): the larger value, NaN below
 * every number, equal values (-0 and +0 included, NaNs among themselves)
 * by the lower id. A total order, so any reduction finds the same best. */
DECO_KERNEL_HD int deco_draft_chain_above(float x, int i, float y, int j) {
  const int xn = x != x, yn = y != y;
  if (xn != yn) return yn;
  if (!xn && x != y) return x > y;
  return i < j;
}

/* The uniform of level l's draw: the root's position len is counter word 0. */
DECO_KERNEL_HD float deco_draft_chain_uniform(const deco_draft_chain_args_t *a, int l) {
  return deco_philox_uniform(a->seed, (uint32_t)a->state->len, DECO_DRAFT_CHAIN_STREAM, (uint32_t)(l - 1), 0u);
}

/* 1 when a row is sampled from softmax(row / T): no NaN, a finite maximum;
 * else its q is the point mass at the argmax. */
DECO_KERNEL_HD int deco_draft_chain_usable(float max, int has_nan) {
  return !has_nan && max - max == 0.0f;
}

/* Forward l's batch (l = 1..K); token: chain[l - 1] for l >= 2. */
DECO_KERNEL_HD void deco_draft_chain_batch(const deco_draft_chain_args_t *a, int l, int32_t token) {
  const deco_spec_state_t *s = a->state;
  const int len = s->len;
  int n = 1, first = len + l - 1;
  if (l == 1) {
    const int32_t prev = a->prev[0];
    if (len >= 1 && prev >= 0) {
      a->tokens[0] = prev;
      a->tokens[1] = s->root;
      a->positions[0] = len - 1;
      a->positions[1] = len;
      n = 2;
      first = len - 1;
    } else {
      a->tokens[0] = s->root;
      a->positions[0] = len;
      first = len;
    }
  } else {
    a->tokens[0] = token;
    a->positions[0] = first;
  }
  /* The draft of depth l is verified only when l <= steps - len - 1. */
  const int empty = s->done || l > a->steps - len - 1 || len + l > a->max_slots;
  /* An empty forward still describes slots inside the reservation, as the
   * step's own forward does once done: no token, kv_lens = prefix_lens. */
  const int at = first < a->max_slots ? first : a->max_slots;
  a->q_indptr[0] = 0;
  a->q_indptr[1] = empty ? 0 : n;
  a->kv_lens[0] = empty ? at : len + l;
  a->prefix_lens[0] = empty ? at : first;
}

/* What a stage writes; count: the rows forward `stage` computed (levels),
 * best: the argmax of its last row when count > 0. */
DECO_KERNEL_HD void deco_draft_chain_finish(const deco_draft_chain_args_t *a, int count, int32_t best) {
  const int K = a->draft_len;
  if (a->stage == DECO_DRAFT_CHAIN_START) {
    deco_draft_chain_batch(a, 1, 0);
  } else if (a->stage == DECO_DRAFT_CHAIN_OBSERVE) {
    const int acc = a->accept_len[0];
    if (a->state->done || acc < 1 || acc > K + 1) return;
    const int node = a->path[acc - 1];
    if (node >= 0 && node <= K) a->prev[0] = a->chain[node];
  } else {
    const int l = a->stage;
    a->chain[l] = count > 0 ? best : 0; /* an empty forward's draft is clipped: any id will do */
    if (l < K) deco_draft_chain_batch(a, l + 1, a->chain[l]);
  }
}

/* ---- Top-w trees (width > 1): one thread writes everything ---- */

/* Forward l's batch (l = 1..K) from the nodes' tokens in chain; nodes of
 * depth < l are the first m_l (breadth first). */
DECO_KERNEL_HD void deco_draft_tree_batch(const deco_draft_chain_args_t *a, int l) {
  const deco_spec_state_t *s = a->state;
  const int len = s->len, n = a->n_nodes;
  const int h = len >= 1 && a->prev[0] >= 0;
  int32_t depth[DECO_TREE_MAX_NODES];
  int m = 0;
  for (int j = 0; j < n; ++j) {
    depth[j] = j == 0 ? 0 : depth[a->shape[j]] + 1;
    if (depth[j] < l) m = j + 1;
  }
  if (h) {
    a->tokens[0] = a->prev[0];
    a->positions[0] = len - 1;
  }
  for (int j = 0; j < m; ++j) {
    a->tokens[h + j] = j == 0 ? s->root : a->chain[j];
    a->positions[h + j] = len + depth[j];
  }
  const int empty = s->done || l > a->steps - len - 1 || len + m > a->max_slots;
  const int first = len - h, at = first < a->max_slots ? first : a->max_slots;
  a->q_indptr[0] = 0;
  a->q_indptr[1] = empty ? 0 : h + m;
  a->kv_lens[0] = empty ? at : len + m;
  a->prefix_lens[0] = empty ? at : first;
}

/* What a stage of a tree writes (the count of forward `stage` is read
 * from q_indptr before the batch is rewritten). */
DECO_KERNEL_HD void deco_draft_tree_finish(const deco_draft_chain_args_t *a) {
  const int K = a->draft_len, n = a->n_nodes, W = a->width;
  const int len = a->state->len;
  if (a->stage == DECO_DRAFT_CHAIN_START) {
    const int h = len >= 1 && a->prev[0] >= 0;
    if (h) a->fparents[0] = -1;
    for (int j = 0; j < n; ++j) a->fparents[h + j] = j == 0 ? (h ? 0 : -1) : a->shape[j] + h;
    deco_draft_tree_batch(a, 1);
  } else if (a->stage == DECO_DRAFT_CHAIN_OBSERVE) {
    const int acc = a->accept_len[0];
    if (a->state->done || acc < 1 || acc > K + 1) return;
    const int node = a->path[acc - 1];
    if (node >= 0 && node < n) a->prev[0] = a->chain[node];
  } else {
    const int l = a->stage, count = a->q_indptr[1];
    int32_t depth[DECO_TREE_MAX_NODES];
    int m = 0; /* nodes of depth < l */
    for (int j = 0; j < n; ++j) {
      depth[j] = j == 0 ? 0 : depth[a->shape[j]] + 1;
      if (depth[j] < l) m = j + 1;
    }
    const int h = count - m; /* 1 when prev led the forward */
    for (int j = 1; j < n; ++j) {
      if (depth[j] != l) continue;
      const int p = a->shape[j];
      int first = j;
      while (first > 1 && a->shape[first - 1] == p) --first;
      /* An empty forward's nodes are clipped: any id will do (and so for a
       * rank past W, which the contract rules out). */
      const int rank = j - first;
      a->chain[j] = count > 0 && rank < W ? a->topk[(size_t)(h + p) * (size_t)W + (size_t)rank] : 0;
    }
    if (l < K) deco_draft_tree_batch(a, l + 1);
  }
}

/* ---- The serial q and draw of a sampled chain (C only) ----
 * The reference and the host model drafter compute q and draw from it with
 * these, so both draw the same ids; the kernel sums z in f32 across a block
 * (draft_chain.cu) and does not compile them. */
#if !defined(__CUDACC__)
#include <math.h>

/* The argmax of row[0..V) (V >= 1) in deco_draft_chain_above's order. */
static inline int32_t deco_draft_chain_argmax(const float *row, int V) {
  int32_t best = 0;
  for (int i = 1; i < V; ++i)
    if (deco_draft_chain_above(row[i], i, row[best], best)) best = i;
  return best;
}

/* q[0..V) = softmax(row / T) in f32 (the values the verifier reads): the
 * weights exp((x - max) / T) and their sum z in double, ids in increasing
 * order. best: the row's argmax (deco_draft_chain_argmax). A row that is
 * not usable (deco_draft_chain_usable: a NaN, no finite maximum) gives the
 * point mass at best, the draft then being best. 1 when q is the softmax,
 * 0 when it is the point mass. */
static inline int deco_draft_chain_softmax(const float *row, int V, int32_t best, float T, float *q) {
  int has_nan = 0;
  for (int i = 0; i < V; ++i) has_nan |= row[i] != row[i];
  if (!deco_draft_chain_usable(row[best], has_nan)) {
    for (int i = 0; i < V; ++i) q[i] = i == best ? 1.0f : 0.0f;
    return 0;
  }
  const double m = (double)row[best], t = (double)T;
  double z = 0;
  for (int i = 0; i < V; ++i) z += exp(((double)row[i] - m) / t);
  for (int i = 0; i < V; ++i) q[i] = (float)(exp(((double)row[i] - m) / t) / z);
  return 1;
}

/* The W largest entries of row[0..V) in deco_draft_chain_above's order
 * (NaN below every number, ties by the lower id), best first, in ids, and
 * their log-softmax values (double) in logp; the count, min(W, V). A row
 * that is not usable gives, as in deco_draft_chain_softmax, the point mass
 * at its argmax: log 1 for ids[0], -inf for the others (never NaN, so the
 * path scores built from them stay ordered). */
static inline int deco_draft_top_w(const float *row, int V, int W, int32_t *ids, double *logp) {
  int k = 0, has_nan = 0;
  for (int i = 0; i < V; ++i) {
    has_nan |= row[i] != row[i];
    if (k == W && !deco_draft_chain_above(row[i], i, row[ids[k - 1]], ids[k - 1])) continue;
    int j = k < W ? k++ : W - 1;
    while (j > 0 && deco_draft_chain_above(row[i], i, row[ids[j - 1]], ids[j - 1])) {
      ids[j] = ids[j - 1];
      --j;
    }
    ids[j] = i;
  }
  if (k == 0) return 0;
  if (!deco_draft_chain_usable(row[ids[0]], has_nan)) {
    for (int j = 0; j < k; ++j) logp[j] = j == 0 ? 0.0 : -INFINITY;
    return k;
  }
  const double m = (double)row[ids[0]];
  double z = 0;
  for (int i = 0; i < V; ++i) z += exp((double)row[i] - m);
  for (int j = 0; j < k; ++j) logp[j] = (double)row[ids[j]] - m - log(z);
  return k;
}

/* A draw with uniform u from q[0..V) without the ids taken[0..n_taken)
 * (renormalised): target = u times the sum of the others (double, ids in
 * increasing order), and the first id of positive q whose running sum
 * passes target, else (rounding) the last id of positive q; -1 when that
 * sum is not positive (nothing is left). taken may be NULL when n_taken is 0. */
static inline int32_t deco_draft_chain_draw(const float *q, int V, const int32_t *taken, int n_taken, float u) {
  double total = 0;
  for (int i = 0; i < V; ++i) total += q[i];
  for (int j = 0; j < n_taken; ++j) total -= q[taken[j]];
  if (!(total > 0)) return -1;
  const double target = (double)u * total;
  double cum = 0;
  int32_t last = -1;
  for (int i = 0; i < V; ++i) {
    if (q[i] <= 0.0f) continue;
    int is_taken = 0;
    for (int j = 0; j < n_taken; ++j) is_taken |= taken[j] == i;
    if (is_taken) continue;
    last = i;
    cum += q[i];
    if (cum > target) return i;
  }
  return last;
}
#endif

#endif
