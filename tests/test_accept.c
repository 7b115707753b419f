/* tests/test_accept.c — greedy and stochastic tree acceptance on the CPU
 * backend: greedy against brute-force enumeration of root paths (ties built on
 * purpose), argument validation, the reference against the tests' own model
 * draw for draw, and losslessness: the joint law of the first two emitted
 * tokens against the target, chi-square at DECO_TEST_ALPHA (Bonferroni), with
 * deliberately broken rules that the same test must reject.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accept_model.h"
#include "common/testutil.h"
#include "common/tolerances.h"

/* ---- small deterministic generator for tree shapes ---- */
static uint32_t rng_u32(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*s >> 33);
}
static int rng_int(uint64_t *s, int n) { return (int)(rng_u32(s) % (uint32_t)n); }

/* Random tree of n nodes in topological order: parent[i] in [max(0, i - span), i). */
static void random_tree(uint64_t *s, int n, int span, int32_t *parent) {
  parent[0] = -1;
  for (int i = 1; i < n; ++i) {
    int lo = i - span < 0 ? 0 : i - span;
    parent[i] = lo + rng_int(s, i - lo);
  }
}

/* ---- greedy ---- */

static int argmax_low(const float *row, int V) {
  int b = 0;
  for (int y = 1; y < V; ++y)
    if (row[y] > row[b]) b = y;
  return b;
}

/* Brute force: every node's root path; keep the matching ones; longest, then
 * lexicographically smallest node sequence. */
static int brute_greedy(int n, const int32_t *par, const int32_t *tok, const float *logits, int V, int32_t *best,
                        int32_t *bonus) {
  int best_len = 0;
  int32_t tmp[DECO_TREE_MAX_NODES];
  for (int v = 0; v < n; ++v) {
    int len = 0;
    for (int u = v; u >= 0; u = par[u]) tmp[len++] = u;
    for (int i = 0; i < len / 2; ++i) {
      int32_t t = tmp[i];
      tmp[i] = tmp[len - 1 - i];
      tmp[len - 1 - i] = t;
    }
    int ok = 1;
    for (int d = 1; d < len && ok; ++d) ok = tok[tmp[d]] == argmax_low(logits + (size_t)tmp[d - 1] * V, V);
    if (!ok) continue;
    int better = len > best_len;
    if (len == best_len)
      for (int d = 0; d < len; ++d)
        if (tmp[d] != best[d]) {
          better = tmp[d] < best[d];
          break;
        }
    if (better) {
      memcpy(best, tmp, (size_t)len * sizeof(int32_t));
      best_len = len;
    }
  }
  *bonus = argmax_low(logits + (size_t)best[best_len - 1] * V, V);
  return best_len;
}

typedef struct batch {
  int B, N, V;
  int32_t *indptr, *parent, *tokens;
  float *logits, *q;
  int32_t *path, *len, *bonus;
} batch_t;

static void batch_free(batch_t *b) {
  free(b->indptr);
  free(b->parent);
  free(b->tokens);
  free(b->logits);
  free(b->q);
  free(b->path);
  free(b->len);
  free(b->bonus);
}

/* Ragged batch with greedy-friendly tokens: logits on a coarse integer grid
 * (argmax ties), tokens mostly the parent's argmax, duplicate siblings. */
static batch_t make_greedy_batch(uint64_t seed, int B, int V, int max_n) {
  batch_t b = {B, 0, V, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
  uint64_t s = seed;
  b.indptr = malloc((size_t)(B + 1) * sizeof(int32_t));
  b.indptr[0] = 0;
  for (int i = 0; i < B; ++i) b.indptr[i + 1] = b.indptr[i] + 1 + rng_int(&s, max_n);
  b.N = b.indptr[B];
  b.parent = malloc((size_t)b.N * sizeof(int32_t));
  b.tokens = malloc((size_t)b.N * sizeof(int32_t));
  b.logits = malloc((size_t)b.N * V * sizeof(float));
  for (size_t i = 0; i < (size_t)b.N * V; ++i) b.logits[i] = (float)(rng_int(&s, 4)) * 0.5f;
  for (int t = 0; t < B; ++t) {
    int lo = b.indptr[t], n = b.indptr[t + 1] - lo;
    random_tree(&s, n, 1 + rng_int(&s, 8), b.parent + lo);
    b.tokens[lo] = rng_int(&s, V);
    for (int i = 1; i < n; ++i) {
      int p = b.parent[lo + i];
      int r = rng_int(&s, 10);
      if (r < 6) b.tokens[lo + i] = argmax_low(b.logits + (size_t)(lo + p) * V, V);
      else if (r < 8 && i > 1 && b.parent[lo + i - 1] == p) b.tokens[lo + i] = b.tokens[lo + i - 1]; /* duplicate sibling */
      else b.tokens[lo + i] = rng_int(&s, V);
    }
    /* equal rows for some nodes: identical argmax ties along paths */
    if (n > 3 && rng_int(&s, 2)) memcpy(b.logits + (size_t)(lo + 2) * V, b.logits + (size_t)(lo + 1) * V, V * sizeof(float));
  }
  b.path = malloc((size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t));
  b.len = malloc((size_t)B * sizeof(int32_t));
  b.bonus = malloc((size_t)B * sizeof(int32_t));
  return b;
}

static deco_tree_accept_greedy_args_t greedy_args(const batch_t *b) {
  deco_tree_accept_greedy_args_t a;
  memset(&a, 0, sizeof a);
  a.tree.n_trees = b->B;
  a.tree.n_nodes = b->N;
  a.tree.tree_indptr = b->indptr;
  a.tree.parent = b->parent;
  a.tokens = b->tokens;
  a.logits_dtype = DECO_DTYPE_F32;
  a.logits = b->logits;
  a.vocab = b->V;
  a.out.path = b->path;
  a.out.accept_len = b->len;
  a.out.bonus = b->bonus;
  return a;
}

Test(accept_greedy, matches_brute_force_with_ties) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  const int sizes[][3] = {{1, 5, 1}, {7, 3, 16}, {19, 8, 64}, {5, 4, 256}, {33, 2, 40}};
  long total_len = 0, trees = 0;
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; ++k) {
    batch_t b = make_greedy_batch(100 + k, sizes[k][0], sizes[k][1], sizes[k][2]);
    deco_tree_accept_greedy_args_t a = greedy_args(&b);
    cr_assert_eq(deco_tree_accept_greedy(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    for (int t = 0; t < b.B; ++t) {
      int lo = b.indptr[t], n = b.indptr[t + 1] - lo;
      int32_t best[DECO_TREE_MAX_NODES], bonus;
      int len = brute_greedy(n, b.parent + lo, b.tokens + lo, b.logits + (size_t)lo * b.V, b.V, best, &bonus);
      cr_assert_eq(b.len[t], len, "case %zu tree %d: accept_len %d, brute force %d", k, t, b.len[t], len);
      for (int d = 0; d < len; ++d)
        cr_assert_eq(b.path[(size_t)t * DECO_TREE_MAX_NODES + d], best[d], "case %zu tree %d depth %d", k, t, d);
      for (int d = len; d < DECO_TREE_MAX_NODES; ++d)
        cr_assert_eq(b.path[(size_t)t * DECO_TREE_MAX_NODES + d], -1, "case %zu tree %d: padding at %d", k, t, d);
      cr_assert_eq(b.bonus[t], bonus, "case %zu tree %d: bonus %d, expected %d", k, t, b.bonus[t], bonus);
      total_len += len;
      trees++;
    }
    batch_free(&b);
  }
  printf("greedy: %ld trees, mean accept_len %.2f\n", trees, (double)total_len / trees);
  cr_assert(total_len > 2 * trees, "the test trees should accept more than the root on average");
  deco_ctx_destroy(ctx);
}

Test(accept_greedy, lexicographic_tie_not_smallest_last_node) {
  /* Two matching depth-2 paths 0-1-4 and 0-2-3: the winner is 0-1-4 (smaller
   * node at depth 1) although its last node index is larger. */
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t indptr[2] = {0, 5}, parent[5] = {-1, 0, 0, 2, 1}, tokens[5] = {0, 1, 1, 2, 2};
  float logits[5 * 3] = {0, 1, 0, /* root -> 1 */ 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  int32_t path[DECO_TREE_MAX_NODES], len, bonus;
  deco_tree_accept_greedy_args_t a = {.tree = {.n_trees = 1, .n_nodes = 5, .tree_indptr = indptr, .parent = parent},
                                      .tokens = tokens, .logits_dtype = DECO_DTYPE_F32, .logits = logits, .vocab = 3,
                                      .out = {.path = path, .accept_len = &len, .bonus = &bonus}};
  cr_assert_eq(deco_tree_accept_greedy(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(len, 3);
  cr_assert(path[0] == 0 && path[1] == 1 && path[2] == 4, "path %d %d %d", path[0], path[1], path[2]);
  cr_assert_eq(bonus, 0, "bonus = argmax of an all-zero row = lowest id");
  deco_ctx_destroy(ctx);
}

/* ---- non-finite logits ---- */

/* Greedy reads the rows of the root and of every node whose path matches:
 * the flag names the smallest such row holding a NaN or an infinity, and
 * no other row. */
Test(accept_greedy, flags_non_finite_rows_it_reads) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t indptr[2] = {0, 4}, parent[4] = {-1, 0, 0, 1}, tokens[4] = {0, 1, 2, 0};
  float logits[4 * 3] = {0, 1, 0, /* root -> 1 */ NAN, 0, 5, /* node 1: read, NaN skipped -> 2 */
                         INFINITY, 0, 0, /* node 2: not read */ 0, 0, 0};
  int32_t path[DECO_TREE_MAX_NODES], len, bonus, nonfinite = -7;
  deco_tree_accept_greedy_args_t a = {.tree = {.n_trees = 1, .n_nodes = 4, .tree_indptr = indptr, .parent = parent},
                                      .tokens = tokens, .logits_dtype = DECO_DTYPE_F32, .logits = logits, .vocab = 3,
                                      .out = {.path = path, .accept_len = &len, .bonus = &bonus,
                                              .nonfinite = &nonfinite}};
  cr_assert_eq(deco_tree_accept_greedy(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(nonfinite, 2, "1 + node 1");
  cr_assert_eq(len, 2);
  cr_assert_eq(bonus, 2, "the argmax skips NaN");
  /* An infinity in the root's row; then every logit NaN. */
  logits[0] = -INFINITY;
  cr_assert_eq(deco_tree_accept_greedy(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(nonfinite, 1);
  for (int i = 0; i < 3; ++i) logits[i] = NAN;
  cr_assert_eq(deco_tree_accept_greedy(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(nonfinite, 1);
  cr_assert_eq(len, 1);
  cr_assert_eq(bonus, 0, "a row of NaN alone gives id 0");
  /* Finite rows everywhere that is read: the flag is written as 0. */
  float finite[4 * 3] = {0, 1, 0, 0, 0, 5, INFINITY, 0, 0, 0, 0, 0};
  a.logits = finite;
  nonfinite = -7;
  cr_assert_eq(deco_tree_accept_greedy(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(nonfinite, 0, "node 2's row is not read");
  deco_ctx_destroy(ctx);
}

/* Sampling ends the walk at the first row that is not finite: the path
 * stops there and the bonus is its largest logit (NaN skipped). */
Test(accept_sample, flags_non_finite_rows_and_stops) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t indptr[2] = {0, 3}, parent[3] = {-1, 0, 1}, tokens[3] = {0, 1, 2};
  /* The root gives token 1 all the mass (accepted for any uniform). */
  float logits[3 * 3] = {0, 100, 0, 0, INFINITY, 0, 0, 0, 0};
  uint64_t seed = 3;
  uint32_t offset = 0;
  int32_t path[DECO_TREE_MAX_NODES], len, bonus, nonfinite = -7;
  deco_tree_accept_sample_args_t a = {
      .tree = {.n_trees = 1, .n_nodes = 3, .tree_indptr = indptr, .parent = parent},
      .tokens = tokens, .logits_dtype = DECO_DTYPE_F32, .logits = logits, .vocab = 3, .temperature = 1.0f, .top_k = 0,
      .top_p = 1.0f, .draft_kind = DECO_DRAFT_DETERMINISTIC, .seed = &seed, .offset = &offset,
      .out = {.path = path, .accept_len = &len, .bonus = &bonus, .nonfinite = &nonfinite}};
  cr_assert_eq(deco_tree_accept_sample(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(nonfinite, 2);
  cr_assert_eq(len, 2);
  cr_assert(path[0] == 0 && path[1] == 1 && path[2] == -1);
  cr_assert_eq(bonus, 1, "the infinity is the largest logit");
  float nan_root[3 * 3] = {1, NAN, 0, 0, 0, 0, 0, 0, 0};
  a.logits = nan_root;
  cr_assert_eq(deco_tree_accept_sample(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(nonfinite, 1);
  cr_assert_eq(len, 1);
  cr_assert_eq(bonus, 0);
  float fine[3 * 3] = {0, 100, 0, 0, 0, 100, 0, 0, 0};
  a.logits = fine;
  nonfinite = -7;
  cr_assert_eq(deco_tree_accept_sample(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(nonfinite, 0);
  cr_assert_eq(len, 3);
  deco_ctx_destroy(ctx);
}

/* ---- argument validation ---- */

/* deco_tree_accept_sample's refusals in the order it checks them, each with
 * its status and exact message: every step fixes the argument the one
 * before it refused, starting from a struct where all of them are bad. */
static void expect_sample_refusal(deco_ctx_t *ctx, const deco_tree_accept_sample_args_t *a, deco_status_t want,
                                  const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "deco_tree_accept_sample: %s", what);
  deco_test_refused(NULL, deco_tree_accept_sample(ctx, a), want, msg);
}

Test(accept_args, sample_refusal_order_and_messages) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t indptr[2] = {0, 1}, parent[1] = {-1}, tokens[1] = {0};
  float logits[4] = {0}, q[4] = {0.25f, 0.25f, 0.25f, 0.25f};
  uint64_t seed = 1;
  uint32_t offset = 0;
  int32_t path[DECO_TREE_MAX_NODES], len, bonus;
  const deco_status_t bad = DECO_STATUS_INVALID_ARGUMENT, null = DECO_STATUS_NULL_POINTER,
                      unsup = DECO_STATUS_UNSUPPORTED;
  deco_tree_accept_sample_args_t a = DECO_TREE_ACCEPT_SAMPLE_ARGS_INIT;
  a.logits_dtype = DECO_DTYPE_F16;
  a.temperature = 0.0f;
  a.top_k = -1;
  a.top_p = 0.0f;
  a.draft_kind = (deco_draft_kind_t)7;
  deco_test_refused(NULL, deco_tree_accept_sample(NULL, &a), null, "deco_tree_accept_sample: ctx is NULL");
  expect_sample_refusal(ctx, NULL, null, "(a) is NULL");
  /* Each step: the refusal, then the fix that lets the next check run. */
#define STEP(want, what, fix)                   \
  do {                                          \
    expect_sample_refusal(ctx, &a, want, what); \
    fix;                                        \
  } while (0)
  STEP(bad, "t->n_trees = 0 outside [1, 1048576]", a.tree.n_trees = 1);
  STEP(bad, "t->n_nodes = 0 outside [1, 16777216]", a.tree.n_nodes = 1);
  STEP(null, "t->tree_indptr is NULL", a.tree.tree_indptr = indptr);
  STEP(null, "t->parent is NULL", a.tree.parent = parent);
  STEP(null, "a->tokens is NULL", a.tokens = tokens);
  STEP(unsup, "logits_dtype f16 is not supported (f32 or bf16)", a.logits_dtype = DECO_DTYPE_BF16);
  STEP(unsup, "logits_dtype bf16 is not supported on the CPU backend (f32 only)", a.logits_dtype = DECO_DTYPE_F32);
  STEP(bad, "vocab = 0 outside [1, 16777216]", a.vocab = 4);
  STEP(null, "logits is NULL", a.logits = logits);
  STEP(bad, "temperature = 0 must be finite and > 0", a.temperature = NAN);
  STEP(bad, "temperature = nan must be finite and > 0", a.temperature = INFINITY);
  STEP(bad, "temperature = inf must be finite and > 0", a.temperature = 0.5f);
  STEP(bad, "top_k = -1 must be >= 0", a.top_k = 2);
  STEP(bad, "top_p = 0 must be in (0, 1]", a.top_p = 1.5f);
  STEP(bad, "top_p = 1.5 must be in (0, 1]", a.top_p = 1.0f);
  STEP(bad, "draft_kind = 7 is not a draft kind", a.draft_kind = DECO_DRAFT_TREE_WITHOUT_REPLACEMENT);
  STEP(null, "draft_probs is NULL but draft_kind is not DETERMINISTIC", a.draft_probs = q);
  STEP(null, "a->seed is NULL", a.seed = &seed);
  STEP(null, "a->offset is NULL", a.offset = &offset);
  STEP(null, "o->path is NULL", a.out.path = path);
  STEP(null, "o->accept_len is NULL", a.out.accept_len = &len);
  STEP(null, "o->bonus is NULL", a.out.bonus = &bonus);
#undef STEP
  cr_assert_eq(deco_tree_accept_sample(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_ctx_destroy(ctx);
}

Test(accept_args, rejects_bad_arguments) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t indptr[2] = {0, 3}, parent[3] = {-1, 0, 0}, tokens[3] = {0, 1, 2};
  float logits[3 * 4] = {0}, q[3 * 4] = {0.25f, 0.25f, 0.25f, 0.25f};
  uint64_t seed = 1;
  uint32_t offset = 0;
  int32_t path[DECO_TREE_MAX_NODES], len, bonus;
  deco_tree_accept_sample_args_t ok = {.tree = {.n_trees = 1, .n_nodes = 3, .tree_indptr = indptr, .parent = parent},
                                       .tokens = tokens, .logits_dtype = DECO_DTYPE_F32, .logits = logits, .vocab = 4,
                                       .temperature = 1.0f, .top_k = 0, .top_p = 1.0f,
                                       .draft_kind = DECO_DRAFT_DETERMINISTIC, .draft_probs = NULL, .seed = &seed,
                                       .offset = &offset, .out = {.path = path, .accept_len = &len, .bonus = &bonus}};
  cr_assert_eq(deco_tree_accept_sample(ctx, &ok), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_tree_accept_sample_args_t a;
  /* Each case must write its own message: another op's failure is recorded
   * first, so a stale message cannot satisfy the check. */
#define EXPECT(field_stmt, status)                                                                 \
  do {                                                                                             \
    a = ok;                                                                                        \
    field_stmt;                                                                                    \
    cr_assert_eq(deco_tree_accept_greedy(ctx, NULL), DECO_STATUS_NULL_POINTER);                    \
    deco_status_t st_ = deco_tree_accept_sample(ctx, &a);                                          \
    cr_assert_eq(st_, status, "%s: got %s (%s)", #field_stmt, deco_status_string(st_), deco_last_error(ctx)); \
    cr_assert(strstr(deco_last_error(ctx), "deco_tree_accept_sample") != NULL, "%s: message '%s'",   \
              #field_stmt, deco_last_error(ctx));                                                  \
  } while (0)
  EXPECT(a.temperature = 0.0f, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT(a.temperature = NAN, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT(a.temperature = INFINITY, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT(a.top_k = -1, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT(a.top_p = 0.0f, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT(a.top_p = 1.5f, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT(a.top_p = NAN, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT(a.draft_kind = (deco_draft_kind_t)7, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT(a.draft_kind = DECO_DRAFT_CHAIN, DECO_STATUS_NULL_POINTER);
  EXPECT((a.draft_kind = DECO_DRAFT_CHAIN, a.draft_probs = q), DECO_STATUS_INVALID_ARGUMENT); /* two children */
  EXPECT(a.logits_dtype = DECO_DTYPE_BF16, DECO_STATUS_UNSUPPORTED);
  EXPECT(a.logits_dtype = DECO_DTYPE_F16, DECO_STATUS_UNSUPPORTED);
  EXPECT(a.vocab = 0, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT(a.seed = NULL, DECO_STATUS_NULL_POINTER);
  EXPECT(a.offset = NULL, DECO_STATUS_NULL_POINTER);
  EXPECT(a.out.path = NULL, DECO_STATUS_NULL_POINTER);
  EXPECT(a.out.bonus = NULL, DECO_STATUS_NULL_POINTER);
  EXPECT(a.logits = NULL, DECO_STATUS_NULL_POINTER);
  EXPECT(a.tokens = NULL, DECO_STATUS_NULL_POINTER);
  EXPECT(a.tree.n_trees = 0, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT(a.tree.n_nodes = 2, DECO_STATUS_INVALID_ARGUMENT); /* tree_indptr[1] = 3 > capacity */
  int32_t bad_parent[3] = {-1, 0, 2}, bad_root[3] = {0, 0, 0}, big_indptr[2] = {0, 257};
  EXPECT(a.tree.parent = bad_parent, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT(a.tree.parent = bad_root, DECO_STATUS_INVALID_ARGUMENT);
  EXPECT((a.tree.tree_indptr = big_indptr, a.tree.n_nodes = 300), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_tree_accept_sample(NULL, &ok), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_tree_accept_sample(ctx, NULL), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_tree_accept_sample_workspace_size(ctx, &ok), 0);

  deco_tree_accept_greedy_args_t g = {.tree = {.n_trees = 1, .n_nodes = 3, .tree_indptr = indptr, .parent = parent},
                                      .tokens = tokens, .logits_dtype = DECO_DTYPE_F32, .logits = logits, .vocab = 4,
                                      .out = {.path = path, .accept_len = &len, .bonus = &bonus}};
  cr_assert_eq(deco_tree_accept_greedy(ctx, &g), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  g.logits_dtype = DECO_DTYPE_BF16;
  cr_assert_eq(deco_tree_accept_greedy(ctx, &g), DECO_STATUS_UNSUPPORTED);
  g.logits_dtype = DECO_DTYPE_F32;
  g.tree.parent = bad_parent;
  cr_assert_eq(deco_tree_accept_greedy(ctx, &g), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_tree_accept_greedy_workspace_size(ctx, &g), 0);
  deco_ctx_destroy(ctx);
}

/* ---- the reference against the model, draw for draw ---- */

static void fill_probs(float *q, int V, uint64_t seed, uint32_t stream) {
  deco_test_fill_uniform(q, (size_t)V, seed, stream, -2.0f, 2.0f);
  double s = 0.0;
  for (int y = 0; y < V; ++y) s += (q[y] = expf(q[y]));
  for (int y = 0; y < V; ++y) q[y] = (float)(q[y] / s);
}

Test(accept_sample, reference_equals_model) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  const deco_draft_kind_t kinds[4] = {DECO_DRAFT_DETERMINISTIC, DECO_DRAFT_CHAIN, DECO_DRAFT_TREE_WITH_REPLACEMENT,
                                      DECO_DRAFT_TREE_WITHOUT_REPLACEMENT};
  const struct { float T; int k; float p; } filt[4] = {{1.0f, 0, 1.0f}, {0.7f, 5, 1.0f}, {1.3f, 0, 0.8f}, {1.0f, 9, 0.6f}};
  uint64_t s = 7;
  long compared = 0, accepted_total = 0;
  for (int ki = 0; ki < 4; ++ki)
    for (int fi = 0; fi < 4; ++fi) {
      const int B = 40, V = 37;
      batch_t b = {B, 0, V, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
      b.indptr = malloc((B + 1) * sizeof(int32_t));
      b.indptr[0] = 0;
      for (int t = 0; t < B; ++t) b.indptr[t + 1] = b.indptr[t] + 1 + rng_int(&s, 30);
      b.N = b.indptr[B];
      b.parent = malloc(b.N * sizeof(int32_t));
      b.tokens = malloc(b.N * sizeof(int32_t));
      b.logits = malloc((size_t)b.N * V * sizeof(float));
      b.q = malloc((size_t)b.N * V * sizeof(float));
      b.path = malloc((size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t));
      b.len = malloc(B * sizeof(int32_t));
      b.bonus = malloc(B * sizeof(int32_t));
      deco_test_fill_uniform(b.logits, (size_t)b.N * V, 11 + ki * 4 + fi, 0, -3.0f, 3.0f);
      for (int i = 0; i < b.N; ++i) fill_probs(b.q + (size_t)i * V, V, 99 + ki, (uint32_t)(i + 16 * fi));
      for (int t = 0; t < B; ++t) {
        int lo = b.indptr[t], n = b.indptr[t + 1] - lo;
        if (kinds[ki] == DECO_DRAFT_CHAIN)
          for (int i = 0; i < n; ++i) b.parent[lo + i] = i - 1;
        else
          random_tree(&s, n, 1 + rng_int(&s, 5), b.parent + lo);
        for (int i = 0; i < n; ++i) {
          int p = i ? b.parent[lo + i] : 0;
          /* favour likely tokens so paths grow; some out-of-range tokens */
          int r = rng_int(&s, 20);
          b.tokens[lo + i] = r == 0 ? V + 3 : (r < 12 ? argmax_low(b.logits + (size_t)(lo + p) * V, V) : rng_int(&s, V));
        }
      }
      uint64_t seed = 1234 + ki;
      uint32_t offset = (uint32_t)(fi * 1000);
      deco_tree_accept_sample_args_t a = {.tree = {.n_trees = B, .n_nodes = b.N, .tree_indptr = b.indptr,
                                                   .parent = b.parent},
                                          .tokens = b.tokens, .logits_dtype = DECO_DTYPE_F32, .logits = b.logits,
                                          .vocab = V, .temperature = filt[fi].T, .top_k = filt[fi].k,
                                          .top_p = filt[fi].p, .draft_kind = kinds[ki],
                                          .draft_probs = kinds[ki] == DECO_DRAFT_DETERMINISTIC ? NULL : b.q,
                                          .seed = &seed, .offset = &offset,
                                          .out = {.path = b.path, .accept_len = b.len, .bonus = b.bonus}};
      cr_assert_eq(deco_tree_accept_sample(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
      for (int t = 0; t < B; ++t) {
        int lo = b.indptr[t], n = b.indptr[t + 1] - lo;
        model_args_t m = {V, filt[fi].T, filt[fi].k, filt[fi].p, kinds[ki], seed, offset, (uint32_t)t};
        int32_t path[DECO_TREE_MAX_NODES], bonus;
        double margin = 1.0;
        int len = model_walk(&m, n, b.parent + lo, b.tokens + lo, b.logits + (size_t)lo * V, b.q + (size_t)lo * V,
                             MODEL_CORRECT, path, &bonus, &margin);
        cr_assert_eq(b.len[t], len, "kind %d filter %d tree %d: accept_len %d vs model %d", ki, fi, t, b.len[t], len);
        for (int d = 0; d < len; ++d) cr_assert_eq(b.path[t * DECO_TREE_MAX_NODES + d], path[d]);
        cr_assert_eq(b.bonus[t], bonus, "kind %d filter %d tree %d: bonus %d vs model %d", ki, fi, t, b.bonus[t], bonus);
        compared++;
        accepted_total += len - 1;
      }
      batch_free(&b);
    }
  printf("reference vs model: %ld trees identical, %ld drafts accepted\n", compared, accepted_total);
  cr_assert(accepted_total > compared / 2);
  deco_ctx_destroy(ctx);
}

Test(accept_sample, top_k_one_is_greedy) {
  /* With top_k = 1 the target is a point mass at the argmax: deterministic
   * drafts are accepted exactly when greedy accepts them. */
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  batch_t b = make_greedy_batch(555, 23, 6, 50);
  /* Sampling takes the first accepted child while greedy looks ahead for the
   * longest path: they agree when no two siblings carry the same token, so
   * duplicates get an out-of-range token (never matched, never accepted). */
  for (int t = 0; t < b.B; ++t) {
    int lo = b.indptr[t], n = b.indptr[t + 1] - lo;
    for (int i = 2; i < n; ++i)
      for (int j = 1; j < i; ++j)
        if (b.parent[lo + j] == b.parent[lo + i] && b.tokens[lo + j] == b.tokens[lo + i]) b.tokens[lo + i] = b.V + 1;
  }
  deco_tree_accept_greedy_args_t g = greedy_args(&b);
  cr_assert_eq(deco_tree_accept_greedy(ctx, &g), DECO_STATUS_SUCCESS);
  int32_t *path = malloc((size_t)b.B * DECO_TREE_MAX_NODES * sizeof(int32_t)), len[23], bonus[23];
  uint64_t seed = 3;
  uint32_t offset = 17;
  deco_tree_accept_sample_args_t a = {.tree = {.n_trees = b.B, .n_nodes = b.N, .tree_indptr = b.indptr,
                                               .parent = b.parent},
                                      .tokens = b.tokens, .logits_dtype = DECO_DTYPE_F32, .logits = b.logits,
                                      .vocab = b.V, .temperature = 0.9f, .top_k = 1, .top_p = 1.0f,
                                      .draft_kind = DECO_DRAFT_DETERMINISTIC, .draft_probs = NULL, .seed = &seed,
                                      .offset = &offset, .out = {.path = path, .accept_len = len, .bonus = bonus}};
  cr_assert_eq(deco_tree_accept_sample(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_test_compare_i32("accept_len", len, b.len, 23), 0);
  cr_assert_eq(deco_test_compare_i32("bonus", bonus, b.bonus, 23), 0);
  cr_assert_eq(deco_test_compare_i32("path", path, b.path, (size_t)23 * DECO_TREE_MAX_NODES), 0);
  free(path);
  batch_free(&b);
  deco_ctx_destroy(ctx);
}

/* ---- losslessness ---- */

#define SV 12          /* vocabulary of the statistical cases */
#define SCTX 4913      /* contexts up to three tokens: (SV+1)^3 + ... bounded by 17^3 */
#define N_TRIALS 100000
#define N_CASES 9

/* The synthetic target and draft models: rows per context (token sequence
 * after the root, at most three tokens). */
static float g_logit[SCTX][SV], g_q[SCTX][SV];
static int g_models_ready;

static int ctx_child(int ctx_id, int x) { return ctx_id * (SV + 1) + x + 1; }

static void models_init(void) {
  if (g_models_ready) return;
  for (int c = 0; c < SCTX; ++c) {
    deco_test_fill_uniform(g_logit[c], SV, 2024, (uint32_t)c, -1.5f, 1.5f);
    fill_probs(g_q[c], SV, 4048, (uint32_t)c);
    /* q leans towards p but differs from it */
    double s = 0.0;
    for (int y = 0; y < SV; ++y) s += (g_q[c][y] = 0.5f * g_q[c][y] + 0.5f * expf(g_logit[c][y]));
    for (int y = 0; y < SV; ++y) g_q[c][y] = (float)(g_q[c][y] / s);
  }
  g_models_ready = 1;
}

static int draw_from(const float *q, const unsigned char *excl, double u) {
  double tot = 0.0;
  for (int y = 0; y < SV; ++y) tot += excl[y] ? 0.0 : q[y];
  double thr = u * tot, cum = 0.0;
  int last = 0;
  for (int y = 0; y < SV; ++y) {
    if (excl[y]) continue;
    last = y;
    cum += q[y];
    if (cum > thr) return y;
  }
  return last;
}

enum shape { SHAPE_CHAIN, SHAPE_TREE, SHAPE_DET };

/* Builds the trial's tree: its contexts, tokens, logits and q rows. Chain:
 * 0-1-2-3 drawn from q. Tree: root with 3 children, each with 2, drawn from q
 * (with or without replacement). Deterministic: the same shape with each
 * node's children the top-ranked tokens of q (fixed, no randomness). */
static int build_trial(enum shape sh, int without, uint64_t seed, uint32_t trial, int32_t *parent, int32_t *tok,
                       int *ctxs) {
  static const int32_t chain_par[4] = {-1, 0, 1, 2};
  static const int32_t tree_par[10] = {-1, 0, 0, 0, 1, 1, 2, 2, 3, 3};
  int n = sh == SHAPE_CHAIN ? 4 : 10;
  memcpy(parent, sh == SHAPE_CHAIN ? chain_par : tree_par, n * sizeof(int32_t));
  ctxs[0] = 0;
  tok[0] = 0;
  unsigned char excl[10][SV];
  memset(excl, 0, sizeof excl);
  for (int i = 1; i < n; ++i) {
    int p = parent[i];
    const float *q = g_q[ctxs[p]];
    int x;
    if (sh == SHAPE_DET) {
      /* best remaining q token, exclusion marks what siblings took */
      x = -1;
      for (int y = 0; y < SV; ++y)
        if (!excl[p][y] && (x < 0 || q[y] > q[x])) x = y;
      excl[p][x] = 1;
    } else {
      double u = deco_philox_uniform(seed ^ 0xD1CEu, trial, 77, (uint32_t)i, 5);
      x = draw_from(q, excl[p], u);
      if (without) excl[p][x] = 1;
    }
    tok[i] = x;
    ctxs[i] = ctx_child(ctxs[p], x);
  }
  return n;
}

typedef struct scase {
  const char *name;
  enum shape sh;
  deco_draft_kind_t kind;
  float T;
  int k;
  float p;
} scase_t;

/* Runs N_TRIALS trials (by the op, or by the model with a broken rule) and
 * returns the chi-square of the joint law of the first two emitted tokens. */
static model_chi2_t run_case(deco_ctx_t *ctx, const scase_t *c, enum model_rule rule, int use_op, double alpha,
                             double *accept_mean) {
  models_init();
  const int BATCH = 10000;
  long *counts = calloc(SV * SV, sizeof(long));
  int32_t *indptr = malloc((BATCH + 1) * sizeof(int32_t));
  int32_t *parent = malloc(BATCH * 10 * sizeof(int32_t)), *tok = malloc(BATCH * 10 * sizeof(int32_t));
  int *ctxs = malloc(BATCH * 10 * sizeof(int));
  float *logits = malloc((size_t)BATCH * 10 * SV * sizeof(float)), *q = malloc((size_t)BATCH * 10 * SV * sizeof(float));
  int32_t *path = malloc((size_t)BATCH * DECO_TREE_MAX_NODES * sizeof(int32_t)), *len = malloc(BATCH * sizeof(int32_t));
  int32_t *bonus = malloc(BATCH * sizeof(int32_t));
  int32_t *second = malloc(BATCH * sizeof(int32_t)), *first = malloc(BATCH * sizeof(int32_t));
  long acc = 0;
  uint64_t seed = 0x5eed0000u ^ ((uint64_t)c->sh << 8) ^ ((uint64_t)c->kind << 12) ^ ((uint64_t)c->k << 16) ^
                  ((uint64_t)(c->p * 1000.0f) << 24) ^ ((uint64_t)(c->T * 100.0f) << 40);
  for (int batch = 0; batch < N_TRIALS / BATCH; ++batch) {
    indptr[0] = 0;
    for (int t = 0; t < BATCH; ++t) {
      int lo = indptr[t];
      int n = build_trial(c->sh, c->kind == DECO_DRAFT_TREE_WITHOUT_REPLACEMENT, seed, (uint32_t)(batch * BATCH + t),
                          parent + lo, tok + lo, ctxs + lo);
      for (int i = 0; i < n; ++i) {
        memcpy(logits + (size_t)(lo + i) * SV, g_logit[ctxs[lo + i]], SV * sizeof(float));
        memcpy(q + (size_t)(lo + i) * SV, g_q[ctxs[lo + i]], SV * sizeof(float));
      }
      indptr[t + 1] = lo + n;
    }
    uint32_t offset = (uint32_t)batch * 2;
    if (use_op) {
      deco_tree_accept_sample_args_t a = {.tree = {.n_trees = BATCH, .n_nodes = indptr[BATCH], .tree_indptr = indptr,
                                                   .parent = parent},
                                          .tokens = tok, .logits_dtype = DECO_DTYPE_F32, .logits = logits, .vocab = SV,
                                          .temperature = c->T, .top_k = c->k, .top_p = c->p, .draft_kind = c->kind,
                                          .draft_probs = c->kind == DECO_DRAFT_DETERMINISTIC ? NULL : q, .seed = &seed,
                                          .offset = &offset, .out = {.path = path, .accept_len = len, .bonus = bonus}};
      cr_assert_eq(deco_tree_accept_sample(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    } else {
      for (int t = 0; t < BATCH; ++t) {
        int lo = indptr[t];
        model_args_t m = {SV, c->T, c->k, c->p, c->kind, seed, offset, (uint32_t)t};
        double margin = 1.0;
        len[t] = model_walk(&m, indptr[t + 1] - lo, parent + lo, tok + lo, logits + (size_t)lo * SV,
                            q + (size_t)lo * SV, rule, path + (size_t)t * DECO_TREE_MAX_NODES, &bonus[t], &margin);
      }
    }
    /* Second step for trials whose first token was the bonus: a one-node
     * tree at the context of that token; its bonus is the second token. */
    int n2 = 0;
    int32_t *idx2 = malloc(BATCH * sizeof(int32_t));
    for (int t = 0; t < BATCH; ++t) {
      const int32_t *pt = path + (size_t)t * DECO_TREE_MAX_NODES;
      int lo = indptr[t];
      acc += len[t] - 1;
      first[t] = len[t] >= 2 ? tok[lo + pt[1]] : bonus[t];
      if (len[t] >= 3) second[t] = tok[lo + pt[2]];
      else if (len[t] == 2) second[t] = bonus[t];
      else idx2[n2++] = t;
    }
    if (n2 > 0) {
      int32_t *ind2 = malloc((n2 + 1) * sizeof(int32_t)), *par2 = malloc(n2 * sizeof(int32_t));
      int32_t *tok2 = calloc(n2, sizeof(int32_t)), *len2 = malloc(n2 * sizeof(int32_t)), *b2 = malloc(n2 * sizeof(int32_t));
      int32_t *path2 = malloc((size_t)n2 * DECO_TREE_MAX_NODES * sizeof(int32_t));
      float *l2 = malloc((size_t)n2 * SV * sizeof(float));
      for (int i = 0; i < n2; ++i) {
        ind2[i] = i;
        par2[i] = -1;
        memcpy(l2 + (size_t)i * SV, g_logit[ctx_child(0, first[idx2[i]])], SV * sizeof(float));
      }
      ind2[n2] = n2;
      uint32_t off2 = offset + 1;
      deco_tree_accept_sample_args_t a2 = {.tree = {.n_trees = n2, .n_nodes = n2, .tree_indptr = ind2, .parent = par2},
                                           .tokens = tok2, .logits_dtype = DECO_DTYPE_F32, .logits = l2, .vocab = SV,
                                           .temperature = c->T, .top_k = c->k, .top_p = c->p,
                                           .draft_kind = DECO_DRAFT_DETERMINISTIC, .draft_probs = NULL, .seed = &seed,
                                           .offset = &off2, .out = {.path = path2, .accept_len = len2, .bonus = b2}};
      cr_assert_eq(deco_tree_accept_sample(ctx, &a2), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
      for (int i = 0; i < n2; ++i) second[idx2[i]] = b2[i];
      free(ind2), free(par2), free(tok2), free(len2), free(b2), free(path2), free(l2);
    }
    free(idx2);
    for (int t = 0; t < BATCH; ++t) counts[first[t] * SV + second[t]]++;
  }
  double expect[SV * SV], p0[SV], p1[SV];
  model_target_probs(g_logit[0], SV, c->T, c->k, c->p, p0);
  for (int x = 0; x < SV; ++x) {
    model_target_probs(g_logit[ctx_child(0, x)], SV, c->T, c->k, c->p, p1);
    for (int y = 0; y < SV; ++y) expect[x * SV + y] = p0[x] * p1[y];
  }
  model_chi2_t r = model_chi2_test(counts, expect, SV * SV, N_TRIALS, alpha);
  *accept_mean = (double)acc / N_TRIALS;
  free(counts), free(indptr), free(parent), free(tok), free(ctxs), free(logits), free(q), free(path), free(len);
  free(bonus), free(second), free(first);
  return r;
}

static const scase_t g_cases[N_CASES] = {
    {"chain, temperature", SHAPE_CHAIN, DECO_DRAFT_CHAIN, 0.8f, 0, 1.0f},
    {"chain, top-k 5", SHAPE_CHAIN, DECO_DRAFT_CHAIN, 1.0f, 5, 1.0f},
    {"chain, top-p 0.7", SHAPE_CHAIN, DECO_DRAFT_CHAIN, 1.0f, 0, 0.7f},
    {"tree with replacement, temperature", SHAPE_TREE, DECO_DRAFT_TREE_WITH_REPLACEMENT, 1.2f, 0, 1.0f},
    {"tree without replacement, top-k 6", SHAPE_TREE, DECO_DRAFT_TREE_WITHOUT_REPLACEMENT, 1.0f, 6, 1.0f},
    {"tree without replacement, top-p 0.8", SHAPE_TREE, DECO_DRAFT_TREE_WITHOUT_REPLACEMENT, 0.9f, 0, 0.8f},
    {"deterministic, temperature", SHAPE_DET, DECO_DRAFT_DETERMINISTIC, 1.0f, 0, 1.0f},
    {"deterministic, top-k 4", SHAPE_DET, DECO_DRAFT_DETERMINISTIC, 0.7f, 4, 1.0f},
    {"deterministic, top-p 0.75", SHAPE_DET, DECO_DRAFT_DETERMINISTIC, 1.0f, 0, 0.75f},
};

#define CASE_ALPHA (DECO_TEST_ALPHA / N_CASES)

static void lossless_case(int i) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  double acc;
  model_chi2_t r = run_case(ctx, &g_cases[i], MODEL_CORRECT, 1, CASE_ALPHA, &acc);
  printf("lossless [%s]: chi2 %.1f df %d p %.3g, outside support %ld, mean accepted drafts %.2f, "
         "detects a chi-square distance >= %.2e\n",
         g_cases[i].name, r.stat, r.df, r.pvalue, r.outside, acc, r.min_effect);
  cr_assert_eq(r.outside, 0, "%s: %ld draws outside the top-k/top-p support", g_cases[i].name, r.outside);
  cr_assert(r.pvalue > CASE_ALPHA, "%s: chi2 %.1f df %d p %.3g rejects the target law", g_cases[i].name, r.stat, r.df,
            r.pvalue);
  cr_assert(acc > 0.3, "%s: too few accepted drafts (%.2f) for the test to exercise acceptance", g_cases[i].name, acc);
  deco_ctx_destroy(ctx);
}

Test(accept_lossless, chain_temperature) { lossless_case(0); }
Test(accept_lossless, chain_top_k) { lossless_case(1); }
Test(accept_lossless, chain_top_p) { lossless_case(2); }
Test(accept_lossless, tree_with_replacement) { lossless_case(3); }
Test(accept_lossless, tree_without_replacement_top_k) { lossless_case(4); }
Test(accept_lossless, tree_without_replacement_top_p) { lossless_case(5); }
Test(accept_lossless, deterministic_temperature) { lossless_case(6); }
Test(accept_lossless, deterministic_top_k) { lossless_case(7); }
Test(accept_lossless, deterministic_top_p) { lossless_case(8); }

static void broken_case(int i, enum model_rule rule, const char *what) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  double acc;
  model_chi2_t r = run_case(ctx, &g_cases[i], rule, 0, CASE_ALPHA, &acc);
  printf("broken rule (%s) [%s]: chi2 %.1f df %d p %.3g, outside support %ld\n", what, g_cases[i].name, r.stat, r.df,
         r.pvalue, r.outside);
  cr_assert(r.pvalue < CASE_ALPHA || r.outside > 0, "%s on %s: the test failed to reject (p %.3g)", what,
            g_cases[i].name, r.pvalue);
  deco_ctx_destroy(ctx);
}

Test(accept_broken, no_residual_chain) { broken_case(0, MODEL_NO_RESIDUAL, "no residual update"); }
Test(accept_broken, no_residual_tree) { broken_case(3, MODEL_NO_RESIDUAL, "no residual update"); }
Test(accept_broken, no_residual_deterministic) { broken_case(6, MODEL_NO_RESIDUAL, "no residual update"); }
Test(accept_broken, q_ignored_chain) { broken_case(0, MODEL_IGNORE_Q, "q ignored"); }
Test(accept_broken, q_ignored_tree) { broken_case(5, MODEL_IGNORE_Q, "q ignored"); }
Test(accept_broken, bonus_wrong_node_chain) { broken_case(1, MODEL_BONUS_ROOT, "bonus from the root"); }
Test(accept_broken, bonus_wrong_node_deterministic) { broken_case(7, MODEL_BONUS_ROOT, "bonus from the root"); }

/* CHAIN with a node of several children (in the second tree): the first
 * pair found, scanning each later node against the earlier ones, is named. */
Test(accept_args, chain_with_a_fork_names_the_node_and_tree) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t indptr[3] = {0, 3, 7}, parent[7] = {-1, 0, 1, -1, 0, 1, 1}, tokens[7] = {0, 1, 2, 0, 1, 2, 3};
  float logits[7 * 4] = {0}, q[7 * 4];
  for (int i = 0; i < 7 * 4; ++i) q[i] = 0.25f;
  uint64_t seed = 1;
  uint32_t offset = 0;
  int32_t path[2 * DECO_TREE_MAX_NODES], len[2], bonus[2];
  deco_tree_accept_sample_args_t a = {.tree = {.n_trees = 2, .n_nodes = 7, .tree_indptr = indptr, .parent = parent},
                                      .tokens = tokens, .logits_dtype = DECO_DTYPE_F32, .logits = logits, .vocab = 4,
                                      .temperature = 1.0f, .top_k = 0, .top_p = 1.0f,
                                      .draft_kind = DECO_DRAFT_CHAIN, .draft_probs = q, .seed = &seed,
                                      .offset = &offset, .out = {.path = path, .accept_len = len, .bonus = bonus}};
  deco_test_refused(ctx, deco_tree_accept_sample(ctx, &a), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_tree_accept_sample: draft_kind CHAIN but node 1 of tree 1 has several children (2 and 3)");
  a.draft_kind = DECO_DRAFT_TREE_WITH_REPLACEMENT;
  cr_assert_eq(deco_tree_accept_sample(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_ctx_destroy(ctx);
}
