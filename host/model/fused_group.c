/* host/model/fused_group.c — the weights of fused layer groups (EasySpec's
 * layer-parallel drafting on one device, docs/DESIGN.md "Fused layer
 * groups"): for a group of layers l_1 .. l_N entered with h₁, every
 * attention reads RMSNorm_i(h₁) = γ_i ∘ r(h₁), r the weightless RMSNorm, so
 * W_i · RMSNorm_i(h₁) = (W_i · diag(γ_i)) · r(h₁): the N layers' Q/K/V rows,
 * each with its norm weight folded into its columns, stacked [N][qkv][dim],
 * take one normalised input in one batched GEMM. These are copies, made for
 * the grouped layers only (the base weights stay as they are).
 */
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

void deco_model_free_fused(deco_model_t *m) {
  deco_free(m->ctx, m->fused.block);
  free(m->fused.groups);
  m->fused = (deco_fused_t){0};
}

const deco_fused_group_t *deco_model_fused_group(const deco_model_t *m, int first, int count) {
  for (int g = 0; g < m->fused.n_groups; ++g)
    if (m->fused.groups[g].first == first && m->fused.groups[g].count == count) return &m->fused.groups[g];
  return NULL;
}

size_t deco_model_fused_bytes(const deco_model_t *m) { return m ? m->fused.bytes : 0; }

/* Context rows [rows][cols] of the model dtype as f32 on the host. */
static deco_status_t download_f32(deco_model_t *m, const void *src, size_t n, float *out) {
  const deco_dtype_t dt = m->dtype;
  const size_t es = deco_dtype_size(dt);
  void *raw = dt == DECO_DTYPE_F32 ? (void *)out : malloc(n * es);
  if (!raw) return DECO_FAIL(m->ctx, DECO_STATUS_OUT_OF_MEMORY, "fused layer groups: out of host memory");
  deco_status_t st = deco_memcpy(m->ctx, raw, src, n * es, DECO_COPY_CTX_TO_HOST);
  if (st == DECO_STATUS_SUCCESS) st = deco_ctx_synchronize(m->ctx);
  if (st == DECO_STATUS_SUCCESS && raw != out)
    for (size_t i = 0; i < n; ++i) out[i] = deco_load_as_f32(raw, i, dt);
  if (raw != out) free(raw);
  return st;
}

static deco_status_t fuse_group(deco_model_t *m, deco_fused_group_t *g, float *w, float *gamma) {
  const deco_model_hparams_t *c = &m->hp;
  const size_t dim = (size_t)c->dim, qkvd = (size_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
  const size_t es = deco_dtype_size(m->dtype);
  for (int i = 0; i < g->count; ++i) {
    const size_t l = (size_t)(g->first + i);
    DECO_TRY(download_f32(m, (const char *)m->w.wqkv + l * qkvd * dim * es, qkvd * dim, w));
    DECO_TRY(download_f32(m, (const char *)m->w.rms_att + l * dim * es, dim, gamma));
    /* W_i · diag(γ_i): column j of every row scaled by γ_i[j], one f32
     * rounding per weight (then one to the model dtype). */
    for (size_t r = 0; r < qkvd; ++r)
      for (size_t j = 0; j < dim; ++j) w[r * dim + j] *= gamma[j];
    DECO_TRY(deco_model_upload_block(m, g->wqkv, (size_t)i * qkvd * dim, dim, w, dim, 0, qkvd, 0, dim));
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_model_fuse_groups(deco_model_t *m) {
  deco_ctx_t *ctx = m->ctx;
  const deco_schedule_copy_t *s = &m->schedule;
  const deco_model_hparams_t *c = &m->hp;
  const size_t dim = (size_t)c->dim, qkvd = (size_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
  const size_t es = deco_dtype_size(m->dtype);
  int n = 0, layers = 0, max_group = 0;
  for (int g = 0; g < s->n_groups; ++g)
    if (s->count[g] > 1) {
      n++;
      layers += s->count[g];
      if (s->count[g] > max_group) max_group = s->count[g];
    }
  if (n == 0) return DECO_STATUS_SUCCESS;
  const size_t align = 256, ones_bytes = (dim * es + align - 1) / align * align;
  m->fused.groups = calloc((size_t)n, sizeof *m->fused.groups);
  if (!m->fused.groups) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "fused layer groups: out of host memory");
  m->fused.bytes = ones_bytes + (size_t)layers * qkvd * dim * es;
  deco_status_t st = deco_malloc(ctx, &m->fused.block, m->fused.bytes);
  float *w = malloc(sizeof(float) * qkvd * dim), *gamma = malloc(sizeof(float) * dim);
  if (st == DECO_STATUS_SUCCESS && (!w || !gamma))
    st = DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "fused layer groups: out of host memory");
  if (st == DECO_STATUS_SUCCESS) {
    m->fused.ones = m->fused.block;
    for (size_t j = 0; j < dim; ++j) gamma[j] = 1.0f;
    st = deco_model_upload_block(m, m->fused.ones, 0, dim, gamma, dim, 0, 1, 0, dim);
  }
  char *at = (char *)m->fused.block + ones_bytes;
  for (int g = 0, k = 0; st == DECO_STATUS_SUCCESS && g < s->n_groups; ++g) {
    if (s->count[g] < 2) continue;
    deco_fused_group_t *fg = &m->fused.groups[k++];
    *fg = (deco_fused_group_t){.first = s->first[g], .count = s->count[g], .wqkv = at};
    at += (size_t)fg->count * qkvd * dim * es;
    m->fused.n_groups = k;
    st = fuse_group(m, fg, w, gamma);
  }
  free(w);
  free(gamma);
  if (st != DECO_STATUS_SUCCESS) {
    deco_model_free_fused(m);
    return st;
  }
  m->fused.max_group = max_group;
  return DECO_STATUS_SUCCESS;
}
