/* host/model/model.c — a Llama model in a context's memory: loading a
 * llama2.c checkpoint (validated whole, then uploaded and converted to the
 * model dtype) and seeded synthetic models generated where they live.
 * Weights are stacked per tensor as in llama2.c ([n_layers][rows][cols]) in
 * one allocation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "model/llama2c.h"
#include "model/model_internal.h"

/* Synthetic models refuse the CPU backend above this many parameters. */
#define DECO_CPU_MAX_PARAMS ((size_t)1 << 28)

#define N_TENSORS 9

typedef struct tensor_sizes {
  size_t n[N_TENSORS]; /* elements, in deco_weights_t order */
} tensor_sizes_t;

static tensor_sizes_t tensor_sizes(const deco_model_config_t *c) {
  size_t L = (size_t)c->n_layers, dim = (size_t)c->dim, hd = (size_t)c->head_dim;
  size_t qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd, hid = (size_t)c->hidden_dim;
  size_t V = (size_t)c->vocab_size;
  tensor_sizes_t s = {{V * dim, L * dim, L * (qd + 2 * kvd) * dim, L * dim * qd, L * dim, L * 2 * hid * dim,
                       L * dim * hid, dim, c->shared_classifier ? 0 : V * dim}};
  return s;
}

size_t deco_config_param_count(const deco_model_config_t *cfg) {
  tensor_sizes_t s = tensor_sizes(cfg);
  size_t total = 0;
  for (int i = 0; i < N_TENSORS; ++i) total += s.n[i];
  return total;
}

static void **weight_slot(deco_weights_t *w, int i) {
  void **slots[N_TENSORS] = {&w->token_embedding, &w->rms_att, &w->wqkv, &w->wo,       &w->rms_ffn,
                             &w->w13,             &w->w2,      &w->rms_final, &w->wcls};
  return slots[i];
}

/* Allocates the model and its arena and points every tensor into it. */
static deco_status_t model_alloc(deco_ctx_t *ctx, const deco_model_config_t *cfg, deco_dtype_t dtype,
                                 deco_model_t **out) {
  deco_model_t *m = calloc(1, sizeof *m);
  if (!m) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "model: out of host memory");
  m->ctx = ctx;
  m->cfg = *cfg;
  m->dtype = dtype;
  tensor_sizes_t s = tensor_sizes(cfg);
  size_t esz = deco_dtype_size(dtype), offsets[N_TENSORS], total = 0;
  for (int i = 0; i < N_TENSORS; ++i) {
    offsets[i] = total;
    total += (s.n[i] * esz + 255) & ~(size_t)255;
  }
  deco_status_t st = deco_malloc(ctx, &m->arena, total);
  if (st != DECO_STATUS_SUCCESS) {
    free(m);
    return st;
  }
  m->arena_bytes = total;
  for (int i = 0; i < N_TENSORS; ++i) *weight_slot(&m->w, i) = (char *)m->arena + offsets[i];
  if (cfg->shared_classifier) m->w.wcls = m->w.token_embedding;
  *out = m;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t check_dtype_for_backend(deco_ctx_t *ctx, deco_dtype_t dtype, const char *op) {
  return deco_check_dtype(ctx, dtype, op, "dtype");
}

/* Uploads n f32 host values to element offset at of dst (model dtype),
 * converting through a staging buffer. */
static deco_status_t upload_tensor(deco_model_t *m, void *dst, size_t at, const float *src, size_t n, void *staging) {
  if (n == 0) return DECO_STATUS_SUCCESS;
  dst = (char *)dst + at * deco_dtype_size(m->dtype);
  if (m->dtype == DECO_DTYPE_F32) return deco_memcpy(m->ctx, dst, src, n * sizeof(float), DECO_COPY_HOST_TO_CTX);
  DECO_TRY(deco_memcpy(m->ctx, staging, src, n * sizeof(float), DECO_COPY_HOST_TO_CTX));
  deco_convert_args_t a = {DECO_DTYPE_F32, m->dtype, n, staging, dst};
  return deco_convert(m->ctx, &a);
}

/* The context's last error again, with the model's name in front (an
 * out-of-memory message then says which model did not fit). */
static deco_status_t fail_naming(deco_ctx_t *ctx, deco_status_t st, const char *name) {
  char msg[DECO_ERROR_CAPACITY];
  snprintf(msg, sizeof msg, "%s", deco_last_error(ctx));
  return DECO_FAIL(ctx, st, "%s: %s", name, msg);
}

deco_status_t deco_model_load_llama2c(deco_ctx_t *ctx, const char *path, deco_dtype_t dtype, deco_model_t **out) {
  static const char op[] = "deco_model_load_llama2c";
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  DECO_CHECK_PTR(ctx, path, op);
  DECO_CHECK_PTR(ctx, out, op);
  *out = NULL;
  DECO_TRY(check_dtype_for_backend(ctx, dtype, op));
  int fd = -1;
  size_t size = 0;
  DECO_TRY(deco_file_open_regular(ctx, path, &fd, &size));
  void *data = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
  close(fd);
  if (size && data == MAP_FAILED) return DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "%s: cannot map: %s", path, strerror(errno));
  deco_status_t st = deco_model_load_llama2c_buffer(ctx, data, size, path, dtype, out);
  if (data) munmap(data, size);
  return st;
}

deco_status_t deco_model_load_llama2c_buffer(deco_ctx_t *ctx, const void *data, size_t size, const char *name,
                                             deco_dtype_t dtype, deco_model_t **out) {
  static const char op[] = "deco_model_load_llama2c_buffer";
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  DECO_CHECK_PTR(ctx, out, op);
  *out = NULL;
  if (data == NULL && size > 0) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: data is NULL", op);
  DECO_TRY(check_dtype_for_backend(ctx, dtype, op));
  if (name == NULL) name = "(buffer)";
  deco_model_config_t cfg;
  deco_llama2c_weights_t lw;
  deco_status_t st = deco_llama2c_parse(data, size, name, &cfg, &lw);
  if (st != DECO_STATUS_SUCCESS) return DECO_FAIL(ctx, st, "%s", deco_last_error(NULL));
  deco_model_t *m = NULL;
  st = model_alloc(ctx, &cfg, dtype, &m);
  if (st != DECO_STATUS_SUCCESS) return fail_naming(ctx, st, name);
  void *staging = NULL;
  tensor_sizes_t s = tensor_sizes(&cfg);
  /* Whole tensors where the layouts agree; the stacked groups layer by layer. */
  const float *whole[N_TENSORS] = {lw.token_embedding, lw.rms_att, NULL, lw.wo, lw.rms_ffn,
                                   NULL, lw.w2, lw.rms_final, lw.wcls};
  if (st == DECO_STATUS_SUCCESS && dtype != DECO_DTYPE_F32) {
    size_t biggest = (size_t)cfg.hidden_dim * cfg.dim; /* the largest per-layer piece */
    for (int i = 0; i < N_TENSORS; ++i)
      if (whole[i] && s.n[i] > biggest) biggest = s.n[i];
    if ((size_t)cfg.n_heads * cfg.head_dim * cfg.dim > biggest) biggest = (size_t)cfg.n_heads * cfg.head_dim * cfg.dim;
    st = deco_malloc(ctx, &staging, biggest * sizeof(float));
  }
  for (int i = 0; i < N_TENSORS && st == DECO_STATUS_SUCCESS; ++i)
    if (whole[i]) st = upload_tensor(m, *weight_slot(&m->w, i), 0, whole[i], s.n[i], staging);
  const size_t dim = (size_t)cfg.dim, qd = (size_t)cfg.n_heads * cfg.head_dim;
  const size_t kvd = (size_t)cfg.n_kv_heads * cfg.head_dim, hid = (size_t)cfg.hidden_dim;
  for (int l = 0; l < cfg.n_layers && st == DECO_STATUS_SUCCESS; ++l) {
    size_t qkv = (size_t)l * (qd + 2 * kvd) * dim, w13 = (size_t)l * 2 * hid * dim;
    const float *parts[5] = {lw.wq + l * qd * dim, lw.wk + l * kvd * dim, lw.wv + l * kvd * dim,
                             lw.w1 + l * hid * dim, lw.w3 + l * hid * dim};
    void *dst[5] = {m->w.wqkv, m->w.wqkv, m->w.wqkv, m->w.w13, m->w.w13};
    size_t at[5] = {qkv, qkv + qd * dim, qkv + (qd + kvd) * dim, w13, w13 + hid * dim};
    size_t n[5] = {qd * dim, kvd * dim, kvd * dim, hid * dim, hid * dim};
    for (int j = 0; j < 5 && st == DECO_STATUS_SUCCESS; ++j) st = upload_tensor(m, dst[j], at[j], parts[j], n[j], staging);
  }
  if (st == DECO_STATUS_SUCCESS) st = deco_ctx_synchronize(ctx);
  deco_free(ctx, staging);
  if (st != DECO_STATUS_SUCCESS) {
    deco_model_destroy(m);
    return fail_naming(ctx, st, name);
  }
  *out = m;
  return DECO_STATUS_SUCCESS;
}

typedef struct synthetic_entry {
  const char *name;
  deco_model_config_t cfg;
} synthetic_entry_t;

/* Shapes: tiny is the CLI's default (about 12 MB in f32); the others are the
 * real shapes of Llama 2 7B and Llama 3 8B, without a vocabulary. */
static const synthetic_entry_t synthetic_models[] = {
    {"tiny", {256, 688, 4, 4, 2, 64, 259, 512, 10000.0f, 1e-5f, DECO_ROPE_INTERLEAVED, 1, 1}},
    {"llama2-7b", {4096, 11008, 32, 32, 32, 128, 32000, 4096, 10000.0f, 1e-5f, DECO_ROPE_INTERLEAVED, 0, 0}},
    {"llama3-8b", {4096, 14336, 32, 32, 8, 128, 128256, 8192, 500000.0f, 1e-5f, DECO_ROPE_HALF_SPLIT, 0, 0}},
};

deco_status_t deco_synthetic_config(const char *name, deco_model_config_t *config) {
  if (name == NULL || config == NULL)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_synthetic_config: %s is NULL", name ? "config" : "name");
  for (size_t i = 0; i < sizeof synthetic_models / sizeof synthetic_models[0]; ++i) {
    if (strcmp(name, synthetic_models[i].name) == 0) {
      *config = synthetic_models[i].cfg;
      return DECO_STATUS_SUCCESS;
    }
  }
  return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                   "unknown synthetic model '%s' (known: tiny, llama2-7b, llama3-8b)", name);
}

deco_status_t deco_model_create_synthetic(deco_ctx_t *ctx, const char *name, uint64_t seed, deco_dtype_t dtype,
                                          deco_model_t **out) {
  static const char op[] = "deco_model_create_synthetic";
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  DECO_CHECK_PTR(ctx, out, op);
  *out = NULL;
  DECO_TRY(check_dtype_for_backend(ctx, dtype, op));
  deco_model_config_t cfg;
  deco_status_t st = deco_synthetic_config(name, &cfg);
  if (st != DECO_STATUS_SUCCESS) return DECO_FAIL(ctx, st, "%s", deco_last_error(NULL));
  size_t params = deco_config_param_count(&cfg);
  if (ctx->backend == DECO_BACKEND_CPU && params > DECO_CPU_MAX_PARAMS)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                     "synthetic:%s has %.2f billion parameters: too big for the CPU backend (use --backend cuda)",
                     name, (double)params / 1e9);
  deco_model_t *m = NULL;
  DECO_TRY(model_alloc(ctx, &cfg, dtype, &m));
  tensor_sizes_t s = tensor_sizes(&cfg);
  /* Norm weights are 1; everything else uniform with standard deviation 0.02. */
  const float scale = 0.02f * sqrtf(3.0f);
  for (int i = 0; i < N_TENSORS && st == DECO_STATUS_SUCCESS; ++i) {
    if (s.n[i] == 0) continue;
    void **slot = weight_slot(&m->w, i);
    int is_norm = slot == &m->w.rms_att || slot == &m->w.rms_ffn || slot == &m->w.rms_final;
    deco_fill_random_args_t a = {dtype, s.n[i], seed, (uint32_t)i, scale, is_norm ? 1.0f : 0.0f, *slot};
    st = deco_fill_random(ctx, &a);
  }
  if (st == DECO_STATUS_SUCCESS) st = deco_ctx_synchronize(ctx);
  if (st != DECO_STATUS_SUCCESS) {
    deco_model_destroy(m);
    return st;
  }
  *out = m;
  return DECO_STATUS_SUCCESS;
}

void deco_model_destroy(deco_model_t *m) {
  if (m == NULL) return;
  deco_forward_scratch_t *s = &m->scratch;
  void *bufs[] = {s->x, s->xb, s->qkv, s->att, s->proj, s->h13, s->h, s->meta};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i) deco_free(m->ctx, bufs[i]);
  free(s->meta_host);
  /* The context must not keep a workspace that is about to be freed. */
  if (m->workspace && deco_ctx_workspace_bytes(m->ctx) && m->ctx->workspace == m->workspace)
    deco_ctx_set_workspace(m->ctx, NULL, 0);
  deco_free(m->ctx, m->workspace);
  deco_free(m->ctx, m->arena);
  free(m);
}

const deco_model_config_t *deco_model_get_config(const deco_model_t *m) { return m ? &m->cfg : NULL; }
deco_dtype_t deco_model_dtype(const deco_model_t *m) { return m ? m->dtype : DECO_DTYPE_F32; }
deco_ctx_t *deco_model_ctx(const deco_model_t *m) { return m ? m->ctx : NULL; }

size_t deco_model_weight_bytes(const deco_model_t *m) {
  return m ? deco_config_param_count(&m->cfg) * deco_dtype_size(m->dtype) : 0;
}
