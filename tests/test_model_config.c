/* tests/test_model_config.c — the model configuration on the CPU backend:
 * layer schedules (every layer alone is the ordinary forward bit for bit;
 * a group of layers and a subset of layers equal a plain-C evaluation of
 * the schedule's formula, docs/DESIGN.md, written here from the llama2.c
 * checkpoint itself), the checks of every config field (size, dtype,
 * tensor parallelism, KV heads, schedules), and the device forward's ready
 * embeddings input.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "common/tolerances.h"

/* stories260K's architecture. */
enum {
  DIM = DECO_STORIES_DIM, HID = DECO_STORIES_HIDDEN, NL = DECO_STORIES_LAYERS, NH = DECO_STORIES_HEADS,
  NKV = DECO_STORIES_KV_HEADS, HD = DECO_STORIES_HEAD_DIM, KVD = NKV * HD, V = DECO_STORIES_VOCAB, SEQ = 512, NT = 12
};

static void rmsnorm(float *o, const float *x, const float *w) {
  float ss = 0.0f;
  for (int i = 0; i < DIM; ++i) ss += x[i] * x[i];
  ss = 1.0f / sqrtf(ss / DIM + 1e-5f);
  for (int i = 0; i < DIM; ++i) o[i] = w[i] * (ss * x[i]);
}

static void matvec(float *o, const float *x, const float *w, int n, int d) {
  for (int i = 0; i < d; ++i) {
    float s = 0.0f;
    for (int j = 0; j < n; ++j) s += w[(size_t)i * n + j] * x[j];
    o[i] = s;
  }
}

/* Layer l's attention output A = Wo · Attn(RMSNorm(h1)) at position pos;
 * the layer's K/V of this position go to kc/vc [NL][SEQ][KVD] (llama2.c's
 * run.c, interleaved RoPE). */
static void ref_attention(const deco_test_stories_weights_t *w, int l, int pos, const float *h1, float *kc, float *vc,
                          float *out) {
  float xb[DIM], q[DIM], att[DIM], scores[SEQ];
  float *k = kc + ((size_t)l * SEQ + pos) * KVD, *v = vc + ((size_t)l * SEQ + pos) * KVD;
  rmsnorm(xb, h1, w->rms_att + l * DIM);
  matvec(q, xb, w->wq + (size_t)l * DIM * DIM, DIM, DIM);
  matvec(k, xb, w->wk + (size_t)l * KVD * DIM, DIM, KVD);
  matvec(v, xb, w->wv + (size_t)l * KVD * DIM, DIM, KVD);
  for (int i = 0; i < DIM; i += 2) {
    const float freq = 1.0f / powf(10000.0f, (float)(i % HD) / (float)HD), val = pos * freq;
    const float fcr = cosf(val), fci = sinf(val);
    for (int which = 0; which < (i < KVD ? 2 : 1); ++which) {
      float *vec = which == 0 ? q : k;
      const float v0 = vec[i], v1 = vec[i + 1];
      vec[i] = v0 * fcr - v1 * fci;
      vec[i + 1] = v0 * fci + v1 * fcr;
    }
  }
  for (int h = 0; h < NH; ++h) {
    const int g = h / (NH / NKV);
    float max = -INFINITY, sum = 0.0f;
    for (int t = 0; t <= pos; ++t) {
      const float *kt = kc + ((size_t)l * SEQ + t) * KVD + g * HD;
      float s = 0.0f;
      for (int i = 0; i < HD; ++i) s += q[h * HD + i] * kt[i];
      scores[t] = s / sqrtf((float)HD);
      if (scores[t] > max) max = scores[t];
    }
    for (int t = 0; t <= pos; ++t) sum += (scores[t] = expf(scores[t] - max));
    for (int i = 0; i < HD; ++i) {
      float a = 0.0f;
      for (int t = 0; t <= pos; ++t) a += scores[t] / sum * vc[((size_t)l * SEQ + t) * KVD + g * HD + i];
      att[h * HD + i] = a;
    }
  }
  matvec(out, att, w->wo + (size_t)l * DIM * DIM, DIM, DIM);
}

/* h += MLP_l(RMSNorm'_l(h)). */
static void ref_ffn(const deco_test_stories_weights_t *w, int l, float *x) {
  float xb[DIM], h1[HID], h3[HID], o[DIM];
  rmsnorm(xb, x, w->rms_ffn + l * DIM);
  matvec(h1, xb, w->w1 + (size_t)l * HID * DIM, DIM, HID);
  matvec(h3, xb, w->w3 + (size_t)l * HID * DIM, DIM, HID);
  for (int i = 0; i < HID; ++i) h1[i] = h1[i] / (1.0f + expf(-h1[i])) * h3[i];
  matvec(o, h1, w->w2 + (size_t)l * DIM * HID, HID, DIM);
  for (int i = 0; i < DIM; ++i) x[i] += o[i];
}

/* Logits [n][V] of ids under a schedule, position by position: a group
 * entered with h1 computes every A_l from h1, then adds A_l and its FFN
 * layer by layer; skipped layers do nothing. */
static void ref_forward(const float *file, const deco_layer_schedule_t *s, const int32_t *ids, int n, float *logits) {
  const deco_test_stories_weights_t w = deco_test_stories_weights(file);
  float *kc = calloc((size_t)NL * SEQ * KVD, sizeof(float)), *vc = calloc((size_t)NL * SEQ * KVD, sizeof(float));
  for (int pos = 0; pos < n; ++pos) {
    float x[DIM], h1[DIM], a[DECO_MAX_LAYER_GROUP][DIM], xf[DIM];
    memcpy(x, w.emb + (size_t)ids[pos] * DIM, sizeof x);
    for (int g = 0; g < s->n_groups; ++g) {
      memcpy(h1, x, sizeof h1);
      for (int i = 0; i < s->count[g]; ++i) ref_attention(&w, s->first[g] + i, pos, h1, kc, vc, a[i]);
      for (int i = 0; i < s->count[g]; ++i) {
        for (int j = 0; j < DIM; ++j) x[j] += a[i][j];
        ref_ffn(&w, s->first[g] + i, x);
      }
    }
    rmsnorm(xf, x, w.rms_final);
    matvec(logits + (size_t)pos * V, xf, w.emb, DIM, V);
  }
  free(kc);
  free(vc);
}

/* deco's forward of ids as one prefill under a schedule (NULL: the
 * model's); logits [n][V], and the K/V pools copied out when wanted. */
static void deco_prefill(deco_model_t *m, const deco_layer_schedule_t *s, const int32_t *ids, int n, float *logits,
                         float **k, float **v, size_t *bytes) {
  deco_kv_cache_t *kc;
  int seq;
  cr_assert_eq(deco_kv_cache_create(m, 16, 4, 1, &kc), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, n, &seq), DECO_STATUS_SUCCESS);
  void *kp, *vp;
  size_t nb;
  cr_assert_eq(deco_kv_cache_pools(kc, &kp, &vp, &nb), DECO_STATUS_SUCCESS);
  memset(kp, 0, nb);
  memset(vp, 0, nb);
  deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
  fa.n_seqs = 1;
  fa.seqs = &seq;
  fa.n_new = &n;
  fa.tokens = ids;
  fa.logits_mode = DECO_LOGITS_ALL;
  fa.logits = logits;
  fa.schedule = s;
  cr_assert_eq(deco_forward(m, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(deco_model_ctx(m)));
  if (k) {
    *k = malloc(nb);
    *v = malloc(nb);
    memcpy(*k, kp, nb);
    memcpy(*v, vp, nb);
    *bytes = nb;
  }
  deco_kv_cache_destroy(kc);
}

static int32_t *fixture_ids(void) {
  int n;
  int32_t *ids = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/greedy_bos_256.ids"), &n);
  cr_assert(ids && n >= NT);
  return ids;
}

Test(model_config, every_layer_alone_is_the_ordinary_forward_bit_for_bit) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  int32_t *ids = fixture_ids();
  static float l0[NT * V], l1[NT * V];
  float *k0, *v0, *k1, *v1;
  size_t b0, b1;
  const int first[NL] = {0, 1, 2, 3, 4}, count[NL] = {1, 1, 1, 1, 1};
  const deco_layer_schedule_t alone = {.n_groups = NL, .first = first, .count = count};
  deco_prefill(m, NULL, ids, NT, l0, &k0, &v0, &b0);
  deco_prefill(m, &alone, ids, NT, l1, &k1, &v1, &b1);
  cr_assert_eq(memcmp(l0, l1, sizeof l0), 0, "logits differ");
  cr_assert(b0 == b1 && memcmp(k0, k1, b0) == 0 && memcmp(v0, v1, b0) == 0, "K/V differ");
  /* The same schedule as the model's default. */
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.schedule = alone;
  deco_model_t *m2;
  cr_assert_eq(deco_model_load_llama2c(ctx, deco_test_data_file("models/stories260K.bin"), &mc, &m2),
               DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_prefill(m2, NULL, ids, NT, l1, NULL, NULL, NULL);
  cr_assert_eq(memcmp(l0, l1, sizeof l0), 0, "logits differ with the schedule in the model config");
  free(k0), free(v0), free(k1), free(v1), free(ids);
  deco_model_destroy(m2);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* deco's forward under schedule s against the plain-C formula; returns the
 * largest |logit| difference from the ordinary forward (to show the schedule
 * changed something when it should). */
static float check_schedule(const char *what, const deco_layer_schedule_t *s, int from_config) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m;
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  if (from_config) mc.schedule = *s;
  cr_assert_eq(deco_model_load_llama2c(ctx, deco_test_data_file("models/stories260K.bin"), &mc, &m),
               DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  float *file = deco_test_read_file(deco_test_data_file("models/stories260K.bin"), NULL);
  int32_t *ids = fixture_ids();
  static float got[NT * V], want[NT * V], plain[NT * V];
  deco_prefill(m, from_config ? NULL : s, ids, NT, got, NULL, NULL, NULL);
  ref_forward(file, s, ids, NT, want);
  cr_assert_eq(deco_test_compare(what, got, want, NT * V, DECO_TOL_FIXTURE_ATOL, DECO_TOL_FIXTURE_RTOL), 0,
               "%s: the forward differs from the formula", what);
  /* The reference itself: with every layer alone it is llama2.c's forward. */
  const int first[NL] = {0, 1, 2, 3, 4}, count[NL] = {1, 1, 1, 1, 1};
  const deco_layer_schedule_t alone = {.n_groups = NL, .first = first, .count = count};
  ref_forward(file, &alone, ids, NT, plain);
  size_t bytes;
  float *fixture = deco_test_read_file(deco_test_data_file("fixtures/stories260K/logits_bos_32.f32"), &bytes);
  cr_assert_eq(deco_test_compare("reference vs llama2.c", plain, fixture, NT * V, DECO_TOL_FIXTURE_ATOL,
                                 DECO_TOL_FIXTURE_RTOL),
               0);
  float diff = 0.0f;
  for (int i = 0; i < NT * V; ++i) diff = fmaxf(diff, fabsf(got[i] - plain[i]));
  fprintf(stderr, "%s: largest logit change from the ordinary forward %.4g\n", what, diff);
  free(fixture), free(file), free(ids);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
  return diff;
}

Test(model_config, a_layer_group_follows_its_formula) {
  /* Layers 1-2 and 3-4 each read one input. */
  const int first[3] = {0, 1, 3}, count[3] = {1, 2, 2};
  const deco_layer_schedule_t s = {.n_groups = 3, .first = first, .count = count};
  float diff = check_schedule("groups {0} {1,2} {3,4}", &s, 0);
  cr_assert(diff > 100 * DECO_TOL_FIXTURE_ATOL, "the groups changed nothing (%g): the test could not fail", diff);
  check_schedule("groups {0} {1,2} {3,4} from the model config", &s, 1);
  /* One group of every layer. */
  const int all_first[1] = {0}, all_count[1] = {NL};
  const deco_layer_schedule_t all = {.n_groups = 1, .first = all_first, .count = all_count};
  check_schedule("one group of 5", &all, 0);
}

Test(model_config, a_layer_subset_runs) {
  /* Self-drafting: layers 1 and 3 skipped; then a group after a gap. */
  const int first[3] = {0, 2, 4}, count[3] = {1, 1, 1};
  const deco_layer_schedule_t s = {.n_groups = 3, .first = first, .count = count};
  float diff = check_schedule("layers {0} {2} {4}", &s, 0);
  cr_assert(diff > 100 * DECO_TOL_FIXTURE_ATOL, "leaving layers out changed nothing (%g)", diff);
  const int gf[2] = {0, 3}, gc[2] = {2, 2};
  const deco_layer_schedule_t g = {.n_groups = 2, .first = gf, .count = gc};
  check_schedule("groups {0,1} {3,4}, layer 2 skipped", &g, 0);
}

Test(model_config, schedules_are_checked) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  int32_t *ids = fixture_ids();
  static float logits[NT * V];
  deco_kv_cache_t *kc;
  int seq, n = 2;
  cr_assert_eq(deco_kv_cache_create(m, 16, 4, 1, &kc), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, 16, &seq), DECO_STATUS_SUCCESS);
  static const struct {
    int n;
    int first[6], count[6];
    const char *fragment;
  } bad[] = {
      {2, {0, 1}, {2, 1}, "must start at layer 2"},   /* overlap */
      {2, {1, 0}, {1, 1}, "must start at layer 2"},   /* decreasing */
      {1, {4}, {2}, "end before layer 5"},            /* past the last layer */
      {1, {0}, {0}, "has 0 layers"},                  /* empty group */
      {1, {-1}, {1}, "must start at layer 0"},        /* negative */
      {6, {0, 1, 2, 3, 4, 5}, {1, 1, 1, 1, 1, 1}, "n_groups = 6"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    const deco_layer_schedule_t s = {.n_groups = bad[i].n, .first = bad[i].first, .count = bad[i].count};
    deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &n, .tokens = ids, .logits_mode = DECO_LOGITS_ALL,
                              .logits = logits, .schedule = &s};
    cr_assert_eq(deco_forward(m, kc, &fa), DECO_STATUS_INVALID_ARGUMENT, "case %zu", i);
    cr_assert(strstr(deco_last_error(ctx), bad[i].fragment) != NULL, "case %zu: %s", i, deco_last_error(ctx));
    cr_assert_eq(deco_kv_cache_seq_len(kc, seq), 0, "a refused forward commits nothing");
    deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
    mc.schedule = s;
    deco_model_t *m2 = NULL;
    cr_assert_eq(deco_model_load_llama2c(ctx, deco_test_data_file("models/stories260K.bin"), &mc, &m2),
                 DECO_STATUS_INVALID_ARGUMENT, "case %zu in the model config", i);
    cr_assert_null(m2);
  }
  const deco_layer_schedule_t null_arrays = {.n_groups = 1, .first = NULL, .count = NULL};
  deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &n, .tokens = ids, .logits_mode = DECO_LOGITS_ALL,
                            .logits = logits, .schedule = &null_arrays};
  cr_assert_eq(deco_forward(m, kc, &fa), DECO_STATUS_NULL_POINTER);
  free(ids);
  deco_kv_cache_destroy(kc);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(model_config, config_fields_are_checked) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  const char *path = deco_test_data_file("models/stories260K.bin");
  deco_model_t *m = NULL;
  /* NULL is the defaults; so is the INIT macro; the size must be set. */
  cr_assert_eq(deco_model_load_llama2c(ctx, path, NULL, &m), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_model_dtype(m), DECO_DTYPE_F32);
  const deco_model_hparams_t *hp = deco_model_get_hparams(m);
  cr_assert_eq(hp->bos_id, 1);
  cr_assert_eq(hp->n_stop_ids, 2);
  cr_assert(hp->stop_ids[0] == 1 && hp->stop_ids[1] == 2, "llama2.c's stop ids");
  deco_model_destroy(m);
  deco_model_config_t mc;
  memset(&mc, 0, sizeof mc);
  m = NULL;
  cr_assert_eq(deco_model_load_llama2c(ctx, path, &mc, &m), DECO_STATUS_INVALID_ARGUMENT, "size 0");
  cr_assert(strstr(deco_last_error(ctx), "DECO_") != NULL, "%s", deco_last_error(ctx));
  mc = (deco_model_config_t)DECO_MODEL_CONFIG_INIT;
  mc.size = sizeof mc + 8;
  cr_assert_eq(deco_model_load_llama2c(ctx, path, &mc, &m), DECO_STATUS_INVALID_ARGUMENT, "a newer layout");
  /* An older, shorter layout keeps the defaults of the fields it lacks. */
  mc = (deco_model_config_t)DECO_MODEL_CONFIG_INIT;
  mc.size = offsetof(deco_model_config_t, n_kv_heads);
  mc.n_kv_heads = 3; /* beyond the caller's size: not read */
  cr_assert_eq(deco_model_load_llama2c(ctx, path, &mc, &m), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_model_destroy(m);
  m = NULL;
  /* The CPU backend takes f32 only. */
  mc = (deco_model_config_t)DECO_MODEL_CONFIG_INIT;
  mc.dtype = DECO_DTYPE_BF16;
  cr_assert_eq(deco_model_load_llama2c(ctx, path, &mc, &m), DECO_STATUS_UNSUPPORTED);
  /* Tensor parallelism above 1 needs a communicator (test_tp_model.c runs it). */
  mc = (deco_model_config_t)DECO_MODEL_CONFIG_INIT;
  mc.tp_size = 2;
  cr_assert_eq(deco_model_load_llama2c(ctx, path, &mc, &m), DECO_STATUS_NULL_POINTER);
  cr_assert(strstr(deco_last_error(ctx), "communicator") != NULL, "%s", deco_last_error(ctx));
  mc.tp_size = 1;
  mc.tp_rank = 1;
  cr_assert_eq(deco_model_load_llama2c(ctx, path, &mc, &m), DECO_STATUS_INVALID_ARGUMENT);
  mc.tp_rank = 0;
  mc.tp_size = 0; /* = 1 */
  cr_assert_eq(deco_model_load_llama2c(ctx, path, &mc, &m), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_model_destroy(m);
  m = NULL;
  /* KV heads: the checkpoint's (4) runs; a valid compression (2 or 1) is
   * left to deco compress (unsupported at load); an invalid count is
   * refused as such. */
  const struct {
    int heads;
    deco_status_t status;
  } kv[] = {{4, DECO_STATUS_SUCCESS}, {2, DECO_STATUS_UNSUPPORTED}, {1, DECO_STATUS_UNSUPPORTED},
            {3, DECO_STATUS_INVALID_ARGUMENT}, {8, DECO_STATUS_INVALID_ARGUMENT}, {-1, DECO_STATUS_INVALID_ARGUMENT}};
  for (size_t i = 0; i < sizeof kv / sizeof kv[0]; ++i) {
    mc = (deco_model_config_t)DECO_MODEL_CONFIG_INIT;
    mc.n_kv_heads = kv[i].heads;
    cr_assert_eq(deco_model_load_llama2c(ctx, path, &mc, &m), kv[i].status, "n_kv_heads %d: %s", kv[i].heads,
                 deco_last_error(ctx));
    deco_model_destroy(m);
    m = NULL;
  }
  /* The synthetic models take the same config. */
  mc = (deco_model_config_t)DECO_MODEL_CONFIG_INIT;
  mc.tp_size = 4;
  cr_assert_eq(deco_model_create_synthetic(ctx, "tiny", DECO_SYNTHETIC_SEED, &mc, &m), DECO_STATUS_UNSUPPORTED);
  cr_assert(strstr(deco_last_error(ctx), "synthetic:tiny") != NULL, "%s", deco_last_error(ctx));
  deco_ctx_destroy(ctx);
}

Test(model_config, device_forward_takes_ready_embeddings) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  float *file = deco_test_read_file(deco_test_data_file("models/stories260K.bin"), NULL);
  const deco_test_stories_weights_t w = deco_test_stories_weights(file);
  int32_t *ids = fixture_ids();
  deco_kv_cache_t *kc;
  int seq[2];
  cr_assert_eq(deco_kv_cache_create(m, 16, 4, 2, &kc), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, NT, &seq[0]), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, NT, &seq[1]), DECO_STATUS_SUCCESS);
  /* Context memory (host memory on the CPU backend), as a graph would use. */
  const int P = deco_kv_cache_max_pages(kc);
  int32_t *table, *positions, *meta;
  float *embeds, *logits;
  cr_assert_eq(deco_malloc(ctx, (void **)&table, sizeof(int32_t) * 2 * (size_t)P), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_malloc(ctx, (void **)&positions, sizeof(int32_t) * NT), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_malloc(ctx, (void **)&meta, sizeof(int32_t) * 3), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_malloc(ctx, (void **)&embeds, sizeof(float) * NT * DIM), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_malloc(ctx, (void **)&logits, sizeof(float) * 2 * NT * V), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_block_table(kc, seq, 2, table), DECO_STATUS_SUCCESS);
  for (int t = 0; t < NT; ++t) {
    positions[t] = t;
    memcpy(embeds + (size_t)t * DIM, w.emb + (size_t)ids[t] * DIM, sizeof(float) * DIM);
  }
  meta[0] = 0, meta[1] = NT, meta[2] = NT; /* q_indptr {0, NT}, kv_lens {NT} */
  for (int s = 0; s < 2; ++s) {
    deco_forward_device_args_t fa = DECO_FORWARD_DEVICE_ARGS_INIT;
    fa.n_seqs = 1;
    fa.n_tokens = NT;
    fa.tokens = s ? NULL : ids;
    fa.embeds = s ? embeds : NULL;
    fa.positions = positions;
    fa.q_indptr = meta;
    fa.kv_lens = meta + 2;
    fa.block_table = table + (size_t)s * P;
    fa.logits = logits + (size_t)s * NT * V;
    cr_assert_eq(deco_forward_device(m, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  }
  cr_assert_eq(memcmp(logits, logits + NT * V, sizeof(float) * NT * V), 0, "embeddings input differs from ids");
  deco_forward_device_args_t none = DECO_FORWARD_DEVICE_ARGS_INIT;
  none.n_seqs = 1, none.n_tokens = NT, none.positions = positions, none.q_indptr = meta, none.kv_lens = meta + 2;
  none.block_table = table, none.logits = logits;
  cr_assert_eq(deco_forward_device(m, kc, &none), DECO_STATUS_NULL_POINTER, "neither ids nor embeddings");
  deco_free(ctx, table), deco_free(ctx, positions), deco_free(ctx, meta), deco_free(ctx, embeds);
  deco_free(ctx, logits);
  free(file), free(ids);
  deco_kv_cache_destroy(kc);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
