/* tests/gpu/test_superpose_cuda.c — superposed decoding on the CUDA backend
 * against the CPU (deco/superpose.h): each op against its C reference (the
 * mixed embedding for f32/f16/bf16 tables, the n-gram lookup, the selection
 * with ties, stops, empty drafts, the penalty and k·m at the vocabulary's
 * edge); the runner's drafts on stories260K step by step against the CPU's,
 * a difference excused only where the CPU's two scores are within 1e-3/T;
 * a graphed run against the eager one (bit for bit); k = 1 without n-grams
 * against greedy decoding under the near-tie rule. Public API only.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/neartie.h"
#include "common/randtree.h"
#include "common/testutil.h"
#include "deco/deco.h"
#include "gpu_suite.h"

#define EXPECT_OK(st, ctx) cr_assert_eq((st), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx))

DECO_GPU_SUITE(superpose_cuda, 600);

static double rng_unit(uint64_t *s) { return (double)(deco_test_rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

/* ---- deco_superpose_embed ---- */

Test(superpose_cuda, embed_matches_reference) {
  const deco_dtype_t dts[3] = {DECO_DTYPE_F32, DECO_DTYPE_F16, DECO_DTYPE_BF16};
  const int dims[4] = {1, 7, 64, 300}, ks[3] = {1, 3, 16};
  uint64_t rng = 17;
  for (int di = 0; di < 3; ++di)
    for (int dm = 0; dm < 4; ++dm)
      for (int ki = 0; ki < 3; ++ki) {
        const deco_dtype_t dt = dts[di];
        const int dim = dims[dm], k = ks[ki], vocab = 37, rows = 5;
        const size_t tn = (size_t)vocab * dim, es = deco_dtype_size(dt);
        float *table = malloc(sizeof(float) * tn);
        deco_test_fill_uniform(table, tn, deco_test_rng_next(&rng), 0, -2.0f, 2.0f);
        deco_test_round_to(table, tn, dt); /* the reference reads the same values */
        void *packed = malloc(es * tn);
        deco_test_pack(packed, table, tn, dt);
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)rows * k);
        float *w = malloc(sizeof(float) * (size_t)rows * k);
        for (int r = 0; r < rows; ++r)
          for (int i = 0; i < k; ++i) {
            const int z = deco_test_rng_int(&rng, 0, 3);
            tok[r * k + i] = deco_test_rng_int(&rng, 0, vocab - 1);
            w[r * k + i] = z == 0 ? 0.0f : (float)rng_unit(&rng);
          }
        w[0] = 1.0f; /* row 0 slot 0: a whole row */
        for (int i = 1; i < k; ++i) w[i] = 0.0f;
        if (rows > 3) { /* row 3: a weighted id outside the vocabulary, row 4: an unweighted one */
          tok[3 * k] = vocab + 5;
          w[3 * k] = 0.5f;
          tok[4 * k] = -3;
          w[4 * k] = 0.0f;
        }
        float *ref = malloc(sizeof(float) * (size_t)rows * dim), *got = malloc(sizeof(float) * (size_t)rows * dim);
        deco_superpose_embed_args_t a = DECO_SUPERPOSE_EMBED_ARGS_INIT;
        a.n_rows = rows;
        a.k = k;
        a.dim = dim;
        a.vocab = vocab;
        a.dtype = DECO_DTYPE_F32;
        a.table = table;
        a.tokens = tok;
        a.weights = w;
        a.out = ref;
        EXPECT_OK(deco_superpose_embed(cpu, &a), cpu);
        deco_test_buf_t d_table = deco_test_buf_alloc(gpu, es * tn), d_tok = deco_test_buf_alloc(gpu, 4 * rows * k),
                        d_w = deco_test_buf_alloc(gpu, 4 * rows * k),
                        d_out = deco_test_buf_alloc(gpu, sizeof(float) * rows * dim);
        deco_test_buf_upload(&d_table, packed, es * tn);
        deco_test_buf_upload(&d_tok, tok, 4 * (size_t)rows * k);
        deco_test_buf_upload(&d_w, w, 4 * (size_t)rows * k);
        deco_test_buf_poison(&d_out);
        a.dtype = dt;
        a.table = d_table.ptr;
        a.tokens = d_tok.ptr;
        a.weights = d_w.ptr;
        a.out = d_out.ptr;
        EXPECT_OK(deco_superpose_embed(gpu, &a), gpu);
        deco_test_buf_download(&d_out, got, sizeof(float) * (size_t)rows * dim);
        cr_assert(deco_test_buf_guard_ok(&d_out), "guard overwritten");
        /* Products and sums are rounded one by one on both sides: equal bits
         * (NaN rows compare as NaN). */
        for (size_t i = 0; i < (size_t)rows * dim; ++i)
          cr_assert((isnan(ref[i]) && isnan(got[i])) || memcmp(&ref[i], &got[i], 4) == 0,
                    "%s dim %d k %d element %zu: %a vs %a", deco_dtype_name(dt), dim, k, i, got[i], ref[i]);
        deco_test_buf_free(&d_table);
        deco_test_buf_free(&d_tok);
        deco_test_buf_free(&d_w);
        deco_test_buf_free(&d_out);
        free(table);
        free(packed);
        free(tok);
        free(w);
        free(ref);
        free(got);
      }
}

/* ---- deco_ngram_lookup ---- */

static deco_ngram_table_t *random_table(uint64_t *rng, int vocab, int n_seq, int max_len) {
  deco_ngram_builder_t *b;
  EXPECT_OK(deco_ngram_builder_create(vocab, &b), NULL);
  int32_t ids[512];
  for (int s = 0; s < n_seq; ++s) {
    const int n = deco_test_rng_int(rng, 0, max_len);
    for (int i = 0; i < n; ++i) {
      const int a = deco_test_rng_int(rng, 0, vocab - 1), c = deco_test_rng_int(rng, 0, vocab - 1);
      ids[i] = a < c ? a : c;
    }
    EXPECT_OK(deco_ngram_builder_add(b, ids, n), NULL);
  }
  deco_ngram_table_t *t;
  EXPECT_OK(deco_ngram_builder_finish(b, DECO_NGRAM_DEFAULT_MAX_BYTES, 0, &t), NULL);
  deco_ngram_builder_destroy(b);
  return t;
}

Test(superpose_cuda, lookup_matches_reference) {
  uint64_t rng = 23;
  const int vocab = 11;
  deco_ngram_table_t *t = random_table(&rng, vocab, 60, 200);
  deco_ngram_device_t *dc, *dg;
  EXPECT_OK(deco_ngram_device_create(cpu, t, &dc), cpu);
  EXPECT_OK(deco_ngram_device_create(gpu, t, &dg), gpu);
  const int ks[3] = {1, 3, 16}, ms[3] = {1, 9, 16};
  for (int ki = 0; ki < 3; ++ki)
    for (int mi = 0; mi < 3; ++mi) {
      const int k = ks[ki], m = ms[mi], groups = 5, rows = k * groups;
      int32_t *ctx = malloc(sizeof(int32_t) * 5 * rows), *len = malloc(sizeof(int32_t) * rows),
              *cands = malloc(sizeof(int32_t) * groups * m);
      for (int r = 0; r < rows; ++r) {
        len[r] = deco_test_rng_int(&rng, -1, 7); /* clamped to 0..5 */
        for (int i = 0; i < 5; ++i) ctx[r * 5 + i] = deco_test_rng_int(&rng, 0, vocab / 2);
      }
      for (int i = 0; i < groups * m; ++i) cands[i] = deco_test_rng_int(&rng, 0, vocab - 1);
      double *ref = malloc(sizeof(double) * rows * m), *got = malloc(sizeof(double) * rows * m);
      deco_ngram_lookup_args_t a = DECO_NGRAM_LOOKUP_ARGS_INIT;
      const float lambda[5] = {0.01f, 0.04f, 0.15f, 0.18f, 0.12f};
      memcpy(a.lambda, lambda, sizeof lambda);
      a.table = deco_ngram_device_view(dc);
      a.n_rows = rows;
      a.rows_per_group = k;
      a.m = m;
      a.ctx = ctx;
      a.ctx_len = len;
      a.cands = cands;
      a.probs = ref;
      EXPECT_OK(deco_ngram_lookup(cpu, &a), cpu);
      deco_test_buf_t d_ctx = deco_test_buf_alloc(gpu, 4 * 5 * (size_t)rows), d_len = deco_test_buf_alloc(gpu, 4 * (size_t)rows),
                      d_c = deco_test_buf_alloc(gpu, 4 * (size_t)groups * m),
                      d_p = deco_test_buf_alloc(gpu, sizeof(double) * rows * m);
      deco_test_buf_upload(&d_ctx, ctx, 4 * 5 * (size_t)rows);
      deco_test_buf_upload(&d_len, len, 4 * (size_t)rows);
      deco_test_buf_upload(&d_c, cands, 4 * (size_t)groups * m);
      deco_test_buf_poison(&d_p);
      a.table = deco_ngram_device_view(dg);
      a.ctx = d_ctx.ptr;
      a.ctx_len = d_len.ptr;
      a.cands = d_c.ptr;
      a.probs = d_p.ptr;
      EXPECT_OK(deco_ngram_lookup(gpu, &a), gpu);
      deco_test_buf_download(&d_p, got, sizeof(double) * rows * m);
      cr_assert(deco_test_buf_guard_ok(&d_p));
      int hits = 0;
      for (int i = 0; i < rows * m; ++i) {
        cr_assert(got[i] == ref[i], "k %d m %d: probs[%d] %.17g vs %.17g", k, m, i, got[i], ref[i]);
        hits += ref[i] > 0;
      }
      if (rows * m >= 50) cr_assert_gt(hits, 0, "no seen context");
      deco_test_buf_free(&d_ctx);
      deco_test_buf_free(&d_len);
      deco_test_buf_free(&d_c);
      deco_test_buf_free(&d_p);
      free(ctx);
      free(len);
      free(cands);
      free(ref);
      free(got);
    }
  deco_ngram_device_destroy(dc);
  deco_ngram_device_destroy(dg);
  deco_ngram_table_destroy(t);
}

/* ---- deco_superpose_select ---- */

/* The drafts' arrays of B prompts in one block (host or device: the same
 * offsets). */
typedef struct layout {
  size_t prompt, score, fin_score, token, ctx, ctx_len, mix_token, mix_weight, hist_token, hist_parent, fin_len,
      fin_slot, total;
} layout_t;

static size_t take(size_t *at, size_t bytes) {
  const size_t o = (*at + 15) & ~(size_t)15;
  *at = o + bytes;
  return o;
}

static layout_t make_layout(int B, int k, int rows) {
  layout_t l;
  size_t at = 0;
  const size_t bk = (size_t)B * k;
  l.prompt = take(&at, sizeof(deco_superpose_prompt_t) * B);
  l.score = take(&at, 8 * bk);
  l.fin_score = take(&at, 8 * bk);
  l.token = take(&at, 4 * bk);
  l.ctx = take(&at, 4 * 5 * bk);
  l.ctx_len = take(&at, 4 * bk);
  l.mix_token = take(&at, 4 * bk);
  l.mix_weight = take(&at, 4 * bk);
  l.hist_token = take(&at, 4 * bk * rows);
  l.hist_parent = take(&at, 4 * bk * rows);
  l.fin_len = take(&at, 4 * bk);
  l.fin_slot = take(&at, 4 * bk);
  l.total = at;
  return l;
}

static deco_superpose_drafts_t drafts_at(char *base, const layout_t *l) {
  return (deco_superpose_drafts_t){.prompt = (deco_superpose_prompt_t *)(base + l->prompt),
                                   .score = (double *)(base + l->score),
                                   .token = (int32_t *)(base + l->token),
                                   .ctx = (int32_t *)(base + l->ctx),
                                   .ctx_len = (int32_t *)(base + l->ctx_len),
                                   .mix_token = (int32_t *)(base + l->mix_token),
                                   .mix_weight = (float *)(base + l->mix_weight),
                                   .hist_token = (int32_t *)(base + l->hist_token),
                                   .hist_parent = (int32_t *)(base + l->hist_parent),
                                   .fin_score = (double *)(base + l->fin_score),
                                   .fin_len = (int32_t *)(base + l->fin_len),
                                   .fin_slot = (int32_t *)(base + l->fin_slot)};
}

static int cmp_desc(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

/* Random states: alive drafts with sorted scores (ties among them), a
 * finished pool, histories, windows; candidates with tied logits; n-gram
 * probabilities with zero rows (the penalty). */
static void random_states(uint64_t *rng, const deco_superpose_drafts_t *d, int B, int k, int m, int rows, int vocab,
                          int32_t *cand, float *logits, double *probs) {
  const double ninf = -(double)INFINITY;
  for (int b = 0; b < B; ++b) {
    deco_superpose_prompt_t *p = &d->prompt[b];
    const int step = deco_test_rng_int(rng, 0, rows - 1);
    *p = (deco_superpose_prompt_t){.step = step,
                                   .max_steps = rows,
                                   .position = 10 + step,
                                   .done = deco_test_rng_int(rng, 0, 9) == 0,
                                   .n_alive = step == 0 ? 1 : deco_test_rng_int(rng, 1, k),
                                   .n_fin = deco_test_rng_int(rng, 0, k)};
    double sc[16], fs[16];
    for (int i = 0; i < k; ++i) {
      sc[i] = -4.0 * rng_unit(rng);
      fs[i] = -6.0 * rng_unit(rng);
    }
    if (k > 1) sc[1] = sc[0]; /* a tie between drafts */
    qsort(sc, (size_t)k, sizeof(double), cmp_desc);
    qsort(fs, (size_t)k, sizeof(double), cmp_desc);
    for (int i = 0; i < k; ++i) {
      const size_t r = (size_t)b * k + i;
      d->score[r] = i < p->n_alive ? sc[i] : ninf;
      d->fin_score[r] = i < p->n_fin ? fs[i] : ninf;
      d->fin_len[r] = i < p->n_fin ? deco_test_rng_int(rng, 0, step) : 0;
      d->fin_slot[r] = i < p->n_fin ? deco_test_rng_int(rng, 0, k - 1) : -1;
      d->token[r] = deco_test_rng_int(rng, 0, vocab - 1);
      d->ctx_len[r] = deco_test_rng_int(rng, 0, 5);
      for (int c = 0; c < 5; ++c) d->ctx[r * 5 + c] = deco_test_rng_int(rng, 0, vocab - 1);
      d->mix_token[r] = d->token[r];
      d->mix_weight[r] = 0.0f;
    }
    for (size_t i = 0; i < (size_t)rows * k; ++i) {
      d->hist_token[(size_t)b * rows * k + i] = deco_test_rng_int(rng, 0, vocab - 1);
      d->hist_parent[(size_t)b * rows * k + i] = deco_test_rng_int(rng, 0, k - 1);
    }
    /* m distinct candidates, logits descending with ties. */
    for (int j = 0; j < m; ++j) {
      int id, dup;
      do {
        id = deco_test_rng_int(rng, 0, vocab - 1);
        dup = 0;
        for (int i = 0; i < j; ++i) dup |= cand[b * m + i] == id;
      } while (dup);
      cand[b * m + j] = id;
      logits[b * m + j] = j == 0 ? 3.0f : deco_test_rng_int(rng, 0, 3) == 0 ? logits[b * m + j - 1] : logits[b * m + j - 1] - (float)rng_unit(rng);
    }
    for (int i = 0; i < k; ++i) {
      const int zero_row = deco_test_rng_int(rng, 0, 3) == 0;
      for (int j = 0; j < m; ++j)
        probs[((size_t)b * k + i) * m + j] = zero_row || deco_test_rng_int(rng, 0, 2) == 0 ? 0.0 : 0.5 * rng_unit(rng);
    }
  }
}

static void compare_blocks(const char *base_c, const char *base_g, const layout_t *l, int B, int k, int rows,
                           const char *what) {
  const size_t bk = (size_t)B * k;
  cr_assert_eq(memcmp(base_c + l->prompt, base_g + l->prompt, sizeof(deco_superpose_prompt_t) * B), 0,
               "%s: counters differ", what);
  const size_t ints[] = {l->token, l->ctx, l->ctx_len, l->mix_token, l->fin_len, l->fin_slot};
  const size_t counts[] = {bk, 5 * bk, bk, bk, bk, bk};
  const char *names[] = {"token", "ctx", "ctx_len", "mix_token", "fin_len", "fin_slot"};
  for (int i = 0; i < 6; ++i)
    cr_assert_eq(deco_test_compare_i32(names[i], (const int32_t *)(base_g + ints[i]),
                                       (const int32_t *)(base_c + ints[i]), counts[i]),
                 0, "%s", what);
  cr_assert_eq(deco_test_compare_i32("hist_token", (const int32_t *)(base_g + l->hist_token),
                                     (const int32_t *)(base_c + l->hist_token), bk * rows),
               0, "%s", what);
  cr_assert_eq(deco_test_compare_i32("hist_parent", (const int32_t *)(base_g + l->hist_parent),
                                     (const int32_t *)(base_c + l->hist_parent), bk * rows),
               0, "%s", what);
  const size_t dbl[2] = {l->score, l->fin_score};
  for (int i = 0; i < 2; ++i)
    for (size_t j = 0; j < bk; ++j) {
      const double c = ((const double *)(base_c + dbl[i]))[j], g = ((const double *)(base_g + dbl[i]))[j];
      /* exp and log may differ in the last bit between libm and CUDA. */
      cr_assert(c == g || (isnan(c) && isnan(g)) || fabs(c - g) <= 1e-12 * fmax(1.0, fabs(c)),
                "%s: %s[%zu] %.17g vs %.17g", what, i ? "fin_score" : "score", j, g, c);
    }
  /* NaN on both sides (the weights of +inf scores) counts as equal. */
  const float *wc = (const float *)(base_c + l->mix_weight), *wg = (const float *)(base_g + l->mix_weight);
  for (size_t j = 0; j < bk; ++j)
    cr_assert((isnan(wc[j]) && isnan(wg[j])) || fabsf(wg[j] - wc[j]) <= 1e-6f + 1e-6f * fabsf(wc[j]),
              "%s: mix_weight[%zu] %.9g vs %.9g", what, j, wg[j], wc[j]);
}

/* One selection's inputs (host memory), shared by the CPU and CUDA calls. */
typedef struct select_case {
  int B, k, m, rows;
  float alpha;
  int n_stops;
  const int32_t *stops, *cand;
  const float *lg;
  const double *probs; /* [B][k][m] */
} select_case_t;

static deco_superpose_select_args_t select_args(const select_case_t *c, deco_superpose_drafts_t d, const int32_t *cand,
                                                const float *lg, const double *probs, const int32_t *stops,
                                                int32_t *pos, int32_t *kv) {
  deco_superpose_select_args_t a = DECO_SUPERPOSE_SELECT_ARGS_INIT;
  a.n_prompts = c->B;
  a.k = c->k;
  a.m = c->m;
  a.max_steps = c->rows;
  a.temperature = 0.06f;
  a.alpha = c->alpha;
  a.penalty = 200.0f;
  a.cand_ids = cand;
  a.cand_logits = lg;
  a.ngram_probs = c->alpha > 0 ? probs : NULL;
  a.stop_ids = stops;
  a.n_stop_ids = c->n_stops;
  a.drafts = d;
  a.positions = pos;
  a.kv_lens = kv;
  return a;
}

/* The selection on the CPU (in place on the block hc) and on the GPU (the
 * same initial block, its result downloaded into hg), positions and
 * kv_lens starting from -7 on both sides; the two results compared. */
static void select_both(const select_case_t *c, const layout_t *l, char *hc, char *hg, const char *what) {
  const int B = c->B, k = c->k, m = c->m;
  int32_t pos_c[16], kv_c[16], pos_g[16], kv_g[16];
  cr_assert_leq(B, 16);
  for (int b = 0; b < B; ++b) pos_c[b] = kv_c[b] = -7;
  deco_test_buf_t d_block = deco_test_buf_alloc(gpu, l->total), d_cand = deco_test_buf_alloc(gpu, 4 * B * m),
                  d_lg = deco_test_buf_alloc(gpu, 4 * B * m), d_p = deco_test_buf_alloc(gpu, 8 * B * k * m),
                  d_stop = deco_test_buf_alloc(gpu, 8), d_pos = deco_test_buf_alloc(gpu, 4 * B),
                  d_kv = deco_test_buf_alloc(gpu, 4 * B);
  deco_test_buf_upload(&d_block, hc, l->total);
  deco_test_buf_upload(&d_cand, c->cand, 4 * (size_t)B * m);
  deco_test_buf_upload(&d_lg, c->lg, 4 * (size_t)B * m);
  deco_test_buf_upload(&d_p, c->probs, 8 * (size_t)B * k * m);
  deco_test_buf_upload(&d_stop, c->stops, 8);
  deco_test_buf_upload(&d_pos, pos_c, 4 * B);
  deco_test_buf_upload(&d_kv, kv_c, 4 * B);
  deco_superpose_select_args_t a = select_args(c, drafts_at(hc, l), c->cand, c->lg, c->probs, c->stops, pos_c, kv_c);
  EXPECT_OK(deco_superpose_select(cpu, &a), cpu);
  a = select_args(c, drafts_at(d_block.ptr, l), d_cand.ptr, d_lg.ptr, d_p.ptr, d_stop.ptr, d_pos.ptr, d_kv.ptr);
  EXPECT_OK(deco_superpose_select(gpu, &a), gpu);
  deco_test_buf_download(&d_block, hg, l->total);
  deco_test_buf_download(&d_pos, pos_g, 4 * B);
  deco_test_buf_download(&d_kv, kv_g, 4 * B);
  compare_blocks(hc, hg, l, B, k, c->rows, what);
  cr_assert_eq(deco_test_compare_i32("positions", pos_g, pos_c, B), 0, "%s", what);
  cr_assert_eq(deco_test_compare_i32("kv_lens", kv_g, kv_c, B), 0, "%s", what);
  cr_assert(deco_test_buf_guard_ok(&d_block) && deco_test_buf_guard_ok(&d_pos) && deco_test_buf_guard_ok(&d_kv));
  deco_test_buf_free(&d_block);
  deco_test_buf_free(&d_cand);
  deco_test_buf_free(&d_lg);
  deco_test_buf_free(&d_p);
  deco_test_buf_free(&d_stop);
  deco_test_buf_free(&d_pos);
  deco_test_buf_free(&d_kv);
}

Test(superpose_cuda, select_matches_reference) {
  uint64_t rng = 31;
  const int ks[4] = {1, 2, 3, 16}, ms[4] = {1, 4, 9, 16};
  int cases = 0;
  for (int ki = 0; ki < 4; ++ki)
    for (int mi = 0; mi < 4; ++mi)
      for (int variant = 0; variant < 4; ++variant) {
        const int k = ks[ki], m = ms[mi], B = 7, rows = 6;
        const int vocab = variant == 3 ? m : 40; /* k·m at the vocabulary's edge: every id a candidate */
        const layout_t l = make_layout(B, k, rows);
        char *hc = calloc(1, l.total), *hg = calloc(1, l.total);
        deco_superpose_drafts_t dc = drafts_at(hc, &l);
        int32_t *cand = malloc(sizeof(int32_t) * B * m);
        float *lg = malloc(sizeof(float) * B * m);
        double *probs = malloc(sizeof(double) * B * k * m);
        random_states(&rng, &dc, B, k, m, rows, vocab, cand, lg, probs);
        const int32_t stops[2] = {cand[0], vocab - 1};
        const select_case_t c = {.B = B, .k = k, .m = m, .rows = rows, .alpha = variant == 0 ? 0.0f : 0.54f,
                                 .n_stops = variant == 2 ? 0 : 2, .stops = stops, .cand = cand, .lg = lg,
                                 .probs = probs};
        char what[96];
        snprintf(what, sizeof what, "k %d m %d variant %d", k, m, variant);
        select_both(&c, &l, hc, hg, what);
        free(hc);
        free(hg);
        free(cand);
        free(lg);
        free(probs);
        cases++;
      }
  cr_assert_eq(cases, 64);
}

/* Non-finite inputs. The contract: top-m logits that are not finite (a
 * NaN, +inf or -inf anywhere in the row, or a whole row of -inf or NaN)
 * mark the prompt nonfinite and done, and nothing else of it changes.
 * Draft scores and n-gram probabilities outside their domain (NaN, +inf,
 * -inf in an alive slot) are not covered by the contract: there the CUDA
 * op must do what its C twin does (both share superpose_common.h). One
 * batch per (k, m, alpha):
 *   prompt 0: a NaN among the logits (the whole row when m = 1)
 *   prompt 1: +inf as the top logit
 *   prompt 2: -inf as the last logit
 *   prompt 3: every logit -inf     prompt 4: every logit NaN
 *   prompt 5: finite logits; every slot alive, a NaN score, -inf scores
 *   prompt 6: finite logits; +inf scores (their weights come out NaN)
 *   prompt 7: finite logits; n-gram probabilities NaN, +inf, -inf. */
Test(superpose_cuda, select_nonfinite_matches_reference) {
  const double nan_d = (double)NAN, inf_d = (double)INFINITY;
  uint64_t rng = 47;
  const int ks[4] = {1, 2, 3, 16}, ms[3] = {1, 4, 16};
  int cases = 0;
  for (int ki = 0; ki < 4; ++ki)
    for (int mi = 0; mi < 3; ++mi)
      for (int ai = 0; ai < 2; ++ai) {
        const int k = ks[ki], m = ms[mi], B = 8, rows = 6, vocab = 40;
        const layout_t l = make_layout(B, k, rows);
        char *hc = calloc(1, l.total), *hg = calloc(1, l.total), *hx = calloc(1, l.total);
        deco_superpose_drafts_t dc = drafts_at(hc, &l);
        int32_t *cand = malloc(sizeof(int32_t) * B * m);
        float *lg = malloc(sizeof(float) * B * m);
        double *probs = malloc(sizeof(double) * B * k * m);
        random_states(&rng, &dc, B, k, m, rows, vocab, cand, lg, probs);
        for (int b = 0; b < B; ++b) dc.prompt[b].done = 0;
        float *row = lg;
        row[0 * m + m / 2] = NAN;
        row[1 * m] = INFINITY;
        row[2 * m + m - 1] = -INFINITY;
        for (int j = 0; j < m; ++j) {
          row[3 * m + j] = -INFINITY;
          row[4 * m + j] = NAN;
        }
        double *s5 = dc.score + 5 * k, *s6 = dc.score + 6 * k;
        dc.prompt[5].n_alive = k; /* slots past the old n_alive: alive with score -inf */
        s5[k > 1 ? 1 : 0] = nan_d;
        if (k > 2) s5[k - 1] = -inf_d;
        s6[0] = inf_d;
        if (k > 2) s6[2] = inf_d;
        for (int d = 0; d < k; ++d) {
          double *p7 = probs + ((size_t)7 * k + d) * m;
          p7[0] = nan_d;
          if (m > 1) p7[1] = inf_d;
          if (m > 2) p7[m - 1] = -inf_d;
        }
        const int32_t stops[2] = {cand[5 * m], vocab - 1};
        const select_case_t c = {.B = B, .k = k, .m = m, .rows = rows, .alpha = ai ? 0.54f : 0.0f,
                                 .n_stops = 2, .stops = stops, .cand = cand, .lg = lg, .probs = probs};
        /* The contract on the CPU: the same block with prompts 0..4 marked
         * nonfinite and done beforehand (a done prompt is skipped) must
         * come out bit for bit as the selection leaves them. */
        memcpy(hx, hc, l.total);
        deco_superpose_drafts_t dx = drafts_at(hx, &l);
        for (int b = 0; b < 5; ++b) dx.prompt[b].done = dx.prompt[b].nonfinite = 1;
        int32_t pos_x[8], kv_x[8];
        for (int b = 0; b < B; ++b) pos_x[b] = kv_x[b] = -7;
        deco_superpose_select_args_t ax = select_args(&c, dx, cand, lg, probs, stops, pos_x, kv_x);
        EXPECT_OK(deco_superpose_select(cpu, &ax), cpu);
        char what[96];
        snprintf(what, sizeof what, "non-finite k %d m %d alpha %.2f", k, m, c.alpha);
        select_both(&c, &l, hc, hg, what);
        cr_assert_eq(memcmp(hc, hx, l.total), 0, "%s: the CPU's nonfinite prompts changed more than done/nonfinite",
                     what);
        for (int b = 0; b < B; ++b)
          cr_assert_eq(dc.prompt[b].nonfinite, b < 5, "%s: prompt %d nonfinite = %d", what, b, dc.prompt[b].nonfinite);
        free(hc);
        free(hg);
        free(hx);
        free(cand);
        free(lg);
        free(probs);
        cases++;
      }
  cr_assert_eq(cases, 24);
}

/* ---- The runner on stories260K ---- */

static deco_ngram_table_t *stories_table(deco_model_t *m) {
  deco_ngram_builder_t *b;
  EXPECT_OK(deco_ngram_builder_create(512, &b), NULL);
  for (int i = 0; i < 40; ++i) {
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
    const int32_t bos = 1;
    EXPECT_OK(deco_generate(m, &bos, 1, &c, &st), deco_model_ctx(m));
    EXPECT_OK(deco_ngram_builder_add(b, cap.ids, cap.n), NULL);
  }
  deco_ngram_table_t *t;
  EXPECT_OK(deco_ngram_builder_finish(b, DECO_NGRAM_DEFAULT_MAX_BYTES, 0, &t), NULL);
  deco_ngram_builder_destroy(b);
  return t;
}

/* The pair scores of one prompt's step as the CPU ranks them (the
 * referee): score + (1 - a) ln p + a ln q, the penalty for drafts the
 * n-grams do not know. */
static double pair_score(const deco_superpose_buffers_t *bu, const char *img, const layout_t *l, int b, int d, int j,
                         const float *lg, const double *pr, float tau, float alpha) {
  const int m = bu->m, k = bu->k;
  double z = 0.0;
  for (int i = 0; i < m; ++i) z += exp(((double)lg[b * m + i] - (double)lg[b * m]) / tau);
  const double lp = ((double)lg[b * m + j] - (double)lg[b * m]) / tau - log(z);
  const double s0 = ((const double *)(img + l->score))[b * k + d];
  if (alpha == 0.0f) return s0 + lp;
  int any = 0;
  for (int i = 0; i < m; ++i) any |= pr[((size_t)b * k + d) * m + i] > 0;
  const double q = pr[((size_t)b * k + d) * m + j];
  if (!any) return s0 + (1 - alpha) * lp - 200.0;
  return q > 0 ? s0 + (1 - alpha) * lp + alpha * log(q) : -INFINITY;
}

Test(superpose_cuda, drafts_match_the_cpu) {
  deco_model_t *mc = deco_test_load_stories(cpu, DECO_DTYPE_F32), *mg = deco_test_load_stories(gpu, DECO_DTYPE_F32);
  deco_ngram_table_t *t = stories_table(mc);
  int n_dog;
  int32_t *dog = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/prompt_dog.ids"), &n_dog);
  const int32_t bos = 1;
  const int32_t *prompts[2] = {dog, &bos};
  const int lens[2] = {n_dog, 1};
  const float alphas[2] = {0.0f, 0.54f};
  int excused = 0, compared = 0;
  for (int ai = 0; ai < 2; ++ai) {
    deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
    c.ngram = t;
    c.alpha = alphas[ai];
    c.steps = 160;
    deco_superpose_session_t *sc, *sg;
    EXPECT_OK(deco_superpose_session_create(mc, 2, prompts, lens, &c, &sc), cpu);
    EXPECT_OK(deco_superpose_session_create(mg, 2, prompts, lens, &c, &sg), gpu);
    EXPECT_OK(deco_superpose_session_prefill(sc), cpu);
    EXPECT_OK(deco_superpose_session_prefill(sg), gpu);
    deco_superpose_buffers_t bc, bg;
    deco_superpose_session_buffers(sc, &bc);
    deco_superpose_session_buffers(sg, &bg);
    const int B = 2, k = bc.k, m = bc.m, rows = bc.max_steps;
    const layout_t l = make_layout(B, k, rows);
    char *before = malloc(l.total), *ic = malloc(l.total), *ig = malloc(l.total);
    float *lc = malloc(sizeof(float) * B * m), *lgp = malloc(sizeof(float) * B * m);
    double *pc = malloc(sizeof(double) * B * k * m);
    int diverged[2] = {0, 0};
    for (int step = 0; step < rows; ++step) {
      int dc, dg;
      EXPECT_OK(deco_superpose_session_poll(sc, &dc, NULL), cpu);
      EXPECT_OK(deco_superpose_session_poll(sg, &dg, NULL), gpu);
      if (dc && dg) break;
      /* The CPU's state before the step (host memory: copy by layout). */
      const deco_superpose_drafts_t hb = drafts_at(before, &l);
      memcpy(hb.prompt, bc.drafts.prompt, sizeof(deco_superpose_prompt_t) * B);
      memcpy(hb.score, bc.drafts.score, 8 * (size_t)B * k);
      EXPECT_OK(deco_superpose_session_step(sc), cpu);
      EXPECT_OK(deco_superpose_session_step(sg), gpu);
      /* Both states, field by field. */
      const deco_superpose_drafts_t hc = drafts_at(ic, &l), hg = drafts_at(ig, &l);
      const struct {
        void *dst_c, *dst_g;
        const void *src_c, *src_g;
        size_t bytes;
      } f[] = {{hc.prompt, hg.prompt, bc.drafts.prompt, bg.drafts.prompt, sizeof(deco_superpose_prompt_t) * B},
               {hc.score, hg.score, bc.drafts.score, bg.drafts.score, 8 * (size_t)B * k},
               {hc.token, hg.token, bc.drafts.token, bg.drafts.token, 4 * (size_t)B * k},
               {hc.hist_token, hg.hist_token, bc.drafts.hist_token, bg.drafts.hist_token, 4 * (size_t)B * k * rows},
               {hc.hist_parent, hg.hist_parent, bc.drafts.hist_parent, bg.drafts.hist_parent,
                4 * (size_t)B * k * rows},
               {hc.fin_slot, hg.fin_slot, bc.drafts.fin_slot, bg.drafts.fin_slot, 4 * (size_t)B * k}};
      for (size_t i = 0; i < sizeof f / sizeof f[0]; ++i) {
        memcpy(f[i].dst_c, f[i].src_c, f[i].bytes);
        EXPECT_OK(deco_memcpy(gpu, f[i].dst_g, f[i].src_g, f[i].bytes, DECO_COPY_CTX_TO_HOST), gpu);
      }
      memcpy(lc, bc.cand_logits, sizeof(float) * B * m);
      EXPECT_OK(deco_memcpy(gpu, lgp, bg.cand_logits, sizeof(float) * B * m, DECO_COPY_CTX_TO_HOST), gpu);
      if (bc.ngram_probs) memcpy(pc, bc.ngram_probs, sizeof(double) * B * k * m);
      for (int b = 0; b < B; ++b) {
        if (diverged[b] || hb.prompt[b].done) continue;
        /* The step's top-m logits: f32 forwards on both sides. */
        for (int j = 0; j < m; ++j)
          cr_assert(fabsf(lc[b * m + j] - lgp[b * m + j]) <= 1e-4f + 1e-4f * fabsf(lc[b * m + j]),
                    "alpha %.2f prompt %d step %d: top-%d logit %g vs %g", c.alpha, b, step, j, lgp[b * m + j],
                    lc[b * m + j]);
        const int32_t *tc = hc.hist_token + ((size_t)b * rows + step) * k, *tg = hg.hist_token + ((size_t)b * rows + step) * k;
        const int32_t *qc = hc.hist_parent + ((size_t)b * rows + step) * k,
                      *qg = hg.hist_parent + ((size_t)b * rows + step) * k;
        const int same = memcmp(tc, tg, 4 * (size_t)k) == 0 && memcmp(qc, qg, 4 * (size_t)k) == 0 &&
                         hc.prompt[b].n_alive == hg.prompt[b].n_alive && hc.prompt[b].n_fin == hg.prompt[b].n_fin;
        if (same) {
          for (int j = 0; j < k; ++j) {
            const double x = hc.score[b * k + j], y = hg.score[b * k + j];
            cr_assert(x == y || fabs(x - y) <= (step + 1) * 1e-3 / c.temperature,
                      "prompt %d step %d: score %.9f vs %.9f", b, step, y, x);
          }
          compared++;
          continue;
        }
        /* A different choice: every draft the GPU kept that the CPU did not
         * must score, by the CPU's own numbers, within 1e-3/T of one the CPU
         * kept instead. */
        int32_t ids[16];
        memcpy(ids, bc.cand_ids + b * m, 4 * (size_t)m);
        int unmatched = 0;
        for (int j = 0; j < k; ++j) {
          if (qg[j] < 0) continue;
          int also = 0;
          for (int i = 0; i < k; ++i) also |= qc[i] == qg[j] && tc[i] == tg[j];
          if (also) continue;
          unmatched++;
          /* The GPU's pair (draft qg[j], id tg[j]): its candidate index in the CPU's list. */
          int jj = -1;
          for (int i = 0; i < m; ++i)
            if (ids[i] == tg[j]) jj = i;
          cr_assert_geq(jj, 0, "prompt %d step %d: the GPU kept id %d, not among the CPU's candidates", b, step, tg[j]);
          const double sg_cpu = pair_score(&bc, before, &l, b, qg[j], jj, lc, pc, c.temperature, c.alpha);
          double best_gap = INFINITY;
          for (int i = 0; i < k; ++i) {
            if (qc[i] < 0) continue;
            int ji = -1;
            for (int u = 0; u < m; ++u)
              if (ids[u] == tc[i]) ji = u;
            const double sc_cpu = pair_score(&bc, before, &l, b, qc[i], ji, lc, pc, c.temperature, c.alpha);
            if (fabs(sc_cpu - sg_cpu) < best_gap) best_gap = fabs(sc_cpu - sg_cpu);
          }
          cr_assert(best_gap <= 1e-3 / c.temperature,
                    "alpha %.2f prompt %d step %d: the GPU kept (draft %d, id %d), %.6f from every CPU choice", c.alpha,
                    b, step, qg[j], tg[j], best_gap);
        }
        if (!unmatched) {
          /* The same alive drafts, other finished ones: a stop id crossed
           * rank k. Two of the CPU's first 2k + 1 scores must be that close. */
          double all[256];
          int n_all = 0;
          for (int d = 0; d < hb.prompt[b].n_alive; ++d)
            for (int j = 0; j < m; ++j) {
              const double x = pair_score(&bc, before, &l, b, d, j, lc, pc, c.temperature, c.alpha);
              if (x > -INFINITY) all[n_all++] = x;
            }
          qsort(all, (size_t)n_all, sizeof(double), cmp_desc);
          int close = 0;
          for (int i = 0; i + 1 < n_all && i < 2 * k; ++i) close |= all[i] - all[i + 1] <= 1e-3 / c.temperature;
          cr_assert(close, "alpha %.2f prompt %d step %d: the finished pools differ without a near tie", c.alpha, b,
                    step);
        }
        fprintf(stderr, "excused: alpha %.2f prompt %d diverges at step %d (near tie)\n", c.alpha, b, step);
        excused++;
        diverged[b] = 1;
      }
    }
    /* Where nothing diverged, the final drafts are the same. */
    deco_superpose_result_t rc, rg;
    EXPECT_OK(deco_superpose_session_result(sc, &rc), cpu);
    EXPECT_OK(deco_superpose_session_result(sg, &rg), gpu);
    cr_assert_eq(rg.stats.step_allocations, 0);
    for (int b = 0; b < B; ++b) {
      if (diverged[b]) continue;
      cr_assert_eq(rc.n_drafts[b], rg.n_drafts[b]);
      for (int i = 0; i < rc.n_drafts[b]; ++i) {
        const deco_superpose_draft_t *x = &rc.drafts[b * k + i], *y = &rg.drafts[b * k + i];
        cr_assert(x->n_ids == y->n_ids && x->finished == y->finished, "prompt %d draft %d", b, i);
        cr_assert_eq(deco_test_compare_i32("draft", y->ids, x->ids, (size_t)x->n_ids), 0);
      }
    }
    deco_superpose_result_free(&rc);
    deco_superpose_result_free(&rg);
    deco_superpose_session_destroy(sc);
    deco_superpose_session_destroy(sg);
    free(before);
    free(ic);
    free(ig);
    free(lc);
    free(lgp);
    free(pc);
  }
  fprintf(stderr, "superposed CPU vs CUDA: %d prompt-steps equal, %d excused divergences\n", compared, excused);
  cr_assert_gt(compared, 50, "too few steps compared (%d)", compared);
  free(dog);
  deco_ngram_table_destroy(t);
  deco_model_destroy(mc);
  deco_model_destroy(mg);
}

static void run_gpu(deco_model_t *m, const deco_superpose_config_t *c, const int32_t *const *prompts, const int *lens,
                    int B, deco_superpose_result_t *r) {
  EXPECT_OK(deco_superpose_generate(m, B, prompts, lens, c, r), gpu);
  cr_assert_eq(r->stats.step_allocations, 0, "%d allocations after the plan", r->stats.step_allocations);
}

Test(superpose_cuda, graphed_equals_eager) {
  const deco_dtype_t dts[2] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
  deco_model_t *mc = deco_test_load_stories(cpu, DECO_DTYPE_F32);
  deco_ngram_table_t *t = stories_table(mc);
  int n_dog;
  int32_t *dog = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/prompt_dog.ids"), &n_dog);
  const int32_t bos = 1;
  const int32_t *prompts[3] = {dog, &bos, dog};
  const int lens[3] = {n_dog, 1, 3};
  for (int di = 0; di < 2; ++di) {
    deco_model_t *m = deco_test_load_stories(gpu, dts[di]);
    deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
    c.ngram = t;
    c.steps = 200;
    deco_superpose_result_t eager, graphed;
    run_gpu(m, &c, prompts, lens, 3, &eager);
    c.graph = 1;
    c.replay_chunk = 5;
    run_gpu(m, &c, prompts, lens, 3, &graphed);
    cr_assert_gt(graphed.stats.capture_seconds, 0.0, "no graph was captured");
    cr_assert_eq(eager.stats.forwards, graphed.stats.forwards);
    for (int b = 0; b < 3; ++b) {
      cr_assert_eq(eager.n_drafts[b], graphed.n_drafts[b]);
      for (int i = 0; i < eager.n_drafts[b]; ++i) {
        const deco_superpose_draft_t *x = &eager.drafts[b * 3 + i], *y = &graphed.drafts[b * 3 + i];
        cr_assert(x->n_ids == y->n_ids && x->finished == y->finished && memcmp(&x->logp, &y->logp, 8) == 0,
                  "%s prompt %d draft %d", deco_dtype_name(dts[di]), b, i);
        cr_assert_eq(deco_test_compare_i32("graphed", y->ids, x->ids, (size_t)x->n_ids), 0);
      }
    }
    deco_superpose_result_free(&eager);
    deco_superpose_result_free(&graphed);
    deco_model_destroy(m);
  }
  free(dog);
  deco_ngram_table_destroy(t);
  deco_model_destroy(mc);
}

/* k = 1 without n-grams is greedy decoding: on the GPU the ids may differ
 * only at a near tie of the CPU's top two logits on the shared prefix,
 * where the GPU picked the runner-up. */
Test(superpose_cuda, one_draft_is_greedy) {
  const deco_dtype_t dts[2] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
  deco_model_t *mc = deco_test_load_stories(cpu, DECO_DTYPE_F32);
  int n_dog;
  int32_t *dog = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/prompt_dog.ids"), &n_dog);
  for (int di = 0; di < 2; ++di) {
    deco_model_t *m = deco_test_load_stories(gpu, dts[di]);
    static deco_test_capture_t g;
    g.n = 0;
    deco_generate_config_t gc = DECO_GENERATE_CONFIG_INIT;
    gc.steps = 256;
    gc.temperature = 0.0f;
    gc.emit = deco_test_capture_id;
    gc.user = &g;
    deco_generate_stats_t gs;
    EXPECT_OK(deco_generate(m, dog, n_dog, &gc, &gs), gpu);
    deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
    c.k = 1;
    c.alpha = 0.0f;
    c.steps = 256;
    c.graph = 1;
    deco_superpose_result_t r;
    const int32_t *p = dog;
    run_gpu(m, &c, &p, &n_dog, 1, &r);
    const int forced = r.n_forced[0] + 1;
    const int32_t *ids = r.drafts[0].ids;
    const int n = r.drafts[0].n_ids < g.n - forced ? r.drafts[0].n_ids : g.n - forced;
    int first = -1;
    for (int i = 0; i < n && first < 0; ++i)
      if (ids[i] != g.ids[forced + i]) first = i;
    if (first < 0) {
      cr_assert_eq(forced + r.drafts[0].n_ids, g.n, "%s: same ids, different lengths", deco_dtype_name(dts[di]));
    } else {
      /* The CPU referee on the shared prefix. */
      const int len = forced + first;
      deco_kv_cache_t *kc;
      EXPECT_OK(deco_kv_cache_create(mc, 16, (len + 15) / 16 + 1, 1, &kc), cpu);
      int seq;
      EXPECT_OK(deco_kv_cache_admit(kc, len + 1, &seq), cpu);
      float logits[512];
      deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
      fa.n_seqs = 1;
      fa.seqs = &seq;
      fa.n_new = &len;
      fa.tokens = g.ids;
      fa.logits = logits;
      EXPECT_OK(deco_forward(mc, kc, &fa), cpu);
      const int cpu_pick = deco_argmax(logits, 512);
      cr_assert(cpu_pick == ids[first] || cpu_pick == g.ids[len],
                "%s: at position %d neither run picked the CPU's argmax %d (superposed %d, greedy %d)",
                deco_dtype_name(dts[di]), len, cpu_pick, ids[first], g.ids[len]);
      const int other = cpu_pick == ids[first] ? g.ids[len] : ids[first];
      cr_assert(deco_test_excused(logits, other, 512, dts[di]),
                "%s: superposed %d vs greedy %d at position %d, not a near tie of the CPU's logits",
                deco_dtype_name(dts[di]), ids[first], g.ids[len], len);
      fprintf(stderr, "%s: excused near tie at position %d\n", deco_dtype_name(dts[di]), len);
      deco_kv_cache_destroy(kc);
    }
    deco_superpose_result_free(&r);
    deco_model_destroy(m);
  }
  free(dog);
  deco_model_destroy(mc);
}
