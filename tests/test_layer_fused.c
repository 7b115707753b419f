/* tests/test_layer_fused.c — fused layer groups (EasySpec on one device,
 * issue 19) on stories260K on the CPU: a model view's group of N layers
 * runs one weightless RMSNorm, one batched Q/K/V GEMM over the stacked
 * norm-folded weights, one RoPE, one KV append and one attention over a
 * virtual batch of N sequences, and one batched O GEMM. Its logits and the
 * K/V it writes are checked against the group formula composed here from
 * the public ops on the checkpoint's own tensors (each layer's own norm
 * weight, its own wq, wk, wv, its own cache), for N = 2, 3 and 4, causal
 * prefill then one tree step; the fused weights' bytes are what the layout
 * says; and the unfused grouped forward (the same schedule run by a model
 * without fused weights) differs from the fused one in the last bits only.
 *
 * Tolerance (DECO_TOL_FUSED_GROUP_F32): the fused path computes
 * fl(W·diag γ)·r(h) where the formula computes W·fl(γ ∘ r(h)): one f32
 * rounding (relative 2⁻²⁴) moves from each input to each weight, and the
 * batch-invariant matmul sums both in one order, so every Q/K/V element
 * differs by at most about 2·2⁻²⁴·Σ|w γ r| before RoPE; the same per-op
 * perturbation size as a change of summation order, carried through the
 * remaining attention, FFN and classifier of a 5-layer model, which is what
 * DECO_TOL_F32_REDUCTION bounds for the CPU/CUDA forwards (their emulation
 * moves stories260K's logits by <= 2.2e-5).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/model/model_access.h"
#include "common/testutil.h"
#include "common/tolerances.h"

/* stories260K's architecture. */
enum {
  DIM = DECO_STORIES_DIM, HID = DECO_STORIES_HIDDEN, NL = DECO_STORIES_LAYERS, NH = DECO_STORIES_HEADS,
  NKV = DECO_STORIES_KV_HEADS, HD = DECO_STORIES_HEAD_DIM, QD = NH * HD, KVD = NKV * HD, V = DECO_STORIES_VOCAB, NT = 12
};
enum { PAGE = 16, MAXT = 16 };

/* The composition's state: one sequence, every layer's own one-page K/V. */
typedef struct comp {
  deco_ctx_t *ctx;
  deco_test_stories_weights_t w;
  float k[NL][PAGE * KVD], v[NL][PAGE * KVD];
  int len;
} comp_t;

#define OK(call) cr_assert_eq((call), DECO_STATUS_SUCCESS, "%s", deco_last_error(c->ctx))

static void mm(comp_t *c, const float *a, const float *w, float *out, int m, int n, int k) {
  deco_matmul_args_t a_ = DECO_MATMUL_ARGS_INIT;
  a_.m = m, a_.n = n, a_.k = k, a_.a = a, a_.w = w, a_.out = out;
  OK(deco_matmul(c->ctx, &a_));
}

/* A_l = Wo_l · Attn_l(RMSNorm_l(h1)) for the n new tokens (causal, or a
 * tree over parents), their K/V appended to layer l's cache. */
static void comp_attention(comp_t *c, int l, const float *h1, int n, const int32_t *parents, float *out) {
  float x[MAXT * DIM], xb[MAXT * DIM], q[MAXT * QD], k[MAXT * KVD], v[MAXT * KVD], att[MAXT * QD];
  memcpy(x, h1, sizeof(float) * n * DIM);
  deco_rmsnorm_args_t nr = DECO_RMSNORM_ARGS_INIT;
  nr.n_rows = n, nr.dim = DIM, nr.residual = x, nr.weight = c->w.rms_att + l * DIM, nr.out = xb;
  OK(deco_rmsnorm(c->ctx, &nr));
  mm(c, xb, c->w.wq + (size_t)l * QD * DIM, q, n, QD, DIM);
  mm(c, xb, c->w.wk + (size_t)l * KVD * DIM, k, n, KVD, DIM);
  mm(c, xb, c->w.wv + (size_t)l * KVD * DIM, v, n, KVD, DIM);
  int32_t pos[MAXT], indptr[2] = {0, n}, kv_len = c->len + n, prefix = c->len, table[1] = {0};
  if (parents) {
    cr_assert_eq(deco_tree_positions(parents, n, c->len, pos), DECO_STATUS_SUCCESS);
  } else {
    for (int t = 0; t < n; ++t) pos[t] = c->len + t;
  }
  deco_rope_args_t r = DECO_ROPE_ARGS_INIT;
  r.n_tokens = n, r.n_heads = NH, r.n_kv_heads = NKV, r.head_dim = HD, r.positions = pos, r.q = q, r.k = k;
  OK(deco_rope(c->ctx, &r));
  deco_paged_kv_t cache = DECO_PAGED_KV_INIT;
  cache.n_kv_heads = NKV, cache.head_dim = HD, cache.page_size = PAGE, cache.n_pages = 1;
  cache.k_pages = c->k[l], cache.v_pages = c->v[l], cache.block_table = table, cache.max_pages_per_seq = 1;
  deco_kv_append_args_t ap = DECO_KV_APPEND_ARGS_INIT;
  ap.cache = cache, ap.batch = (deco_ragged_batch_t){.n_seqs = 1, .n_tokens = n, .q_indptr = indptr, .kv_lens = &kv_len};
  ap.k = k, ap.v = v;
  OK(deco_kv_append(c->ctx, &ap));
  if (parents) {
    deco_tree_attention_args_t ta = DECO_TREE_ATTENTION_ARGS_INIT;
    ta.cache = cache;
    ta.tree = (deco_tree_batch_t){.n_trees = 1, .n_nodes = n, .tree_indptr = indptr, .parent = parents};
    ta.prefix_lens = &prefix, ta.n_heads = NH, ta.scale = 1.0f / sqrtf((float)HD), ta.q = q, ta.out = att;
    OK(deco_tree_attention(c->ctx, &ta));
  } else {
    deco_attention_args_t aa = DECO_ATTENTION_ARGS_INIT;
    aa.cache = cache, aa.batch = ap.batch, aa.n_heads = NH, aa.scale = 1.0f / sqrtf((float)HD), aa.q = q;
    aa.out = att;
    OK(deco_attention(c->ctx, &aa));
  }
  mm(c, att, c->w.wo + (size_t)l * DIM * QD, out, n, DIM, QD);
}

/* x += MLP_l(RMSNorm'_l(x)). */
static void comp_ffn(comp_t *c, int l, float *x, int n) {
  float xb[MAXT * DIM], h1[MAXT * HID], h3[MAXT * HID], h[MAXT * HID], o[MAXT * DIM];
  deco_rmsnorm_args_t nr = DECO_RMSNORM_ARGS_INIT;
  nr.n_rows = n, nr.dim = DIM, nr.residual = x, nr.weight = c->w.rms_ffn + l * DIM, nr.out = xb;
  OK(deco_rmsnorm(c->ctx, &nr));
  mm(c, xb, c->w.w1 + (size_t)l * HID * DIM, h1, n, HID, DIM);
  mm(c, xb, c->w.w3 + (size_t)l * HID * DIM, h3, n, HID, DIM);
  deco_swiglu_args_t sw = DECO_SWIGLU_ARGS_INIT;
  sw.n = (size_t)n * HID, sw.gate = h1, sw.up = h3, sw.out = h;
  OK(deco_swiglu(c->ctx, &sw));
  mm(c, h, c->w.w2 + (size_t)l * DIM * HID, o, n, DIM, HID);
  for (int i = 0; i < n * DIM; ++i) x[i] += o[i];
}

/* The schedule's formula over n new tokens: a group entered with h1 takes
 * every A_i from h1, then for i in order h += A_i; h += MLP_i(...). */
static void comp_forward(comp_t *c, const deco_layer_schedule_t *s, const int32_t *ids, int n,
                         const int32_t *parents, float *logits) {
  static float x[MAXT * DIM], h1[MAXT * DIM], a[DECO_MAX_LAYER_GROUP][MAXT * DIM], xb[MAXT * DIM];
  for (int t = 0; t < n; ++t) memcpy(x + t * DIM, c->w.emb + (size_t)ids[t] * DIM, sizeof(float) * DIM);
  for (int g = 0; g < s->n_groups; ++g) {
    memcpy(h1, x, sizeof(float) * n * DIM);
    for (int i = 0; i < s->count[g]; ++i) comp_attention(c, s->first[g] + i, h1, n, parents, a[i]);
    for (int i = 0; i < s->count[g]; ++i) {
      for (int j = 0; j < n * DIM; ++j) x[j] += a[i][j];
      comp_ffn(c, s->first[g] + i, x, n);
    }
  }
  deco_rmsnorm_args_t nr = DECO_RMSNORM_ARGS_INIT;
  nr.n_rows = n, nr.dim = DIM, nr.residual = x, nr.weight = c->w.rms_final, nr.out = xb;
  OK(deco_rmsnorm(c->ctx, &nr));
  mm(c, xb, c->w.emb, logits, n, V, DIM);
  if (!parents) c->len += n;
}

/* One deco_forward of ids on cache kc (seq), causal or a tree. */
static void deco_step(deco_model_t *m, deco_kv_cache_t *kc, int seq, const int32_t *ids, int n,
                      const int32_t *parents, const deco_layer_schedule_t *s, float *logits) {
  deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
  fa.n_seqs = 1, fa.seqs = &seq, fa.n_new = &n, fa.tokens = ids, fa.parents = parents;
  fa.logits_mode = DECO_LOGITS_ALL, fa.logits = logits, fa.schedule = s;
  cr_assert_eq(deco_forward(m, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(deco_model_ctx(m)));
}

static const int32_t prompt[NT] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 280, 298, 265};
/* A 4-node tree after the prompt: root, two children, a grandchild. */
static const int32_t tree_ids[4] = {330, 271, 299, 402}, tree_par[4] = {-1, 0, 0, 1};

/* Schedule {0} {1 .. N} {N+1 ..} (single layers after the group). */
static void check_group(int N) {
  char what[96];
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *base = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  int first[NL], count[NL], ng = 0;
  first[ng] = 0, count[ng++] = 1;
  first[ng] = 1, count[ng++] = N;
  for (int l = N + 1; l < NL; ++l) first[ng] = l, count[ng++] = 1;
  const deco_layer_schedule_t s = {.n_groups = ng, .first = first, .count = count};
  deco_model_t *view;
  cr_assert_eq(deco_model_create_view(base, &s, &view), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  /* The stacked weights: N layers of [q | k | v][dim] f32, after the ones
   * vector (dim f32, padded to 256 bytes). */
  cr_assert_eq(deco_model_fused_bytes(view), (size_t)256 + (size_t)N * (QD + 2 * KVD) * DIM * sizeof(float));
  cr_assert_eq(deco_model_fused_bytes(base), 0);

  float *file = deco_test_read_file(deco_test_data_file("models/stories260K.bin"), NULL);
  cr_assert(file);
  static comp_t c;
  memset(&c, 0, sizeof c);
  c.ctx = ctx;
  c.w = deco_test_stories_weights(file);
  deco_kv_cache_t *kv, *kb;
  int sv, sb;
  cr_assert_eq(deco_kv_cache_create(view, PAGE, 4, 1, &kv), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_create(base, PAGE, 4, 1, &kb), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kv, MAXT, &sv), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kb, MAXT, &sb), DECO_STATUS_SUCCESS);
  static float fused[MAXT * V], want[MAXT * V], unfused[MAXT * V];
  for (int step = 0; step < 2; ++step) {
    const int32_t *ids = step ? tree_ids : prompt, *par = step ? tree_par : NULL;
    const int n = step ? 4 : NT;
    deco_step(view, kv, sv, ids, n, par, NULL, fused);
    deco_step(base, kb, sb, ids, n, par, &s, unfused); /* the same groups, unfused: base has no fused weights */
    comp_forward(&c, &s, ids, n, par, want);
    snprintf(what, sizeof what, "N = %d, %s: fused vs the formula", N, step ? "tree" : "prefill");
    cr_assert_eq(deco_test_compare(what, fused, want, (size_t)n * V, DECO_TOL_FUSED_GROUP_F32,
                                   DECO_TOL_FUSED_GROUP_F32),
                 0, "%s", what);
    snprintf(what, sizeof what, "N = %d, %s: unfused vs the formula", N, step ? "tree" : "prefill");
    cr_assert_eq(deco_test_compare(what, unfused, want, (size_t)n * V, DECO_TOL_FUSED_GROUP_F32,
                                   DECO_TOL_FUSED_GROUP_F32),
                 0, "%s", what);
    float d = 0.0f, dw = 0.0f;
    for (int i = 0; i < n * V; ++i) {
      d = fmaxf(d, fabsf(fused[i] - unfused[i]));
      dw = fmaxf(dw, fabsf(fused[i] - want[i]));
    }
    fprintf(stderr, "N = %d %s: max |fused - unfused| %.3g, max |fused - formula| %.3g\n", N,
            step ? "tree" : "prefill", d, dw);
    /* The fused path ran: folding the norms changes the last bits. */
    if (step == 0) cr_assert(d > 0.0f, "N = %d: the fused forward equals the unfused one bit for bit", N);
  }
  /* The K/V the fused group wrote for the prompt, every layer (slots 0 .. NT - 1 of page 0). */
  void *kp, *vp;
  size_t nb;
  cr_assert_eq(deco_kv_cache_pools(kv, &kp, &vp, &nb), DECO_STATUS_SUCCESS);
  const size_t layer = nb / sizeof(float) / NL;
  int32_t table[64];
  cr_assert(deco_kv_cache_max_pages(kv) <= 64);
  cr_assert_eq(deco_kv_cache_block_table(kv, &sv, 1, table), DECO_STATUS_SUCCESS);
  for (int l = 0; l < NL; ++l) {
    const float *kl = (const float *)kp + l * layer + (size_t)table[0] * PAGE * KVD;
    const float *vl = (const float *)vp + l * layer + (size_t)table[0] * PAGE * KVD;
    snprintf(what, sizeof what, "N = %d: K of layer %d", N, l);
    cr_assert_eq(deco_test_compare(what, kl, c.k[l], (size_t)NT * KVD, DECO_TOL_FUSED_GROUP_F32,
                                   DECO_TOL_FUSED_GROUP_F32),
                 0, "%s", what);
    snprintf(what, sizeof what, "N = %d: V of layer %d", N, l);
    cr_assert_eq(deco_test_compare(what, vl, c.v[l], (size_t)NT * KVD, DECO_TOL_FUSED_GROUP_F32,
                                   DECO_TOL_FUSED_GROUP_F32),
                 0, "%s", what);
  }
  free(file);
  deco_kv_cache_destroy(kv);
  deco_kv_cache_destroy(kb);
  deco_model_destroy(view);
  deco_model_destroy(base);
  deco_ctx_destroy(ctx);
}

Test(layer_fused, a_group_of_two_follows_the_formula) { check_group(2); }
Test(layer_fused, a_group_of_three_follows_the_formula) { check_group(3); }
Test(layer_fused, a_group_of_four_follows_the_formula) { check_group(4); }

/* The batched GEMM on the CPU is, product by product, deco_matmul bit for
 * bit (stride_a 0 repeats one input; the outputs land stride_out apart). */
Test(layer_fused, batched_matmul_is_each_product) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  enum { M = 5, N = 24, K = 40, B = 3 };
  static float a[B][M * K], w[B][N * K], out[B][M * N + 7], one[M * N];
  deco_test_fill_uniform(&a[0][0], sizeof a / sizeof(float), 7, 0, -1.0f, 1.0f);
  deco_test_fill_uniform(&w[0][0], sizeof w / sizeof(float), 7, 1, -1.0f, 1.0f);
  for (int shared = 0; shared < 2; ++shared) {
    deco_matmul_batched_args_t b = DECO_MATMUL_BATCHED_ARGS_INIT;
    b.mm.m = M, b.mm.n = N, b.mm.k = K, b.mm.a = a, b.mm.w = w, b.mm.out = out;
    b.n_batch = B, b.stride_a = shared ? 0 : M * K, b.stride_w = N * K, b.stride_out = M * N + 7;
    cr_assert_eq(deco_matmul_batched(ctx, &b), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    for (int i = 0; i < B; ++i) {
      deco_matmul_args_t m = DECO_MATMUL_ARGS_INIT;
      m.m = M, m.n = N, m.k = K, m.a = a[shared ? 0 : i], m.w = w[i], m.out = one;
      cr_assert_eq(deco_matmul(ctx, &m), DECO_STATUS_SUCCESS);
      cr_assert_eq(memcmp(one, out[i], sizeof one), 0, "product %d (shared input %d)", i, shared);
    }
  }
  deco_matmul_batched_args_t bad = DECO_MATMUL_BATCHED_ARGS_INIT;
  bad.mm.m = M, bad.mm.n = N, bad.mm.k = K, bad.mm.a = a, bad.mm.w = w, bad.mm.out = out;
  bad.n_batch = 2, bad.stride_out = M * N - 1;
  cr_assert_eq(deco_matmul_batched(ctx, &bad), DECO_STATUS_INVALID_ARGUMENT, "overlapping outputs are refused");
  deco_ctx_destroy(ctx);
}

/* A layer-parallel model drafter's view runs its groups fused (so the
 * greedy-equals-plain and calibration checks of
 * tests/test_draft_model_parallel.c run the fused path): layers 0..4 with
 * N = 2 group {1, 2} and {3} alone; N = 3 group {1, 2, 3}. */
Test(layer_fused, a_layer_parallel_drafter_runs_fused) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int layers[] = {0, 1, 2, 3, 4};
  const size_t per_layer = (size_t)(QD + 2 * KVD) * DIM * sizeof(float);
  for (int N = 1; N <= 3; ++N) {
    deco_model_draft_config_t c = DECO_MODEL_DRAFT_CONFIG_INIT;
    c.layers = layers, c.n_layers = 5, c.draft_len = 4, c.layer_parallel = N;
    deco_drafter_t *d = NULL;
    cr_assert_eq(deco_drafter_create_model(m, NULL, &c, &d), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    const size_t want = N == 1 ? 0 : 256 + (size_t)N * per_layer;
    cr_assert_eq(deco_model_fused_bytes(deco_drafter_model(d)), want, "N = %d: %zu fused bytes, want %zu", N,
                 deco_model_fused_bytes(deco_drafter_model(d)), want);
    deco_drafter_destroy(d);
  }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
