/* kernels/spec/spec_step_common.h — the arithmetic of the device-resident
 * speculative step (deco_spec_prepare, deco_spec_commit), shared word for
 * word by the C references and the CUDA kernels (one thread does it: a
 * step's bookkeeping is a few hundred operations at most).
 */
#ifndef DECO_KERNELS_SPEC_STEP_COMMON_H
#define DECO_KERNELS_SPEC_STEP_COMMON_H

#include "common/hd.h"
#include "deco/spec_step.h"

DECO_KERNEL_HD void deco_spec_prepare_one(const deco_spec_prepare_args_t *a) {
  deco_spec_state_t *s = a->state;
  const int n = a->n_nodes, len = s->len;
  /* The root and d drafts cover d + 1 positions: never draft past steps. */
  const int max_depth = a->steps - len - 1;
  int m = 0;
  while (m < n && a->depth[m] <= max_depth) m++;
  if (s->done) m = 0;
  a->tokens[0] = s->root;
  for (int j = m > 1 ? m : 1; j < n; ++j) a->tokens[j] = 0; /* computed, never verified */
  for (int j = 0; j < n; ++j) a->positions[j] = len + a->depth[j];
  a->q_indptr[0] = 0;
  a->q_indptr[1] = s->done ? 0 : n;
  a->kv_lens[0] = len + n;
  a->prefix_lens[0] = len;
  a->tree_indptr[0] = 0;
  a->tree_indptr[1] = m;
  a->row_count[0] = m;
}

DECO_KERNEL_HD void deco_spec_commit_one(const deco_spec_commit_args_t *a) {
  deco_spec_state_t *s = a->state;
  if (s->done) return;
  if (a->nonfinite && a->nonfinite[0] != 0) { /* the model's output is unusable: stop here */
    s->nonfinite = a->nonfinite[0];
    s->forwards++;
    s->done = 1;
    return;
  }
  const int acc = a->accept_len[0];
  if (acc < 1 || acc > a->n_nodes) {
    s->error = 1;
    s->done = 1;
    return;
  }
  for (int i = 1; i < acc; ++i)
    if (a->path[i] <= 0 || a->path[i] >= a->n_nodes) { /* a malformed verification output */
      s->error = 1;
      s->done = 1;
      return;
    }
  for (int i = 0; i < acc; ++i) {
    int id = i + 1 < acc ? a->tokens[a->path[i + 1]] : a->bonus[0];
    int stop = 0;
    for (int k = 0; k < a->n_stop_ids; ++k) stop |= id == a->stop_ids[k];
    if (stop) {
      s->done = 1; /* the stop id and whatever was accepted after it are dropped */
      break;
    }
    if (s->n_out < a->out_capacity) a->out[s->n_out++] = id;
    s->tokens++;
  }
  s->forwards++;
  s->len += acc;
  s->root = a->bonus[0];
  s->offset = (uint32_t)s->len;
  if (s->len >= a->steps) s->done = 1;
}

#endif
