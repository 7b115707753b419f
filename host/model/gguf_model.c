/* host/model/gguf_model.c — a Llama model from a GGUF file: the file mapped
 * and validated whole (gguf.c: header, metadata, tensor table, the Llama
 * architecture and every tensor's shape and type; then every value or block
 * scale finite), the configuration checked against it, then each tensor
 * dequantised once by the deco_dequant op into the model dtype, straight
 * from the mapping on the CPU and through one staging buffer on the GPU.
 * GGUF's [ne0 = cols, ne1 = rows] tensors are row-major like deco's
 * [rows][cols], so each lands as one block of the stacked weights
 * (model_internal.h); Q|K|V and gate|up are stacked per layer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deco/core.h"
#include "deco/quant.h"
#include "model/gguf.h"
#include "model/model_internal.h"

/* Parses data (the messages name name) and derives the architecture;
 * messages go to the thread's slot. */
static deco_status_t parse_llama(const void *data, size_t size, const char *name, deco_gguf_t *g,
                                 deco_model_hparams_t *hp) {
  DECO_TRY(deco_gguf_parse(data, size, name, g));
  deco_status_t st = deco_gguf_llama_hparams(g, hp);
  if (st != DECO_STATUS_SUCCESS) deco_gguf_free(g);
  return st;
}

deco_status_t deco_gguf_read_hparams_buffer(const void *data, size_t size, const char *name,
                                            deco_model_hparams_t *hparams) {
  if (!hparams) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_gguf_read_hparams_buffer: hparams is NULL");
  if (!data && size > 0)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_gguf_read_hparams_buffer: data is NULL");
  deco_gguf_t g;
  DECO_TRY(parse_llama(data, size, name, &g, hparams));
  deco_gguf_free(&g);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_gguf_read_hparams(const char *path, deco_model_hparams_t *hparams) {
  if (!path) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_gguf_read_hparams: path is NULL");
  if (!hparams) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_gguf_read_hparams: hparams is NULL");
  void *data;
  size_t size;
  DECO_TRY(deco_model_map_file(NULL, path, &data, &size));
  deco_status_t st = deco_gguf_read_hparams_buffer(data, size, path, hparams);
  deco_model_unmap_file(data, size);
  return st;
}

/* Where a tensor of a role goes: its weight block and the element offset
 * of layer l's part in it. */
static void *destination(deco_model_t *m, deco_gguf_role_t role, int l) {
  const deco_model_hparams_t *c = &m->hp; /* TP 1 only for the split roles (upload_shard) */
  const size_t dim = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim;
  const size_t kvd = (size_t)c->n_kv_heads * c->head_dim, hid = (size_t)c->hidden_dim, L = (size_t)l;
  const size_t es = deco_dtype_size(m->dtype);
  void *base;
  size_t at;
  switch (role) {
    case DECO_GGUF_TOKEN_EMBD: base = m->w.token_embedding, at = 0; break;
    case DECO_GGUF_OUTPUT: base = m->w.wcls, at = 0; break;
    case DECO_GGUF_OUTPUT_NORM: base = m->w.rms_final, at = 0; break;
    case DECO_GGUF_ATTN_NORM: base = m->w.rms_att, at = L * dim; break;
    case DECO_GGUF_ATTN_Q: base = m->w.wqkv, at = L * (qd + 2 * kvd) * dim; break;
    case DECO_GGUF_ATTN_K: base = m->w.wqkv, at = (L * (qd + 2 * kvd) + qd) * dim; break;
    case DECO_GGUF_ATTN_V: base = m->w.wqkv, at = (L * (qd + 2 * kvd) + qd + kvd) * dim; break;
    case DECO_GGUF_ATTN_OUTPUT: base = m->w.wo, at = L * dim * qd; break;
    case DECO_GGUF_FFN_NORM: base = m->w.rms_ffn, at = L * dim; break;
    case DECO_GGUF_FFN_GATE: base = m->w.w13, at = L * 2 * hid * dim; break;
    case DECO_GGUF_FFN_UP: base = m->w.w13, at = (L * 2 + 1) * hid * dim; break;
    default: /* DECO_GGUF_FFN_DOWN */ base = m->w.w2, at = L * dim * hid; break;
  }
  return (char *)base + at * es;
}

/* Every tensor of the model, in deco_gguf_role_t order, dequantised into
 * its place; staging (GPU) holds the largest tensor's bytes, NULL on the
 * CPU, where the op reads the file's bytes where they are. */
/* The split a role's tensor gets under tensor parallelism, or -1 for a
 * replicated one. */
static int shard_of(deco_gguf_role_t role) {
  switch (role) {
  case DECO_GGUF_ATTN_Q: return DECO_SHARD_WQ;
  case DECO_GGUF_ATTN_K: return DECO_SHARD_WK;
  case DECO_GGUF_ATTN_V: return DECO_SHARD_WV;
  case DECO_GGUF_ATTN_OUTPUT: return DECO_SHARD_WO;
  case DECO_GGUF_FFN_GATE: return DECO_SHARD_W1;
  case DECO_GGUF_FFN_UP: return DECO_SHARD_W3;
  case DECO_GGUF_FFN_DOWN: return DECO_SHARD_W2;
  default: return -1;
  }
}

/* The part of a split tensor this rank reads, in the file's [rows][cols]
 * layout: rows [row0, row0 + rows) of the row-split ones (Q, K, V, gate,
 * up), columns [col0, col0 + cols) of every row of the column-split ones
 * (O, down; returns 1 for these); deco_model_upload_shard reads no other
 * element. A rank past an FFN width TP does not divide has none. */
static int shard_range(const deco_model_t *m, int shard, size_t *row0, size_t *rows, size_t *col0, size_t *cols) {
  const deco_model_hparams_t *c = &m->hp;
  const size_t hd = (size_t)m->full.head_dim, qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd;
  const size_t q0 = (size_t)m->shard.q_head0 * hd, kv0 = (size_t)m->shard.kv_head0 * hd;
  const size_t h0 = (size_t)m->shard.hid0, hreal = (size_t)m->shard.hid_real;
  *row0 = 0, *rows = 0, *col0 = 0, *cols = 0;
  switch ((deco_shard_tensor_t)shard) {
  case DECO_SHARD_WQ: *row0 = q0, *rows = qd; return 0;
  case DECO_SHARD_WK:
  case DECO_SHARD_WV: *row0 = kv0, *rows = kvd; return 0;
  case DECO_SHARD_W1:
  case DECO_SHARD_W3: *row0 = h0, *rows = hreal; return 0;
  case DECO_SHARD_WO: *col0 = q0, *cols = qd; return 1;
  case DECO_SHARD_W2: *col0 = h0, *cols = hreal; return 1;
  }
  return 0;
}

/* Under tensor parallelism, a split tensor: only this rank's rows (or the
 * blocks covering its columns in every row) dequantised to f32, by a host
 * context's op, into a host buffer in the file's layout (the pages of the
 * other ranks' parts never touched), and this rank's slice uploaded. */
static deco_status_t upload_split(deco_model_t *m, deco_ctx_t **host_ctx, const deco_gguf_tensor_t *t, int shard,
                                  int l) {
  if (*host_ctx == NULL) {
    deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
    cc.backend = DECO_BACKEND_CPU;
    deco_status_t st = deco_ctx_create(&cc, host_ctx);
    if (st != DECO_STATUS_SUCCESS) return DECO_FAIL(m->ctx, st, "%s", deco_last_error(NULL));
  }
  uint32_t be = 1, bb = 0;
  if (!deco_gguf_type_block(t->type, &be, &bb) || t->dims[2] != 1 || t->dims[3] != 1 ||
      t->dims[0] % be != 0)
    return DECO_FAIL(m->ctx, DECO_STATUS_INTERNAL, "tensor %s: not a matrix of whole blocks", t->name);
  const size_t n_cols = (size_t)t->dims[0], n_rows = (size_t)t->dims[1], row_bytes = n_cols / be * bb;
  size_t row0, rows, col0, cols;
  const int by_cols = shard_range(m, shard, &row0, &rows, &col0, &cols);
  if (by_cols ? col0 + cols > n_cols : row0 + rows > n_rows)
    return DECO_FAIL(m->ctx, DECO_STATUS_INTERNAL, "tensor %s: shard outside its %zu x %zu", t->name, n_rows, n_cols);
  float *f32 = malloc(sizeof(float) * (size_t)t->n_elements);
  if (!f32) return DECO_FAIL(m->ctx, DECO_STATUS_OUT_OF_MEMORY, "tensor %s: out of host memory", t->name);
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (!by_cols) {
    /* Row-split: one call over the rank's rows. */
    deco_dequant_args_t a = {.type = (deco_quant_type_t)t->type, .out_dtype = DECO_DTYPE_F32, .n = rows * n_cols,
                             .in = t->data + row0 * row_bytes, .out = f32 + row0 * n_cols};
    if (rows > 0) st = deco_dequant(*host_ctx, &a);
  } else if (cols > 0) {
    /* Column-split: in every row, the blocks that cover the rank's columns. */
    const size_t b0 = col0 / be, b1 = (col0 + cols + be - 1) / be;
    for (size_t r = 0; r < n_rows && st == DECO_STATUS_SUCCESS; ++r) {
      deco_dequant_args_t a = {.type = (deco_quant_type_t)t->type, .out_dtype = DECO_DTYPE_F32,
                               .n = (b1 - b0) * be, .in = t->data + r * row_bytes + b0 * bb,
                               .out = f32 + r * n_cols + b0 * be};
      st = deco_dequant(*host_ctx, &a);
    }
  }
  if (st != DECO_STATUS_SUCCESS) st = DECO_FAIL(m->ctx, st, "tensor %s: %s", t->name, deco_last_error(*host_ctx));
  if (st == DECO_STATUS_SUCCESS) st = deco_model_upload_shard(m, (deco_shard_tensor_t)shard, l, f32);
  free(f32);
  return st;
}

static deco_status_t upload_all(deco_model_t *m, const deco_gguf_t *g, void *staging) {
  deco_ctx_t *ctx = m->ctx, *host_ctx = NULL;
  deco_status_t st = DECO_STATUS_SUCCESS;
  for (int role = 0; role < DECO_GGUF_N_ROLES && st == DECO_STATUS_SUCCESS; ++role) {
    const int per_layer = role >= DECO_GGUF_ATTN_NORM, layers = per_layer ? m->hp.n_layers : 1;
    for (int l = 0; l < layers && st == DECO_STATUS_SUCCESS; ++l) {
      const deco_gguf_tensor_t *t = deco_gguf_llama_tensor(g, (deco_gguf_role_t)role, l);
      if (!t) continue; /* output.weight absent: tied to token_embd (checked by the parse) */
      const int shard = shard_of((deco_gguf_role_t)role);
      if (m->tp_size > 1 && shard >= 0) {
        st = upload_split(m, &host_ctx, t, shard, l);
        continue;
      }
      const void *in = t->data;
      if (staging) {
        st = deco_memcpy(ctx, staging, t->data, (size_t)t->n_bytes, DECO_COPY_HOST_TO_CTX);
        if (st != DECO_STATUS_SUCCESS) break;
        in = staging;
      }
      deco_dequant_args_t a = {.type = (deco_quant_type_t)t->type, .out_dtype = m->dtype,
                               .n = (size_t)t->n_elements, .in = in, .out = destination(m, (deco_gguf_role_t)role, l)};
      st = deco_dequant(ctx, &a);
      if (st != DECO_STATUS_SUCCESS) {
        char msg[DECO_ERROR_CAPACITY];
        snprintf(msg, sizeof msg, "%s", deco_last_error(ctx));
        st = DECO_FAIL(ctx, st, "tensor %s: %s", t->name, msg);
      }
    }
  }
  deco_ctx_destroy(host_ctx);
  return st;
}

/* Checks every tensor of g up to the first that is not finite (its status,
 * recorded by deco_last_error(NULL)); *largest gets the largest size in
 * bytes of the tensors checked. */
static deco_status_t check_finite_tensors(const deco_gguf_t *g, uint64_t *largest) {
  deco_status_t st = DECO_STATUS_SUCCESS;
  for (uint64_t i = 0; i < g->n_tensors && st == DECO_STATUS_SUCCESS; ++i) {
    st = deco_gguf_check_finite(g, &g->tensors[i]);
    if (g->tensors[i].n_bytes > *largest) *largest = g->tensors[i].n_bytes;
  }
  return st;
}

/* Every tensor of g into m, off the CPU staged through one buffer of the
 * largest tensor's bytes; failures name the checkpoint. */
static deco_status_t upload_model(deco_model_t *m, const deco_gguf_t *g, uint64_t largest, const char *name) {
  deco_ctx_t *ctx = m->ctx;
  deco_status_t st = DECO_STATUS_SUCCESS;
  void *staging = NULL;
  if (deco_ctx_backend(ctx) != DECO_BACKEND_CPU) {
    st = deco_malloc(ctx, &staging, (size_t)largest);
    if (st != DECO_STATUS_SUCCESS) st = deco_model_fail_naming(ctx, st, name);
  }
  if (st == DECO_STATUS_SUCCESS) {
    st = upload_all(m, g, staging);
    if (st == DECO_STATUS_SUCCESS) st = deco_ctx_synchronize(ctx);
    if (st != DECO_STATUS_SUCCESS) st = deco_model_fail_naming(ctx, st, name);
  }
  deco_free(ctx, staging);
  return st;
}

deco_status_t deco_model_load_gguf_buffer(deco_ctx_t *ctx, const void *data, size_t size, const char *name,
                                          const deco_model_config_t *config, deco_model_t **out) {
  static const char op[] = "deco_model_load_gguf_buffer";
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  DECO_CHECK_PTR(ctx, out, op);
  *out = NULL;
  if (data == NULL && size > 0) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: data is NULL", op);
  deco_model_config_t mc;
  DECO_TRY(deco_model_read_config(ctx, config, &mc, op));
  if (name == NULL) name = "(buffer)";
  deco_gguf_t g;
  deco_model_hparams_t hp;
  deco_status_t st = parse_llama(data, size, name, &g, &hp);
  if (st != DECO_STATUS_SUCCESS) return DECO_FAIL(ctx, st, "%s", deco_last_error(NULL));
  /* Every value finite (the block formats: every scale, which bounds the
   * block's values) before anything is allocated, as for llama2.c files. */
  uint64_t largest = 0;
  st = check_finite_tensors(&g, &largest);
  if (st != DECO_STATUS_SUCCESS) {
    deco_gguf_free(&g);
    return DECO_FAIL(ctx, st, "%s", deco_last_error(NULL));
  }
  deco_model_t *m = NULL;
  st = deco_model_alloc_named(ctx, &hp, &mc, name, &m);
  if (st == DECO_STATUS_SUCCESS) st = upload_model(m, &g, largest, name);
  deco_gguf_free(&g);
  if (st != DECO_STATUS_SUCCESS) {
    deco_model_destroy(m);
    return st;
  }
  *out = m;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_model_load_gguf(deco_ctx_t *ctx, const char *path, const deco_model_config_t *config,
                                   deco_model_t **out) {
  DECO_TRY(deco_model_check_file_args(ctx, path, out, "deco_model_load_gguf"));
  return deco_model_load_mapped(ctx, path, config, out, deco_model_load_gguf_buffer);
}
