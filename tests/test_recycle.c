/* tests/test_recycle.c — Token Recycling on the CPU backend: tree templates
 * (the official file, bad files rejected with the file and line named), the
 * draft, top-k and update references against naive versions written here
 * (path walks, a full sort, sequential writes) on random inputs with many
 * ties and duplicate tokens, and the state file (round trip, corrupted and
 * mismatched files rejected with the file and field named, atomic save).
 */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/randtree.h"
#include "common/testutil.h"
#include "deco/deco.h"

static deco_ctx_t *cpu;
static void setup(void) { cpu = deco_test_cpu_ctx(); }
static void teardown(void) { deco_ctx_destroy(cpu); }

/* ================= templates ================= */

/* Splits a template text into paths (independently of the library). */
typedef struct paths {
  int n;
  int len[256];
  int32_t r[256][256];
} paths_t;

static void split_paths(const char *text, paths_t *p) {
  p->n = 0;
  const char *s = text;
  while (*s) {
    int len = 0;
    for (;;) {
      p->r[p->n][len++] = (int32_t)strtol(s, (char **)&s, 10);
      if (*s != ',') break;
      ++s;
    }
    p->len[p->n++] = len;
    while (*s == '\r' || *s == '\n') ++s;
  }
}

/* The path of node j read back through parent/rank, root first. */
static int path_of(const deco_tree_template_t *t, int j, int32_t *out) {
  int32_t rev[256];
  int n = 0;
  for (int v = j; v > 0; v = t->parent[v]) rev[n++] = t->rank[v];
  for (int i = 0; i < n; ++i) out[i] = rev[n - 1 - i];
  return n;
}

Test(recycle_template, official_file) {
  const char *rel = "fixtures/token_recycling_template_80.txt";
  deco_tree_template_t t;
  cr_assert_eq(deco_tree_template_load(deco_test_data_file(rel), &t), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  cr_assert_eq(t.n_nodes, 81);
  cr_expect_eq(t.max_depth, 6);
  cr_expect_eq(t.max_rank, 7);
  cr_assert_eq(deco_tree_validate(t.parent, t.n_nodes), DECO_STATUS_SUCCESS);
  int32_t depth[256];
  cr_assert_eq(deco_tree_depths(t.parent, t.n_nodes, depth), DECO_STATUS_SUCCESS);
  const int widths[7] = {1, 8, 21, 25, 15, 8, 3};
  int count[8] = {0};
  for (int j = 0; j < t.n_nodes; ++j) count[depth[j]]++;
  for (int d = 0; d < 7; ++d) cr_expect_eq(count[d], widths[d], "depth %d: %d nodes", d, count[d]);
  /* Breadth first: depths never decrease. */
  for (int j = 1; j < t.n_nodes; ++j) cr_expect_geq(depth[j], depth[j - 1]);
  /* Every node is the path on its line. */
  size_t size = 0;
  char *text = deco_test_read_file(deco_test_data_file(rel), &size);
  cr_assert_not_null(text);
  char *z = realloc(text, size + 1);
  z[size] = '\0';
  paths_t *p = malloc(sizeof *p);
  split_paths(z, p);
  cr_assert_eq(p->n, 80);
  for (int j = 1; j <= 80; ++j) {
    int32_t got[256];
    int n = path_of(&t, j, got);
    cr_expect_eq(n, p->len[j - 1], "line %d", j);
    cr_expect_eq(memcmp(got, p->r[j - 1], sizeof(int32_t) * (size_t)n), 0, "line %d", j);
  }
  /* The built-in default is the same tree. */
  deco_tree_template_t d;
  cr_assert_eq(deco_tree_template_default(&d), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_expect_eq(memcmp(&d, &t, sizeof t), 0, "built-in template differs from %s", rel);
  /* k = 8 suffices; with k = 7 line 8 ("7") is the first that does not fit. */
  cr_expect_eq(deco_tree_template_check_k(&t, 8, rel), DECO_STATUS_SUCCESS);
  cr_expect_eq(deco_tree_template_check_k(&t, 16, rel), DECO_STATUS_SUCCESS);
  DECO_TEST_REFUSED_NAMING(NULL, deco_tree_template_check_k(&t, 7, rel), DECO_STATUS_INVALID_ARGUMENT, NULL, rel,
                           "line 8:");
  cr_expect_eq(deco_tree_template_check_k(&t, 0, rel), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(deco_tree_template_check_k(&t, 17, rel), DECO_STATUS_INVALID_ARGUMENT);
  free(p);
  free(z);
}

Test(recycle_template, accepted_forms) {
  deco_tree_template_t t;
  /* CRLF, no final newline, a chain, wide ranks. */
  const char *ok[] = {"0\r\n1\r\n", "0\n1", "0\n0,0\n0,0,0\n", "15\n15,3\n", "0\n1\n0,0\n1,0\n0,1\n"};
  const int nodes[] = {3, 3, 4, 3, 6};
  for (int i = 0; i < 5; ++i) {
    cr_expect_eq(deco_tree_template_parse(ok[i], strlen(ok[i]), "ok.txt", &t), DECO_STATUS_SUCCESS, "case %d: %s", i,
                 deco_last_error(NULL));
    cr_expect_eq(t.n_nodes, nodes[i], "case %d", i);
  }
  /* Siblings of different parents interleaved at one depth: parents are
   * found by path, not by position. */
  const char *s = "0\n1\n1,0\n0,0\n";
  cr_assert_eq(deco_tree_template_parse(s, strlen(s), "ok.txt", &t), DECO_STATUS_SUCCESS);
  cr_expect_eq(t.parent[3], 2);
  cr_expect_eq(t.parent[4], 1);
  cr_expect_eq(t.rank[3], 0);
  /* 255 paths fit exactly. */
  char *big = malloc(256 * 8);
  size_t n = 0;
  for (int i = 0; i < 255; ++i) n += (size_t)sprintf(big + n, "%d\n", i);
  cr_expect_eq(deco_tree_template_parse(big, n, "big.txt", &t), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_expect_eq(t.n_nodes, 256);
  cr_expect_eq(t.max_rank, 254);
  free(big);
}

typedef struct bad_case {
  const char *text;
  const char *want; /* substring of the message after the file name */
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"", "empty template"},
    {"0\n\n1\n", "line 2: empty line"},
    {"\n", "line 1: empty line"},
    {"0\n1\na\n", "line 3, column 1"},
    {"0\n-1\n", "line 2, column 1: negative"},
    {"0\n0,-1\n", "line 2, column 3: negative"},
    {"0\n0,,1\n", "line 2, column 3"},
    {"0\n0,\n", "line 2, column 3"},
    {"0\n1 \n", "line 2, column 2"},
    {"0\n 1\n", "line 2, column 1"},
    {"0\n1.5\n", "line 2, column 2"},
    {"0\n1\n0,0\n2\n", "line 4: path of length 1 after one of length 2"},
    {"0,0\n", "line 1: the prefix of length 1"},
    {"0\n0,0,0\n", "line 2: the prefix of length 2"},
    {"0\n1\n0,0\n1,1,0\n", "line 4: the prefix of length 2"},
    {"0\n1\n0\n", "line 3: repeats the path of line 1"},
    {"0\n0,0\n1\n", "line 3: path of length 1 after one of length 2"},
    {"0\n0,1\n0,1\n", "line 3: repeats the path of line 2"},
    {"0\n99999999999\n", "line 2, column 1: rank larger"},
    {"0\n0x1\n", "line 2, column 2"},
    {"0\n\r\n", "line 2: empty line"},
};

Test(recycle_template, bad_templates_named_by_line) {
  deco_tree_template_t t;
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; ++i) {
    const char *s = bad_cases[i].text;
    DECO_TEST_REFUSED_NAMING(NULL, deco_tree_template_parse(s, strlen(s), "bad.txt", &t), DECO_STATUS_BAD_FORMAT, NULL,
                             "bad.txt: ", bad_cases[i].want);
  }
  /* A NUL byte inside a line. */
  const char nul[] = "0\n1\0\n";
  DECO_TEST_REFUSED_NAMING(NULL, deco_tree_template_parse(nul, sizeof nul - 1, "bad.txt", &t), DECO_STATUS_BAD_FORMAT,
                           NULL, "bad.txt: line 2, column 2", "0x00");
  /* 256 paths are one too many. */
  char *big = malloc(257 * 8);
  size_t n = 0;
  for (int i = 0; i < 256; ++i) n += (size_t)sprintf(big + n, "%d\n", i);
  DECO_TEST_REFUSED_NAMING(NULL, deco_tree_template_parse(big, n, "big.txt", &t), DECO_STATUS_BAD_FORMAT, NULL,
                           "big.txt: line 256", "more than 255 paths");
  free(big);
  /* A path of 256 ranks. */
  char *deep = malloc(256 * 2 + 2);
  n = 0;
  for (int i = 0; i < 256; ++i) n += (size_t)sprintf(deep + n, i ? ",0" : "0");
  DECO_TEST_REFUSED_NAMING(NULL, deco_tree_template_parse(deep, n, "deep.txt", &t), DECO_STATUS_BAD_FORMAT, NULL,
                           "deep.txt: line 1");
  free(deep);
  /* NULL arguments. */
  cr_expect_eq(deco_tree_template_parse(NULL, 3, "x", &t), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_tree_template_parse("0", 1, "x", NULL), DECO_STATUS_NULL_POINTER);
}

Test(recycle_template, files_named_in_errors) {
  char path[512];
  snprintf(path, sizeof path, "%s/tmpl_bad.txt", deco_test_tmpdir());
  const char *s = "0\n1\n1,5\n0,0,0\n";
  cr_assert_eq(deco_test_write_file(path, s, strlen(s)), 0);
  deco_tree_template_t t;
  DECO_TEST_REFUSED_NAMING(NULL, deco_tree_template_load(path, &t), DECO_STATUS_BAD_FORMAT, NULL, path, "line 4");
  snprintf(path, sizeof path, "%s/no_such_template.txt", deco_test_tmpdir());
  DECO_TEST_REFUSED_NAMING(NULL, deco_tree_template_load(path, &t), DECO_STATUS_IO_ERROR, NULL, path);
  DECO_TEST_REFUSED_NAMING(NULL, deco_tree_template_load(deco_test_tmpdir(), &t), DECO_STATUS_IO_ERROR, NULL,
                           deco_test_tmpdir());
  /* A good file loads. */
  snprintf(path, sizeof path, "%s/tmpl_ok.txt", deco_test_tmpdir());
  s = "0\n1\n0,0\n";
  cr_assert_eq(deco_test_write_file(path, s, strlen(s)), 0);
  cr_expect_eq(deco_tree_template_load(path, &t), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_expect_eq(t.n_nodes, 4);
}

/* A random breadth-first template with ranks < k and at most max_paths
 * paths, as text; also returned as paths. Level by level: every path of
 * the previous depth (the root first) gets up to 4 children of distinct
 * random ranks. */
static size_t random_template(uint64_t *s, int k, int max_paths, char *text, paths_t *p) {
  p->n = 0;
  size_t n = 0;
  int prev_lo = -1, prev_hi = 0; /* parents: paths [prev_lo, prev_hi), or the root when prev_lo < 0 */
  while (p->n < max_paths) {
    const int lo = p->n;
    for (int par = prev_lo; par < prev_hi && p->n < max_paths; ++par) {
      if (prev_lo >= 0 && par < 0) continue;
      int used[16] = {0};
      const int kids = prev_lo < 0 ? deco_test_rng_int(s, 1, k < 4 ? k : 4) : deco_test_rng_int(s, 0, k < 4 ? k : 4);
      for (int c = 0; c < kids && p->n < max_paths; ++c) {
        const int r = deco_test_rng_int(s, 0, k - 1);
        if (used[r]) continue;
        used[r] = 1;
        int len = 0;
        if (par >= 0) {
          memcpy(p->r[p->n], p->r[par], sizeof(int32_t) * (size_t)p->len[par]);
          len = p->len[par];
        }
        p->r[p->n][len++] = r;
        p->len[p->n] = len;
        for (int i = 0; i < len; ++i) n += (size_t)sprintf(text + n, i ? ",%d" : "%d", (int)p->r[p->n][i]);
        text[n++] = '\n';
        p->n++;
      }
      if (prev_lo < 0) break;
    }
    if (p->n == lo) break;
    prev_lo = lo;
    prev_hi = p->n;
  }
  text[n] = '\0';
  return n;
}

Test(recycle_template, random_templates_round_trip) {
  uint64_t s = 7;
  char *text = malloc(1 << 16);
  paths_t *p = malloc(sizeof *p);
  for (int it = 0; it < 200; ++it) {
    const int k = deco_test_rng_int(&s, 1, 16);
    size_t n = random_template(&s, k, deco_test_rng_int(&s, 1, 255), text, p);
    deco_tree_template_t t;
    cr_assert_eq(deco_tree_template_parse(text, n, "rand.txt", &t), DECO_STATUS_SUCCESS, "%s\n%s",
                 deco_last_error(NULL), text);
    cr_assert_eq(t.n_nodes, p->n + 1);
    cr_expect_eq(deco_tree_template_check_k(&t, k, "rand.txt"), DECO_STATUS_SUCCESS);
    for (int j = 1; j < t.n_nodes; ++j) {
      int32_t got[256];
      int len = path_of(&t, j, got);
      cr_assert_eq(len, p->len[j - 1]);
      cr_assert_eq(memcmp(got, p->r[j - 1], sizeof(int32_t) * (size_t)len), 0);
    }
  }
  free(text);
  free(p);
}

/* ================= draft ================= */

static void random_table(uint64_t *s, int32_t *table, int vocab, int k) {
  for (size_t i = 0; i < (size_t)vocab * k; ++i) table[i] = deco_test_rng_int(s, 0, vocab - 1);
}

TestSuite(recycle_ops, .init = setup, .fini = teardown);

Test(recycle_ops, draft_matches_path_walks) {
  uint64_t s = 11;
  char *text = malloc(1 << 16);
  paths_t *p = malloc(sizeof *p);
  for (int it = 0; it < 60; ++it) {
    const int k = it % 3 == 0 ? 1 : it % 3 == 1 ? 8 : 16;
    const int vocab = it % 2 ? 50 : 259;
    deco_tree_template_t t;
    if (it % 5 == 0 && k >= 8) {
      cr_assert_eq(deco_tree_template_default(&t), DECO_STATUS_SUCCESS);
      p->n = 80;
      for (int j = 1; j <= 80; ++j) p->len[j - 1] = path_of(&t, j, p->r[j - 1]);
    } else {
      size_t n = random_template(&s, k, deco_test_rng_int(&s, 1, 255), text, p);
      cr_assert_eq(deco_tree_template_parse(text, n, "rand.txt", &t), DECO_STATUS_SUCCESS);
    }
    const int B = deco_test_rng_int(&s, 1, 6), n = t.n_nodes;
    int32_t *table = malloc(sizeof(int32_t) * (size_t)vocab * k);
    random_table(&s, table, vocab, k);
    int32_t roots[6], *out = malloc(sizeof(int32_t) * (size_t)B * n);
    for (int b = 0; b < B; ++b) roots[b] = deco_test_rng_int(&s, 0, vocab - 1);
    if (B > 1) roots[B - 1] = roots[0]; /* requests may share a root */
    for (int i = 0; i < B * n; ++i) out[i] = -99;
    deco_recycle_draft_args_t a = {.n_trees = B, .n_nodes = n, .roots = roots, .parent = t.parent, .rank = t.rank,
                                   .table = table, .vocab = vocab, .k = k, .tokens = out};
    cr_assert_eq(deco_recycle_draft(cpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
    for (int b = 0; b < B; ++b) {
      cr_assert_eq(out[(size_t)b * n], roots[b]);
      for (int j = 1; j < n; ++j) {
        int32_t tok = roots[b];
        for (int d = 0; d < p->len[j - 1]; ++d) tok = table[(size_t)tok * k + p->r[j - 1][d]];
        cr_assert_eq(out[(size_t)b * n + j], tok, "it %d tree %d node %d", it, b, j);
      }
    }
    free(table);
    free(out);
  }
  free(text);
  free(p);
}

Test(recycle_ops, draft_cold_table_and_bad_input) {
  deco_tree_template_t t;
  cr_assert_eq(deco_tree_template_default(&t), DECO_STATUS_SUCCESS);
  deco_recycler_t *r = NULL;
  cr_assert_eq(deco_recycler_create(cpu, 100, 8, &r), DECO_STATUS_SUCCESS);
  int32_t roots[2] = {42, 7}, out[2 * 81];
  deco_recycle_draft_args_t a = {.n_trees = 2, .n_nodes = t.n_nodes, .roots = roots, .parent = t.parent, .rank = t.rank,
                                 .table = deco_recycler_table(r), .vocab = 100, .k = 8, .tokens = out};
  cr_assert_eq(deco_recycle_draft(cpu, &a), DECO_STATUS_SUCCESS);
  /* A cold (zero) table drafts token 0 everywhere below the root. */
  for (int b = 0; b < 2; ++b)
    for (int j = 0; j < 81; ++j) cr_expect_eq(out[b * 81 + j], j ? 0 : roots[b]);

  deco_recycle_draft_args_t bad = a;
  bad.k = 7; /* the template's rank 7 does not fit */
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycle_draft(cpu, &bad), DECO_STATUS_INVALID_ARGUMENT, NULL, "rank[8]");
  bad = a;
  roots[1] = 100;
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycle_draft(cpu, &bad), DECO_STATUS_INVALID_ARGUMENT, NULL, "roots[1]");
  roots[1] = 7;
  int32_t parent2[3] = {-1, 0, 2}, rank2[3] = {-1, 0, 0};
  bad.n_nodes = 3;
  bad.parent = parent2;
  bad.rank = rank2;
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycle_draft(cpu, &bad), DECO_STATUS_INVALID_ARGUMENT, NULL, "parent[2]");
  int32_t table[4] = {1, 5, 0, 1}; /* vocab 2, k 2: entry [0][1] = 5 is out of range */
  int32_t parent3[3] = {-1, 0, 0}, rank3[3] = {-1, 0, 1}, root0[1] = {0}, out3[3];
  deco_recycle_draft_args_t t3 = {.n_trees = 1, .n_nodes = 3, .roots = root0, .parent = parent3, .rank = rank3,
                                  .table = table, .vocab = 2, .k = 2, .tokens = out3};
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycle_draft(cpu, &t3), DECO_STATUS_INVALID_ARGUMENT, NULL, "table[0][1] = 5");
  /* Host-side arguments. */
  bad = a;
  bad.n_nodes = 0;
  cr_expect_eq(deco_recycle_draft(cpu, &bad), DECO_STATUS_INVALID_ARGUMENT);
  bad.n_nodes = 257;
  cr_expect_eq(deco_recycle_draft(cpu, &bad), DECO_STATUS_INVALID_ARGUMENT);
  bad = a;
  bad.k = 17;
  cr_expect_eq(deco_recycle_draft(cpu, &bad), DECO_STATUS_INVALID_ARGUMENT);
  bad = a;
  bad.tokens = NULL;
  cr_expect_eq(deco_recycle_draft(cpu, &bad), DECO_STATUS_NULL_POINTER);
  bad = a;
  bad.table = NULL;
  cr_expect_eq(deco_recycle_draft(cpu, &bad), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_recycle_draft(cpu, NULL), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_recycle_draft(NULL, &a), DECO_STATUS_NULL_POINTER);
  deco_recycler_destroy(r);
}

/* ================= top-k ================= */

/* Naive order: NaN below everything, then value descending (-0 == +0), then id. */
static const float *g_row;
static int cmp_ids(const void *pa, const void *pb) {
  const int a = *(const int *)pa, b = *(const int *)pb;
  const float x = g_row[a], y = g_row[b];
  const int xn = isnan(x), yn = isnan(y);
  if (xn != yn) return xn ? 1 : -1;
  if (!xn && x != y) return x > y ? -1 : 1;
  return a < b ? -1 : a > b;
}

static void naive_topk(const float *row, int V, int k, int32_t *ids) {
  int *idx = malloc(sizeof(int) * (size_t)V);
  for (int i = 0; i < V; ++i) idx[i] = i;
  g_row = row;
  qsort(idx, (size_t)V, sizeof(int), cmp_ids);
  for (int j = 0; j < k; ++j) ids[j] = idx[j];
  free(idx);
}

/* Logits of one of several kinds: 0 continuous, 1 a few levels (many ties),
 * 2 all equal, 3 signed zeros, 4 with NaN and infinities. */
static void fill_logits(uint64_t *s, float *x, size_t n, int kind) {
  for (size_t i = 0; i < n; ++i) {
    const float u = (float)(deco_test_rng_next(s) >> 40) / (float)(1 << 24);
    switch (kind) {
    case 0: x[i] = 8.0f * u - 4.0f; break;
    case 1: x[i] = floorf(u * 4.0f) - 2.0f; break;
    case 2: x[i] = 0.5f; break;
    case 3: x[i] = u < 0.5f ? -0.0f : u < 0.9f ? 0.0f : -1.0f; break;
    default: {
      const int r = (int)(u * 10.0f);
      x[i] = r == 0 ? NAN : r == 1 ? INFINITY : r == 2 ? -INFINITY : floorf(u * 6.0f);
    }
    }
  }
}

Test(recycle_ops, topk_matches_sort_with_ties) {
  uint64_t s = 5;
  const int Vs[] = {1, 2, 7, 16, 259, 512, 1001};
  for (size_t vi = 0; vi < sizeof Vs / sizeof Vs[0]; ++vi)
    for (int kind = 0; kind < 5; ++kind)
      for (int ki = 0; ki < 7; ++ki) {
        const int ks[7] = {1, 2, 3, 4, 8, 13, 16}, k = ks[ki], V = Vs[vi];
        if (k > V) continue;
        const int rows = 5;
        float *x = malloc(sizeof(float) * (size_t)rows * V), *vals = malloc(sizeof(float) * rows * k);
        int32_t *ids = malloc(sizeof(int32_t) * rows * k), want[16];
        fill_logits(&s, x, (size_t)rows * V, kind);
        deco_topk_rows_args_t a = {.n_rows = rows, .vocab = V, .k = k, .dtype = DECO_DTYPE_F32, .logits = x,
                                   .row_count = NULL, .ids = ids, .values = vals};
        cr_assert_eq(deco_topk_rows(cpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
        for (int r = 0; r < rows; ++r) {
          naive_topk(x + (size_t)r * V, V, k, want);
          for (int j = 0; j < k; ++j) {
            cr_assert_eq(ids[r * k + j], want[j], "V %d k %d kind %d row %d rank %d", V, k, kind, r, j);
            const float v = vals[r * k + j], w = x[(size_t)r * V + want[j]];
            cr_assert(memcmp(&v, &w, sizeof v) == 0, "value V %d k %d kind %d row %d rank %d", V, k, kind, r, j);
          }
        }
        free(x);
        free(vals);
        free(ids);
      }
}

Test(recycle_ops, topk_row_count) {
  uint64_t s = 9;
  const int rows = 6, V = 300, k = 8;
  float x[6 * 300];
  int32_t ids[6 * 8];
  fill_logits(&s, x, sizeof x / sizeof x[0], 1);
  for (int i = 0; i < rows * k; ++i) ids[i] = -7;
  int32_t count = 4;
  deco_topk_rows_args_t a = {.n_rows = rows, .vocab = V, .k = k, .dtype = DECO_DTYPE_F32, .logits = x,
                             .row_count = &count, .ids = ids, .values = NULL};
  cr_assert_eq(deco_topk_rows(cpu, &a), DECO_STATUS_SUCCESS);
  for (int r = 0; r < rows; ++r) {
    int32_t want[8];
    naive_topk(x + r * V, V, k, want);
    for (int j = 0; j < k; ++j) cr_expect_eq(ids[r * k + j], r < count ? want[j] : -7, "row %d", r);
  }
  cr_expect_eq(deco_topk_rows_workspace_size(cpu, &a), 0);
}

/* ================= update ================= */

/* A random ragged batch of node_lo + sum(sizes) nodes; the first node_lo
 * and the capacity past the end hold garbage. Tokens come from a small
 * range, so many nodes share one. */
typedef struct batch {
  int B, n_nodes;
  int32_t indptr[65];
  int32_t *tokens, *topk;
} batch_t;

static void random_batch(uint64_t *s, batch_t *bt, int B, int max_tree, int vocab, int k, int distinct) {
  bt->B = B;
  bt->indptr[0] = deco_test_rng_int(s, 0, 3);
  for (int b = 0; b < B; ++b) bt->indptr[b + 1] = bt->indptr[b] + deco_test_rng_int(s, 1, max_tree);
  bt->n_nodes = bt->indptr[B] + deco_test_rng_int(s, 0, 3);
  bt->tokens = malloc(sizeof(int32_t) * (size_t)bt->n_nodes);
  bt->topk = malloc(sizeof(int32_t) * (size_t)bt->n_nodes * k);
  for (int j = 0; j < bt->n_nodes; ++j) {
    const int inside = j >= bt->indptr[0] && j < bt->indptr[B];
    bt->tokens[j] = inside ? deco_test_rng_int(s, 0, distinct - 1) * (vocab / distinct) : -5;
    for (int c = 0; c < k; ++c) bt->topk[(size_t)j * k + c] = inside ? deco_test_rng_int(s, 0, vocab - 1) : vocab + 3;
  }
}

static void naive_update(const batch_t *bt, int k, int32_t *table) {
  for (int b = 0; b < bt->B; ++b)
    for (int j = bt->indptr[b]; j < bt->indptr[b + 1]; ++j)
      for (int c = 0; c < k; ++c) table[(size_t)bt->tokens[j] * k + c] = bt->topk[(size_t)j * k + c];
}

Test(recycle_ops, update_matches_sequential_writes) {
  uint64_t s = 3;
  for (int it = 0; it < 80; ++it) {
    const int k = deco_test_rng_int(&s, 1, 16), vocab = it % 2 ? 97 : 1000, B = deco_test_rng_int(&s, 1, 64);
    batch_t bt;
    random_batch(&s, &bt, B, it % 3 ? 81 : 256, vocab, k, deco_test_rng_int(&s, 1, 12));
    int32_t *table = malloc(sizeof(int32_t) * (size_t)vocab * k), *want = malloc(sizeof(int32_t) * (size_t)vocab * k);
    random_table(&s, table, vocab, k);
    memcpy(want, table, sizeof(int32_t) * (size_t)vocab * k);
    naive_update(&bt, k, want);
    deco_recycle_update_args_t a = {.n_trees = B, .n_nodes = bt.n_nodes, .tree_indptr = bt.indptr, .tokens = bt.tokens,
                                    .topk = bt.topk, .table = table, .vocab = vocab, .k = k};
    cr_assert_eq(deco_recycle_update(cpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
    cr_assert_eq(memcmp(table, want, sizeof(int32_t) * (size_t)vocab * k), 0, "it %d", it);
    free(table);
    free(want);
    free(bt.tokens);
    free(bt.topk);
  }
}

Test(recycle_ops, update_later_node_wins) {
  /* Two requests. Token 4 is carried by request 0's nodes 1 and 2 and by
   * request 1's node 0: request 1's row wins. Token 2 by request 0's root
   * and request 1's node 1: again the later one. Within request 0, node 2
   * would win over node 1 (breadth-first order). */
  int32_t indptr[3] = {0, 3, 5}, tokens[5] = {2, 4, 4, 4, 2};
  int32_t topk[5][2] = {{1, 1}, {2, 2}, {3, 3}, {5, 5}, {6, 6}};
  int32_t table[8][2] = {{0}};
  deco_recycle_update_args_t a = {.n_trees = 2, .n_nodes = 5, .tree_indptr = indptr, .tokens = tokens,
                                  .topk = &topk[0][0], .table = &table[0][0], .vocab = 8, .k = 2};
  cr_assert_eq(deco_recycle_update(cpu, &a), DECO_STATUS_SUCCESS);
  cr_expect_eq(table[4][0], 5);
  cr_expect_eq(table[2][0], 6);
  cr_expect_eq(table[0][0], 0);
  /* One request: nodes 1 and 2 both carry token 3; node 2 wins. */
  int32_t indptr1[2] = {0, 3}, tokens1[3] = {7, 3, 3};
  deco_recycle_update_args_t b = {.n_trees = 1, .n_nodes = 3, .tree_indptr = indptr1, .tokens = tokens1,
                                  .topk = &topk[0][0], .table = &table[0][0], .vocab = 8, .k = 2};
  cr_assert_eq(deco_recycle_update(cpu, &b), DECO_STATUS_SUCCESS);
  cr_expect_eq(table[3][0], 3);
  cr_expect_eq(table[7][0], 1);
}

Test(recycle_ops, update_rejects_bad_input_untouched) {
  int32_t indptr[3] = {0, 2, 3}, tokens[3] = {1, 2, 3}, topk[3][2] = {{1, 2}, {3, 0}, {2, 2}};
  int32_t table[4][2] = {{9, 9}, {9, 9}, {9, 9}, {9, 9}}, copy[4][2];
  memcpy(copy, table, sizeof table);
  deco_recycle_update_args_t a = {.n_trees = 2, .n_nodes = 3, .tree_indptr = indptr, .tokens = tokens,
                                  .topk = &topk[0][0], .table = &table[0][0], .vocab = 4, .k = 2};
  topk[2][1] = 4;
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycle_update(cpu, &a), DECO_STATUS_INVALID_ARGUMENT, NULL, "topk[2][1] = 4");
  topk[2][1] = 2;
  tokens[1] = -1;
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycle_update(cpu, &a), DECO_STATUS_INVALID_ARGUMENT, NULL, "tokens[1] = -1");
  tokens[1] = 2;
  indptr[1] = 4;
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycle_update(cpu, &a), DECO_STATUS_INVALID_ARGUMENT, NULL, "tree 0");
  indptr[1] = 2;
  indptr[0] = -1;
  cr_expect_eq(deco_recycle_update(cpu, &a), DECO_STATUS_INVALID_ARGUMENT);
  indptr[0] = 0;
  cr_expect_eq(memcmp(copy, table, sizeof table), 0, "a failed update wrote to the table");
  deco_recycle_update_args_t b = a;
  b.k = 0;
  cr_expect_eq(deco_recycle_update(cpu, &b), DECO_STATUS_INVALID_ARGUMENT);
  b = a;
  b.tree_indptr = NULL;
  cr_expect_eq(deco_recycle_update(cpu, &b), DECO_STATUS_NULL_POINTER);
  b = a;
  b.n_trees = 0;
  cr_expect_eq(deco_recycle_update(cpu, &b), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(deco_recycle_update_workspace_size(cpu, &a), 0);
  cr_expect_eq(deco_recycle_update(cpu, &a), DECO_STATUS_SUCCESS);
  cr_expect_eq(table[3][0], 2);
}

/* One speculative-step cycle on the reference: logits -> top-k -> update ->
 * the next draft reads what the update wrote. */
Test(recycle_ops, topk_update_draft_cycle) {
  uint64_t s = 21;
  const int V = 259, k = 8;
  deco_tree_template_t t;
  cr_assert_eq(deco_tree_template_default(&t), DECO_STATUS_SUCCESS);
  deco_recycler_t *r = NULL;
  cr_assert_eq(deco_recycler_create(cpu, V, k, &r), DECO_STATUS_SUCCESS);
  int32_t roots[2] = {5, 9}, tokens[2 * 81], topk[2 * 81 * 8], indptr[3] = {0, 81, 162};
  float *logits = malloc(sizeof(float) * 162 * V);
  for (int step = 0; step < 3; ++step) {
    deco_recycle_draft_args_t d = {.n_trees = 2, .n_nodes = 81, .roots = roots, .parent = t.parent, .rank = t.rank,
                                   .table = deco_recycler_table(r), .vocab = V, .k = k, .tokens = tokens};
    cr_assert_eq(deco_recycle_draft(cpu, &d), DECO_STATUS_SUCCESS);
    fill_logits(&s, logits, (size_t)162 * V, step % 2);
    deco_topk_rows_args_t tk = {.n_rows = 162, .vocab = V, .k = k, .dtype = DECO_DTYPE_F32, .logits = logits,
                                .row_count = NULL, .ids = topk, .values = NULL};
    cr_assert_eq(deco_topk_rows(cpu, &tk), DECO_STATUS_SUCCESS);
    deco_recycle_update_args_t u = {.n_trees = 2, .n_nodes = 162, .tree_indptr = indptr, .tokens = tokens, .topk = topk,
                                    .table = deco_recycler_table(r), .vocab = V, .k = k};
    cr_assert_eq(deco_recycle_update(cpu, &u), DECO_STATUS_SUCCESS);
    /* Each root's row now holds the top-k of the last node carrying that
     * token: the root's own logits unless a later node repeats it. */
    for (int b = 0; b < 2; ++b) {
      int last = -1;
      for (int j = 0; j < 162; ++j)
        if (tokens[j] == roots[b]) last = j;
      cr_assert_geq(last, b * 81);
      cr_expect_eq(memcmp(deco_recycler_table(r) + roots[b] * k, topk + last * k, sizeof(int32_t) * k), 0);
    }
    roots[0] = topk[0];
    roots[1] = topk[81 * k];
  }
  free(logits);
  deco_recycler_destroy(r);
}

/* ================= the state file ================= */

static uint64_t fnv(const unsigned char *p, size_t n) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}
static void le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

/* A state file image written here from the format description. */
static unsigned char *make_state(int vocab, int k, const int32_t *ids, size_t *size) {
  const size_t body = 24 + 4 * (size_t)vocab * k;
  unsigned char *p = malloc(body + 8);
  memcpy(p, "DECORECY", 8);
  le32(p + 8, 1);
  le32(p + 12, (uint32_t)vocab);
  le32(p + 16, (uint32_t)k);
  le32(p + 20, 0);
  for (size_t i = 0; i < (size_t)vocab * k; ++i) le32(p + 24 + 4 * i, (uint32_t)ids[i]);
  const uint64_t h = fnv(p, body);
  le32(p + body, (uint32_t)h);
  le32(p + body + 4, (uint32_t)(h >> 32));
  *size = body + 8;
  return p;
}
static void reseal(unsigned char *p, size_t size) {
  const uint64_t h = fnv(p, size - 8);
  le32(p + size - 8, (uint32_t)h);
  le32(p + size - 4, (uint32_t)(h >> 32));
}

static int32_t *get_table(deco_recycler_t *r) {
  const size_t n = (size_t)deco_recycler_vocab(r) * deco_recycler_k(r);
  int32_t *t = malloc(sizeof(int32_t) * n);
  cr_assert_eq(deco_memcpy(cpu, t, deco_recycler_table(r), sizeof(int32_t) * n, DECO_COPY_CTX_TO_HOST),
               DECO_STATUS_SUCCESS);
  return t;
}

static int tmp_files_in(const char *dir) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp-") != NULL;
  closedir(d);
  return n;
}

TestSuite(recycle_state, .init = setup, .fini = teardown);

Test(recycle_state, create_and_accessors) {
  deco_recycler_t *r = (deco_recycler_t *)1;
  cr_expect_eq(deco_recycler_create(cpu, 0, 8, &r), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_null(r);
  cr_expect_eq(deco_recycler_create(cpu, 10, 0, &r), DECO_STATUS_INVALID_ARGUMENT);
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycler_create(cpu, 10, 17, &r), DECO_STATUS_INVALID_ARGUMENT, NULL, "k = 17");
  cr_expect_eq(deco_recycler_create(cpu, (1 << 24) + 1, 8, &r), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(deco_recycler_create(NULL, 10, 8, &r), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_recycler_create(cpu, 10, 8, NULL), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_recycler_create(cpu, 259, 16, &r), DECO_STATUS_SUCCESS);
  cr_expect_eq(deco_recycler_vocab(r), 259);
  cr_expect_eq(deco_recycler_k(r), 16);
  int32_t *t = get_table(r);
  for (int i = 0; i < 259 * 16; ++i) cr_assert_eq(t[i], 0);
  t[5] = 3;
  cr_assert_eq(deco_memcpy(cpu, deco_recycler_table(r), t, sizeof(int32_t) * 259 * 16, DECO_COPY_HOST_TO_CTX),
               DECO_STATUS_SUCCESS);
  cr_expect_eq(deco_recycler_reset(r), DECO_STATUS_SUCCESS);
  free(t);
  t = get_table(r);
  cr_expect_eq(t[5], 0);
  free(t);
  deco_recycler_destroy(r);
  deco_recycler_destroy(NULL);
  cr_expect_null(deco_recycler_table(NULL));
  cr_expect_eq(deco_recycler_vocab(NULL), 0);
}

Test(recycle_state, save_load_round_trip) {
  uint64_t s = 13;
  const int V = 259, k = 8;
  deco_recycler_t *a = NULL, *b = NULL;
  cr_assert_eq(deco_recycler_create(cpu, V, k, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_recycler_create(cpu, V, k, &b), DECO_STATUS_SUCCESS);
  int32_t *ids = malloc(sizeof(int32_t) * V * k);
  random_table(&s, ids, V, k);
  ids[0] = V - 1;
  cr_assert_eq(deco_memcpy(cpu, deco_recycler_table(a), ids, sizeof(int32_t) * V * k, DECO_COPY_HOST_TO_CTX),
               DECO_STATUS_SUCCESS);
  char path[512];
  snprintf(path, sizeof path, "%s/state.bin", deco_test_tmpdir());
  cr_assert_eq(deco_recycler_save(a, path), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
  cr_expect_eq(tmp_files_in(deco_test_tmpdir()), 0);
  /* The file is exactly the documented format. */
  size_t size = 0, want_size = 0;
  unsigned char *file = deco_test_read_file(path, &size);
  unsigned char *want = make_state(V, k, ids, &want_size);
  cr_assert_eq(size, want_size);
  cr_assert_eq(size, 32 + 4 * (size_t)V * k);
  cr_expect_eq(memcmp(file, want, size), 0);
  /* Load into another recycler; and from the buffer. */
  cr_assert_eq(deco_recycler_load(b, path), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
  int32_t *got = get_table(b);
  cr_expect_eq(memcmp(got, ids, sizeof(int32_t) * V * k), 0);
  free(got);
  cr_assert_eq(deco_recycler_reset(b), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_recycler_load_buffer(b, file, size, "mem"), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
  got = get_table(b);
  cr_expect_eq(memcmp(got, ids, sizeof(int32_t) * V * k), 0);
  free(got);
  /* Saving again over an existing file replaces it. */
  cr_assert_eq(deco_recycler_reset(a), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_recycler_save(a, path), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_recycler_load(b, path), DECO_STATUS_SUCCESS);
  got = get_table(b);
  for (int i = 0; i < V * k; ++i) cr_assert_eq(got[i], 0);
  free(got);
  free(file);
  free(want);
  free(ids);
  deco_recycler_destroy(a);
  deco_recycler_destroy(b);
}

/* Loads data as a file and as a buffer into r (whose table is `before`);
 * both must fail with status and a message naming the file and `field`,
 * and leave the table as it was. */
static void expect_rejected(deco_recycler_t *r, const int32_t *before, const void *data, size_t size,
                            deco_status_t status, const char *field, const char *label) {
  char path[512];
  snprintf(path, sizeof path, "%s/bad_%s.bin", deco_test_tmpdir(), label);
  cr_assert_eq(deco_test_write_file(path, data, size), 0);
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycler_load(r, path), status, NULL, path, field);
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycler_load_buffer(r, data, size, "buf.bin"), status, NULL, "buf.bin: ", field);
  int32_t *now = get_table(r);
  cr_expect_eq(memcmp(now, before, sizeof(int32_t) * (size_t)deco_recycler_vocab(r) * deco_recycler_k(r)), 0,
               "%s: a failed load changed the table", label);
  free(now);
}

Test(recycle_state, corrupt_files_rejected) {
  uint64_t s = 17;
  const int V = 300, k = 4;
  deco_recycler_t *r = NULL;
  cr_assert_eq(deco_recycler_create(cpu, V, k, &r), DECO_STATUS_SUCCESS);
  int32_t *before = malloc(sizeof(int32_t) * V * k), *ids = malloc(sizeof(int32_t) * V * k);
  random_table(&s, before, V, k);
  random_table(&s, ids, V, k);
  cr_assert_eq(deco_memcpy(cpu, deco_recycler_table(r), before, sizeof(int32_t) * V * k, DECO_COPY_HOST_TO_CTX),
               DECO_STATUS_SUCCESS);
  size_t size = 0;
  unsigned char *good = make_state(V, k, ids, &size);
  unsigned char *p = malloc(size + 64);

  const size_t cuts[] = {0, 5, 23, 24, 25, 24 + 4 * 150, size - 8, size - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; ++i)
    expect_rejected(r, before, good, cuts[i], DECO_STATUS_BAD_FORMAT, "truncated", "truncated");
  memcpy(p, good, size);
  p[size] = 0;
  expect_rejected(r, before, p, size + 1, DECO_STATUS_BAD_FORMAT, "oversized", "oversized");
  memset(p + size, 0, 64);
  expect_rejected(r, before, p, size + 64, DECO_STATUS_BAD_FORMAT, "oversized", "oversized64");

  /* One flipped byte: in the table or the checksum -> checksum; in the
   * header -> the field it belongs to. */
  const struct {
    size_t at;
    const char *field;
  } flips[] = {{24, "checksum"},       {24 + 4 * 77 + 2, "checksum"}, {size - 9, "checksum"},
               {size - 8, "checksum"}, {size - 1, "checksum"},        {0, "magic"},
               {7, "magic"},           {8, "version"},                {11, "version"},
               {12, "vocab"},          {16, "k:"},                    {20, "flags"}};
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; ++i) {
    memcpy(p, good, size);
    p[flips[i].at] ^= 0x10;
    expect_rejected(r, before, p, size, DECO_STATUS_BAD_FORMAT, flips[i].field, "flip");
  }
  /* A file made for another vocab or k (consistent in itself). */
  size_t other = 0;
  unsigned char *f = make_state(V - 1, k, ids, &other);
  expect_rejected(r, before, f, other, DECO_STATUS_BAD_FORMAT, "vocab: the file has 299", "vocab");
  free(f);
  int32_t *ids2 = malloc(sizeof(int32_t) * V * 2 * k);
  random_table(&s, ids2, V, 2 * k);
  f = make_state(V, 2 * k, ids2, &other);
  expect_rejected(r, before, f, other, DECO_STATUS_BAD_FORMAT, "k: the file has 8", "k");
  free(f);
  free(ids2);
  /* Ids out of range behind a valid checksum. */
  const int32_t outside[] = {V, -1, INT32_MAX, INT32_MIN};
  for (int i = 0; i < 4; ++i) {
    memcpy(p, good, size);
    le32(p + 24 + 4 * (size_t)(37 * k + 2), (uint32_t)outside[i]);
    reseal(p, size);
    expect_rejected(r, before, p, size, DECO_STATUS_BAD_FORMAT, "table[37][2]", "ids");
  }
  /* Zero-filled and random files of the right size. */
  memset(p, 0, size);
  expect_rejected(r, before, p, size, DECO_STATUS_BAD_FORMAT, "magic", "zeros");
  for (int i = 0; i < 5; ++i) {
    for (size_t j = 0; j < size; ++j) p[j] = (unsigned char)deco_test_rng_next(&s);
    expect_rejected(r, before, p, size, DECO_STATUS_BAD_FORMAT, "magic", "random");
    /* Random content behind a valid header: the checksum catches it. */
    memcpy(p, good, 24);
    expect_rejected(r, before, p, size, DECO_STATUS_BAD_FORMAT, "checksum", "random_body");
  }
  /* What cannot be read at all. */
  char path[512];
  snprintf(path, sizeof path, "%s/no_such_state.bin", deco_test_tmpdir());
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycler_load(r, path), DECO_STATUS_IO_ERROR, NULL, path);
  cr_expect_eq(deco_recycler_load(r, deco_test_tmpdir()), DECO_STATUS_IO_ERROR);
  cr_expect_eq(deco_recycler_load(r, NULL), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_recycler_load_buffer(r, NULL, 5, "x"), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_recycler_load(NULL, path), DECO_STATUS_NULL_POINTER);
  /* And the good image still loads. */
  cr_expect_eq(deco_recycler_load_buffer(r, good, size, "good.bin"), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(cpu));
  int32_t *now = get_table(r);
  cr_expect_eq(memcmp(now, ids, sizeof(int32_t) * V * k), 0);
  free(now);
  free(p);
  free(good);
  free(before);
  free(ids);
  deco_recycler_destroy(r);
}

Test(recycle_state, save_is_atomic) {
  const int V = 50, k = 2;
  deco_recycler_t *r = NULL;
  cr_assert_eq(deco_recycler_create(cpu, V, k, &r), DECO_STATUS_SUCCESS);
  char dir[512], path[600], missing[600], blocked[600], under_file[700];
  snprintf(dir, sizeof dir, "%s/atomic", deco_test_tmpdir());
  cr_assert_eq(mkdir(dir, 0755), 0);
  /* An existing state survives every failed save. */
  snprintf(path, sizeof path, "%s/state.bin", dir);
  cr_assert_eq(deco_recycler_save(r, path), DECO_STATUS_SUCCESS);
  size_t size0 = 0;
  unsigned char *orig = deco_test_read_file(path, &size0);

  /* Into a directory that does not exist: nothing is created. */
  snprintf(missing, sizeof missing, "%s/no/such/dir/state.bin", dir);
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycler_save(r, missing), DECO_STATUS_IO_ERROR, NULL, missing);
  /* Below a regular file. */
  snprintf(under_file, sizeof under_file, "%s/x", path);
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycler_save(r, under_file), DECO_STATUS_IO_ERROR, NULL, under_file);
  /* Over a non-empty directory: the rename fails after the temporary file
   * was written; the directory stays and the temporary file is removed. */
  snprintf(blocked, sizeof blocked, "%s/blocked", dir);
  cr_assert_eq(mkdir(blocked, 0755), 0);
  snprintf(under_file, sizeof under_file, "%s/keep", blocked);
  cr_assert_eq(deco_test_write_file(under_file, "x", 1), 0);
  int32_t *t = get_table(r);
  t[3] = 7;
  cr_assert_eq(deco_memcpy(cpu, deco_recycler_table(r), t, sizeof(int32_t) * V * k, DECO_COPY_HOST_TO_CTX),
               DECO_STATUS_SUCCESS);
  free(t);
  DECO_TEST_REFUSED_NAMING(cpu, deco_recycler_save(r, blocked), DECO_STATUS_IO_ERROR, NULL, blocked, "renaming");
  struct stat st;
  cr_expect(stat(blocked, &st) == 0 && S_ISDIR(st.st_mode));
  cr_expect(stat(under_file, &st) == 0);
  cr_expect_eq(tmp_files_in(dir), 0, "a temporary file was left behind");

  size_t size1 = 0;
  unsigned char *now = deco_test_read_file(path, &size1);
  cr_expect_eq(size1, size0);
  cr_expect_eq(memcmp(now, orig, size0), 0, "the original state changed");
  free(now);
  /* A successful save replaces it whole and leaves no temporary file. */
  cr_expect_eq(deco_recycler_save(r, path), DECO_STATUS_SUCCESS);
  cr_expect_eq(tmp_files_in(dir), 0);
  deco_recycler_t *q = NULL;
  cr_assert_eq(deco_recycler_create(cpu, V, k, &q), DECO_STATUS_SUCCESS);
  cr_expect_eq(deco_recycler_load(q, path), DECO_STATUS_SUCCESS);
  t = get_table(q);
  cr_expect_eq(t[3], 7);
  free(t);
  cr_expect_eq(deco_recycler_save(NULL, path), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_recycler_save(r, NULL), DECO_STATUS_NULL_POINTER);
  free(orig);
  deco_recycler_destroy(q);
  deco_recycler_destroy(r);
}
