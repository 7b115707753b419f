/* tests/test_loader.c — llama2.c checkpoint parsing: stories260K's header
 * and tensor offsets, synthetic checkpoints (shared and separate classifier)
 * whose every tensor holds recognisable values, and bad files: truncated,
 * one byte long, zero-filled, random, each header field out of range, a
 * non-finite weight in each tensor, a missing file.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../host/model/llama2c.h"
#include "common/testutil.h"
#include "deco/deco.h"

/* ---- a synthetic checkpoint ------------------------------------------------ */

enum { EMB, RMS_ATT, WQ, WK, WV, WO, RMS_FFN, W1, W2, W3, RMS_FINAL, FREQ_RE, FREQ_IM, WCLS, N_TENSORS };
static const char *const tensor_name[N_TENSORS] = {"token_embedding", "rms_att", "wq", "wk", "wv",
                                                   "wo", "rms_ffn", "w1", "w2", "w3",
                                                   "rms_final", "freq_cis_real", "freq_cis_imag", "wcls"};

typedef struct ckpt {
  int32_t h[7];           /* dim, hidden, layers, heads, kv_heads, vocab, seq_len */
  size_t count[N_TENSORS]; /* floats in the whole tensor */
  size_t layers[N_TENSORS];
  size_t offset[N_TENSORS]; /* bytes from the start of the file */
  size_t size;
  float *data; /* the file; float-aligned */
} ckpt_t;

/* Lays out the tensors for header h, independently of the library. */
static void ckpt_layout(ckpt_t *c) {
  size_t dim = (size_t)c->h[0], hidden = (size_t)c->h[1], L = (size_t)c->h[2], heads = (size_t)c->h[3];
  size_t kv = (size_t)c->h[4], vocab = (size_t)abs(c->h[5]), seq = (size_t)c->h[6], hd = dim / heads;
  size_t per_layer[N_TENSORS] = {vocab * dim, dim,          dim * heads * hd, dim * kv * hd, dim * kv * hd,
                                 heads * hd * dim, dim,     dim * hidden,     hidden * dim,  dim * hidden,
                                 dim,          seq * hd / 2, seq * hd / 2,    c->h[5] < 0 ? vocab * dim : 0};
  size_t off = 28;
  for (int t = 0; t < N_TENSORS; ++t) {
    c->layers[t] = (t >= RMS_ATT && t <= W3) ? L : 1;
    c->count[t] = per_layer[t] * c->layers[t];
    c->offset[t] = off;
    off += c->count[t] * sizeof(float);
  }
  c->size = off;
}

/* Builds the file: tensor t's element k holds (t + 1) * 1000000 + k, exact
 * in fp32 (below 2^24) for the small shapes used here. */
static void ckpt_build(ckpt_t *c, int dim, int hidden, int layers, int heads, int kv, int vocab, int seq) {
  int32_t h[7] = {dim, hidden, layers, heads, kv, vocab, seq};
  memcpy(c->h, h, sizeof h);
  ckpt_layout(c);
  c->data = malloc(c->size + sizeof(float));
  cr_assert_not_null(c->data);
  memcpy(c->data, h, sizeof h);
  for (int t = 0; t < N_TENSORS; ++t) {
    cr_assert(c->count[t] < 1000000);
    float *p = (float *)((char *)c->data + c->offset[t]);
    for (size_t k = 0; k < c->count[t]; ++k) p[k] = (float)((t + 1) * 1000000 + (int)k);
  }
}

static void ckpt_set_header(ckpt_t *c, int field, int32_t value) { memcpy((char *)c->data + 4 * field, &value, 4); }

static float *ckpt_tensor(ckpt_t *c, int t) { return (float *)((char *)c->data + c->offset[t]); }

/* Parses data and asserts failure with status; the message must start with
 * name and contain each fragment. */
static void expect_parse_error(const void *data, size_t size, const char *name, deco_status_t status,
                               const char *const *fragments) {
  deco_model_hparams_t cfg;
  deco_llama2c_weights_t w;
  deco_test_refused_naming(NULL, deco_llama2c_parse(data, size, name, &cfg, &w), status, name, fragments);
}

static const char *tmp_path(const char *file) {
  static char path[4][4096];
  static int next;
  char *p = path[next++ % 4];
  snprintf(p, 4096, "%s/%s", deco_test_tmpdir(), file);
  return p;
}

/* ---- stories260K -------------------------------------------------------------- */

Test(loader, stories260K) {
  const char *path = deco_test_data_file("models/stories260K.bin");
  size_t size;
  void *data = deco_test_read_file(path, &size);
  cr_assert_not_null(data);
  cr_assert_eq(size, 1056540);
  deco_model_hparams_t c;
  deco_llama2c_weights_t w;
  cr_assert_eq(deco_llama2c_parse(data, size, path, &c, &w), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(c.dim, 64);
  cr_assert_eq(c.hidden_dim, 172);
  cr_assert_eq(c.n_layers, 5);
  cr_assert_eq(c.n_heads, 8);
  cr_assert_eq(c.n_kv_heads, 4);
  cr_assert_eq(c.head_dim, 8);
  cr_assert_eq(c.vocab_size, 512);
  cr_assert_eq(c.seq_len, 512);
  cr_assert_eq(c.shared_classifier, 1);
  cr_assert_eq(c.builtin_vocab, 0);
  cr_assert_eq(c.rope_style, DECO_ROPE_INTERLEAVED);
  cr_assert_eq(c.rope_theta, 10000.0f);
  cr_assert_eq(c.norm_eps, 1e-5f);
  /* Offsets in floats after the 28-byte header, worked out by hand from the
   * shapes: emb 512*64, rms 5*64, wq 5*64*64, wk/wv 5*64*32, wo 5*64*64,
   * w1/w2/w3 5*64*172. */
  const float *base = (const float *)((const char *)data + 28);
  cr_assert_eq(w.token_embedding - base, 0);
  cr_assert_eq(w.rms_att - base, 32768);
  cr_assert_eq(w.wq - base, 33088);
  cr_assert_eq(w.wk - base, 53568);
  cr_assert_eq(w.wv - base, 63808);
  cr_assert_eq(w.wo - base, 74048);
  cr_assert_eq(w.rms_ffn - base, 94528);
  cr_assert_eq(w.w1 - base, 94848);
  cr_assert_eq(w.w2 - base, 149888);
  cr_assert_eq(w.w3 - base, 204928);
  cr_assert_eq(w.rms_final - base, 259968);
  cr_assert_eq(w.wcls, w.token_embedding);
  /* rms_final's 64 floats and 2 * 512 * 4 floats of RoPE tables end the file. */
  cr_assert_eq(size, (size_t)28 + (259968 + 64 + 4096) * 4, "file is %zu bytes", size);

  /* The header alone gives the same configuration. */
  deco_model_hparams_t h;
  cr_assert_eq(deco_llama2c_read_hparams(path, &h), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(memcmp(&h, &c, sizeof h), 0);
  free(data);
}

Test(loader, stories260K_wrong_sizes) {
  size_t size;
  void *data = deco_test_read_file(deco_test_data_file("models/stories260K.bin"), &size);
  cr_assert_not_null(data);
  /* The example of docs/CLI.md, through the file API. */
  const char *path = tmp_path("model.bin");
  cr_assert_eq(deco_test_write_file(path, data, 300000), 0);
  deco_model_hparams_t c;
  cr_assert_eq(deco_llama2c_read_hparams(path, &c), DECO_STATUS_BAD_FORMAT);
  const char *msg = deco_last_error(NULL);
  cr_assert(strncmp(msg, path, strlen(path)) == 0, "%s", msg);
  cr_assert(strstr(msg, ": header says dim=64 ") != NULL, "%s", msg);
  cr_assert(strstr(msg, "vocab_size=512") != NULL, "%s", msg);
  cr_assert(strstr(msg, "but file is 300000 bytes, expected 1056540") != NULL, "%s", msg);
  /* Buffers: truncated at a few points, one byte and one float long. */
  const size_t cuts[] = {0, 1, 27, 28, 29, 1000, size / 2, size - 4, size - 1};
  for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; ++k)
    expect_parse_error(data, cuts[k], "stories260K.bin", DECO_STATUS_BAD_FORMAT,
                       cuts[k] < 28 ? (const char *[]){"shorter than the 28-byte header", NULL}
                                    : (const char *[]){"header says dim=64", "expected 1056540", NULL});
  data = realloc(data, size + 4);
  memset((char *)data + size, 0, 4);
  expect_parse_error(data, size + 1, "stories260K.bin", DECO_STATUS_BAD_FORMAT,
                     (const char *[]){"but file is 1056541 bytes, expected 1056540", NULL});
  expect_parse_error(data, size + 4, "stories260K.bin", DECO_STATUS_BAD_FORMAT,
                     (const char *[]){"but file is 1056544 bytes, expected 1056540", NULL});
  /* Zero-filled, same size: dim is checked first. */
  memset(data, 0, size);
  expect_parse_error(data, size, "zeros.bin", DECO_STATUS_BAD_FORMAT,
                     (const char *[]){"header field dim=0", NULL});
  free(data);
}

/* ---- synthetic checkpoints ------------------------------------------------ */

static void check_synthetic(int vocab_field) {
  ckpt_t k;
  ckpt_build(&k, 16, 24, 2, 2, 1, vocab_field, 6);
  deco_model_hparams_t c;
  deco_llama2c_weights_t w;
  cr_assert_eq(deco_llama2c_parse(k.data, k.size, "tiny.bin", &c, &w), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  cr_assert_eq(c.dim, 16);
  cr_assert_eq(c.hidden_dim, 24);
  cr_assert_eq(c.n_layers, 2);
  cr_assert_eq(c.n_heads, 2);
  cr_assert_eq(c.n_kv_heads, 1);
  cr_assert_eq(c.head_dim, 8);
  cr_assert_eq(c.vocab_size, 20);
  cr_assert_eq(c.seq_len, 6);
  cr_assert_eq(c.shared_classifier, vocab_field > 0);
  const float *ptr[N_TENSORS] = {w.token_embedding, w.rms_att, w.wq, w.wk, w.wv, w.wo, w.rms_ffn,
                                 w.w1, w.w2, w.w3, w.rms_final, NULL, NULL, w.wcls};
  for (int t = 0; t < N_TENSORS; ++t) {
    if (!ptr[t]) continue;
    int src = (t == WCLS && vocab_field > 0) ? EMB : t;
    cr_assert_eq((const char *)ptr[t] - (const char *)k.data, (ptrdiff_t)k.offset[src], "%s offset", tensor_name[t]);
    /* First and last element carry the tensor's own tag. */
    size_t n = k.count[src];
    cr_assert_eq(ptr[t][0], (float)((src + 1) * 1000000), "%s[0]", tensor_name[t]);
    cr_assert_eq(ptr[t][n - 1], (float)((src + 1) * 1000000 + (int)n - 1), "%s[last]", tensor_name[t]);
  }
  if (vocab_field < 0) cr_assert_eq(k.size, 28 + 4 * (size_t)(320 + 32 + 512 + 256 + 256 + 512 + 32 + 3 * 768 + 16 + 48 + 320));
  else cr_assert_eq(k.size, 28 + 4 * (size_t)(320 + 32 + 512 + 256 + 256 + 512 + 32 + 3 * 768 + 16 + 48));
  /* read_hparams agrees, through a file. */
  const char *path = tmp_path(vocab_field > 0 ? "tiny-shared.bin" : "tiny-separate.bin");
  cr_assert_eq(deco_test_write_file(path, k.data, k.size), 0);
  deco_model_hparams_t h;
  cr_assert_eq(deco_llama2c_read_hparams(path, &h), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(memcmp(&h, &c, sizeof h), 0);
  /* The same file with the classifier's sharing flipped has the wrong size. */
  ckpt_set_header(&k, 5, -vocab_field);
  expect_parse_error(k.data, k.size, "tiny.bin", DECO_STATUS_BAD_FORMAT, (const char *[]){"vocab_size=", NULL});
  free(k.data);
}

Test(loader, synthetic_shared_classifier) { check_synthetic(20); }
Test(loader, synthetic_separate_classifier) { check_synthetic(-20); }

Test(loader, synthetic_gqa_shapes) {
  /* Several shapes parse and agree with the independent layout. */
  const int shapes[][7] = {{8, 8, 1, 1, 1, 3, 1},   {32, 40, 3, 4, 2, -7, 5}, {48, 17, 1, 6, 3, 11, 2},
                           {256, 1, 1, 1, 1, 1, 1}, {16, 3, 2, 2, 2, -2, 3}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
    const int *h = shapes[s];
    ckpt_t k;
    ckpt_build(&k, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    deco_model_hparams_t c;
    deco_llama2c_weights_t w;
    cr_assert_eq(deco_llama2c_parse(k.data, k.size, "shape.bin", &c, &w), DECO_STATUS_SUCCESS, "shape %zu: %s", s,
                 deco_last_error(NULL));
    cr_assert_eq(c.head_dim, h[0] / h[3]);
    cr_assert_eq((const char *)w.w3 - (const char *)k.data, (ptrdiff_t)k.offset[W3]);
    cr_assert_eq((const char *)w.rms_final - (const char *)k.data, (ptrdiff_t)k.offset[RMS_FINAL]);
    cr_assert_eq((const char *)w.wcls - (const char *)k.data, (ptrdiff_t)k.offset[h[5] < 0 ? WCLS : EMB]);
    free(k.data);
  }
}

/* ---- bad files ---------------------------------------------------------------- */

Test(loader, bad_every_truncation_and_extension) {
  ckpt_t k;
  ckpt_build(&k, 16, 24, 2, 2, 1, -20, 6);
  float *longer = malloc(k.size + 64);
  memcpy(longer, k.data, k.size);
  memset((char *)longer + k.size, 0, 64);
  char want[64];
  snprintf(want, sizeof want, "expected %zu", k.size);
  for (size_t cut = 0; cut < k.size + 64; ++cut) {
    if (cut == k.size) continue;
    expect_parse_error(longer, cut, "tiny.bin", DECO_STATUS_BAD_FORMAT,
                       cut < 28 ? (const char *[]){"shorter than the 28-byte header", NULL}
                                : (const char *[]){"header says dim=16 hidden_dim=24 n_layers=2 n_heads=2 "
                                                   "n_kv_heads=1 vocab_size=-20 seq_len=6 but file is",
                                                   want, NULL});
  }
  free(longer);
  free(k.data);
}

Test(loader, bad_header_fields) {
  ckpt_t k;
  ckpt_build(&k, 16, 24, 2, 2, 1, 20, 6);
  static const struct {
    int field;
    int32_t value;
    const char *fragment;
  } cases[] = {
      {0, 0, "header field dim=0"},
      {0, -16, "header field dim=-16"},
      {0, (1 << 16) + 2, "header field dim=65538"},
      {0, 17, "dim=17 is not a multiple of n_heads=2"},
      {0, 18, "head_dim = dim/n_heads = 18/2 = 9"},
      {0, 8, "head_dim = dim/n_heads = 8/2 = 4"},
      {0, 1024, "head_dim = dim/n_heads = 1024/2 = 512"},
      {1, 0, "header field hidden_dim=0"},
      {1, -24, "header field hidden_dim=-24"},
      {1, (1 << 18) + 1, "header field hidden_dim=262145"},
      {2, 0, "header field n_layers=0"},
      {2, -1, "header field n_layers=-1"},
      {2, 1025, "header field n_layers=1025"},
      {3, 0, "header field n_heads=0"},
      {3, -2, "header field n_heads=-2"},
      {3, 1025, "header field n_heads=1025"},
      {4, 0, "header field n_kv_heads=0"},
      {4, -1, "header field n_kv_heads=-1"},
      {4, 3, "header field n_kv_heads=3"},
      {5, 0, "header field vocab_size=0"},
      {5, INT32_MIN, "header field vocab_size=-2147483648"},
      {5, (1 << 20) + 1, "header field vocab_size=1048577"},
      {5, -(1 << 20) - 1, "header field vocab_size=-1048577"},
      {6, 0, "header field seq_len=0"},
      {6, -6, "header field seq_len=-6"},
      {6, (1 << 20) + 1, "header field seq_len=1048577"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    ckpt_set_header(&k, cases[i].field, cases[i].value);
    expect_parse_error(k.data, k.size, "tiny.bin", DECO_STATUS_BAD_FORMAT, (const char *[]){cases[i].fragment, NULL});
    /* The header check alone gives the same verdict. */
    deco_model_hparams_t c;
    cr_assert_eq(deco_llama2c_parse_header(k.data, 28, k.size, "tiny.bin", &c), DECO_STATUS_BAD_FORMAT);
    cr_assert(strstr(deco_last_error(NULL), cases[i].fragment) != NULL, "%s", deco_last_error(NULL));
    int32_t good[7] = {16, 24, 2, 2, 1, 20, 6};
    ckpt_set_header(&k, cases[i].field, good[cases[i].field]);
  }
  /* n_heads not a multiple of n_kv_heads (dim 48, 4 heads of 12, 3 KV heads). */
  ckpt_t g;
  ckpt_build(&g, 48, 8, 1, 4, 2, 5, 2);
  ckpt_set_header(&g, 4, 3);
  expect_parse_error(g.data, g.size, "gqa.bin", DECO_STATUS_BAD_FORMAT,
                     (const char *[]){"n_heads=4 is not a multiple of n_kv_heads=3", NULL});
  free(g.data);
  /* Untouched, the file is valid again. */
  deco_model_hparams_t c;
  deco_llama2c_weights_t w;
  cr_assert_eq(deco_llama2c_parse(k.data, k.size, "tiny.bin", &c, &w), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  free(k.data);
}

Test(loader, bad_header_huge_sizes) {
  /* Largest fields: the expected size is computed without overflow and the
   * file is simply the wrong size. */
  int32_t h[7] = {1 << 16, 1 << 18, 1024, 256, 256, -(1 << 20), 1 << 20};
  deco_model_hparams_t c;
  cr_assert_eq(deco_llama2c_parse_header(h, 28, 28, "huge.bin", &c), DECO_STATUS_BAD_FORMAT);
  const char *msg = deco_last_error(NULL);
  /* 28 + 4 * (2*V*d + L*(2*d + 4*d*d + 3*d*hidden) + d + seq*hd) */
  unsigned long long V = 1 << 20, d = 1 << 16, L = 1024, H = 1 << 18, hd = 256, S = 1 << 20;
  unsigned long long want = 28 + 4 * (2 * V * d + L * (2 * d + 4 * d * d + 3 * d * H) + d + S * hd);
  char frag[96];
  snprintf(frag, sizeof frag, "but file is 28 bytes, expected %llu", want);
  cr_assert(strstr(msg, frag) != NULL, "%s (want %s)", msg, frag);
}

Test(loader, bad_non_finite_weights) {
  ckpt_t k;
  ckpt_build(&k, 16, 24, 2, 2, 1, -20, 6);
  const float bad[] = {NAN, INFINITY, -INFINITY};
  for (int t = 0; t < N_TENSORS; ++t) {
    for (int b = 0; b < 3; ++b) {
      float *p = ckpt_tensor(&k, t);
      size_t per_layer = k.count[t] / k.layers[t];
      size_t layer = k.layers[t] - 1, elem = per_layer / 2 + 1;
      size_t at = layer * per_layer + elem;
      float saved = p[at];
      p[at] = bad[b];
      deco_model_hparams_t c;
      deco_llama2c_weights_t w;
      deco_status_t s = deco_llama2c_parse(k.data, k.size, "tiny.bin", &c, &w);
      if (t == FREQ_RE || t == FREQ_IM) {
        /* The legacy RoPE tables are skipped, never read. */
        cr_assert_eq(s, DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
      } else {
        char frag[128];
        if (k.layers[t] > 1)
          snprintf(frag, sizeof frag, "tiny.bin: tensor %s, layer %zu, element %zu (of %zu per layer) is %s",
                   tensor_name[t], layer, elem, per_layer, b == 0 ? "nan" : "inf");
        else
          snprintf(frag, sizeof frag, "tiny.bin: tensor %s, element %zu (of %zu) is %s", tensor_name[t], elem,
                   per_layer, b == 0 ? "nan" : "inf");
        deco_test_refused(NULL, s, DECO_STATUS_BAD_FORMAT, frag);
      }
      p[at] = saved;
    }
  }
  /* Two bad values: the first one is named. */
  ckpt_tensor(&k, W2)[5] = NAN;
  ckpt_tensor(&k, W1)[700] = INFINITY;
  expect_parse_error(k.data, k.size, "tiny.bin", DECO_STATUS_BAD_FORMAT,
                     (const char *[]){"tensor w1, layer 1, element 316 (of 384 per layer) is inf", NULL});
  free(k.data);
}

Test(loader, bad_random_files) {
  static float r[16384];
  static float buf[4096];
  for (uint32_t trial = 0; trial < 300; ++trial) {
    deco_test_fill_uniform(r, 16384, 99, trial, 0.0f, 256.0f);
    unsigned char *b = (unsigned char *)buf;
    for (size_t i = 0; i < sizeof buf; ++i) b[i] = (unsigned char)(int)r[i];
    size_t size = (trial * 131) % sizeof buf;
    /* A third of the trials get a plausible header, so the size check runs. */
    if (trial % 3 == 0) {
      int32_t h[7] = {16, 24, 1 + (int32_t)(trial % 3), 2, 1, 20, 6};
      memcpy(buf, h, sizeof h);
    }
    expect_parse_error(buf, size, "random.bin", DECO_STATUS_BAD_FORMAT, NULL);
  }
}

Test(loader, bad_arguments_and_files) {
  ckpt_t k;
  ckpt_build(&k, 16, 24, 2, 2, 1, 20, 6);
  deco_model_hparams_t c;
  deco_llama2c_weights_t w;
  /* An unaligned buffer is refused, not read. */
  char *shifted = malloc(k.size + 1);
  memcpy(shifted + 1, k.data, k.size);
  cr_assert_eq(deco_llama2c_parse(shifted + 1, k.size, "tiny.bin", &c, &w), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(NULL), "aligned") != NULL, "%s", deco_last_error(NULL));
  free(shifted);
  cr_assert_eq(deco_llama2c_parse(k.data, k.size, "tiny.bin", NULL, &w), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_llama2c_parse(k.data, k.size, "tiny.bin", &c, NULL), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_llama2c_parse(NULL, 100, "tiny.bin", &c, &w), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_llama2c_parse(NULL, 0, "empty.bin", &c, &w), DECO_STATUS_BAD_FORMAT);
  cr_assert_eq(deco_llama2c_read_hparams(NULL, &c), DECO_STATUS_NULL_POINTER);
  /* Missing file, directory, empty file. */
  const char *missing = tmp_path("no-such-model.bin");
  cr_assert_eq(deco_llama2c_read_hparams(missing, &c), DECO_STATUS_IO_ERROR);
  const char *msg = deco_last_error(NULL);
  cr_assert(strstr(msg, "cannot open") != NULL && strstr(msg, missing) != NULL, "%s", msg);
  cr_assert(strstr(msg, "No such file") != NULL, "%s", msg);
  cr_assert_eq(deco_llama2c_read_hparams(deco_test_tmpdir(), &c), DECO_STATUS_IO_ERROR);
  cr_assert(strstr(deco_last_error(NULL), deco_test_tmpdir()) != NULL, "%s", deco_last_error(NULL));
  const char *empty = tmp_path("empty.bin");
  cr_assert_eq(deco_test_write_file(empty, "", 0), 0);
  cr_assert_eq(deco_llama2c_read_hparams(empty, &c), DECO_STATUS_BAD_FORMAT);
  cr_assert(strncmp(deco_last_error(NULL), empty, strlen(empty)) == 0, "%s", deco_last_error(NULL));
  cr_assert(strstr(deco_last_error(NULL), "file is 0 bytes") != NULL, "%s", deco_last_error(NULL));
  /* A header field out of range, through the file. */
  ckpt_set_header(&k, 3, 0);
  const char *bad = tmp_path("bad-heads.bin");
  cr_assert_eq(deco_test_write_file(bad, k.data, k.size), 0);
  cr_assert_eq(deco_llama2c_read_hparams(bad, &c), DECO_STATUS_BAD_FORMAT);
  cr_assert(strncmp(deco_last_error(NULL), bad, strlen(bad)) == 0, "%s", deco_last_error(NULL));
  cr_assert(strstr(deco_last_error(NULL), "n_heads=0") != NULL, "%s", deco_last_error(NULL));
  free(k.data);
}

/* Every loader refuses a FIFO at once instead of waiting for a writer (the
 * suite's timeout turns a hang into a failure). */
Test(loader, fifo_refused_by_every_loader, .timeout = 30) {
  char fifo[4200];
  snprintf(fifo, sizeof fifo, "%s/fifo", deco_test_tmpdir());
  cr_assert_eq(mkfifo(fifo, 0644), 0);
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_hparams_t c;
  deco_model_t *m = NULL;
  deco_tokenizer_t *t = NULL;
  deco_tree_template_t tmpl;
  deco_recycler_t *rec;
  cr_assert_eq(deco_recycler_create(ctx, 512, 8, &rec), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_llama2c_read_hparams(fifo, &c), DECO_STATUS_IO_ERROR);
  cr_assert(strstr(deco_last_error(NULL), "not a regular file"), "%s", deco_last_error(NULL));
  cr_assert_eq(deco_model_load_llama2c(ctx, fifo, NULL, &m), DECO_STATUS_IO_ERROR);
  cr_assert(strstr(deco_last_error(ctx), "not a regular file"), "%s", deco_last_error(ctx));
  cr_assert_eq(deco_tokenizer_load(fifo, 512, &t), DECO_STATUS_IO_ERROR);
  cr_assert(strstr(deco_last_error(NULL), "not a regular file"), "%s", deco_last_error(NULL));
  cr_assert_eq(deco_tree_template_load(fifo, &tmpl), DECO_STATUS_IO_ERROR);
  cr_assert(strstr(deco_last_error(NULL), "not a regular file"), "%s", deco_last_error(NULL));
  cr_assert_eq(deco_recycler_load(rec, fifo), DECO_STATUS_IO_ERROR);
  cr_assert(strstr(deco_last_error(ctx), "not a regular file"), "%s", deco_last_error(ctx));
  deco_recycler_destroy(rec);
  deco_ctx_destroy(ctx);
}
