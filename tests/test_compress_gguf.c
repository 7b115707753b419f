/* tests/test_compress_gguf.c — KV-head compression of a GGUF model
 * (SmolLM2-135M's 3-layer mini copy, models-cache/; label model): the F32
 * GGUF writer keeps every metadata entry but head_count_kv and file_type,
 * and on a copy edited to be exactly mergeable (3 -> 1 KV heads, RoPE base
 * 100000) svd reproduces the logits to f32 rounding (1e-5 of the largest
 * logit) while mean-pooling misses by more than 1e-2; a template without
 * head_count_kv gets it appended, one with a tensor no Llama model has is
 * refused before anything is written.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/model/gguf.h"
#include "common/testutil.h"
#include "compress_util.h"
#include "deco/deco.h"

#undef EVAL_T
#define EVAL_T 128 /* SmolLM2 mini: 128 positions of a 49152-id vocabulary */

static void write_gguf(deco_cw_t *w, const char *tmpl, const char *path) {
  cr_assert_eq(deco_cw_write_gguf(w, tmpl, path), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
}

/* The bytes of the GGUF file at path (the caller frees them), parsed into g. */
static unsigned char *read_parsed(const char *path, const char *name, deco_gguf_t *g) {
  size_t n = 0;
  unsigned char *p = deco_test_read_file(path, &n);
  cr_assert_not_null(p, "%s", path);
  cr_assert_eq(deco_gguf_parse(p, n, name, g), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  return p;
}

Test(compress_gguf, svd_exact_on_mergeable_smollm2_mini) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  const char *mini = deco_test_model_file("SmolLM2-135M-mini.gguf");
  deco_cw_t w;
  cr_assert_eq(deco_cw_read(mini, &w), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(w.hp.n_kv_heads, 3);
  cr_assert_eq(w.hp.rope_theta, 100000.0f);
  const int vocab = w.hp.vocab_size;
  make_mergeable(&w, 3, 0xBEEFu);
  const char *edited = tmp_path("edited.gguf");
  write_gguf(&w, mini, edited);
  deco_cw_free(&w);

  int32_t calib[CALIB_T], eval[EVAL_T];
  ids(calib, CALIB_T, 505, vocab);
  ids(eval, EVAL_T, 606, vocab);
  deco_model_t *m = load_model(ctx, edited, DECO_ROPE_INTERLEAVED);
  float *ref = all_logits(m, eval, EVAL_T);
  deco_grams_t gr;
  cr_assert_eq(deco_compress_calibrate(m, calib, CALIB_T, 3, 0, NULL, NULL, &gr), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  deco_model_destroy(m);
  for (int method = 0; method < 2; ++method) {
    cr_assert_eq(deco_cw_read(edited, &w), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    cr_assert_eq(deco_compress_fold(&w, &gr, 1, (deco_compress_method_t)method, NULL, NULL), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(NULL));
    const char *folded = tmp_path("folded.gguf");
    write_gguf(&w, edited, folded);
    deco_cw_free(&w);
    deco_model_t *fm = load_model(ctx, folded, DECO_ROPE_INTERLEAVED);
    cr_assert_eq(deco_model_get_hparams(fm)->n_kv_heads, 1);
    float *got = all_logits(fm, eval, EVAL_T);
    const double err = max_abs_diff(got, ref, (size_t)EVAL_T * vocab);
    /* f32 relative to the logits' scale: the edit and the fold each round
     * the weights once to f32 (~6e-8), amplified through the layers;
     * measured 1.4e-4 at logits up to 61. */
    double scale = 0;
    for (size_t i = 0; i < (size_t)EVAL_T * vocab; ++i)
      if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
    if (method == DECO_COMPRESS_SVD)
      cr_assert_lt(err, 1e-5 * (1.0 + scale), "svd: logits differ by %g (largest logit %g)", err, scale);
    else
      cr_assert_gt(err, 1e-2, "mean: logits differ by only %g", err);
    free(got);
    deco_model_destroy(fm);
  }
  deco_grams_free(&gr);
  free(ref);
  deco_ctx_destroy(ctx);
}

Test(compress_gguf, metadata_and_tokenizer_copied) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  const char *mini = deco_test_model_file("SmolLM2-135M-mini.gguf");
  int32_t calib[CALIB_T];
  ids(calib, CALIB_T, 707, 49152);
  const char *out = tmp_path("mini_1kv.gguf");
  deco_compress_config_t cc = DECO_COMPRESS_CONFIG_INIT;
  cc.n_kv_heads = 1;
  cc.method = DECO_COMPRESS_KEEP;
  cr_assert_eq(deco_compress_model(ctx, mini, calib, CALIB_T, &cc, out, NULL), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  deco_gguf_t ga, gb;
  unsigned char *a = read_parsed(mini, "in", &ga), *b = read_parsed(out, "out", &gb);
  cr_assert_eq(ga.n_kv, gb.n_kv);
  cr_assert_eq(ga.n_tensors, gb.n_tensors);
  for (uint64_t i = 0; i < ga.n_kv; ++i) {
    const deco_gguf_kv_t *x = &ga.kv[i], *y = &gb.kv[i];
    cr_assert_eq(x->key_len, y->key_len);
    cr_assert(memcmp(x->key, y->key, x->key_len) == 0);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)x->key_len, x->key);
    if (strcmp(key, "llama.attention.head_count_kv") == 0 || strcmp(key, "general.file_type") == 0) continue;
    cr_assert_eq(x->type, y->type, "%s", key);
    cr_assert_eq(x->count, y->count, "%s", key);
    cr_assert_eq(x->value_bytes, y->value_bytes, "%s", key);
    cr_assert(memcmp(x->value, y->value, x->value_bytes) == 0, "%s differs", key);
  }
  uint32_t kv = 0, ft = 0;
  cr_assert_eq(deco_gguf_get_u32(&gb, "llama.attention.head_count_kv", &kv), DECO_STATUS_SUCCESS);
  cr_assert_eq(kv, 1);
  if (deco_gguf_find_kv(&ga, "general.file_type")) {
    cr_assert_eq(deco_gguf_get_u32(&gb, "general.file_type", &ft), DECO_STATUS_SUCCESS);
    cr_assert_eq(ft, 0);
  }
  for (uint64_t i = 0; i < gb.n_tensors; ++i) cr_assert_eq(gb.tensors[i].type, DECO_GGUF_F32, "%s", gb.tensors[i].name);
  /* keep: the kept head's K/V rows are the input's first head's, dequantised. */
  deco_cw_t wa, wb;
  cr_assert_eq(deco_cw_read(mini, &wa), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_cw_read(out, &wb), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  const size_t hd_dim = (size_t)wa.hp.head_dim * wa.hp.dim;
  for (int l = 0; l < wa.hp.n_layers; ++l) {
    cr_assert(memcmp(wa.wv + (size_t)l * 3 * hd_dim, wb.wv + (size_t)l * hd_dim, hd_dim * sizeof(float)) == 0);
    cr_assert(memcmp(wa.wk + (size_t)l * 3 * hd_dim, wb.wk + (size_t)l * hd_dim, hd_dim * sizeof(float)) == 0);
  }
  cr_assert(memcmp(wa.w2, wb.w2, sizeof(float) * wa.hp.n_layers * wa.hp.dim * wa.hp.hidden_dim) == 0);
  deco_cw_free(&wa);
  deco_cw_free(&wb);
  deco_tokenizer_t *ta = NULL, *tb = NULL;
  cr_assert_eq(deco_tokenizer_load_gguf(mini, &ta), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_tokenizer_load_gguf(out, &tb), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_tokenizer_vocab_size(ta), deco_tokenizer_vocab_size(tb));
  deco_tokenizer_destroy(ta);
  deco_tokenizer_destroy(tb);
  deco_gguf_free(&ga);
  deco_gguf_free(&gb);
  free(a);
  free(b);
  deco_ctx_destroy(ctx);
}

Test(compress_gguf, writer_template_edge_cases) {
  const char *mini = deco_test_model_file("SmolLM2-135M-mini.gguf");
  deco_cw_t w;
  cr_assert_eq(deco_cw_read(mini, &w), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  size_t n = 0;
  unsigned char *buf = deco_test_read_file(mini, &n);
  cr_assert_not_null(buf);
  /* An MHA-style template without head_count_kv (its key renamed): the
   * output keeps the renamed entry and appends head_count_kv last. */
  static const char kv_key[] = "llama.attention.head_count_kv";
  unsigned char *k = memmem(buf, n, kv_key, sizeof kv_key - 1);
  cr_assert_not_null(k);
  k[sizeof kv_key - 2] = 'x';
  const char *tmpl = tmp_path("no_kv_heads.gguf"), *out = tmp_path("kv_heads_added.gguf");
  cr_assert_eq(deco_test_write_file(tmpl, buf, n), 0);
  write_gguf(&w, tmpl, out);
  deco_gguf_t gt, go;
  unsigned char *a = read_parsed(tmpl, "template", &gt), *b = read_parsed(out, "out", &go);
  cr_assert_null(deco_gguf_find_kv(&gt, kv_key));
  cr_assert_eq(go.n_kv, gt.n_kv + 1);
  const deco_gguf_kv_t *last = &go.kv[go.n_kv - 1];
  cr_assert(last->key_len == sizeof kv_key - 1 && memcmp(last->key, kv_key, last->key_len) == 0);
  uint32_t kv = 0;
  cr_assert_eq(deco_gguf_get_u32(&go, kv_key, &kv), DECO_STATUS_SUCCESS);
  cr_assert_eq(kv, 3);
  deco_cw_t back;
  cr_assert_eq(deco_cw_read(out, &back), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  const size_t nk = (size_t)w.hp.n_layers * 3 * w.hp.head_dim * w.hp.dim;
  cr_assert(memcmp(back.wk, w.wk, nk * sizeof(float)) == 0);
  cr_assert(memcmp(back.wv, w.wv, nk * sizeof(float)) == 0);
  deco_cw_free(&back);
  deco_gguf_free(&gt);
  deco_gguf_free(&go);
  free(a);
  free(b);
  k[sizeof kv_key - 2] = 'v';
  /* A tensor no Llama model has: refused, naming it, and nothing written. */
  unsigned char *t = memmem(buf, n, "output_norm.weight", 18);
  cr_assert_not_null(t);
  t[10] = 'X';
  const char *foreign = tmp_path("foreign_tensor.gguf"), *never = tmp_path("never_written.gguf");
  cr_assert_eq(deco_test_write_file(foreign, buf, n), 0);
  char want[1024];
  snprintf(want, sizeof want, "%s: tensor 'output_norX.weight' is not one of a Llama model's", foreign);
  deco_test_refused(NULL, deco_cw_write_gguf(&w, foreign, never), DECO_STATUS_UNSUPPORTED, want);
  FILE *f = fopen(never, "rb");
  cr_assert_null(f, "nothing is written for a foreign template");
  free(buf);
  deco_cw_free(&w);
}
