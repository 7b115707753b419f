/* host/model/llama2c.c — validation of a llama2.c checkpoint (Karpathy's
 * llama2.c, legacy "v0" export): the 7-int32 header field by field, the
 * exact file size computed in 64 bits, then every weight checked finite.
 * Layout: header, then fp32 tensors in llama2.c order (see llama2c.h), the
 * legacy RoPE tables (skipped), and the classifier when vocab_size < 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/internal.h"
#include "model/llama2c.h"

/* Upper bounds far above any Llama yet released (Llama 3 405B: dim 16384,
 * hidden 53248, 126 layers, 128 heads, vocab 128256) and far below what
 * would overflow the 64-bit size arithmetic. */
#define L2C_MAX_DIM (1 << 16)
#define L2C_MAX_HIDDEN (1 << 18)
#define L2C_MAX_LAYERS 1024
#define L2C_MAX_HEADS 1024
#define L2C_MAX_VOCAB (1 << 20)
#define L2C_MAX_SEQ_LEN (1 << 20)
#define L2C_MIN_HEAD_DIM 8
#define L2C_MAX_HEAD_DIM 256

static const char *l2c_name(const char *name) { return name ? name : "(buffer)"; }

/* One tensor of the file: its name, float count per layer, layer count. */
typedef struct l2c_tensor {
  const char *name;
  uint64_t per_layer;
  uint64_t layers; /* 1 for tensors that are not per layer */
} l2c_tensor_t;

enum {
  T_EMB, T_RMS_ATT, T_WQ, T_WK, T_WV, T_WO, T_RMS_FFN, T_W1, T_W2, T_W3, T_RMS_FINAL, T_FREQ_REAL, T_FREQ_IMAG,
  T_WCLS, T_COUNT
};

/* The file's tensors in order; the classifier has 0 floats when shared. */
static void l2c_layout(const deco_model_hparams_t *c, l2c_tensor_t t[T_COUNT]) {
  uint64_t dim = (uint64_t)c->dim, hidden = (uint64_t)c->hidden_dim, layers = (uint64_t)c->n_layers;
  uint64_t q = (uint64_t)c->n_heads * (uint64_t)c->head_dim, kv = (uint64_t)c->n_kv_heads * (uint64_t)c->head_dim;
  uint64_t vocab = (uint64_t)c->vocab_size, rope = (uint64_t)c->seq_len * (uint64_t)c->head_dim / 2;
  t[T_EMB] = (l2c_tensor_t){.name = "token_embedding", .per_layer = vocab * dim, .layers = 1};
  t[T_RMS_ATT] = (l2c_tensor_t){.name = "rms_att", .per_layer = dim, .layers = layers};
  t[T_WQ] = (l2c_tensor_t){.name = "wq", .per_layer = dim * q, .layers = layers};
  t[T_WK] = (l2c_tensor_t){.name = "wk", .per_layer = dim * kv, .layers = layers};
  t[T_WV] = (l2c_tensor_t){.name = "wv", .per_layer = dim * kv, .layers = layers};
  t[T_WO] = (l2c_tensor_t){.name = "wo", .per_layer = q * dim, .layers = layers};
  t[T_RMS_FFN] = (l2c_tensor_t){.name = "rms_ffn", .per_layer = dim, .layers = layers};
  t[T_W1] = (l2c_tensor_t){.name = "w1", .per_layer = dim * hidden, .layers = layers};
  t[T_W2] = (l2c_tensor_t){.name = "w2", .per_layer = hidden * dim, .layers = layers};
  t[T_W3] = (l2c_tensor_t){.name = "w3", .per_layer = dim * hidden, .layers = layers};
  t[T_RMS_FINAL] = (l2c_tensor_t){.name = "rms_final", .per_layer = dim, .layers = 1};
  t[T_FREQ_REAL] = (l2c_tensor_t){.name = "freq_cis_real", .per_layer = rope, .layers = 1};
  t[T_FREQ_IMAG] = (l2c_tensor_t){.name = "freq_cis_imag", .per_layer = rope, .layers = 1};
  t[T_WCLS] = (l2c_tensor_t){.name = "wcls", .per_layer = c->shared_classifier ? 0 : vocab * dim, .layers = 1};
}

static deco_status_t check_field(const char *name, const char *field, int32_t value, int32_t lo, int32_t hi) {
  if (value < lo || value > hi)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: header field %s=%d is outside %d..%d", name, field, (int)value,
                     (int)lo, (int)hi);
  return DECO_STATUS_SUCCESS;
}

/* The header's seven int32 fields, in file order. */
typedef struct l2c_header {
  int32_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;
} l2c_header_t;
_Static_assert(sizeof(l2c_header_t) == DECO_LLAMA2C_HEADER_BYTES, "the header is seven int32 fields");

/* Each field within its bounds (vocab_size's sign aside). */
static deco_status_t check_header_ranges(const char *nm, const l2c_header_t *h) {
  DECO_TRY(check_field(nm, "dim", h->dim, 1, L2C_MAX_DIM));
  DECO_TRY(check_field(nm, "hidden_dim", h->hidden, 1, L2C_MAX_HIDDEN));
  DECO_TRY(check_field(nm, "n_layers", h->layers, 1, L2C_MAX_LAYERS));
  DECO_TRY(check_field(nm, "n_heads", h->heads, 1, L2C_MAX_HEADS));
  DECO_TRY(check_field(nm, "n_kv_heads", h->kv_heads, 1, h->heads));
  /* The sign of vocab_size only says whether the classifier is shared;
   * INT32_MIN would overflow the negation, and 0 is no vocabulary. */
  if (h->vocab == 0 || h->vocab < -L2C_MAX_VOCAB || h->vocab > L2C_MAX_VOCAB)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: header field vocab_size=%d is outside 1..%d (negative: separate classifier)", nm,
                     (int)h->vocab, L2C_MAX_VOCAB);
  return check_field(nm, "seq_len", h->seq_len, 1, L2C_MAX_SEQ_LEN);
}

/* The heads divide evenly, and their width dim / n_heads suits RoPE and
 * the kernels. */
static deco_status_t check_header_heads(const char *nm, const l2c_header_t *h) {
  if (h->dim % h->heads != 0)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: header field dim=%d is not a multiple of n_heads=%d", nm,
                     (int)h->dim, (int)h->heads);
  if (h->heads % h->kv_heads != 0)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: header field n_heads=%d is not a multiple of n_kv_heads=%d",
                     nm, (int)h->heads, (int)h->kv_heads);
  int32_t head_dim = h->dim / h->heads;
  /* Interleaved RoPE rotates pairs, and the kernels support 8..256. */
  if (head_dim % 2 != 0 || head_dim < L2C_MIN_HEAD_DIM || head_dim > L2C_MAX_HEAD_DIM)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: head_dim = dim/n_heads = %d/%d = %d must be even and within %d..%d", nm, (int)h->dim,
                     (int)h->heads, (int)head_dim, L2C_MIN_HEAD_DIM, L2C_MAX_HEAD_DIM);
  return DECO_STATUS_SUCCESS;
}

/* The model a checked header describes, with llama2.c's fixed settings. */
static deco_model_hparams_t header_hparams(const l2c_header_t *h) {
  deco_model_hparams_t c;
  memset(&c, 0, sizeof c);
  c.dim = h->dim;
  c.hidden_dim = h->hidden;
  c.n_layers = h->layers;
  c.n_heads = h->heads;
  c.n_kv_heads = h->kv_heads;
  c.head_dim = h->dim / h->heads;
  c.vocab_size = h->vocab < 0 ? -h->vocab : h->vocab;
  c.seq_len = h->seq_len;
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  c.rope_style = DECO_ROPE_INTERLEAVED;
  c.shared_classifier = h->vocab > 0;
  c.builtin_vocab = 0;
  /* llama2.c's conventions: a story starts with BOS (1); BOS or EOS (2)
   * ends it. */
  c.bos_id = 1;
  c.n_stop_ids = 2;
  c.stop_ids[0] = 1;
  c.stop_ids[1] = 2;
  return c;
}

/* The file must be exactly the header and every tensor of c. */
static deco_status_t check_file_size(const char *nm, const l2c_header_t *h, const deco_model_hparams_t *c,
                                     size_t file_size) {
  l2c_tensor_t t[T_COUNT];
  l2c_layout(c, t);
  uint64_t floats = 0;
  for (int i = 0; i < T_COUNT; ++i) floats += t[i].per_layer * t[i].layers;
  uint64_t expected = DECO_LLAMA2C_HEADER_BYTES + floats * sizeof(float);
  if ((uint64_t)file_size != expected)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: header says dim=%d hidden_dim=%d n_layers=%d n_heads=%d n_kv_heads=%d vocab_size=%d "
                     "seq_len=%d but file is %zu bytes, expected %llu",
                     nm, (int)h->dim, (int)h->hidden, (int)h->layers, (int)h->heads, (int)h->kv_heads, (int)h->vocab,
                     (int)h->seq_len, file_size, (unsigned long long)expected);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_llama2c_parse_header(const void *header, size_t header_bytes, size_t file_size, const char *name,
                                        deco_model_hparams_t *hparams) {
  const char *nm = l2c_name(name);
  if (!hparams) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_llama2c_parse_header: hparams is NULL");
  if (!header && header_bytes > 0)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_llama2c_parse_header: header is NULL");
  if (file_size < DECO_LLAMA2C_HEADER_BYTES || header_bytes < DECO_LLAMA2C_HEADER_BYTES)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: file is %zu bytes, shorter than the %d-byte header", nm,
                     file_size < header_bytes ? file_size : header_bytes, DECO_LLAMA2C_HEADER_BYTES);
  l2c_header_t h;
  memcpy(&h, header, sizeof h);
  DECO_TRY(check_header_ranges(nm, &h));
  DECO_TRY(check_header_heads(nm, &h));
  deco_model_hparams_t c = header_hparams(&h);
  DECO_TRY(check_file_size(nm, &h, &c, file_size));
  *hparams = c;
  return DECO_STATUS_SUCCESS;
}

/* Every float of tensor t, at p, must be finite (the message names the
 * layer of a per-layer tensor). */
static deco_status_t check_tensor_finite(const char *nm, const l2c_tensor_t *t, const float *p) {
  for (uint64_t l = 0; l < t->layers; ++l) {
    for (uint64_t k = 0; k < t->per_layer; ++k) {
      float v = p[k];
      if (isfinite(v)) continue;
      if (t->layers > 1)
        return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                         "%s: tensor %s, layer %llu, element %llu (of %llu per layer) is %s", nm, t->name,
                         (unsigned long long)l, (unsigned long long)k, (unsigned long long)t->per_layer,
                         isnan(v) ? "nan" : "inf");
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: tensor %s, element %llu (of %llu) is %s", nm, t->name,
                       (unsigned long long)k, (unsigned long long)t->per_layer, isnan(v) ? "nan" : "inf");
    }
    p += t->per_layer;
  }
  return DECO_STATUS_SUCCESS;
}

/* The weights' places among the tensors' starts. */
static deco_llama2c_weights_t weights_at(const float *const base[T_COUNT], int shared_classifier) {
  deco_llama2c_weights_t w;
  w.token_embedding = base[T_EMB];
  w.rms_att = base[T_RMS_ATT];
  w.wq = base[T_WQ];
  w.wk = base[T_WK];
  w.wv = base[T_WV];
  w.wo = base[T_WO];
  w.rms_ffn = base[T_RMS_FFN];
  w.w1 = base[T_W1];
  w.w2 = base[T_W2];
  w.w3 = base[T_W3];
  w.rms_final = base[T_RMS_FINAL];
  w.wcls = shared_classifier ? base[T_EMB] : base[T_WCLS];
  return w;
}

deco_status_t deco_llama2c_parse(const void *data, size_t size, const char *name, deco_model_hparams_t *hparams,
                                 deco_llama2c_weights_t *weights) {
  const char *nm = l2c_name(name);
  if (!hparams) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_llama2c_parse: hparams is NULL");
  if (!weights) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_llama2c_parse: weights is NULL");
  if (!data && size > 0) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_llama2c_parse: data is NULL");
  if ((uintptr_t)data % sizeof(float) != 0)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "deco_llama2c_parse: %s: buffer is not 4-byte aligned", nm);
  deco_model_hparams_t c;
  DECO_TRY(deco_llama2c_parse_header(data, size, size, nm, &c));

  l2c_tensor_t t[T_COUNT];
  l2c_layout(&c, t);
  const float *base[T_COUNT];
  const float *p = (const float *)((const unsigned char *)data + DECO_LLAMA2C_HEADER_BYTES);
  for (int i = 0; i < T_COUNT; ++i) {
    base[i] = p;
    if (i != T_FREQ_REAL && i != T_FREQ_IMAG) /* the legacy RoPE tables are unused */
      DECO_TRY(check_tensor_finite(nm, &t[i], p));
    p += t[i].per_layer * t[i].layers;
  }
  *hparams = c;
  *weights = weights_at(base, c.shared_classifier);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_llama2c_read_hparams(const char *path, deco_model_hparams_t *hparams) {
  if (!path) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_llama2c_read_hparams: path is NULL");
  if (!hparams) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_llama2c_read_hparams: hparams is NULL");
  void *header;
  size_t got, size;
  DECO_TRY(deco_file_read(NULL, path, DECO_LLAMA2C_HEADER_BYTES, &header, &got, &size));
  deco_status_t s = deco_llama2c_parse_header(header, got, size, path, hparams);
  free(header);
  return s;
}

deco_status_t deco_llama2c_read_hparams_buffer(const void *data, size_t size, const char *name,
                                              deco_model_hparams_t *hparams) {
  if (!hparams) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_llama2c_read_hparams_buffer: hparams is NULL");
  if (!data && size > 0)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_llama2c_read_hparams_buffer: data is NULL");
  return deco_llama2c_parse_header(data, size, size, l2c_name(name), hparams);
}
