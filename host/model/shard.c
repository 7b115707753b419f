/* host/model/shard.c — tensor parallelism's split of a Llama checkpoint
 * (Megatron-LM's layout): Q, K and V column-parallel by heads, gate and up
 * by FFN columns, O and down row-parallel (their partial products summed by
 * an all-reduce in the forward); norms, embeddings and the classifier
 * replicated. An FFN width TP does not divide is padded per rank to
 * ceil(hidden / TP) with zero gate/up rows and zero down columns, which is
 * exact: silu(0) * 0 = 0 contributes nothing. Each rank uploads only its
 * slices.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

deco_status_t deco_shard_plan(deco_ctx_t *ctx, const deco_model_hparams_t *full, int tp, int rank,
                              deco_model_hparams_t *local, deco_shard_t *shard, const char *name) {
  const int nh = full->n_heads, nkv = full->n_kv_heads, hid = full->hidden_dim;
  *local = *full;
  *shard = (deco_shard_t){.q_head0 = 0, .kv_head0 = 0, .hid0 = 0, .hid_real = hid};
  if (tp == 1) return DECO_STATUS_SUCCESS;
  if (nh % tp != 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: tensor parallelism %d: the model's %d query heads (%d KV heads) do not divide by TP %d", name,
                     tp, nh, nkv, tp);
  local->n_heads = nh / tp;
  shard->q_head0 = rank * local->n_heads;
  if (nkv % tp == 0) {
    /* Each rank holds its share of the KV heads. */
    local->n_kv_heads = nkv / tp;
    shard->kv_head0 = rank * local->n_kv_heads;
  } else if (tp % nkv == 0) {
    /* More ranks than KV heads: rank r holds KV head floor(r * n_kv / TP),
     * the one every query head of its own belongs to (replicated). */
    local->n_kv_heads = 1;
    shard->kv_head0 = (int)((long long)rank * nkv / tp);
  } else {
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: tensor parallelism %d: the model's %d KV heads (%d query heads) neither divide by TP %d nor "
                     "divide it",
                     name, tp, nkv, nh, tp);
  }
  local->hidden_dim = (hid + tp - 1) / tp;
  shard->hid0 = rank * local->hidden_dim;
  const int left = hid - shard->hid0;
  shard->hid_real = left < 0 ? 0 : left < local->hidden_dim ? left : local->hidden_dim;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_model_upload_block(deco_model_t *m, void *dst, size_t at, size_t dst_cols, const float *src,
                                      size_t src_cols, size_t row0, size_t rows, size_t col0, size_t cols) {
  deco_ctx_t *ctx = m->ctx;
  const size_t n = rows * dst_cols;
  if (n == 0) return DECO_STATUS_SUCCESS;
  float *host = calloc(n, sizeof(float)); /* zero: the padding columns */
  if (!host) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "model: out of host memory");
  for (size_t r = 0; r < rows; ++r) memcpy(host + r * dst_cols, src + (row0 + r) * src_cols + col0, cols * sizeof(float));
  dst = (char *)dst + at * deco_dtype_size(m->dtype);
  deco_status_t st;
  if (m->dtype == DECO_DTYPE_F32) {
    st = deco_memcpy(ctx, dst, host, n * sizeof(float), DECO_COPY_HOST_TO_CTX);
  } else {
    void *staging = NULL;
    st = deco_malloc(ctx, &staging, n * sizeof(float));
    if (st == DECO_STATUS_SUCCESS) st = deco_memcpy(ctx, staging, host, n * sizeof(float), DECO_COPY_HOST_TO_CTX);
    deco_convert_args_t a = {.in_dtype = DECO_DTYPE_F32, .out_dtype = m->dtype, .n = n, .in = staging, .out = dst};
    if (st == DECO_STATUS_SUCCESS) st = deco_convert(ctx, &a);
    if (st == DECO_STATUS_SUCCESS) st = deco_ctx_synchronize(ctx);
    deco_free(ctx, staging);
  }
  free(host);
  return st;
}

deco_status_t deco_model_upload_shard(deco_model_t *m, deco_shard_tensor_t t, int l, const float *src) {
  const deco_model_hparams_t *f = &m->full, *c = &m->hp;
  const deco_shard_t *sh = &m->shard;
  const size_t dim = (size_t)f->dim, hd = (size_t)f->head_dim, L = (size_t)l;
  const size_t qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd, hid = (size_t)c->hidden_dim;
  const size_t qkvd = qd + 2 * kvd, q0 = (size_t)sh->q_head0 * hd, kv0 = (size_t)sh->kv_head0 * hd;
  const size_t h0 = (size_t)sh->hid0, hreal = (size_t)sh->hid_real;
  switch (t) {
  case DECO_SHARD_WQ: return deco_model_upload_block(m, m->w.wqkv, L * qkvd * dim, dim, src, dim, q0, qd, 0, dim);
  case DECO_SHARD_WK:
    return deco_model_upload_block(m, m->w.wqkv, (L * qkvd + qd) * dim, dim, src, dim, kv0, kvd, 0, dim);
  case DECO_SHARD_WV:
    return deco_model_upload_block(m, m->w.wqkv, (L * qkvd + qd + kvd) * dim, dim, src, dim, kv0, kvd, 0, dim);
  case DECO_SHARD_WO:
    return deco_model_upload_block(m, m->w.wo, L * dim * qd, qd, src, (size_t)f->n_heads * hd, 0, dim, q0, qd);
  case DECO_SHARD_W1: return deco_model_upload_block(m, m->w.w13, L * 2 * hid * dim, dim, src, dim, h0, hreal, 0, dim);
  case DECO_SHARD_W3:
    return deco_model_upload_block(m, m->w.w13, (L * 2 + 1) * hid * dim, dim, src, dim, h0, hreal, 0, dim);
  case DECO_SHARD_W2:
    return deco_model_upload_block(m, m->w.w2, L * dim * hid, hid, src, (size_t)f->hidden_dim, 0, dim, h0, hreal);
  }
  return DECO_FAIL(m->ctx, DECO_STATUS_INTERNAL, "model: shard tensor %d", (int)t);
}
