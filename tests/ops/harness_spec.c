/* tests/ops/harness_spec.c — the harness's verification and drafting ops,
 * all with integer (or copied) outputs compared exactly: greedy tree
 * acceptance, KV compaction, per-row top-k, Token Recycling's draft and
 * table update, and the device-resident step's prepare and commit. Each
 * oracle is written from the op's header (deco/tree.h, kv.h, select.h,
 * recycle.h, spec_step.h) by another route than the reference: acceptance
 * enumerates every root path, top-k sorts whole rows.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/randtree.h"
#include "deco/philox.h"
#include "ops/harness.h"

static int always(const deco_op_case_t *c) {
  (void)c;
  return 1;
}

/* Argmax of a row as the contract reads it: NaN skipped, ties to the lowest
 * id, a row of NaN alone gives 0. */
static int row_argmax(const float *row, int V) {
  int best = -1;
  for (int y = 0; y < V; ++y) {
    if (isnan(row[y])) continue;
    if (best < 0 || row[y] > row[best]) best = y;
  }
  return best < 0 ? 0 : best;
}

/* ---- greedy acceptance ---- */

enum { GA_INDPTR, GA_PARENT, GA_TOKENS, GA_LOGITS, GA_PATH, GA_LEN, GA_BONUS, GA_NONFINITE };

static void greedy_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int B = c->accept.B, V = c->accept.vocab;
  uint64_t s = c->seed;
  int N = 0;
  for (int b = 0; b < B; ++b) N += c->accept.sizes[b];
  h->iv[GA_INDPTR] = ht_add(h, "tree_indptr", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)B + 1);
  h->iv[GA_PARENT] = ht_add(h, "parent", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)N);
  h->iv[GA_TOKENS] = ht_add(h, "tokens", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)N);
  h->iv[GA_LOGITS] = ht_uniform(h, "logits", HT_IN, c->dtype, (size_t)N * V, 1, -4.0f, 4.0f);
  int32_t *ip = h->t[h->iv[GA_INDPTR]].i, *par = h->t[h->iv[GA_PARENT]].i, *tok = h->t[h->iv[GA_TOKENS]].i;
  float *lg = h->t[h->iv[GA_LOGITS]].f;
  ip[0] = 0;
  for (int b = 0; b < B; ++b) {
    ip[b + 1] = ip[b] + c->accept.sizes[b];
    const int shape = c->accept.shape >= 0 ? c->accept.shape : harness_rng_int(&s, 0, 4);
    deco_test_random_tree(&s, c->accept.sizes[b], shape, par + ip[b]);
  }
  for (int r = 0; r < N; ++r) {
    float *row = lg + (size_t)r * V;
    if (c->accept.ties && V > 1 && r % 3 == 0) { /* the maximum twice: the lower id wins */
      const int m = row_argmax(row, V), j = harness_rng_int(&s, 0, V - 1);
      row[j] = row[m];
    }
    if (c->accept.nonfinite && r % 5 == 2) row[harness_rng_int(&s, 0, V - 1)] = NAN;
    if (c->accept.nonfinite && r % 7 == 4) row[harness_rng_int(&s, 0, V - 1)] = r % 2 ? INFINITY : -INFINITY;
  }
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < c->accept.sizes[b]; ++i) {
      const int v = ip[b] + i;
      if (i > 0 && harness_rng_int(&s, 0, 99) < c->accept.match_pct)
        tok[v] = row_argmax(lg + (size_t)(ip[b] + par[v]) * V, V);
      else
        tok[v] = harness_rng_int(&s, 0, V - 1);
    }
  h->iv[GA_PATH] = ht_add(h, "path", HT_OUT, HT_I32, DECO_DTYPE_F32, (size_t)B * DECO_TREE_MAX_NODES);
  h->iv[GA_LEN] = ht_add(h, "accept_len", HT_OUT, HT_I32, DECO_DTYPE_F32, (size_t)B);
  h->iv[GA_BONUS] = ht_add(h, "bonus", HT_OUT, HT_I32, DECO_DTYPE_F32, (size_t)B);
  h->iv[GA_NONFINITE] = ht_add(h, "nonfinite", HT_OUT, HT_I32, DECO_DTYPE_F32, (size_t)B);
}

/* Every node's root path is a candidate; the accepted path is the longest
 * whose nodes all match, the smallest node sequence among equally long ones. */
static void greedy_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int V = c->accept.vocab;
  const int32_t *ip = h->t[h->iv[GA_INDPTR]].i, *parent = h->t[h->iv[GA_PARENT]].i, *tokens = h->t[h->iv[GA_TOKENS]].i;
  const float *lg = h->t[h->iv[GA_LOGITS]].f;
  int32_t *path = ht_expect_i(h, h->iv[GA_PATH]), *len = ht_expect_i(h, h->iv[GA_LEN]);
  int32_t *bonus = ht_expect_i(h, h->iv[GA_BONUS]), *nonfinite = ht_expect_i(h, h->iv[GA_NONFINITE]);
  for (int b = 0; b < c->accept.B; ++b) {
    const int lo = ip[b], n = ip[b + 1] - lo;
    const int32_t *par = parent + lo, *tok = tokens + lo;
    int32_t best[DECO_TREE_MAX_NODES], cand[DECO_TREE_MAX_NODES], am[DECO_TREE_MAX_NODES];
    int best_len = 0, first_bad = 0;
    for (int v = 0; v < n; ++v) am[v] = row_argmax(lg + (size_t)(lo + v) * V, V);
    for (int v = 0; v < n; ++v) {
      int m = 0, ok = 1; /* v's root path, leaf first */
      for (int u = v; u >= 0; u = par[u]) cand[m++] = u;
      for (int i = 0; i < m / 2; ++i) {
        const int32_t x = cand[i];
        cand[i] = cand[m - 1 - i];
        cand[m - 1 - i] = x;
      }
      for (int i = 1; i < m && ok; ++i) ok = tok[cand[i]] == am[cand[i - 1]];
      if (!ok) continue;
      int finite = 1;
      for (int y = 0; y < V; ++y) finite = finite && isfinite(lg[(size_t)(lo + v) * V + y]);
      if (!finite && !first_bad) first_bad = v + 1; /* a row the decision reads */
      int better = m > best_len;
      if (m == best_len)
        for (int i = 0; i < m; ++i)
          if (cand[i] != best[i]) {
            better = cand[i] < best[i];
            break;
          }
      if (better) {
        memcpy(best, cand, sizeof(int32_t) * (size_t)m);
        best_len = m;
      }
    }
    for (int i = 0; i < DECO_TREE_MAX_NODES; ++i) path[b * DECO_TREE_MAX_NODES + i] = i < best_len ? best[i] : -1;
    len[b] = best_len;
    bonus[b] = am[best[best_len - 1]];
    nonfinite[b] = first_bad;
  }
}

static deco_status_t greedy_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_tree_accept_greedy_args_t a = DECO_TREE_ACCEPT_GREEDY_ARGS_INIT;
  a.tree.n_trees = c->accept.B;
  a.tree.n_nodes = (int)h->t[h->iv[GA_PARENT]].n;
  a.tree.tree_indptr = p[h->iv[GA_INDPTR]];
  a.tree.parent = p[h->iv[GA_PARENT]];
  a.tokens = p[h->iv[GA_TOKENS]];
  a.logits_dtype = harness_dt(t, c->dtype);
  a.logits = p[h->iv[GA_LOGITS]];
  a.vocab = c->accept.vocab;
  a.out.path = p[h->iv[GA_PATH]];
  a.out.accept_len = p[h->iv[GA_LEN]];
  a.out.bonus = p[h->iv[GA_BONUS]];
  a.out.nonfinite = p[h->iv[GA_NONFINITE]];
  if (!t->ref) harness_workspace(t, deco_tree_accept_greedy_workspace_size(t->ctx, &a));
  return HARNESS_CALL(t, tree_accept_greedy, &a);
}

const harness_op_t harness_op_accept_greedy = {DECO_OP_ACCEPT_GREEDY, greedy_setup, greedy_oracle, greedy_call, NULL,
                                               harness_cpu_f32_only};

/* ---- KV compaction: slot L_b + path[d] moves to L_b + d, every layer. ---- */

enum { KC_KP, KC_VP, KC_BT, KC_PREFIX, KC_PATH, KC_LEN, KC_MAXP = 8, KC_NPAGES, KC_LSTRIDE };

static void compact_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int B = c->compact.B, ps = c->compact.page_size;
  uint64_t s = c->seed;
  int max_pages = 1, total = 0;
  for (int b = 0; b < B; ++b) {
    const int need = (c->compact.prefix[b] + c->compact.n_nodes[b] + ps - 1) / ps;
    if (need > max_pages) max_pages = need;
    total += need;
  }
  const int n_pages = total + 2;
  const size_t row = (size_t)c->compact.n_kv * c->compact.head_dim, pool = (size_t)n_pages * ps * row;
  const size_t lstride = pool + 13; /* layers apart by more than a pool */
  h->iv[KC_MAXP] = max_pages;
  h->iv[KC_NPAGES] = n_pages;
  h->iv[KC_LSTRIDE] = (int)lstride;
  h->iv[KC_KP] = ht_uniform(h, "k_pages", HT_INOUT, c->dtype, lstride * c->compact.n_layers, 1, -1.0f, 1.0f);
  h->iv[KC_VP] = ht_uniform(h, "v_pages", HT_INOUT, c->dtype, lstride * c->compact.n_layers, 2, -1.0f, 1.0f);
  h->iv[KC_BT] = ht_add(h, "block_table", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)B * max_pages);
  int *perm = malloc(sizeof(int) * (size_t)n_pages);
  for (int i = 0; i < n_pages; ++i) perm[i] = i;
  for (int i = n_pages - 1; i > 0; --i) {
    const int j = harness_rng_int(&s, 0, i), x = perm[i];
    perm[i] = perm[j];
    perm[j] = x;
  }
  int32_t *bt = h->t[h->iv[KC_BT]].i;
  int next = 0;
  for (int b = 0; b < B; ++b) {
    const int need = (c->compact.prefix[b] + c->compact.n_nodes[b] + ps - 1) / ps;
    for (int p = 0; p < max_pages; ++p) bt[b * max_pages + p] = p < need ? perm[next++] : -1;
  }
  free(perm);
  h->iv[KC_PREFIX] = ht_add(h, "prefix_lens", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)B);
  h->iv[KC_PATH] = ht_add(h, "path", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)B * DECO_TREE_MAX_NODES);
  h->iv[KC_LEN] = ht_add(h, "accept_len", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)B);
  for (int b = 0; b < B; ++b) {
    const int n = c->compact.n_nodes[b], len = c->compact.accept_len[b];
    int32_t *path = h->t[h->iv[KC_PATH]].i + (size_t)b * DECO_TREE_MAX_NODES;
    h->t[h->iv[KC_PREFIX]].i[b] = c->compact.prefix[b];
    h->t[h->iv[KC_LEN]].i[b] = len;
    for (int i = 0; i < DECO_TREE_MAX_NODES; ++i) path[i] = -1;
    /* A strictly increasing path from the root: len - 1 of the nodes 1..n-1. */
    path[0] = 0;
    int d = 1;
    for (int v = 1; v < n && d < len; ++v)
      if (harness_rng_int(&s, 0, n - 1 - v) < len - d) path[d++] = v;
  }
}

static void compact_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int ps = c->compact.page_size, maxp = h->iv[KC_MAXP];
  const size_t row = (size_t)c->compact.n_kv * c->compact.head_dim, ls = (size_t)h->iv[KC_LSTRIDE];
  const int32_t *bt = h->t[h->iv[KC_BT]].i;
  for (int w = 0; w < 2; ++w) {
    const int k = h->iv[w ? KC_VP : KC_KP];
    const float *old = h->t[k].f;
    float *e = ht_expect_f(h, k);
    memcpy(e, old, sizeof(float) * h->t[k].n);
    for (int b = 0; b < c->compact.B; ++b) {
      const int L = c->compact.prefix[b];
      const int32_t *path = h->t[h->iv[KC_PATH]].i + (size_t)b * DECO_TREE_MAX_NODES;
      for (int d = 1; d < c->compact.accept_len[b]; ++d) {
        const int src = L + path[d], dst = L + d;
        const size_t rs = ((size_t)bt[b * maxp + src / ps] * ps + src % ps) * row;
        const size_t rd = ((size_t)bt[b * maxp + dst / ps] * ps + dst % ps) * row;
        for (int l = 0; l < c->compact.n_layers; ++l)
          memcpy(e + l * ls + rd, old + l * ls + rs, sizeof(float) * row); /* from the snapshot: moves, not a chain */
      }
    }
  }
}

static deco_status_t compact_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_kv_compact_args_t a = DECO_KV_COMPACT_ARGS_INIT;
  a.cache.dtype = harness_dt(t, c->dtype);
  a.cache.n_kv_heads = c->compact.n_kv;
  a.cache.head_dim = c->compact.head_dim;
  a.cache.page_size = c->compact.page_size;
  a.cache.n_pages = h->iv[KC_NPAGES];
  a.cache.k_pages = p[h->iv[KC_KP]];
  a.cache.v_pages = p[h->iv[KC_VP]];
  a.cache.block_table = p[h->iv[KC_BT]];
  a.cache.max_pages_per_seq = h->iv[KC_MAXP];
  a.n_layers = c->compact.n_layers;
  a.layer_stride = (size_t)h->iv[KC_LSTRIDE];
  a.n_trees = c->compact.B;
  a.prefix_lens = p[h->iv[KC_PREFIX]];
  a.path = p[h->iv[KC_PATH]];
  a.accept_len = p[h->iv[KC_LEN]];
  return HARNESS_CALL(t, kv_compact, &a);
}

const harness_op_t harness_op_kv_compact = {DECO_OP_KV_COMPACT, compact_setup, compact_oracle, compact_call, NULL,
                                            harness_cpu_f32_only};

/* ---- top-k rows: sorted by value descending, equal values by id ascending,
 * NaN below every number, -0 equal to +0; values are the row's own. ---- */

enum { TK_LOGITS, TK_COUNT, TK_IDS, TK_VALUES };

static void topk_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int R = c->topk.n_rows, V = c->topk.vocab, k = c->topk.k;
  uint64_t s = c->seed;
  h->iv[TK_LOGITS] = ht_uniform(h, "logits", HT_IN, c->dtype, (size_t)R * V, 1, -3.0f, 3.0f);
  float *lg = h->t[h->iv[TK_LOGITS]].f;
  if (c->topk.specials)
    for (int r = 0; r < R; ++r) {
      float *row = lg + (size_t)r * V;
      for (int e = 0; e < 1 + V / 50; ++e) { /* ties among the large values */
        const int a = harness_rng_int(&s, 0, V - 1), b = harness_rng_int(&s, 0, V - 1);
        row[b] = row[a] = 2.5f + (float)(e % 3) * 0.25f;
      }
      static const float sp[6] = {0.0f, -0.0f, NAN, INFINITY, -INFINITY, 0.0f};
      for (int e = 0; e < 6 && e < V; ++e) row[harness_rng_int(&s, 0, V - 1)] = sp[(e + r) % 6];
      if (r % 4 == 3) /* a row of zeros of both signs and a NaN: ties decided by id */
        for (int i = 0; i < V; ++i) row[i] = i % 7 == 3 ? NAN : i % 2 ? -0.0f : 0.0f;
    }
  h->iv[TK_COUNT] = -1;
  if (c->topk.row_count >= 0) {
    h->iv[TK_COUNT] = ht_add(h, "row_count", HT_IN, HT_I32, DECO_DTYPE_F32, 1);
    h->t[h->iv[TK_COUNT]].i[0] = c->topk.row_count;
  }
  const int used = c->topk.row_count >= 0 && c->topk.row_count < R ? c->topk.row_count : R;
  h->iv[TK_IDS] = ht_add(h, "ids", HT_OUT, HT_I32, DECO_DTYPE_F32, (size_t)R * k);
  h->t[h->iv[TK_IDS]].n_written = (size_t)used * k; /* rows past the count: not written */
  h->t[h->iv[TK_IDS]].cmp = DECO_CMP_EXACT;
  h->iv[TK_VALUES] = -1;
  if (c->topk.values) {
    h->iv[TK_VALUES] = ht_add(h, "values", HT_OUT, HT_FLOAT, DECO_DTYPE_F32, (size_t)R * k);
    h->t[h->iv[TK_VALUES]].n_written = (size_t)used * k;
    h->t[h->iv[TK_VALUES]].cmp = DECO_CMP_BITWISE;
  }
}

static const float *topk_row;

static int topk_cmp(const void *pa, const void *pb) {
  const int a = *(const int *)pa, b = *(const int *)pb;
  const float x = topk_row[a], y = topk_row[b];
  const int nx = isnan(x), ny = isnan(y);
  if (nx != ny) return nx ? 1 : -1; /* NaN last */
  if (!nx && x != y) return x > y ? -1 : 1; /* -0 == +0 */
  return a < b ? -1 : a > b;
}

static void topk_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int R = c->topk.n_rows, V = c->topk.vocab, k = c->topk.k;
  const int used = c->topk.row_count >= 0 && c->topk.row_count < R ? c->topk.row_count : R;
  int32_t *ids = ht_expect_i(h, h->iv[TK_IDS]);
  float *vals = h->iv[TK_VALUES] >= 0 ? ht_expect_f(h, h->iv[TK_VALUES]) : NULL;
  int *order = malloc(sizeof(int) * (size_t)V);
  for (int r = 0; r < used; ++r) {
    topk_row = h->t[h->iv[TK_LOGITS]].f + (size_t)r * V;
    for (int i = 0; i < V; ++i) order[i] = i;
    qsort(order, (size_t)V, sizeof(int), topk_cmp);
    for (int j = 0; j < k; ++j) {
      ids[r * k + j] = order[j];
      if (vals) vals[r * k + j] = topk_row[order[j]];
    }
  }
  free(order);
}

static deco_status_t topk_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_topk_rows_args_t a = DECO_TOPK_ROWS_ARGS_INIT;
  a.n_rows = c->topk.n_rows;
  a.vocab = c->topk.vocab;
  a.k = c->topk.k;
  a.dtype = harness_dt(t, c->dtype);
  a.logits = p[h->iv[TK_LOGITS]];
  a.row_count = h->iv[TK_COUNT] >= 0 ? p[h->iv[TK_COUNT]] : NULL;
  a.ids = p[h->iv[TK_IDS]];
  a.values = h->iv[TK_VALUES] >= 0 ? p[h->iv[TK_VALUES]] : NULL;
  if (!t->ref) harness_workspace(t, deco_topk_rows_workspace_size(t->ctx, &a));
  return HARNESS_CALL(t, topk_rows, &a);
}

const harness_op_t harness_op_topk_rows = {DECO_OP_TOPK_ROWS, topk_setup, topk_oracle, topk_call, NULL,
                                           harness_cpu_f32_only};

/* ---- Token Recycling's draft: tokens[b][0] = roots[b], tokens[b][j] =
 * table[tokens[b][parent[j]]][rank[j]]. ---- */

enum { RD_ROOTS, RD_PARENT, RD_RANK, RD_TABLE, RD_TOKENS, RD_N };

static void draft_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int B = c->draft.B, V = c->draft.vocab, k = c->draft.k;
  uint64_t s = c->seed;
  deco_tree_template_t tmpl;
  int n = c->draft.n_nodes;
  if (c->draft.default_template) {
    cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    n = tmpl.n_nodes;
  } else {
    deco_test_random_tree(&s, n, c->draft.shape, tmpl.parent);
    tmpl.rank[0] = -1;
    for (int j = 1; j < n; ++j) tmpl.rank[j] = harness_rng_int(&s, 0, k - 1);
  }
  h->iv[RD_N] = n;
  h->iv[RD_ROOTS] = ht_add(h, "roots", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)B);
  h->iv[RD_PARENT] = ht_add(h, "parent", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)n);
  h->iv[RD_RANK] = ht_add(h, "rank", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)n);
  h->iv[RD_TABLE] = ht_add(h, "table", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)V * k);
  memcpy(h->t[h->iv[RD_PARENT]].i, tmpl.parent, sizeof(int32_t) * (size_t)n);
  memcpy(h->t[h->iv[RD_RANK]].i, tmpl.rank, sizeof(int32_t) * (size_t)n);
  for (int b = 0; b < B; ++b) h->t[h->iv[RD_ROOTS]].i[b] = harness_rng_int(&s, 0, V - 1);
  for (size_t i = 0; i < (size_t)V * k; ++i) h->t[h->iv[RD_TABLE]].i[i] = harness_rng_int(&s, 0, V - 1);
  h->iv[RD_TOKENS] = ht_add(h, "tokens", HT_OUT, HT_I32, DECO_DTYPE_F32, (size_t)B * n);
}

static void draft_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int n = h->iv[RD_N], k = c->draft.k;
  const int32_t *par = h->t[h->iv[RD_PARENT]].i, *rank = h->t[h->iv[RD_RANK]].i, *table = h->t[h->iv[RD_TABLE]].i;
  int32_t *tok = ht_expect_i(h, h->iv[RD_TOKENS]);
  for (int b = 0; b < c->draft.B; ++b) {
    int32_t *t = tok + (size_t)b * n;
    t[0] = h->t[h->iv[RD_ROOTS]].i[b];
    for (int j = 1; j < n; ++j) t[j] = table[(size_t)t[par[j]] * k + rank[j]];
  }
}

static deco_status_t draft_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_recycle_draft_args_t a = DECO_RECYCLE_DRAFT_ARGS_INIT;
  a.n_trees = c->draft.B;
  a.n_nodes = h->iv[RD_N];
  a.roots = p[h->iv[RD_ROOTS]];
  a.parent = p[h->iv[RD_PARENT]];
  a.rank = p[h->iv[RD_RANK]];
  a.table = p[h->iv[RD_TABLE]];
  a.vocab = c->draft.vocab;
  a.k = c->draft.k;
  a.tokens = p[h->iv[RD_TOKENS]];
  return HARNESS_CALL(t, recycle_draft, &a);
}

const harness_op_t harness_op_recycle_draft = {DECO_OP_RECYCLE_DRAFT, draft_setup, draft_oracle, draft_call, NULL,
                                               always};

/* ---- Token Recycling's update: in flat node order, table[tokens[j]] <-
 * topk[j]; the last node carrying a token wins. ---- */

enum { RU_INDPTR, RU_TOKENS, RU_TOPK, RU_TABLE, RU_NODES };

static void update_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int B = c->update.B, V = c->update.vocab, k = c->update.k;
  uint64_t s = c->seed;
  int N = 0;
  for (int b = 0; b < B; ++b) N += c->update.sizes[b];
  const int cap = N + 2; /* two nodes past the batch: never read (invalid tokens) */
  h->iv[RU_NODES] = cap;
  h->iv[RU_INDPTR] = ht_add(h, "tree_indptr", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)B + 1);
  h->iv[RU_TOKENS] = ht_add(h, "tokens", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)cap);
  h->iv[RU_TOPK] = ht_add(h, "topk", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)cap * k);
  h->iv[RU_TABLE] = ht_add(h, "table", HT_INOUT, HT_I32, DECO_DTYPE_F32, (size_t)V * k);
  int32_t *ip = h->t[h->iv[RU_INDPTR]].i;
  ip[0] = 0;
  for (int b = 0; b < B; ++b) ip[b + 1] = ip[b] + c->update.sizes[b];
  for (int j = 0; j < cap; ++j) h->t[h->iv[RU_TOKENS]].i[j] = j < N ? harness_rng_int(&s, 0, V - 1) : V + 5;
  for (int j = 0; j < cap * k; ++j) h->t[h->iv[RU_TOPK]].i[j] = harness_rng_int(&s, 0, V - 1);
  for (int j = 0; j < V * k; ++j) h->t[h->iv[RU_TABLE]].i[j] = harness_rng_int(&s, 0, V - 1);
}

static void update_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int k = c->update.k, N = h->t[h->iv[RU_INDPTR]].i[c->update.B];
  int32_t *table = ht_expect_i(h, h->iv[RU_TABLE]);
  memcpy(table, h->t[h->iv[RU_TABLE]].i, sizeof(int32_t) * h->t[h->iv[RU_TABLE]].n);
  for (int j = 0; j < N; ++j)
    memcpy(table + (size_t)h->t[h->iv[RU_TOKENS]].i[j] * k, h->t[h->iv[RU_TOPK]].i + (size_t)j * k,
           sizeof(int32_t) * (size_t)k);
}

static deco_status_t update_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_recycle_update_args_t a = DECO_RECYCLE_UPDATE_ARGS_INIT;
  a.n_trees = c->update.B;
  a.n_nodes = h->iv[RU_NODES];
  a.tree_indptr = p[h->iv[RU_INDPTR]];
  a.tokens = p[h->iv[RU_TOKENS]];
  a.topk = p[h->iv[RU_TOPK]];
  a.table = p[h->iv[RU_TABLE]];
  a.vocab = c->update.vocab;
  a.k = c->update.k;
  if (!t->ref) harness_workspace(t, deco_recycle_update_workspace_size(t->ctx, &a));
  return HARNESS_CALL(t, recycle_update, &a);
}

const harness_op_t harness_op_recycle_update = {DECO_OP_RECYCLE_UPDATE, update_setup, update_oracle, update_call, NULL,
                                                always};

/* ---- The device-resident step (deco/spec_step.h); the state is nine
 * 32-bit words in the struct's order. ---- */

_Static_assert(sizeof(deco_spec_state_t) == 9 * sizeof(int32_t), "the harness reads the state as nine words");
enum { ST_LEN, ST_ROOT, ST_DONE, ST_ERROR, ST_NOUT, ST_TOKENS, ST_FORWARDS, ST_OFFSET, ST_NONFINITE };

/* The state of a run between steps (in and out): len tokens so far, a
 * drawn root id, the offset at len, the counters as given; no error. */
static int state_add(hcase_t *h, uint64_t *s, int len, int done, int n_out, int n_tokens, int forwards) {
  const int k = ht_add(h, "state", HT_INOUT, HT_I32, DECO_DTYPE_F32, 9);
  int32_t *st = h->t[k].i;
  st[ST_LEN] = len;
  st[ST_ROOT] = harness_rng_int(s, 0, 999);
  st[ST_DONE] = done;
  st[ST_NOUT] = n_out;
  st[ST_TOKENS] = n_tokens;
  st[ST_FORWARDS] = forwards;
  st[ST_OFFSET] = len;
  return k;
}

/* Breadth-first depths: 0, then non-decreasing steps of 0 or 1. */
static void bfs_depths(uint64_t *s, int n, int shape, int32_t *depth) {
  depth[0] = 0;
  for (int j = 1; j < n; ++j)
    depth[j] = j == 1 ? 1 : depth[j - 1] + (harness_rng_int(s, 0, 3 + shape) == 0 ? 1 : 0);
}

enum { SP_STATE, SP_DEPTH, SP_TOKENS, SP_POS, SP_QIP, SP_KVL, SP_PREFIX, SP_TIP, SP_ROWS };

static void prepare_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int n = c->prepare.n_nodes;
  uint64_t s = c->seed;
  h->iv[SP_STATE] = state_add(h, &s, c->prepare.len, c->prepare.done, 3, 3, 2);
  h->iv[SP_DEPTH] = ht_add(h, "depth", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)n);
  bfs_depths(&s, n, c->prepare.shape, h->t[h->iv[SP_DEPTH]].i);
  h->iv[SP_TOKENS] = ht_add(h, "tokens", HT_INOUT, HT_I32, DECO_DTYPE_F32, (size_t)n);
  for (int j = 0; j < n; ++j) h->t[h->iv[SP_TOKENS]].i[j] = harness_rng_int(&s, 1, 999);
  h->iv[SP_POS] = ht_add(h, "positions", HT_OUT, HT_I32, DECO_DTYPE_F32, (size_t)n);
  h->iv[SP_QIP] = ht_add(h, "q_indptr", HT_OUT, HT_I32, DECO_DTYPE_F32, 2);
  h->iv[SP_KVL] = ht_add(h, "kv_lens", HT_OUT, HT_I32, DECO_DTYPE_F32, 1);
  h->iv[SP_PREFIX] = ht_add(h, "prefix_lens", HT_OUT, HT_I32, DECO_DTYPE_F32, 1);
  h->iv[SP_TIP] = ht_add(h, "tree_indptr", HT_OUT, HT_I32, DECO_DTYPE_F32, 2);
  h->iv[SP_ROWS] = ht_add(h, "row_count", HT_OUT, HT_I32, DECO_DTYPE_F32, 1);
}

/* Nodes deeper than steps - len - 1 (a suffix) are left out: token 0, not in
 * the tree; once done the tree is empty and the forward's batch too. */
static void prepare_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int n = c->prepare.n_nodes;
  const int32_t *st = h->t[h->iv[SP_STATE]].i, *depth = h->t[h->iv[SP_DEPTH]].i;
  const int len = st[ST_LEN], done = st[ST_DONE];
  int m = 0;
  if (!done)
    for (int j = 0; j < n; ++j) m += len + depth[j] + 1 <= c->prepare.steps; /* its position fits: len + depth < steps */
  memcpy(ht_expect_i(h, h->iv[SP_STATE]), st, sizeof(int32_t) * 9); /* prepare does not change the state */
  int32_t *tok = ht_expect_i(h, h->iv[SP_TOKENS]);
  for (int j = 0; j < n; ++j) tok[j] = j == 0 ? st[ST_ROOT] : j < m ? h->t[h->iv[SP_TOKENS]].i[j] : 0;
  int32_t *pos = ht_expect_i(h, h->iv[SP_POS]);
  for (int j = 0; j < n; ++j) pos[j] = len + depth[j];
  int32_t *qip = ht_expect_i(h, h->iv[SP_QIP]), *tip = ht_expect_i(h, h->iv[SP_TIP]);
  qip[0] = 0;
  qip[1] = done ? 0 : n;
  ht_expect_i(h, h->iv[SP_KVL])[0] = len + n;
  ht_expect_i(h, h->iv[SP_PREFIX])[0] = len;
  tip[0] = 0;
  tip[1] = m;
  ht_expect_i(h, h->iv[SP_ROWS])[0] = m;
}

static deco_status_t prepare_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_spec_prepare_args_t a = DECO_SPEC_PREPARE_ARGS_INIT;
  a.state = p[h->iv[SP_STATE]];
  a.n_nodes = c->prepare.n_nodes;
  a.depth = p[h->iv[SP_DEPTH]];
  a.steps = c->prepare.steps;
  a.tokens = p[h->iv[SP_TOKENS]];
  a.positions = p[h->iv[SP_POS]];
  a.q_indptr = p[h->iv[SP_QIP]];
  a.kv_lens = p[h->iv[SP_KVL]];
  a.prefix_lens = p[h->iv[SP_PREFIX]];
  a.tree_indptr = p[h->iv[SP_TIP]];
  a.row_count = p[h->iv[SP_ROWS]];
  return HARNESS_CALL(t, spec_prepare, &a);
}

const harness_op_t harness_op_spec_prepare = {DECO_OP_SPEC_PREPARE, prepare_setup, prepare_oracle, prepare_call, NULL,
                                              always};

enum { SC_STATE, SC_TOKENS, SC_PATH, SC_LEN, SC_BONUS, SC_STOPS, SC_OUT, SC_NONFINITE };

static void commit_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int n = c->commit.n_nodes;
  uint64_t s = c->seed;
  h->iv[SC_STATE] = state_add(h, &s, c->commit.len, c->commit.done, c->commit.n_out, c->commit.n_out + 2, 5);
  h->iv[SC_TOKENS] = ht_add(h, "tokens", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)n);
  for (int j = 0; j < n; ++j) h->t[h->iv[SC_TOKENS]].i[j] = harness_rng_int(&s, 0, 999);
  /* An accepted path: node indices increasing from the root. */
  int acc = c->commit.accept_len > 0 ? c->commit.accept_len : 1 + harness_rng_int(&s, 0, 6);
  if (acc > n) acc = n;
  h->iv[SC_PATH] = ht_add(h, "path", HT_IN, HT_I32, DECO_DTYPE_F32, DECO_TREE_MAX_NODES);
  int32_t *path = h->t[h->iv[SC_PATH]].i;
  for (int i = 0; i < DECO_TREE_MAX_NODES; ++i) path[i] = -1;
  path[0] = 0;
  for (int i = 1, v = 0; i < acc; ++i) {
    v += 1 + harness_rng_int(&s, 0, (n - 1 - v - (acc - i)) / 2);
    path[i] = v;
  }
  if (c->commit.malformed == 1) acc = 0;
  if (c->commit.malformed == 2) {
    if (acc < 2) acc = 2 <= n ? 2 : acc;
    path[1] = n; /* past the tree */
  }
  h->iv[SC_LEN] = ht_add(h, "accept_len", HT_IN, HT_I32, DECO_DTYPE_F32, 1);
  h->t[h->iv[SC_LEN]].i[0] = acc;
  h->iv[SC_BONUS] = ht_add(h, "bonus", HT_IN, HT_I32, DECO_DTYPE_F32, 1);
  h->t[h->iv[SC_BONUS]].i[0] = harness_rng_int(&s, 0, 999);
  h->iv[SC_STOPS] = -1;
  if (c->commit.n_stop) {
    h->iv[SC_STOPS] = ht_add(h, "stop_ids", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)c->commit.n_stop);
    int32_t *stops = h->t[h->iv[SC_STOPS]].i;
    for (int i = 0; i < c->commit.n_stop; ++i) stops[i] = 1000 + i; /* ids the drafts never hold */
    if (c->commit.stop_at >= 0 && acc >= 1 && !c->commit.malformed) {
      const int at = c->commit.stop_at < acc ? c->commit.stop_at : acc - 1;
      stops[c->commit.n_stop - 1] = at + 1 < acc ? h->t[h->iv[SC_TOKENS]].i[path[at + 1]] : h->t[h->iv[SC_BONUS]].i[0];
    }
  }
  h->iv[SC_OUT] = ht_add(h, "out", HT_INOUT, HT_I32, DECO_DTYPE_F32, (size_t)c->commit.out_capacity);
  for (int i = 0; i < c->commit.out_capacity; ++i) h->t[h->iv[SC_OUT]].i[i] = -7 - i;
  h->iv[SC_NONFINITE] = ht_add(h, "nonfinite", HT_IN, HT_I32, DECO_DTYPE_F32, 1);
  h->t[h->iv[SC_NONFINITE]].i[0] = c->commit.nonfinite;
}

static void commit_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int n = c->commit.n_nodes;
  int32_t *st = ht_expect_i(h, h->iv[SC_STATE]), *out = ht_expect_i(h, h->iv[SC_OUT]);
  memcpy(st, h->t[h->iv[SC_STATE]].i, sizeof(int32_t) * 9);
  memcpy(out, h->t[h->iv[SC_OUT]].i, sizeof(int32_t) * (size_t)c->commit.out_capacity);
  const int32_t *path = h->t[h->iv[SC_PATH]].i, *tok = h->t[h->iv[SC_TOKENS]].i;
  const int acc = h->t[h->iv[SC_LEN]].i[0], bonus = h->t[h->iv[SC_BONUS]].i[0];
  const int flag = h->t[h->iv[SC_NONFINITE]].i[0];
  if (st[ST_DONE]) return; /* a replay after the end changes nothing */
  if (flag) {                /* the model's output is unusable: nothing committed */
    st[ST_NONFINITE] = flag;
    st[ST_FORWARDS]++;
    st[ST_DONE] = 1;
    return;
  }
  int malformed = acc < 1 || acc > n;
  for (int i = 1; i < acc && !malformed; ++i) malformed = path[i] <= 0 || path[i] >= n;
  if (malformed) {
    st[ST_ERROR] = 1;
    st[ST_DONE] = 1;
    return;
  }
  for (int i = 0; i < acc; ++i) {
    const int id = i + 1 < acc ? tok[path[i + 1]] : bonus;
    int stop = 0;
    for (int k = 0; k < c->commit.n_stop; ++k) stop |= id == h->t[h->iv[SC_STOPS]].i[k];
    if (stop) {
      st[ST_DONE] = 1;
      break;
    }
    if (st[ST_NOUT] < c->commit.out_capacity) out[st[ST_NOUT]++] = id;
    st[ST_TOKENS]++;
  }
  st[ST_FORWARDS]++;
  st[ST_LEN] += acc;
  st[ST_ROOT] = bonus;
  st[ST_OFFSET] = st[ST_LEN];
  if (st[ST_LEN] >= c->commit.steps) st[ST_DONE] = 1;
}

static deco_status_t commit_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_spec_commit_args_t a = DECO_SPEC_COMMIT_ARGS_INIT;
  a.state = p[h->iv[SC_STATE]];
  a.tokens = p[h->iv[SC_TOKENS]];
  a.n_nodes = c->commit.n_nodes;
  a.path = p[h->iv[SC_PATH]];
  a.accept_len = p[h->iv[SC_LEN]];
  a.bonus = p[h->iv[SC_BONUS]];
  a.steps = c->commit.steps;
  a.stop_ids = h->iv[SC_STOPS] >= 0 ? p[h->iv[SC_STOPS]] : NULL;
  a.n_stop_ids = c->commit.n_stop;
  a.out = p[h->iv[SC_OUT]];
  a.out_capacity = c->commit.out_capacity;
  a.nonfinite = p[h->iv[SC_NONFINITE]];
  return HARNESS_CALL(t, spec_commit, &a);
}

const harness_op_t harness_op_spec_commit = {DECO_OP_SPEC_COMMIT, commit_setup, commit_oracle, commit_call, NULL,
                                             always};

/* ---- A model's chain drafted inside the step (deco_draft_chain) ---- */

enum {
  DC_STATE, DC_LOGITS, DC_CHAIN, DC_PREV, DC_PATH, DC_ACC, DC_TOK, DC_POS, DC_QIP, DC_KVL, DC_PREFIX, DC_Q,
  DC_SHAPE, DC_TOPK, DC_FPAR, DC_K, DC_N, DC_STAGE
};

/* A tree case's shape, breadth first, of at most n_nodes nodes and depth
 * draft_len: the full W-ary tree, or (irregular) 0..W children per node
 * drawn from the case's seed (the first node of a level at least one);
 * its depth (iv[DC_K]) and size. */
static void tree_case_shape(hcase_t *h, int32_t *par) {
  const deco_op_case_t *c = h->c;
  uint64_t s = c->seed ^ 0x5EEDull;
  int n = 1, f0 = 0, f1 = 1, depth = 0;
  par[0] = -1;
  while (depth < c->chain.draft_len && n < c->chain.n_nodes && f1 > f0) {
    for (int f = f0; f < f1; ++f) {
      const int k = !c->chain.irregular ? c->chain.width : harness_rng_int(&s, f == f0, c->chain.width);
      for (int r = 0; r < k && n < c->chain.n_nodes; ++r) par[n++] = f;
    }
    f0 = f1;
    f1 = n;
    depth++;
  }
  h->iv[DC_K] = depth;
  h->iv[DC_N] = n;
}

static void chain_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int tree = c->chain.width > 1;
  int32_t shape[DECO_TREE_MAX_NODES];
  h->iv[DC_K] = c->chain.draft_len;
  h->iv[DC_N] = c->chain.draft_len + 1;
  h->iv[DC_STAGE] = c->chain.stage;
  if (tree) {
    tree_case_shape(h, shape);
    if (h->iv[DC_STAGE] > h->iv[DC_K]) h->iv[DC_STAGE] = h->iv[DC_K]; /* a level of the drawn shape */
  }
  const int K = h->iv[DC_K], V = c->chain.vocab, N = h->iv[DC_N], cap = tree ? N + 1 : 2;
  uint64_t s = c->seed;
  h->iv[DC_STATE] = ht_add(h, "state", HT_IN, HT_I32, DECO_DTYPE_F32, 9);
  int32_t *st = h->t[h->iv[DC_STATE]].i;
  st[ST_LEN] = c->chain.len;
  st[ST_ROOT] = harness_rng_int(&s, 0, V - 1);
  st[ST_DONE] = c->chain.done;
  st[ST_OFFSET] = c->chain.len;
  h->iv[DC_LOGITS] = ht_uniform(h, "logits", HT_IN, DECO_DTYPE_F32, (size_t)2 * V, 1, -4.0f, 4.0f);
  float *lg = h->t[h->iv[DC_LOGITS]].f;
  for (int r = 0; r < 2 && c->chain.specials; ++r) {
    float *row = lg + (size_t)r * V;
    if (c->chain.specials == 2) {
      for (int y = 0; y < V; ++y) row[y] = NAN;
      continue;
    }
    /* The maximum twice (far apart when V allows), NaN at id 0 and
     * elsewhere, infinities below it, a -0 / +0 pair. */
    const int a = harness_rng_int(&s, 0, V - 1), b = harness_rng_int(&s, 0, V - 1);
    row[a] = row[b] = 9.0f;
    row[0] = NAN;
    row[harness_rng_int(&s, 0, V - 1)] = NAN;
    row[harness_rng_int(&s, 0, V - 1)] = -INFINITY;
    if (V > 3 && r == 1) {
      for (int y = 0; y < V; ++y) row[y] = y % 3 ? -fabsf(row[y]) - 1.0f : row[y];
      row[V - 1] = 0.0f;
      row[V / 2] = -0.0f;
    }
  }
  h->iv[DC_CHAIN] = ht_add(h, "chain", HT_INOUT, HT_I32, DECO_DTYPE_F32, (size_t)N);
  for (int j = 0; j < N; ++j) h->t[h->iv[DC_CHAIN]].i[j] = harness_rng_int(&s, 0, V - 1);
  h->iv[DC_PREV] = ht_add(h, "prev", HT_INOUT, HT_I32, DECO_DTYPE_F32, 1);
  h->t[h->iv[DC_PREV]].i[0] = c->chain.len == 0 ? -1 : harness_rng_int(&s, 0, V - 1);
  h->iv[DC_PATH] = ht_add(h, "path", HT_IN, HT_I32, DECO_DTYPE_F32, DECO_TREE_MAX_NODES);
  for (int i = 0; i < DECO_TREE_MAX_NODES; ++i) /* a chain's path; any nodes of a tree */
    h->t[h->iv[DC_PATH]].i[i] = !tree ? (i <= K ? i : -1) : harness_rng_int(&s, 0, N - 1);
  h->iv[DC_ACC] = ht_add(h, "accept_len", HT_IN, HT_I32, DECO_DTYPE_F32, 1);
  h->t[h->iv[DC_ACC]].i[0] = c->chain.accept_len;
  h->iv[DC_TOK] = ht_add(h, "tokens", HT_INOUT, HT_I32, DECO_DTYPE_F32, (size_t)cap);
  h->iv[DC_POS] = ht_add(h, "positions", HT_INOUT, HT_I32, DECO_DTYPE_F32, (size_t)cap);
  h->iv[DC_QIP] = ht_add(h, "q_indptr", HT_INOUT, HT_I32, DECO_DTYPE_F32, 2);
  h->iv[DC_KVL] = ht_add(h, "kv_lens", HT_INOUT, HT_I32, DECO_DTYPE_F32, 1);
  h->iv[DC_PREFIX] = ht_add(h, "prefix_lens", HT_INOUT, HT_I32, DECO_DTYPE_F32, 1);
  for (int k = DC_TOK; k <= DC_PREFIX; ++k)
    for (size_t i = 0; i < h->t[h->iv[k]].n; ++i) h->t[h->iv[k]].i[i] = -100 - (int)i;
  h->t[h->iv[DC_QIP]].i[0] = 0;
  h->t[h->iv[DC_QIP]].i[1] = c->chain.count;
  h->iv[DC_Q] = h->iv[DC_SHAPE] = h->iv[DC_TOPK] = h->iv[DC_FPAR] = -1;
  if (tree) {
    const int W = c->chain.width;
    h->iv[DC_SHAPE] = ht_add(h, "shape", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)N);
    memcpy(h->t[h->iv[DC_SHAPE]].i, shape, sizeof(int32_t) * (size_t)N);
    /* Distinct ids per row, as deco_topk_rows gives them (any will do). */
    h->iv[DC_TOPK] = ht_add(h, "topk", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)cap * W);
    for (int i = 0; i < cap * W; ++i)
      h->t[h->iv[DC_TOPK]].i[i] = 1000 * (i / W) + harness_rng_int(&s, 0, 9) * W + i % W;
    h->iv[DC_FPAR] = ht_add(h, "fparents", HT_INOUT, HT_I32, DECO_DTYPE_F32, (size_t)cap);
    for (int i = 0; i < cap; ++i) h->t[h->iv[DC_FPAR]].i[i] = -7 - i;
    /* The forward of level `stage` ran prev (when there is one) and the
     * nodes above the level, unless it was empty. */
    if (h->iv[DC_STAGE] >= 1) {
      int m = 0, depth[DECO_TREE_MAX_NODES];
      for (int j = 0; j < N; ++j) {
        depth[j] = j ? depth[shape[j]] + 1 : 0;
        m += depth[j] < h->iv[DC_STAGE];
      }
      const int hp = c->chain.len >= 1 && h->t[h->iv[DC_PREV]].i[0] >= 0;
      h->t[h->iv[DC_QIP]].i[1] = c->chain.count ? hp + m : 0;
    }
  }
  if (c->chain.temperature > 0.0f) {
    /* q rows [K][V], poisoned: only the level's row may change; softmax
     * values compare as reductions (the CUDA kernel sums in its order). */
    h->iv[DC_Q] = ht_add(h, "q", HT_INOUT, HT_FLOAT, DECO_DTYPE_F32, (size_t)K * V);
    h->t[h->iv[DC_Q]].cmp = DECO_CMP_REDUCTION;
    for (size_t i = 0; i < h->t[h->iv[DC_Q]].n; ++i) h->t[h->iv[DC_Q]].f[i] = -5.0f;
  }
}

/* The sampled mode as the header states it: q = softmax(row / T) with
 * exp and z in double when the row has no NaN and a finite maximum, else
 * the point mass at the argmax (id 0 for an empty forward); the draw is
 * the first id whose running sum of q (increasing ids) passes u * total. */
static int32_t chain_sample(hcase_t *h, const float *row, int count, int stage, float *q) {
  const deco_op_case_t *c = h->c;
  const int V = c->chain.vocab;
  const float T = c->chain.temperature;
  int usable = count > 0, best = 0;
  if (count > 0) {
    best = -1;
    for (int y = 0; y < V; ++y) {
      usable &= !isnan(row[y]);
      if (!isnan(row[y]) && (best < 0 || row[y] > row[best])) best = y;
    }
    if (best < 0) best = 0;
    usable &= isfinite(row[best]) != 0;
  }
  if (!usable) {
    for (int y = 0; y < V; ++y) q[y] = y == best ? 1.0f : 0.0f;
    return best;
  }
  const double m = row[best];
  double z = 0, total = 0, cum = 0;
  for (int y = 0; y < V; ++y) z += exp(((double)row[y] - m) / T);
  for (int y = 0; y < V; ++y) total += q[y] = (float)(exp(((double)row[y] - m) / T) / z);
  const int len = h->t[h->iv[DC_STATE]].i[ST_LEN];
  const double target =
      (double)deco_philox_uniform(c->seed, (uint32_t)len, DECO_DRAFT_CHAIN_STREAM, (uint32_t)(stage - 1), 0) * total;
  int32_t last = best;
  for (int y = 0; y < V; ++y) {
    if (!(q[y] > 0.0f)) continue;
    last = y;
    cum += q[y];
    if (cum > target) return y;
  }
  return last;
}

/* The header's rules, one stage at a time: the batch of forward l lists
 * its tokens from its first position; it is empty once done, for a depth
 * past steps - len - 1, or for kv_lens past the reservation. */
/* A top-w tree's stage as the header states it: forward l lists prev (at
 * len - 1, when len >= 1 and prev >= 0) and every node of depth below l
 * at len + depth, slot by slot; level l's node j takes its parent row's
 * id of rank (j's place among its siblings). */
static void tree_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int K = h->iv[DC_K], N = h->iv[DC_N], W = c->chain.width, stage = h->iv[DC_STAGE];
  const int32_t *st = h->t[h->iv[DC_STATE]].i, *shape = h->t[h->iv[DC_SHAPE]].i, *topk = h->t[h->iv[DC_TOPK]].i;
  const int len = st[ST_LEN];
  int32_t *chain = ht_expect_i(h, h->iv[DC_CHAIN]), *prev = ht_expect_i(h, h->iv[DC_PREV]);
  int32_t *tok = ht_expect_i(h, h->iv[DC_TOK]), *pos = ht_expect_i(h, h->iv[DC_POS]);
  int32_t *qip = ht_expect_i(h, h->iv[DC_QIP]), *kvl = ht_expect_i(h, h->iv[DC_KVL]);
  int32_t *pre = ht_expect_i(h, h->iv[DC_PREFIX]), *fpar = ht_expect_i(h, h->iv[DC_FPAR]);
  memcpy(chain, h->t[h->iv[DC_CHAIN]].i, sizeof(int32_t) * (size_t)N);
  prev[0] = h->t[h->iv[DC_PREV]].i[0];
  memcpy(tok, h->t[h->iv[DC_TOK]].i, sizeof(int32_t) * (size_t)(N + 1));
  memcpy(pos, h->t[h->iv[DC_POS]].i, sizeof(int32_t) * (size_t)(N + 1));
  memcpy(fpar, h->t[h->iv[DC_FPAR]].i, sizeof(int32_t) * (size_t)(N + 1));
  memcpy(qip, h->t[h->iv[DC_QIP]].i, sizeof(int32_t) * 2);
  kvl[0] = h->t[h->iv[DC_KVL]].i[0];
  pre[0] = h->t[h->iv[DC_PREFIX]].i[0];
  if (stage == DECO_DRAFT_CHAIN_OBSERVE) {
    const int acc = h->t[h->iv[DC_ACC]].i[0];
    if (!st[ST_DONE] && acc >= 1 && acc <= K + 1) prev[0] = chain[h->t[h->iv[DC_PATH]].i[acc - 1]];
    return;
  }
  const int hp = len >= 1 && prev[0] >= 0;
  int depth[DECO_TREE_MAX_NODES];
  for (int j = 0; j < N; ++j) depth[j] = j ? depth[shape[j]] + 1 : 0;
  int next = 1;
  if (stage == DECO_DRAFT_CHAIN_START) {
    for (int j = 0; j < N; ++j) fpar[hp + j] = j ? shape[j] + hp : hp - 1;
    if (hp) fpar[0] = -1;
  } else {
    const int count = h->t[h->iv[DC_QIP]].i[1];
    for (int j = 1; j < N; ++j) {
      if (depth[j] != stage) continue;
      int rank = 0;
      for (int i = 1; i < j; ++i) rank += shape[i] == shape[j];
      chain[j] = count > 0 ? topk[(hp + shape[j]) * W + rank] : 0;
    }
    if (stage == K) return;
    next = stage + 1;
  }
  int m = 0;
  for (int j = 0; j < N; ++j) m += depth[j] < next;
  if (hp) {
    tok[0] = prev[0];
    pos[0] = len - 1;
  }
  for (int j = 0; j < m; ++j) {
    tok[hp + j] = j ? chain[j] : st[ST_ROOT];
    pos[hp + j] = len + depth[j];
  }
  const int empty = st[ST_DONE] || len + next + 1 > c->chain.steps || len + m > c->chain.slots;
  const int first = len - hp, at = first < c->chain.slots ? first : c->chain.slots;
  qip[0] = 0;
  qip[1] = empty ? 0 : hp + m;
  kvl[0] = empty ? at : len + m;
  pre[0] = empty ? at : first;
}

static void chain_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  if (c->chain.width > 1) {
    tree_oracle(h);
    return;
  }
  const int K = c->chain.draft_len, V = c->chain.vocab, stage = c->chain.stage;
  const int32_t *st = h->t[h->iv[DC_STATE]].i;
  const int len = st[ST_LEN];
  int32_t *chain = ht_expect_i(h, h->iv[DC_CHAIN]), *prev = ht_expect_i(h, h->iv[DC_PREV]);
  int32_t *tok = ht_expect_i(h, h->iv[DC_TOK]), *pos = ht_expect_i(h, h->iv[DC_POS]);
  int32_t *qip = ht_expect_i(h, h->iv[DC_QIP]), *kvl = ht_expect_i(h, h->iv[DC_KVL]);
  int32_t *pre = ht_expect_i(h, h->iv[DC_PREFIX]);
  memcpy(chain, h->t[h->iv[DC_CHAIN]].i, sizeof(int32_t) * (size_t)(K + 1));
  prev[0] = h->t[h->iv[DC_PREV]].i[0];
  memcpy(tok, h->t[h->iv[DC_TOK]].i, sizeof(int32_t) * 2);
  memcpy(pos, h->t[h->iv[DC_POS]].i, sizeof(int32_t) * 2);
  memcpy(qip, h->t[h->iv[DC_QIP]].i, sizeof(int32_t) * 2);
  kvl[0] = h->t[h->iv[DC_KVL]].i[0];
  pre[0] = h->t[h->iv[DC_PREFIX]].i[0];
  if (stage == DECO_DRAFT_CHAIN_OBSERVE) {
    const int acc = h->t[h->iv[DC_ACC]].i[0];
    if (!st[ST_DONE] && acc >= 1 && acc <= K + 1) prev[0] = chain[acc - 1]; /* path[i] = i */
    return;
  }
  int l = 1;
  if (h->iv[DC_Q] >= 0) memcpy(ht_expect_f(h, h->iv[DC_Q]), h->t[h->iv[DC_Q]].f, sizeof(float) * (size_t)K * V);
  if (stage >= 1) {
    const int count = c->chain.count;
    const float *row = h->t[h->iv[DC_LOGITS]].f + (size_t)(count > 0 ? count - 1 : 0) * V;
    chain[stage] = count > 0 ? row_argmax(row, V) : 0;
    if (c->chain.temperature > 0.0f)
      chain[stage] = chain_sample(h, row, count, stage, h->t[h->iv[DC_Q]].ef + (size_t)(stage - 1) * V);
    if (stage == K) return;
    l = stage + 1;
  }
  int first;
  if (l == 1 && len > 0 && prev[0] >= 0) {
    tok[0] = prev[0];
    tok[1] = st[ST_ROOT];
    pos[0] = len - 1;
    pos[1] = len;
    first = len - 1;
  } else {
    tok[0] = l == 1 ? st[ST_ROOT] : chain[l - 1];
    first = len + l - 1;
    pos[0] = first;
  }
  const int n = l == 1 && len > 0 && prev[0] >= 0 ? 2 : 1;
  const int empty = st[ST_DONE] || len + l + 1 > c->chain.steps || len + l > c->chain.slots;
  qip[0] = 0;
  qip[1] = empty ? 0 : n;
  kvl[0] = empty ? (first < c->chain.slots ? first : c->chain.slots) : len + l;
  pre[0] = empty ? kvl[0] : first;
}

static deco_status_t chain_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_draft_chain_args_t a = DECO_DRAFT_CHAIN_ARGS_INIT;
  a.stage = c->chain.stage;
  a.draft_len = c->chain.draft_len;
  a.steps = c->chain.steps;
  a.max_slots = c->chain.slots;
  a.vocab = c->chain.vocab;
  a.state = p[h->iv[DC_STATE]];
  a.logits = p[h->iv[DC_LOGITS]];
  a.chain = p[h->iv[DC_CHAIN]];
  a.prev = p[h->iv[DC_PREV]];
  a.path = p[h->iv[DC_PATH]];
  a.accept_len = p[h->iv[DC_ACC]];
  a.tokens = p[h->iv[DC_TOK]];
  a.positions = p[h->iv[DC_POS]];
  a.q_indptr = p[h->iv[DC_QIP]];
  a.kv_lens = p[h->iv[DC_KVL]];
  a.prefix_lens = p[h->iv[DC_PREFIX]];
  a.temperature = c->chain.temperature;
  a.seed = c->seed;
  a.q = h->iv[DC_Q] >= 0 ? p[h->iv[DC_Q]] : NULL;
  if (c->chain.width > 1) {
    a.stage = h->iv[DC_STAGE];
    a.draft_len = h->iv[DC_K];
    a.width = c->chain.width;
    a.n_nodes = h->iv[DC_N];
    a.shape = p[h->iv[DC_SHAPE]];
    a.topk = p[h->iv[DC_TOPK]];
    a.fparents = p[h->iv[DC_FPAR]];
  }
  return HARNESS_CALL(t, draft_chain, &a);
}

const harness_op_t harness_op_draft_chain = {DECO_OP_DRAFT_CHAIN, chain_setup, chain_oracle, chain_call, NULL, always};
