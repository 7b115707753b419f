/* host/compress/checkpoint.c — a checkpoint's weights in host f32 memory
 * for KV-head compression: read from a llama2.c checkpoint or a GGUF file
 * (dequantised), written back as a llama2.c legacy-v0 checkpoint or an F32
 * GGUF carrying the input's metadata.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress_internal.h"
#include "core/file.h"
#include "core/internal.h"
#include "model/gguf.h"
#include "model/llama2c.h"

static void cw_sizes(const deco_model_hparams_t *hp, size_t s[12]) {
  const size_t dim = (size_t)hp->dim, hd = (size_t)hp->head_dim, L = (size_t)hp->n_layers;
  const size_t qd = (size_t)hp->n_heads * hd, kvd = (size_t)hp->n_kv_heads * hd, hid = (size_t)hp->hidden_dim;
  const size_t V = (size_t)hp->vocab_size;
  s[0] = V * dim;        /* tok */
  s[1] = L * dim;        /* rms_att */
  s[2] = L * qd * dim;   /* wq */
  s[3] = L * kvd * dim;  /* wk */
  s[4] = L * kvd * dim;  /* wv */
  s[5] = L * dim * qd;   /* wo */
  s[6] = L * dim;        /* rms_ffn */
  s[7] = L * hid * dim;  /* w1 */
  s[8] = L * dim * hid;  /* w2 */
  s[9] = L * hid * dim;  /* w3 */
  s[10] = dim;           /* rms_final */
  s[11] = hp->shared_classifier ? 0 : V * dim; /* wcls */
}

static void cw_slots(deco_cw_t *w, float **slots[12]) {
  float **p[12] = {&w->tok, &w->rms_att, &w->wq, &w->wk, &w->wv, &w->wo,
                   &w->rms_ffn, &w->w1, &w->w2, &w->w3, &w->rms_final, &w->wcls};
  memcpy(slots, p, sizeof(p));
}

void deco_cw_free(deco_cw_t *w) {
  if (!w) return;
  float **slots[12];
  cw_slots(w, slots);
  for (int i = 0; i < 12; ++i) {
    free(*slots[i]);
    *slots[i] = NULL;
  }
}

static deco_status_t cw_alloc(deco_cw_t *w) {
  size_t s[12];
  float **slots[12];
  cw_sizes(&w->hp, s);
  cw_slots(w, slots);
  for (int i = 0; i < 12; ++i) {
    if (s[i] == 0) continue;
    *slots[i] = malloc(s[i] * sizeof(float));
    if (!*slots[i]) {
      deco_cw_free(w);
      return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "compress: out of host memory for the weights");
    }
  }
  return DECO_STATUS_SUCCESS;
}

static deco_status_t read_llama2c(const char *path, const void *data, size_t size, deco_cw_t *w) {
  deco_llama2c_weights_t lw;
  DECO_TRY(deco_llama2c_parse(data, size, path, &w->hp, &lw));
  DECO_TRY(cw_alloc(w));
  size_t s[12];
  cw_sizes(&w->hp, s);
  const float *src[12] = {lw.token_embedding, lw.rms_att, lw.wq, lw.wk, lw.wv, lw.wo,
                          lw.rms_ffn, lw.w1, lw.w2, lw.w3, lw.rms_final, lw.wcls};
  float **slots[12];
  cw_slots(w, slots);
  for (int i = 0; i < 12; ++i)
    if (s[i]) memcpy(*slots[i], src[i], s[i] * sizeof(float));
  return DECO_STATUS_SUCCESS;
}

/* The destination of a GGUF role's tensor (layer l) and its element count. */
static float *gguf_dest(deco_cw_t *w, deco_gguf_role_t role, int l, size_t *n) {
  const deco_model_hparams_t *hp = &w->hp;
  const size_t dim = (size_t)hp->dim, hd = (size_t)hp->head_dim;
  const size_t qd = (size_t)hp->n_heads * hd, kvd = (size_t)hp->n_kv_heads * hd, hid = (size_t)hp->hidden_dim;
  switch (role) {
    case DECO_GGUF_TOKEN_EMBD: *n = (size_t)hp->vocab_size * dim; return w->tok;
    case DECO_GGUF_OUTPUT_NORM: *n = dim; return w->rms_final;
    case DECO_GGUF_OUTPUT: *n = (size_t)hp->vocab_size * dim; return w->wcls;
    case DECO_GGUF_ATTN_NORM: *n = dim; return w->rms_att + (size_t)l * dim;
    case DECO_GGUF_ATTN_Q: *n = qd * dim; return w->wq + (size_t)l * qd * dim;
    case DECO_GGUF_ATTN_K: *n = kvd * dim; return w->wk + (size_t)l * kvd * dim;
    case DECO_GGUF_ATTN_V: *n = kvd * dim; return w->wv + (size_t)l * kvd * dim;
    case DECO_GGUF_ATTN_OUTPUT: *n = dim * qd; return w->wo + (size_t)l * dim * qd;
    case DECO_GGUF_FFN_NORM: *n = dim; return w->rms_ffn + (size_t)l * dim;
    case DECO_GGUF_FFN_GATE: *n = hid * dim; return w->w1 + (size_t)l * hid * dim;
    case DECO_GGUF_FFN_UP: *n = hid * dim; return w->w3 + (size_t)l * hid * dim;
    case DECO_GGUF_FFN_DOWN: *n = dim * hid; return w->w2 + (size_t)l * dim * hid;
    default: *n = 0; return NULL;
  }
}

static int role_per_layer(int role) { return role >= DECO_GGUF_ATTN_NORM; }

static deco_status_t read_gguf(const char *path, const void *data, size_t size, deco_cw_t *w) {
  deco_gguf_t g;
  DECO_TRY(deco_gguf_parse(data, size, path, &g));
  deco_status_t st = deco_gguf_llama_hparams(&g, &w->hp);
  if (st == DECO_STATUS_SUCCESS) st = cw_alloc(w);
  for (int role = 0; st == DECO_STATUS_SUCCESS && role < DECO_GGUF_N_ROLES; ++role) {
    const int layers = role_per_layer(role) ? w->hp.n_layers : 1;
    for (int l = 0; st == DECO_STATUS_SUCCESS && l < layers; ++l) {
      const deco_gguf_tensor_t *t = deco_gguf_llama_tensor(&g, (deco_gguf_role_t)role, l);
      if (!t) continue; /* output.weight absent: tied */
      size_t n;
      float *dst = gguf_dest(w, (deco_gguf_role_t)role, l, &n);
      st = deco_gguf_check_finite(&g, t);
      if (st == DECO_STATUS_SUCCESS && (n != t->n_elements || deco_gguf_dequant(t->type, t->data, n, dst) != 0))
        st = DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: tensor '%s' could not be dequantised", path, t->name);
    }
  }
  deco_gguf_free(&g);
  if (st != DECO_STATUS_SUCCESS) deco_cw_free(w);
  return st;
}

deco_status_t deco_cw_read(const char *path, deco_cw_t *w) {
  memset(w, 0, sizeof(*w));
  void *data = NULL;
  size_t got = 0, size = 0;
  DECO_TRY(deco_file_read(NULL, path, (size_t)-1, &data, &got, &size));
  deco_status_t st;
  if (got >= 4 && memcmp(data, "GGUF", 4) == 0) {
    w->is_gguf = 1;
    st = read_gguf(path, data, got, w);
  } else {
    st = read_llama2c(path, data, got, w);
  }
  free(data);
  return st;
}

/* ---- writers ------------------------------------------------------------------ */

static deco_status_t put(FILE *f, const void *p, size_t bytes, const char *path) {
  if (bytes && fwrite(p, 1, bytes, f) != bytes)
    return DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "%s: write failed", path);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t close_checked(FILE *f, deco_status_t st, const char *path) {
  if (fclose(f) != 0 && st == DECO_STATUS_SUCCESS)
    st = DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "%s: write failed on close", path);
  return st;
}

deco_status_t deco_cw_write_llama2c(const deco_cw_t *w, const char *path) {
  const deco_model_hparams_t *hp = &w->hp;
  if (hp->rope_theta != 10000.0f)
    return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED,
                     "%s: RoPE base %g cannot be written as a llama2.c checkpoint (its format implies 10000)", path,
                     (double)hp->rope_theta);
  if (hp->rope_style != DECO_ROPE_INTERLEAVED)
    return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED,
                     "%s: half-split RoPE pairs cannot be written as a llama2.c checkpoint", path);
  FILE *f = fopen(path, "wb");
  if (!f) return DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "cannot write %s", path);
  int32_t h[7] = {hp->dim, hp->hidden_dim, hp->n_layers, hp->n_heads, hp->n_kv_heads,
                  hp->shared_classifier ? hp->vocab_size : -hp->vocab_size, hp->seq_len};
  deco_status_t st = put(f, h, sizeof(h), path);
  size_t s[12];
  cw_sizes(hp, s);
  const float *src[11] = {w->tok, w->rms_att, w->wq, w->wk, w->wv, w->wo, w->rms_ffn, w->w1, w->w2, w->w3,
                          w->rms_final};
  for (int i = 0; i < 11 && st == DECO_STATUS_SUCCESS; ++i) st = put(f, src[i], s[i] * sizeof(float), path);
  /* The legacy RoPE tables (llama2.c's export: base 10000), read by no one
   * but part of the format. */
  const int half = hp->head_dim / 2;
  for (int part = 0; part < 2 && st == DECO_STATUS_SUCCESS; ++part) {
    for (int p = 0; p < hp->seq_len && st == DECO_STATUS_SUCCESS; ++p) {
      float row[128];
      for (int j = 0; j < half; ++j) {
        const double freq = 1.0 / pow(10000.0, (double)(2 * j) / hp->head_dim);
        row[j] = (float)(part == 0 ? cos(p * freq) : sin(p * freq));
      }
      st = put(f, row, (size_t)half * sizeof(float), path);
    }
  }
  if (st == DECO_STATUS_SUCCESS && !hp->shared_classifier) st = put(f, w->wcls, s[11] * sizeof(float), path);
  return close_checked(f, st, path);
}

static deco_status_t put_u32(FILE *f, uint32_t v, const char *path) { return put(f, &v, 4, path); }
static deco_status_t put_u64(FILE *f, uint64_t v, const char *path) { return put(f, &v, 8, path); }

/* A metadata value of type UINT32: its type tag, then v. */
static deco_status_t put_u32_value(FILE *f, uint32_t v, const char *path) {
  DECO_TRY(put_u32(f, DECO_GGUF_VAL_UINT32, path));
  return put_u32(f, v, path);
}

static const char kv_heads_key[] = "llama.attention.head_count_kv";

static int key_is(const deco_gguf_kv_t *kv, const char *k) {
  return kv->key_len == strlen(k) && memcmp(kv->key, k, kv->key_len) == 0;
}

/* A GGUF being written from a template g: the template's tensors in its
 * file order, each with its role and layer (for w's data and shape). */
typedef struct gguf_out {
  FILE *f;
  const char *path;
  const deco_cw_t *w;
  const deco_gguf_t *g;
  int *role, *layer; /* [g->n_tensors] */
} gguf_out_t;

/* Each template tensor's role and layer; one that is none of a Llama
 * model's is refused. */
static deco_status_t gguf_map_tensors(gguf_out_t *o, const char *template_path) {
  const deco_gguf_t *g = o->g;
  for (uint64_t i = 0; i < g->n_tensors; ++i) o->role[i] = -1;
  for (int r = 0; r < DECO_GGUF_N_ROLES; ++r) {
    const int layers = role_per_layer(r) ? o->w->hp.n_layers : 1;
    for (int l = 0; l < layers; ++l) {
      const deco_gguf_tensor_t *t = deco_gguf_llama_tensor(g, (deco_gguf_role_t)r, l);
      if (!t) continue;
      o->role[t - g->tensors] = r;
      o->layer[t - g->tensors] = l;
    }
  }
  for (uint64_t i = 0; i < g->n_tensors; ++i)
    if (o->role[i] < 0)
      return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED, "%s: tensor '%s' is not one of a Llama model's", template_path,
                       g->tensors[i].name);
  return DECO_STATUS_SUCCESS;
}

/* The data of template tensor i in w (the tied output: the embedding) and
 * its element count. */
static const float *gguf_tensor_data(const gguf_out_t *o, uint64_t i, size_t *n) {
  const float *src = gguf_dest((deco_cw_t *)o->w, (deco_gguf_role_t)o->role[i], o->layer[i], n);
  if (o->role[i] == DECO_GGUF_OUTPUT && !src) src = o->w->tok;
  return src;
}

static deco_status_t gguf_put_header(const gguf_out_t *o, uint64_t n_kv) {
  DECO_TRY(put(o->f, "GGUF", 4, o->path));
  DECO_TRY(put_u32(o->f, 3, o->path));
  DECO_TRY(put_u64(o->f, o->g->n_tensors, o->path));
  return put_u64(o->f, n_kv, o->path);
}

/* A template metadata entry, as it is but for head_count_kv (w's) and
 * file_type (ALL_F32). */
static deco_status_t gguf_put_kv(const gguf_out_t *o, const deco_gguf_kv_t *kv) {
  FILE *f = o->f;
  const char *path = o->path;
  DECO_TRY(put_u64(f, kv->key_len, path));
  DECO_TRY(put(f, kv->key, kv->key_len, path));
  if (key_is(kv, kv_heads_key)) return put_u32_value(f, (uint32_t)o->w->hp.n_kv_heads, path);
  if (key_is(kv, "general.file_type")) return put_u32_value(f, 0, path); /* ALL_F32 */
  DECO_TRY(put_u32(f, kv->type, path));
  if (kv->type == DECO_GGUF_VAL_ARRAY) {
    DECO_TRY(put_u32(f, kv->elem_type, path));
    DECO_TRY(put_u64(f, kv->count, path));
  }
  return put(f, kv->value, (size_t)kv->value_bytes, path);
}

/* The metadata: the template's entries, then head_count_kv where the
 * template left it out (an MHA file may: it then equals head_count), as
 * the output, GQA, must say it. */
static deco_status_t gguf_put_metadata(const gguf_out_t *o) {
  const deco_gguf_t *g = o->g;
  const int has_kv_heads = deco_gguf_find_kv(g, kv_heads_key) != NULL;
  DECO_TRY(gguf_put_header(o, g->n_kv + (has_kv_heads ? 0 : 1)));
  for (uint64_t i = 0; i < g->n_kv; ++i) DECO_TRY(gguf_put_kv(o, &g->kv[i]));
  if (has_kv_heads) return DECO_STATUS_SUCCESS;
  DECO_TRY(put_u64(o->f, sizeof kv_heads_key - 1, o->path));
  DECO_TRY(put(o->f, kv_heads_key, sizeof kv_heads_key - 1, o->path));
  return put_u32_value(o->f, (uint32_t)o->w->hp.n_kv_heads, o->path);
}

/* Template tensor i's entry of the tensor table: F32 at offset off, the
 * K/V projections with w's row count. */
static deco_status_t gguf_put_tensor_info(const gguf_out_t *o, uint64_t i, uint64_t off) {
  FILE *f = o->f;
  const char *path = o->path;
  const deco_gguf_tensor_t *t = &o->g->tensors[i];
  const int kv = o->role[i] == DECO_GGUF_ATTN_K || o->role[i] == DECO_GGUF_ATTN_V;
  const size_t name_len = strlen(t->name);
  DECO_TRY(put_u64(f, name_len, path));
  DECO_TRY(put(f, t->name, name_len, path));
  DECO_TRY(put_u32(f, t->n_dims, path));
  for (uint32_t d = 0; d < t->n_dims; ++d) {
    uint64_t dim = t->dims[d];
    if (d == 1 && kv) dim = (uint64_t)o->w->hp.n_kv_heads * o->w->hp.head_dim;
    DECO_TRY(put_u64(f, dim, path));
  }
  DECO_TRY(put_u32(f, DECO_GGUF_F32, path));
  return put_u64(f, off, path);
}

/* The tensor table (offsets packed at the alignment), the padding to the
 * alignment, and the tensors' data, each padded but the last. */
static deco_status_t gguf_put_tensors(const gguf_out_t *o) {
  static const unsigned char zeros[DECO_GGUF_MAX_ALIGNMENT] = {0};
  const uint64_t align = o->g->alignment;
  uint64_t off = 0;
  for (uint64_t i = 0; i < o->g->n_tensors; ++i) {
    size_t n;
    (void)gguf_tensor_data(o, i, &n);
    DECO_TRY(gguf_put_tensor_info(o, i, off));
    off += ((uint64_t)n * 4 + align - 1) / align * align;
  }
  const uint64_t pos = (uint64_t)ftell(o->f);
  DECO_TRY(put(o->f, zeros, (size_t)((align - pos % align) % align), o->path));
  for (uint64_t i = 0; i < o->g->n_tensors; ++i) {
    size_t n;
    const float *src = gguf_tensor_data(o, i, &n);
    DECO_TRY(put(o->f, src, n * sizeof(float), o->path));
    const uint64_t pad = (align - (uint64_t)n * 4 % align) % align;
    if (i + 1 < o->g->n_tensors) DECO_TRY(put(o->f, zeros, (size_t)pad, o->path));
  }
  return DECO_STATUS_SUCCESS;
}

/* Writes w to path with the metadata and tensor order of the parsed
 * template g. */
static deco_status_t gguf_write(const deco_cw_t *w, const deco_gguf_t *g, const char *template_path,
                                const char *path) {
  const size_t n = g->n_tensors ? g->n_tensors : 1;
  gguf_out_t o = {.path = path, .w = w, .g = g, .role = calloc(n, sizeof(int)), .layer = calloc(n, sizeof(int))};
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (!o.role || !o.layer) st = DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "compress: out of host memory");
  if (st == DECO_STATUS_SUCCESS) st = gguf_map_tensors(&o, template_path);
  if (st == DECO_STATUS_SUCCESS) {
    o.f = fopen(path, "wb");
    if (!o.f) st = DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "cannot write %s", path);
  }
  if (st == DECO_STATUS_SUCCESS) st = gguf_put_metadata(&o);
  if (st == DECO_STATUS_SUCCESS) st = gguf_put_tensors(&o);
  if (o.f) st = close_checked(o.f, st, path);
  free(o.role);
  free(o.layer);
  return st;
}

deco_status_t deco_cw_write_gguf(const deco_cw_t *w, const char *template_path, const char *path) {
  void *data = NULL;
  size_t got = 0, size = 0;
  DECO_TRY(deco_file_read(NULL, template_path, (size_t)-1, &data, &got, &size));
  deco_gguf_t g;
  deco_status_t st = deco_gguf_parse(data, got, template_path, &g);
  if (st == DECO_STATUS_SUCCESS) {
    st = gguf_write(w, &g, template_path, path);
    deco_gguf_free(&g);
  }
  free(data);
  return st;
}
