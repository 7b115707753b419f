/* host/model/kv_cache.c — the paged KV cache manager: per-layer K and V
 * pools of fixed-size pages, a free-page stack, and per sequence a block
 * table row and a committed length. Pages are reserved when a sequence is
 * admitted, so a running sequence never waits for memory.
 */
#include <stdlib.h>
#include <string.h>

#include "deco/tree.h"
#include "model/model_internal.h"

deco_status_t deco_kv_cache_create(deco_model_t *model, int page_size, int n_pages, int max_seqs,
                                   deco_kv_cache_t **out) {
  static const char op[] = "deco_kv_cache_create";
  if (model == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: model is NULL", op);
  deco_ctx_t *ctx = model->ctx;
  DECO_CHECK_PTR(ctx, out, op);
  *out = NULL;
  DECO_CHECK_RANGE(ctx, page_size, 1, 1 << 16, op);
  DECO_CHECK_RANGE(ctx, n_pages, 1, 1 << 30, op);
  DECO_CHECK_RANGE(ctx, max_seqs, 1, 1 << 20, op);
  const deco_model_hparams_t *c = &model->hp;
  deco_kv_cache_t *kc = calloc(1, sizeof *kc);
  if (!kc) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  kc->model = model;
  kc->page_size = page_size;
  kc->n_pages = n_pages;
  kc->max_seqs = max_seqs;
  /* A sequence never needs more than seq_len committed slots plus one tree. */
  kc->max_pages_per_seq = (c->seq_len + DECO_TREE_MAX_NODES + page_size - 1) / page_size;
  size_t bytes;
  if (__builtin_mul_overflow((size_t)n_pages * (size_t)page_size, (size_t)c->n_kv_heads * c->head_dim,
                             &kc->layer_elems) ||
      __builtin_mul_overflow(kc->layer_elems, (size_t)c->n_layers * deco_dtype_size(model->dtype), &bytes)) {
    free(kc);
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: %d pages of %d slots overflow the address space", op,
                     n_pages, page_size);
  }
  kc->free_pages = malloc(sizeof(int) * (size_t)n_pages);
  kc->active = calloc((size_t)max_seqs, sizeof(int));
  kc->len = calloc((size_t)max_seqs, sizeof(int));
  kc->n_seq_pages = calloc((size_t)max_seqs, sizeof(int));
  kc->pages = malloc(sizeof(int32_t) * (size_t)max_seqs * kc->max_pages_per_seq);
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (!kc->free_pages || !kc->active || !kc->len || !kc->n_seq_pages || !kc->pages)
    st = DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, &kc->k, bytes);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, &kc->v, bytes);
  if (st != DECO_STATUS_SUCCESS) {
    deco_kv_cache_destroy(kc);
    return st;
  }
  /* Pop order hands out pages 0, 1, 2, ... first. */
  for (int i = 0; i < n_pages; ++i) kc->free_pages[i] = n_pages - 1 - i;
  kc->n_free = n_pages;
  for (size_t i = 0; i < (size_t)max_seqs * kc->max_pages_per_seq; ++i) kc->pages[i] = -1;
  *out = kc;
  return DECO_STATUS_SUCCESS;
}

void deco_kv_cache_destroy(deco_kv_cache_t *kc) {
  if (kc == NULL) return;
  deco_free(kc->model->ctx, kc->k);
  deco_free(kc->model->ctx, kc->v);
  free(kc->free_pages);
  free(kc->active);
  free(kc->len);
  free(kc->n_seq_pages);
  free(kc->pages);
  free(kc);
}

deco_status_t deco_kv_cache_admit(deco_kv_cache_t *kc, int reserve_slots, int *seq) {
  static const char op[] = "deco_kv_cache_admit";
  if (kc == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: cache is NULL", op);
  deco_ctx_t *ctx = kc->model->ctx;
  DECO_CHECK_PTR(ctx, seq, op);
  int max_slots = kc->max_pages_per_seq * kc->page_size;
  DECO_CHECK_RANGE(ctx, reserve_slots, 1, max_slots, op);
  int need = (reserve_slots + kc->page_size - 1) / kc->page_size;
  int s = -1;
  for (int i = 0; i < kc->max_seqs; ++i)
    if (!kc->active[i]) {
      s = i;
      break;
    }
  if (s < 0) return DECO_FAIL(ctx, DECO_STATUS_CAPACITY, "%s: all %d sequences are in use", op, kc->max_seqs);
  if (need > kc->n_free)
    return DECO_FAIL(ctx, DECO_STATUS_CAPACITY, "%s: %d slots need %d pages, %d free", op, reserve_slots, need,
                     kc->n_free);
  int32_t *row = kc->pages + (size_t)s * kc->max_pages_per_seq;
  for (int p = 0; p < need; ++p) row[p] = kc->free_pages[--kc->n_free];
  kc->active[s] = 1;
  kc->len[s] = 0;
  kc->n_seq_pages[s] = need;
  *seq = s;
  return DECO_STATUS_SUCCESS;
}

static int valid_seq(const deco_kv_cache_t *kc, int seq) {
  return kc && seq >= 0 && seq < kc->max_seqs && kc->active[seq];
}

/* The checks of a call on one admitted sequence: a cache, and seq in it. */
static deco_status_t check_seq(const deco_kv_cache_t *kc, int seq, const char *op) {
  if (kc == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: cache is NULL", op);
  if (!valid_seq(kc, seq))
    return DECO_FAIL(kc->model->ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: sequence %d is not admitted", op, seq);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_kv_cache_release(deco_kv_cache_t *kc, int seq) {
  static const char op[] = "deco_kv_cache_release";
  DECO_TRY(check_seq(kc, seq, op));
  int32_t *row = kc->pages + (size_t)seq * kc->max_pages_per_seq;
  for (int p = kc->n_seq_pages[seq] - 1; p >= 0; --p) {
    kc->free_pages[kc->n_free++] = row[p];
    row[p] = -1;
  }
  kc->active[seq] = 0;
  kc->len[seq] = 0;
  kc->n_seq_pages[seq] = 0;
  return DECO_STATUS_SUCCESS;
}

int deco_kv_cache_seq_len(const deco_kv_cache_t *kc, int seq) { return valid_seq(kc, seq) ? kc->len[seq] : -1; }

int deco_kv_cache_seq_capacity(const deco_kv_cache_t *kc, int seq) {
  return valid_seq(kc, seq) ? kc->n_seq_pages[seq] * kc->page_size : -1;
}

int deco_kv_cache_free_pages(const deco_kv_cache_t *kc) { return kc ? kc->n_free : -1; }

deco_model_t *deco_kv_cache_model(const deco_kv_cache_t *kc) { return kc ? kc->model : NULL; }

deco_status_t deco_kv_cache_commit(deco_kv_cache_t *kc, int seq, int n) {
  static const char op[] = "deco_kv_cache_commit";
  DECO_TRY(check_seq(kc, seq, op));
  deco_ctx_t *ctx = kc->model->ctx;
  /* n compared with the room left, so a huge n cannot wrap the sum. */
  if (n < 0 || n > kc->n_seq_pages[seq] * kc->page_size - kc->len[seq] || n > kc->model->hp.seq_len - kc->len[seq])
    return DECO_FAIL(ctx, DECO_STATUS_CAPACITY, "%s: sequence %d has %d slots, cannot commit %d more", op, seq,
                     kc->len[seq], n);
  kc->len[seq] += n;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_kv_cache_truncate(deco_kv_cache_t *kc, int seq, int len) {
  static const char op[] = "deco_kv_cache_truncate";
  DECO_TRY(check_seq(kc, seq, op));
  deco_ctx_t *ctx = kc->model->ctx;
  if (len < 0 || len > kc->len[seq])
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: sequence %d has %d committed slots, cannot keep %d", op,
                     seq, kc->len[seq], len);
  kc->len[seq] = len;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_kv_cache_compact(deco_kv_cache_t *kc, const deco_kv_cache_compact_args_t *a) {
  static const char op[] = "deco_kv_cache_compact";
  if (kc == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: cache is NULL", op);
  deco_ctx_t *ctx = kc->model->ctx;
  DECO_CHECK_PTR(ctx, a, op);
  DECO_CHECK_RANGE(ctx, a->n_seqs, 1, kc->max_seqs, op);
  DECO_CHECK_PTR(ctx, a->block_table, op);
  /* All layers in one launch: layer l's pools are layer_elems further. */
  deco_kv_compact_args_t ca = {.cache = deco_kv_cache_layer_view(kc, 0, a->block_table, kc->max_pages_per_seq),
                               .n_layers = kc->model->hp.n_layers,
                               .layer_stride = kc->layer_elems,
                               .n_trees = a->n_seqs,
                               .prefix_lens = a->prefix_lens,
                               .path = a->path,
                               .accept_len = a->accept_len};
  return deco_kv_compact(ctx, &ca);
}

deco_paged_kv_t deco_kv_cache_layer_view(const deco_kv_cache_t *kc, int layer, const int32_t *block_table,
                                         int max_pages) {
  const deco_model_hparams_t *c = &kc->model->hp;
  size_t off = (size_t)layer * kc->layer_elems * deco_dtype_size(kc->model->dtype);
  deco_paged_kv_t v = {.dtype = kc->model->dtype,
                       .n_kv_heads = c->n_kv_heads,
                       .head_dim = c->head_dim,
                       .page_size = kc->page_size,
                       .n_pages = kc->n_pages,
                       .k_pages = (char *)kc->k + off,
                       .v_pages = (char *)kc->v + off,
                       .block_table = block_table,
                       .max_pages_per_seq = max_pages};
  return v;
}

int deco_kv_cache_max_pages(const deco_kv_cache_t *kc) { return kc ? kc->max_pages_per_seq : -1; }

deco_status_t deco_kv_cache_block_table(deco_kv_cache_t *kc, const int *seqs, int n, int32_t *dst) {
  static const char op[] = "deco_kv_cache_block_table";
  if (kc == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: cache is NULL", op);
  deco_ctx_t *ctx = kc->model->ctx;
  DECO_CHECK_PTR(ctx, seqs, op);
  DECO_CHECK_PTR(ctx, dst, op);
  DECO_CHECK_RANGE(ctx, n, 1, kc->max_seqs, op);
  const size_t row = (size_t)kc->max_pages_per_seq;
  for (int i = 0; i < n; ++i) {
    if (seqs[i] < 0 || seqs[i] >= kc->max_seqs || !kc->active[seqs[i]])
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: seqs[%d] = %d is not admitted", op, i, seqs[i]);
    DECO_TRY(deco_memcpy(ctx, dst + (size_t)i * row, kc->pages + (size_t)seqs[i] * row, row * sizeof(int32_t),
                         DECO_COPY_HOST_TO_CTX));
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_kv_cache_pools(const deco_kv_cache_t *kc, void **k, void **v, size_t *bytes) {
  if (kc == NULL || k == NULL || v == NULL || bytes == NULL)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_kv_cache_pools: NULL argument");
  *k = kc->k;
  *v = kc->v;
  *bytes = kc->layer_elems * (size_t)kc->model->hp.n_layers * deco_dtype_size(kc->model->dtype);
  return DECO_STATUS_SUCCESS;
}
