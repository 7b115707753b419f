/* tests/test_superpose.c — superposed decoding (deco/superpose.h, Shen et
 * al. 2024) on the CPU backend: a hand-worked step (vocabulary 8, k = 3,
 * m = 4, a three-line n-gram table) through top-m, lookup and selection;
 * the mixed embedding; ties, a full vocabulary of candidates, stop ids and
 * non-finite logits in the selection; the runner's logits against
 * deco_forward on mixes computed here; k = 1 without n-grams against greedy
 * decoding; a batch of prompts against single runs; the configuration's
 * checks.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

#define K 3
#define M 4
#define V 8
#define ROWS 10

/* One prompt's state arrays in the CPU context (host memory). */
typedef struct state {
  deco_superpose_prompt_t info;
  double score[K], fin_score[K];
  int32_t token[K], ctx[K][5], ctx_len[K], mix_token[K], hist_token[ROWS][K], hist_parent[ROWS][K], fin_len[K],
      fin_slot[K];
  float mix_weight[K];
} state_t;

static deco_superpose_drafts_t drafts_of(state_t *s) {
  return (deco_superpose_drafts_t){.prompt = &s->info,
                                   .score = s->score,
                                   .token = s->token,
                                   .ctx = &s->ctx[0][0],
                                   .ctx_len = s->ctx_len,
                                   .mix_token = s->mix_token,
                                   .mix_weight = s->mix_weight,
                                   .hist_token = &s->hist_token[0][0],
                                   .hist_parent = &s->hist_parent[0][0],
                                   .fin_score = s->fin_score,
                                   .fin_len = s->fin_len,
                                   .fin_slot = s->fin_slot};
}

static void near(double got, double want, double tol, const char *what) {
  cr_assert(fabs(got - want) <= tol, "%s: %.10f, expected %.10f", what, got, want);
}

/* The worked example (docs/ALGORITHMS.md). Table from "1 3 5", "1 3 6",
 * "1 4 6". Three drafts after one step: d0 = ...1 3 (score -0.5),
 * d1 = ...1 4 (-1), d2 = ...2 5 (-2). Logits: 0.5 ln p + 3 for the top
 * four, p = .4 (id 5), .3 (id 6), .2 (id 2), .1 (id 7); T = 0.5, so the
 * renormalised top-4 probabilities are p. alpha = 0.5, penalty 2, stop id 6.
 *   P_ng(5 | d0) = 0.01 * c(3 5)/c(3) + 0.04 * c(1 3 5)/c(1 3) = 0.01/2 + 0.04/2 = 0.025
 *   P_ng(6 | d0) = 0.025;  P_ng(6 | d1) = 0.01 + 0.04 = 0.05;  d2's context is unseen.
 * Scores s = score + 0.5 ln p + 0.5 ln P_ng (d2: score + 0.5 ln p - 2):
 *   (d0,5) -2.8025850930  (d0,6) -2.9464261292  (d1,6) -3.0998525389
 *   (d2,5) -4.4581453659  (d2,6) -4.6019864022  (d2,2) -4.8047189562  (d2,7) -5.1512925465
 * The first 2k = 6 are drawn: (d0,6) and (d1,6) are stops among the first
 * k, so they finish; (d0,5), (d2,5) and (d2,2) become the drafts; (d2,6),
 * a stop ranked 4th, is passed over. Weights: softmax of the three scores,
 * 0.7541297126, 0.1440274797, 0.1018428076; id 5 twice, so the mix is
 * {5: 0.8981571924, 2: 0.1018428076}. */
/* One timeout for the whole suite: Criterion 2.4 leaks a little when a
 * suite mixes timeouts (ASan then fails the CI stage). */
TestSuite(superpose, .timeout = 300);

Test(superpose, hand_worked_step) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_ngram_builder_t *b;
  cr_assert_eq(deco_ngram_builder_create(V, &b), DECO_STATUS_SUCCESS);
  const int32_t l1[] = {1, 3, 5}, l2[] = {1, 3, 6}, l3[] = {1, 4, 6};
  deco_ngram_builder_add(b, l1, 3);
  deco_ngram_builder_add(b, l2, 3);
  deco_ngram_builder_add(b, l3, 3);
  deco_ngram_table_t *t;
  cr_assert_eq(deco_ngram_builder_finish(b, DECO_NGRAM_DEFAULT_MAX_BYTES, 0, &t), DECO_STATUS_SUCCESS);
  deco_ngram_device_t *dev;
  cr_assert_eq(deco_ngram_device_create(ctx, t, &dev), DECO_STATUS_SUCCESS);

  float logits[V];
  for (int i = 0; i < V; ++i) logits[i] = -10.0f;
  logits[5] = (float)(0.5 * log(0.4) + 3.0);
  logits[6] = (float)(0.5 * log(0.3) + 3.0);
  logits[2] = (float)(0.5 * log(0.2) + 3.0);
  logits[7] = (float)(0.5 * log(0.1) + 3.0);
  int32_t cand[M];
  float cand_l[M];
  deco_topk_rows_args_t ta = DECO_TOPK_ROWS_ARGS_INIT;
  ta.n_rows = 1;
  ta.vocab = V;
  ta.k = M;
  ta.logits = logits;
  ta.ids = cand;
  ta.values = cand_l;
  cr_assert_eq(deco_topk_rows(ctx, &ta), DECO_STATUS_SUCCESS);
  const int32_t want_cand[M] = {5, 6, 2, 7};
  cr_assert_eq(deco_test_compare_i32("top-4", cand, want_cand, M), 0);

  static state_t s;
  memset(&s, 0, sizeof s);
  s.info = (deco_superpose_prompt_t){.step = 1, .max_steps = ROWS, .position = 5, .n_alive = 3};
  const double score0[K] = {-0.5, -1.0, -2.0};
  const int32_t last[K][2] = {{1, 3}, {1, 4}, {2, 5}};
  for (int d = 0; d < K; ++d) {
    s.score[d] = score0[d];
    s.token[d] = last[d][1];
    s.ctx[d][3] = last[d][0];
    s.ctx[d][4] = last[d][1];
    s.ctx_len[d] = 2;
    s.hist_token[0][d] = last[d][1];
    s.hist_parent[0][d] = 0;
  }
  for (int r = 1; r < ROWS; ++r)
    for (int d = 0; d < K; ++d) s.hist_token[r][d] = s.hist_parent[r][d] = -1;

  double probs[K][M];
  deco_ngram_lookup_args_t la = DECO_NGRAM_LOOKUP_ARGS_INIT;
  la.table = deco_ngram_device_view(dev);
  la.n_rows = K;
  la.rows_per_group = K;
  la.m = M;
  la.ctx = &s.ctx[0][0];
  la.ctx_len = s.ctx_len;
  la.cands = cand;
  const float lambda[5] = {0.01f, 0.04f, 0.15f, 0.18f, 0.12f};
  memcpy(la.lambda, lambda, sizeof lambda);
  la.probs = &probs[0][0];
  cr_assert_eq(deco_ngram_lookup(ctx, &la), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  const double want_p[K][M] = {{0.025, 0.025, 0, 0}, {0, 0.05, 0, 0}, {0, 0, 0, 0}};
  for (int d = 0; d < K; ++d)
    for (int j = 0; j < M; ++j) near(probs[d][j], want_p[d][j], 1e-8, "P_ng"); /* the lambdas are floats */

  int32_t pos = -1, kvl = -1;
  const int32_t stop = 6;
  deco_superpose_select_args_t sa = DECO_SUPERPOSE_SELECT_ARGS_INIT;
  sa.n_prompts = 1;
  sa.k = K;
  sa.m = M;
  sa.max_steps = ROWS;
  sa.temperature = 0.5f;
  sa.alpha = 0.5f;
  sa.penalty = 2.0f;
  sa.cand_ids = cand;
  sa.cand_logits = cand_l;
  sa.ngram_probs = &probs[0][0];
  sa.stop_ids = &stop;
  sa.n_stop_ids = 1;
  sa.drafts = drafts_of(&s);
  sa.positions = &pos;
  sa.kv_lens = &kvl;
  cr_assert_eq(deco_superpose_select(ctx, &sa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));

  cr_assert_eq(s.info.n_alive, 3);
  const double want_s[K] = {-2.8025850930, -4.4581453659, -4.8047189562};
  const int32_t want_tok[K] = {5, 5, 2}, want_par[K] = {0, 2, 2};
  for (int j = 0; j < K; ++j) near(s.score[j], want_s[j], 1e-5, "alive score");
  cr_assert_eq(deco_test_compare_i32("drafts' ids", s.token, want_tok, K), 0);
  cr_assert_eq(deco_test_compare_i32("history ids", s.hist_token[1], want_tok, K), 0);
  cr_assert_eq(deco_test_compare_i32("history parents", s.hist_parent[1], want_par, K), 0);
  cr_assert_eq(s.info.n_fin, 2);
  near(s.fin_score[0], -2.9464261292, 1e-5, "finished 0");
  near(s.fin_score[1], -3.0998525389, 1e-5, "finished 1");
  cr_assert(s.fin_slot[0] == 0 && s.fin_slot[1] == 1 && s.fin_len[0] == 1 && s.fin_len[1] == 1,
            "finished drafts: slots %d %d, lengths %d %d", s.fin_slot[0], s.fin_slot[1], s.fin_len[0], s.fin_len[1]);
  cr_assert(s.mix_token[0] == 5 && s.mix_token[1] == 2, "mix ids %d %d", s.mix_token[0], s.mix_token[1]);
  near(s.mix_weight[0], 0.8981571924, 1e-5, "weight of 5");
  near(s.mix_weight[1], 0.1018428076, 1e-5, "weight of 2");
  cr_assert_eq(s.mix_weight[2], 0.0f);
  /* The windows: the parent's last ids, then the new one. */
  const int32_t want_ctx[K][5] = {{0, 0, 1, 3, 5}, {0, 0, 2, 5, 5}, {0, 0, 2, 5, 2}};
  for (int j = 0; j < K; ++j) {
    cr_assert_eq(deco_test_compare_i32("context", s.ctx[j], want_ctx[j], 5), 0);
    cr_assert_eq(s.ctx_len[j], 3);
  }
  cr_assert(s.info.step == 2 && s.info.done == 0 && s.info.position == 6 && pos == 6 && kvl == 7,
            "step %d done %d position %d (%d, %d)", s.info.step, s.info.done, s.info.position, pos, kvl);

  /* alpha = 0: the n-grams are left out (no table needed), ranking by p. */
  s.info = (deco_superpose_prompt_t){.step = 1, .max_steps = ROWS, .position = 5, .n_alive = 3};
  for (int d = 0; d < K; ++d) s.score[d] = score0[d];
  sa.alpha = 0.0f;
  sa.ngram_probs = NULL;
  sa.n_stop_ids = 0;
  cr_assert_eq(deco_superpose_select(ctx, &sa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  /* s = score + ln p: (d0,5) -1.4163, (d0,6) -1.7040, (d1,5) -1.9163. */
  near(s.score[0], -0.5 + log(0.4), 1e-5, "alpha 0, first");
  near(s.score[1], -0.5 + log(0.3), 1e-5, "alpha 0, second");
  near(s.score[2], -1.0 + log(0.4), 1e-5, "alpha 0, third");
  cr_assert(s.token[0] == 5 && s.token[1] == 6 && s.token[2] == 5);

  deco_ngram_device_destroy(dev);
  deco_ngram_table_destroy(t);
  deco_ngram_builder_destroy(b);
  deco_ctx_destroy(ctx);
}

Test(superpose, embed_mixes_rows) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  enum { VOC = 5, DIM = 7, R = 4 };
  float table[VOC][DIM];
  deco_test_fill_uniform(&table[0][0], VOC * DIM, 3, 0, -1.0f, 1.0f);
  table[2][3] = -0.0f;
  const int32_t tokens[R][K] = {{2, 4, 4}, {1, 3, 0}, {0, 9, -1}, {1, 7, 2}};
  const float weights[R][K] = {{1.0f, 0.0f, 0.0f}, {0.25f, 0.5f, 0.25f}, {0.0f, 0.0f, 0.0f}, {0.5f, 0.5f, 0.0f}};
  float out[R][DIM];
  memset(out, 0xff, sizeof out);
  deco_superpose_embed_args_t a = DECO_SUPERPOSE_EMBED_ARGS_INIT;
  a.n_rows = R;
  a.k = K;
  a.dim = DIM;
  a.vocab = VOC;
  a.table = table;
  a.tokens = &tokens[0][0];
  a.weights = &weights[0][0];
  a.out = &out[0][0];
  cr_assert_eq(deco_superpose_embed(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  /* One weight of 1: the row itself, bit for bit (-0 included). */
  cr_assert_eq(memcmp(out[0], table[2], sizeof out[0]), 0);
  for (int e = 0; e < DIM; ++e) {
    float want = 0.25f * table[1][e];
    const float b = 0.5f * table[3][e], c = 0.25f * table[0][e];
    want = want + b;
    want = want + c;
    cr_assert_eq(out[1][e], want, "row 1 element %d", e);
    cr_assert_eq(out[2][e], 0.0f, "no weight: zeros (ids of weight 0 are not read)");
    cr_assert(isnan(out[3][e]), "a weighted id outside the vocabulary gives NaN");
  }
  a.k = 0;
  cr_assert_eq(deco_superpose_embed(ctx, &a), DECO_STATUS_INVALID_ARGUMENT);
  a.k = K;
  a.dtype = DECO_DTYPE_BF16;
  cr_assert_neq(deco_superpose_embed(ctx, &a), DECO_STATUS_SUCCESS, "bf16 on the CPU");
  deco_ctx_destroy(ctx);
}

static void init_state(state_t *s, int n_alive, const double *score, int step) {
  memset(s, 0, sizeof *s);
  s->info = (deco_superpose_prompt_t){.step = step, .max_steps = ROWS, .position = 3, .n_alive = n_alive};
  for (int d = 0; d < K; ++d) {
    s->score[d] = d < n_alive ? score[d] : -(double)INFINITY;
    s->token[d] = 1;
    s->ctx_len[d] = d < n_alive ? 1 : 0;
    s->ctx[d][4] = 1;
  }
  for (int r = 0; r < ROWS; ++r)
    for (int d = 0; d < K; ++d) s->hist_token[r][d] = s->hist_parent[r][d] = -1;
}

static deco_superpose_select_args_t select_args(state_t *s, const int32_t *ids, const float *l, int m) {
  deco_superpose_select_args_t sa = DECO_SUPERPOSE_SELECT_ARGS_INIT;
  sa.n_prompts = 1;
  sa.k = K;
  sa.m = m;
  sa.max_steps = ROWS;
  sa.temperature = 1.0f;
  sa.alpha = 0.0f;
  sa.cand_ids = ids;
  sa.cand_logits = l;
  sa.drafts = drafts_of(s);
  return sa;
}

Test(superpose, select_ties_edges_and_stops) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  static state_t s;
  /* Ties: every candidate equally likely (m = the whole vocabulary of 2)
   * and two drafts of equal score: lower draft first, then lower id. */
  const int32_t ids2[2] = {1, 0};
  const float eq[2] = {0.5f, 0.5f};
  const double sc[K] = {-1.0, -1.0, 0.0};
  init_state(&s, 2, sc, 1);
  deco_superpose_select_args_t sa = select_args(&s, ids2, eq, 2);
  cr_assert_eq(deco_superpose_select(ctx, &sa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  const int32_t want_tok[K] = {0, 1, 0}, want_par[K] = {0, 0, 1};
  cr_assert_eq(deco_test_compare_i32("tied ids", s.token, want_tok, K), 0);
  cr_assert_eq(deco_test_compare_i32("tied parents", s.hist_parent[1], want_par, K), 0);
  cr_assert(s.mix_token[0] == 0 && s.mix_token[1] == 1, "mix %d %d", s.mix_token[0], s.mix_token[1]);
  near(s.mix_weight[0], 2.0 / 3.0, 1e-7, "merged weight of 0");
  near(s.mix_weight[1], 1.0 / 3.0, 1e-7, "weight of 1");
  for (int j = 0; j < K; ++j) near(s.score[j], -1.0 + log(0.5), 1e-7, "tied score");

  /* The first step: slot 0 alone, k best of its m candidates; with fewer
   * candidates than drafts the rest stay empty. */
  const double first[K] = {0.0, 0.0, 0.0};
  init_state(&s, 1, first, 0);
  const int32_t one[1] = {4};
  const float l1[1] = {2.0f};
  sa = select_args(&s, one, l1, 1);
  cr_assert_eq(deco_superpose_select(ctx, &sa), DECO_STATUS_SUCCESS);
  cr_assert(s.info.n_alive == 1 && s.token[0] == 4 && s.score[0] == 0.0 && isinf(s.score[1]) && s.score[1] < 0,
            "one candidate: %d alive", s.info.n_alive);
  cr_assert(s.mix_weight[0] == 1.0f && s.mix_weight[1] == 0.0f, "a single draft has weight exactly 1");

  /* Stops: the best candidate is a stop id -> finished; the next two
   * continue; a stop ranked below k is passed over; k = 3 finished ends
   * the prompt once no alive draft can beat them. */
  const int32_t ids4[4] = {2, 5, 6, 7};
  const float l4[4] = {4.0f, 3.0f, 2.0f, 1.0f};
  const int32_t stops[2] = {2, 7};
  init_state(&s, 1, first, 0);
  sa = select_args(&s, ids4, l4, 4);
  sa.stop_ids = stops;
  sa.n_stop_ids = 2;
  cr_assert_eq(deco_superpose_select(ctx, &sa), DECO_STATUS_SUCCESS);
  cr_assert(s.info.n_fin == 1 && s.fin_len[0] == 0 && s.info.n_alive == 2, "fin %d (len %d), alive %d", s.info.n_fin,
            s.fin_len[0], s.info.n_alive);
  cr_assert(s.token[0] == 5 && s.token[1] == 6, "alive %d %d", s.token[0], s.token[1]);
  cr_assert_eq(s.info.done, 0);
  /* Non-finite logits: flagged, done, nothing selected. */
  const float bad[4] = {NAN, 3.0f, 2.0f, 1.0f};
  init_state(&s, 1, first, 0);
  sa = select_args(&s, ids4, bad, 4);
  cr_assert_eq(deco_superpose_select(ctx, &sa), DECO_STATUS_SUCCESS);
  cr_assert(s.info.nonfinite == 1 && s.info.done == 1 && s.info.step == 0);
  const float inf[4] = {INFINITY, 3.0f, 2.0f, 1.0f};
  init_state(&s, 1, first, 0);
  sa = select_args(&s, ids4, inf, 4);
  cr_assert_eq(deco_superpose_select(ctx, &sa), DECO_STATUS_SUCCESS);
  cr_assert(s.info.nonfinite == 1 && s.info.done == 1);
  /* A prompt that is done is left alone. */
  init_state(&s, 1, first, 0);
  s.info.done = 1;
  sa = select_args(&s, ids4, l4, 4);
  cr_assert_eq(deco_superpose_select(ctx, &sa), DECO_STATUS_SUCCESS);
  cr_assert(s.info.step == 0 && s.token[0] == 1);
  /* The last allowed step ends the prompt without moving its position. */
  init_state(&s, 1, first, ROWS - 1);
  sa = select_args(&s, ids4, l4, 4);
  cr_assert_eq(deco_superpose_select(ctx, &sa), DECO_STATUS_SUCCESS);
  cr_assert(s.info.done == 1 && s.info.step == ROWS && s.info.position == 3);
  /* Bad arguments. */
  sa.alpha = 0.3f;
  cr_assert_eq(deco_superpose_select(ctx, &sa), DECO_STATUS_NULL_POINTER, "alpha > 0 without n-gram probabilities");
  sa.alpha = 0.0f;
  sa.k = 17;
  cr_assert_eq(deco_superpose_select(ctx, &sa), DECO_STATUS_INVALID_ARGUMENT);
  deco_ctx_destroy(ctx);
}

/* ---- The runner on stories260K ---- */

static deco_ngram_table_t *stories_table(deco_model_t *m, int n_seqs) {
  /* The model's own sampled stories (T = 1, top-p 0.9). */
  deco_ngram_builder_t *b;
  cr_assert_eq(deco_ngram_builder_create(512, &b), DECO_STATUS_SUCCESS);
  for (int i = 0; i < n_seqs; ++i) {
    static deco_test_capture_t cap;
    cap.n = 0;
    deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
    c.steps = 200;
    c.temperature = 1.0f;
    c.top_p = 0.9f;
    c.seed = 1000 + (uint64_t)i;
    c.emit = deco_test_capture_id;
    c.user = &cap;
    deco_generate_stats_t st;
    int32_t bos = 1;
    cr_assert_eq(deco_generate(m, &bos, 1, &c, &st), DECO_STATUS_SUCCESS);
    cr_assert_eq(deco_ngram_builder_add(b, cap.ids, cap.n), DECO_STATUS_SUCCESS);
  }
  deco_ngram_table_t *t;
  cr_assert_eq(deco_ngram_builder_finish(b, DECO_NGRAM_DEFAULT_MAX_BYTES, 0, &t), DECO_STATUS_SUCCESS);
  deco_ngram_builder_destroy(b);
  return t;
}

static void greedy(deco_model_t *m, const int32_t *prompt, int n, int steps, deco_test_capture_t *cap, int *forwards) {
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = steps;
  c.temperature = 0.0f;
  c.emit = deco_test_capture_id;
  c.user = cap;
  cap->n = 0;
  deco_generate_stats_t st;
  cr_assert_eq(deco_generate(m, prompt, n, &c, &st), DECO_STATUS_SUCCESS);
  *forwards = st.forwards;
}

Test(superpose, one_draft_without_ngrams_is_greedy) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_tokenizer_t *tok;
  cr_assert_eq(deco_tokenizer_load(deco_test_data_file("models/tok512.bin"), 512, &tok), DECO_STATUS_SUCCESS);
  int32_t cat[16], once[16];
  int n_cat, n_once, n_dog;
  deco_tokenizer_encode(tok, "The cat", 1, 0, cat, 16, &n_cat); /* greedy ends at a stop id within 256 */
  deco_tokenizer_encode(tok, "Once upon a time", 1, 0, once, 16, &n_once);
  int32_t *dog = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/prompt_dog.ids"), &n_dog);
  const int32_t bos = 1;
  const int32_t *prompts[4] = {&bos, cat, once, dog};
  const int lens[4] = {1, n_cat, n_once, n_dog};
  int stopped = 0;
  for (int p = 0; p < 4; ++p) {
    static deco_test_capture_t g;
    int g_forwards;
    greedy(m, prompts[p], lens[p], 256, &g, &g_forwards);
    deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
    c.k = 1;
    c.alpha = 0.0f;
    c.steps = 256;
    deco_superpose_result_t r;
    cr_assert_eq(deco_superpose_generate(m, 1, &prompts[p], &lens[p], &c, &r), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(ctx));
    cr_assert_eq(r.n_drafts[0], 1);
    const deco_superpose_draft_t *d = &r.drafts[0];
    const int forced = r.n_forced[0] + 1;
    cr_assert_eq(forced + d->n_ids, g.n, "prompt %d: %d + %d ids, greedy %d", p, forced, d->n_ids, g.n);
    cr_assert_eq(deco_test_compare_i32("prompt", g.ids, prompts[p], (size_t)forced), 0);
    cr_assert_eq(deco_test_compare_i32("ids", d->ids, g.ids + forced, (size_t)d->n_ids), 0, "prompt %d", p);
    cr_assert_eq(r.stats.forwards, g_forwards, "prompt %d: %d forwards, greedy %d", p, r.stats.forwards, g_forwards);
    cr_assert_eq(r.stats.step_allocations, 0);
    stopped += d->finished;
    deco_superpose_result_free(&r);
  }
  cr_assert_geq(stopped, 1, "no prompt reached a stop id: the stop rule went untested");
  free(dog);
  deco_tokenizer_destroy(tok);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* The model's embedding rows, from the checkpoint (llama2.c: 7 int32, then
 * token_embedding [vocab][dim] f32). */
static float *stories_embedding(int *dim) {
  size_t n;
  unsigned char *f = deco_test_read_file(deco_test_data_file("models/stories260K.bin"), &n);
  cr_assert_not_null(f);
  int32_t hdr[7];
  memcpy(hdr, f, sizeof hdr);
  *dim = hdr[0];
  const int vocab = hdr[5] < 0 ? -hdr[5] : hdr[5];
  float *e = malloc(sizeof(float) * (size_t)vocab * (size_t)*dim);
  memcpy(e, f + 28, sizeof(float) * (size_t)vocab * (size_t)*dim);
  free(f);
  return e;
}

Test(superpose, steps_are_forwards_of_the_mixed_embeddings) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_ngram_table_t *table = stories_table(m, 40);
  int dim;
  float *E = stories_embedding(&dim);
  enum { B = 2, STEPS = 48 };
  int n_dog;
  int32_t *dog = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/prompt_dog.ids"), &n_dog);
  const int32_t bos = 1;
  const int32_t *prompts[B] = {dog, &bos};
  const int lens[B] = {n_dog, 1};
  deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
  c.ngram = table;
  c.steps = STEPS;
  c.ignore_eos = 1;
  deco_superpose_session_t *s;
  cr_assert_eq(deco_superpose_session_create(m, B, prompts, lens, &c, &s), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  cr_assert_eq(deco_superpose_session_prefill(s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_superpose_buffers_t bu;
  cr_assert_eq(deco_superpose_session_buffers(s, &bu), DECO_STATUS_SUCCESS);
  /* The twin: the same prefill, then each step's mix computed here. */
  deco_kv_cache_t *kc;
  cr_assert_eq(deco_kv_cache_create(m, 16, 2 * ((STEPS + 16) / 16 + 1), B, &kc), DECO_STATUS_SUCCESS);
  int seqs[B], forced[B];
  for (int b = 0; b < B; ++b) {
    cr_assert_eq(deco_kv_cache_admit(kc, STEPS + 1, &seqs[b]), DECO_STATUS_SUCCESS);
    forced[b] = lens[b] - 1;
    if (forced[b] > 0) {
      deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
      fa.n_seqs = 1;
      fa.seqs = &seqs[b];
      fa.n_new = &forced[b];
      fa.tokens = prompts[b];
      float *lg = malloc(sizeof(float) * 512);
      fa.logits = lg;
      cr_assert_eq(deco_forward(m, kc, &fa), DECO_STATUS_SUCCESS);
      free(lg);
    }
  }
  float *mix = malloc(sizeof(float) * B * (size_t)dim), *twin = malloc(sizeof(float) * B * 512);
  int steps_run = 0, mixed = 0;
  for (;;) {
    int done, fw;
    cr_assert_eq(deco_superpose_session_poll(s, &done, &fw), DECO_STATUS_SUCCESS);
    if (done) break;
    for (int b = 0; b < B; ++b) {
      const int32_t *ids = bu.drafts.mix_token + b * bu.k;
      const float *w = bu.drafts.mix_weight + b * bu.k;
      int first = 1, distinct = 0;
      for (int i = 0; i < bu.k; ++i) {
        if (w[i] == 0.0f) continue;
        distinct++;
        for (int e = 0; e < dim; ++e) {
          const float p = w[i] * E[(size_t)ids[i] * dim + e];
          mix[(size_t)b * dim + e] = first ? p : mix[(size_t)b * dim + e] + p;
        }
        first = 0;
      }
      mixed += distinct > 1;
    }
    /* The prompts this step runs for (a prompt that is done rewrites its
     * last slot; the twin leaves it alone). */
    int active[B], seq_on[B], n_on = 0;
    for (int b = 0; b < B; ++b) {
      active[b] = !bu.drafts.prompt[b].done;
      if (active[b]) {
        seq_on[n_on] = seqs[b];
        memmove(mix + (size_t)n_on * dim, mix + (size_t)b * dim, sizeof(float) * (size_t)dim);
        n_on++;
      }
    }
    cr_assert_eq(deco_superpose_session_step(s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    steps_run++;
    deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
    const int ones[B] = {1, 1};
    fa.n_seqs = n_on;
    fa.seqs = seq_on;
    fa.n_new = ones;
    fa.embeds = mix;
    fa.logits = twin;
    cr_assert_eq(deco_forward(m, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    for (int b = 0, i = 0; b < B; ++b) {
      if (!active[b]) continue;
      cr_assert_eq(memcmp(bu.embeds + (size_t)b * dim, mix + (size_t)i * dim, sizeof(float) * (size_t)dim), 0,
                   "step %d prompt %d: the input differs", steps_run, b);
      cr_assert_eq(memcmp(bu.logits + (size_t)b * 512, twin + (size_t)i * 512, sizeof(float) * 512), 0,
                   "step %d prompt %d: the logits differ", steps_run, b);
      i++;
    }
  }
  cr_assert_gt(mixed, 10, "the drafts never mixed two ids (%d steps)", steps_run);
  deco_superpose_result_t r;
  cr_assert_eq(deco_superpose_session_result(s, &r), DECO_STATUS_SUCCESS);
  /* Forwards after the prefill = positions generated: steps - n_forced for
   * the shorter prompt, every draft as long (ignore_eos). */
  cr_assert_eq(r.stats.forwards, STEPS - 0, "%d forwards", r.stats.forwards);
  cr_assert_eq(steps_run, r.stats.forwards);
  for (int b = 0; b < B; ++b) {
    cr_assert_eq(r.n_drafts[b], 3);
    for (int i = 0; i < 3; ++i) {
      const deco_superpose_draft_t *d = &r.drafts[b * 3 + i];
      cr_assert_eq(d->n_ids, STEPS - forced[b], "prompt %d draft %d: %d ids", b, i, d->n_ids);
      cr_assert(!d->finished);
      if (i > 0) cr_assert_geq(r.drafts[b * 3 + i - 1].logp, d->logp, "drafts are best first");
    }
  }
  /* (No allocation count here: the twin's forwards share the context.) */
  deco_superpose_result_free(&r);
  deco_superpose_session_destroy(s);
  deco_kv_cache_destroy(kc);
  free(mix);
  free(twin);
  free(E);
  free(dog);
  deco_ngram_table_destroy(table);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(superpose, a_batch_equals_single_runs) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_ngram_table_t *table = stories_table(m, 20);
  int n_dog;
  int32_t *dog = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/prompt_dog.ids"), &n_dog);
  const int32_t bos = 1, two[2] = {1, 403};
  const int32_t *prompts[3] = {dog, &bos, two};
  const int lens[3] = {n_dog, 1, 2};
  deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
  c.ngram = table;
  c.steps = 120;
  deco_superpose_result_t all;
  cr_assert_eq(deco_superpose_generate(m, 3, prompts, lens, &c, &all), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  /* The single runs read a table copied once (ngram_device). */
  deco_ngram_device_t *dev;
  cr_assert_eq(deco_ngram_device_create(ctx, table, &dev), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_ngram_device_ctx(dev), ctx, "the copy names the context it lives in");
  c.ngram_device = dev;
  for (int b = 0; b < 3; ++b) {
    deco_superpose_result_t one;
    cr_assert_eq(deco_superpose_generate(m, 1, &prompts[b], &lens[b], &c, &one), DECO_STATUS_SUCCESS);
    cr_assert_eq(one.n_drafts[0], all.n_drafts[b]);
    for (int i = 0; i < one.n_drafts[0]; ++i) {
      const deco_superpose_draft_t *x = &one.drafts[i], *y = &all.drafts[b * 3 + i];
      cr_assert(x->n_ids == y->n_ids && x->finished == y->finished && x->logp == y->logp,
                "prompt %d draft %d: %d ids logp %.9f vs %d ids logp %.9f", b, i, x->n_ids, x->logp, y->n_ids, y->logp);
      cr_assert_eq(deco_test_compare_i32("batched", y->ids, x->ids, (size_t)x->n_ids), 0);
    }
    deco_superpose_result_free(&one);
  }
  deco_superpose_result_free(&all);
  deco_ngram_device_destroy(dev);
  free(dog);
  deco_ngram_table_destroy(table);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* A batch whose prefill is longer than one prefill forward takes (16384
 * ids): 34 prompts of 500 ids prefill 16966, so the prefill runs in two
 * forwards and prompt 32 is split between them. Its drafts, and those of
 * the first and the last prompt, equal single runs bit for bit. */
Test(superpose, a_prefill_in_chunks_equals_single_runs) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  enum { B = 34, L = 500 };
  static int32_t ids[B][L];
  const int32_t *prompts[B];
  int lens[B];
  for (int b = 0; b < B; ++b) {
    for (int i = 0; i < L; ++i) ids[b][i] = i == 0 ? 1 : 3 + (b * 37 + i * 13) % 500;
    prompts[b] = ids[b];
    lens[b] = L;
  }
  deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
  c.alpha = 0.0f;
  c.steps = 508;
  deco_superpose_result_t all;
  cr_assert_eq(deco_superpose_generate(m, B, prompts, lens, &c, &all), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  const int check[3] = {0, 32, 33};
  for (int j = 0; j < 3; ++j) {
    const int b = check[j];
    deco_superpose_result_t one;
    cr_assert_eq(deco_superpose_generate(m, 1, &prompts[b], &lens[b], &c, &one), DECO_STATUS_SUCCESS);
    cr_assert_eq(one.n_drafts[0], all.n_drafts[b]);
    for (int i = 0; i < one.n_drafts[0]; ++i) {
      const deco_superpose_draft_t *x = &one.drafts[i], *y = &all.drafts[b * all.k + i];
      cr_assert(x->n_ids == y->n_ids && x->logp == y->logp, "prompt %d draft %d: %d ids logp %.9f vs %d ids logp %.9f",
                b, i, x->n_ids, x->logp, y->n_ids, y->logp);
      cr_assert_eq(deco_test_compare_i32("chunked prefill", y->ids, x->ids, (size_t)x->n_ids), 0);
    }
    deco_superpose_result_free(&one);
  }
  deco_superpose_result_free(&all);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* deco_superpose_session_run (what deco_superpose_generate calls) is the
 * session stepped until poll says done: the same drafts, ids and scores,
 * bit for bit, and the same forward count. */
Test(superpose, run_is_stepping_until_done) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_ngram_table_t *table = stories_table(m, 20);
  const int32_t bos = 1, two[2] = {1, 403};
  const int32_t *prompts[2] = {&bos, two};
  const int lens[2] = {1, 2};
  deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
  c.ngram = table;
  c.steps = 64;
  deco_superpose_result_t ran, stepped;
  deco_superpose_session_t *s;
  cr_assert_eq(deco_superpose_session_create(m, 2, prompts, lens, &c, &s), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  /* Before the prefill the session's state is not there yet: every call
   * that reads it is refused (run and poll read it, result returns it). */
  int d0 = 0;
  deco_test_refused(ctx, deco_superpose_session_run(s), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_superpose: run before prefill");
  deco_test_refused(ctx, deco_superpose_session_poll(s, &d0, NULL), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_superpose: poll before prefill");
  deco_test_refused(ctx, deco_superpose_session_result(s, &ran), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_superpose: result before prefill");
  deco_superpose_result_free(&ran);
  cr_assert_eq(deco_superpose_session_prefill(s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_superpose_session_run(s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_superpose_session_result(s, &ran), DECO_STATUS_SUCCESS);
  deco_superpose_session_destroy(s);
  cr_assert_eq(deco_superpose_session_create(m, 2, prompts, lens, &c, &s), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_superpose_session_prefill(s), DECO_STATUS_SUCCESS);
  int done = 0, forwards = 0, steps = 0;
  for (;;) {
    cr_assert_eq(deco_superpose_session_poll(s, &done, &forwards), DECO_STATUS_SUCCESS);
    if (done) break;
    cr_assert_eq(deco_superpose_session_step(s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    cr_assert_leq(++steps, c.steps, "the session never said done");
  }
  cr_assert_eq(deco_superpose_session_result(s, &stepped), DECO_STATUS_SUCCESS);
  deco_superpose_session_destroy(s);
  cr_assert_eq(ran.stats.forwards, stepped.stats.forwards);
  cr_assert_eq(stepped.stats.forwards, steps);
  for (int b = 0; b < 2; ++b) {
    cr_assert_eq(ran.n_drafts[b], stepped.n_drafts[b], "prompt %d", b);
    for (int i = 0; i < ran.n_drafts[b]; ++i) {
      const deco_superpose_draft_t *x = &ran.drafts[b * ran.k + i], *y = &stepped.drafts[b * ran.k + i];
      cr_assert(x->n_ids == y->n_ids && x->finished == y->finished && x->logp == y->logp,
                "prompt %d draft %d: %d ids logp %.9f vs %d ids logp %.9f", b, i, x->n_ids, x->logp, y->n_ids, y->logp);
      cr_assert_eq(deco_test_compare_i32("run", x->ids, y->ids, (size_t)x->n_ids), 0);
    }
  }
  cr_assert_eq(deco_superpose_session_run(NULL), DECO_STATUS_NULL_POINTER);
  deco_superpose_result_free(&ran);
  deco_superpose_result_free(&stepped);
  deco_ngram_table_destroy(table);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(superpose, config_checks) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int32_t bos = 1;
  const int32_t *p = &bos;
  const int n = 1;
  deco_superpose_result_t r;
  /* The authors' defaults. */
  const deco_superpose_config_t d = DECO_SUPERPOSE_CONFIG_INIT;
  cr_assert(d.k == 3 && d.m == 9 && d.temperature == 0.06f && d.alpha == 0.54f && d.penalty == 200.0f);
  cr_assert(d.lambda[0] == 0.01f && d.lambda[1] == 0.04f && d.lambda[2] == 0.15f && d.lambda[3] == 0.18f &&
            d.lambda[4] == 0.12f);
  struct {
    int k, m;
    float t, alpha;
    const char *what;
  } bad[] = {{17, 9, 0.06f, 0.0f, "k = 17"},     {3, 0, 0.06f, 0.0f, "m = 0"},
             {3, 9, 0.0f, 0.0f, "temperature"},   {3, 9, -1.0f, 0.0f, "temperature"},
             {3, 9, 0.06f, -0.1f, "alpha"},       {3, 9, 0.06f, 1.5f, "alpha"},
             {3, 9, 0.06f, 0.54f, "n-gram table"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
    c.k = bad[i].k;
    c.m = bad[i].m;
    c.temperature = bad[i].t;
    c.alpha = bad[i].alpha;
    c.steps = 8;
    cr_assert_neq(deco_superpose_generate(m, 1, &p, &n, &c, &r), DECO_STATUS_SUCCESS, "%s accepted", bad[i].what);
    cr_assert(strstr(deco_last_error(ctx), bad[i].what) != NULL, "%s: %s", bad[i].what, deco_last_error(ctx));
  }
  /* m larger than the vocabulary: a tiny model's would be; here 16 <= 512
   * runs, a table of another vocabulary ignored with alpha 0. */
  deco_ngram_builder_t *b;
  deco_ngram_table_t *t;
  deco_ngram_builder_create(100, &b);
  deco_ngram_builder_finish(b, DECO_NGRAM_DEFAULT_MAX_BYTES, 0, &t);
  deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
  c.ngram = t;
  c.steps = 8;
  c.alpha = 0.0f; /* the table is ignored */
  c.m = 16;
  cr_assert_eq(deco_superpose_generate(m, 1, &p, &n, &c, &r), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(r.stats.forwards, 8);
  deco_superpose_result_free(&r);
  c.steps = 513;
  cr_assert_eq(deco_superpose_generate(m, 1, &p, &n, &c, &r), DECO_STATUS_INVALID_ARGUMENT);
  c.steps = 8;
  const int32_t out_of_vocab = 512;
  const int32_t *q = &out_of_vocab;
  cr_assert_eq(deco_superpose_generate(m, 1, &q, &n, &c, &r), DECO_STATUS_INVALID_ARGUMENT);
  /* A prompt longer than steps: cut, no id generated. */
  c.steps = 3;
  const int32_t longp[5] = {1, 403, 407, 261, 378};
  const int32_t *lp = longp;
  const int five = 5;
  cr_assert_eq(deco_superpose_generate(m, 1, &lp, &five, &c, &r), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert(r.n_forced[0] == 3 && r.stats.forwards == 0 && r.n_drafts[0] == 1 && r.drafts[0].n_ids == 0);
  deco_superpose_result_free(&r);
  deco_ngram_table_destroy(t);
  deco_ngram_builder_destroy(b);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* Every check of the configuration against the model refuses with its
 * status and these words (the first failing check, in the order below). */
Test(superpose, config_messages) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int32_t bos = 1, stop = 2;
  const int n = 1;
  deco_ngram_builder_t *b;
  deco_ngram_table_t *t100, *t512;
  cr_assert_eq(deco_ngram_builder_create(100, &b), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_ngram_builder_finish(b, DECO_NGRAM_DEFAULT_MAX_BYTES, 0, &t100), DECO_STATUS_SUCCESS);
  deco_ngram_builder_destroy(b);
  cr_assert_eq(deco_ngram_builder_create(512, &b), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_ngram_builder_finish(b, DECO_NGRAM_DEFAULT_MAX_BYTES, 0, &t512), DECO_STATUS_SUCCESS);
  deco_ngram_builder_destroy(b);
  deco_ctx_t *other = deco_test_cpu_ctx();
  deco_ngram_device_t *elsewhere;
  cr_assert_eq(deco_ngram_device_create(other, t512, &elsewhere), DECO_STATUS_SUCCESS);
  deco_ngram_table_t *stories = stories_table(m, 20);
  deco_ngram_device_t *of_stories;
  cr_assert_eq(deco_ngram_device_create(ctx, stories, &of_stories), DECO_STATUS_SUCCESS);
  for (int i = 0; i < 17; ++i) {
    const int32_t *p = &bos;
    deco_superpose_result_t r;
    deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
    c.alpha = 0.0f;
    c.steps = 8;
    deco_status_t want = DECO_STATUS_INVALID_ARGUMENT;
    const char *msg = NULL;
    switch (i) {
    case 0: c.k = 0, msg = "deco_superpose: k = 0 drafts outside [1, 16]"; break;
    case 1: c.m = 17, msg = "deco_superpose: m = 17 candidates outside [1, 16] (vocabulary 512)"; break;
    case 2: c.temperature = INFINITY, msg = "deco_superpose: temperature = inf must be finite and > 0"; break;
    case 3: c.alpha = NAN, msg = "deco_superpose: alpha = nan outside [0, 1]"; break;
    case 4: c.lambda[2] = 1.5f, msg = "deco_superpose: lambda[2] (order 4) = 1.5 outside [0, 1]"; break;
    case 15:
      for (int o = 0; o < 5; ++o) c.lambda[o] = 0.25f;
      msg = "deco_superpose: the lambdas sum to 1.25, more than 1";
      break;
    case 5: c.penalty = -1.0f, msg = "deco_superpose: penalty = -1 must be finite and >= 0"; break;
    case 6: c.steps = 0, msg = "deco_superpose: steps = 0 outside [1, seq_len = 512]"; break;
    case 7: c.replay_chunk = -1, msg = "deco_superpose: c->replay_chunk = -1 outside [1, 1048576]"; break;
    case 8: c.page_size = 1 << 17, msg = "deco_superpose: c->page_size = 131072 outside [1, 65536]"; break;
    case 9:
      c.graph = 1, want = DECO_STATUS_UNSUPPORTED, msg = "deco_superpose: CUDA graphs need the CUDA backend";
      break;
    case 10:
      c.alpha = 0.5f, want = DECO_STATUS_NULL_POINTER;
      msg = "deco_superpose: alpha = 0.5 needs an n-gram table (alpha 0 turns them off)";
      break;
    case 11:
      c.alpha = 0.5f, c.ngram = t512, c.ngram_device = elsewhere;
      msg = "deco_superpose: ngram_device lives in another context than the model";
      break;
    case 12:
      c.alpha = 0.5f, c.ngram = t100, msg = "deco_superpose: the n-gram table's vocabulary is 100, the model's 512";
      break;
    case 16:
      c.alpha = 0.5f, c.ngram = t512, c.ngram_device = of_stories;
      msg = "deco_superpose: ngram_device does not match ngram (another seed, slot or follower count)";
      break;
    case 13:
      c.stop_ids = &stop, c.n_stop_ids = 0, msg = "deco_superpose: c->n_stop_ids = 0 outside [1, 64]";
      break;
    default: /* the config passes; the prompt does not */
      c.stop_ids = &stop, c.n_stop_ids = 1, p = NULL, want = DECO_STATUS_NULL_POINTER;
      msg = "deco_superpose: prompts[0] is NULL";
      break;
    }
    cr_assert_eq(deco_superpose_generate(m, 1, &p, &n, &c, &r), want, "case %d: %s", i, deco_last_error(ctx));
    cr_assert_str_eq(deco_last_error(ctx), msg, "case %d: %s", i, deco_last_error(ctx));
  }
  deco_ngram_device_destroy(elsewhere);
  deco_ngram_device_destroy(of_stories);
  deco_ngram_table_destroy(stories);
  deco_ctx_destroy(other);
  deco_ngram_table_destroy(t100);
  deco_ngram_table_destroy(t512);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* A prompt id outside the vocabulary, below or above it: the first one of
 * the first bad prompt is named, with the prompt and the position. */
Test(superpose, the_first_out_of_vocabulary_prompt_id_is_named) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int32_t good[2] = {1, 5};
  int32_t bad[4] = {1, 7, 512, -1};
  const int32_t *p[2] = {good, bad};
  const int n[2] = {2, 4};
  deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
  c.alpha = 0.0f;
  c.steps = 8;
  deco_superpose_result_t r;
  deco_test_refused(ctx, deco_superpose_generate(m, 2, p, n, &c, &r), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_superpose: prompt 1: id 512 at 2 outside the vocabulary [0, 512)");
  bad[2] = 3;
  deco_test_refused(ctx, deco_superpose_generate(m, 2, p, n, &c, &r), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_superpose: prompt 1: id -1 at 3 outside the vocabulary [0, 512)");
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
