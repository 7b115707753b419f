/* tests/test_kv_compact.c — KV compaction on the CPU backend: overlapping
 * sources and destinations (paths 0,2,3,5 and 0,1,2 ...), several trees and
 * layers, page sizes 1 and 16, shuffled block tables; every slot compared
 * with a model that stages all sources before writing; untouched slots keep
 * their values; argument validation.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

typedef struct layout {
  int B, n_layers, page_size, n_pages, max_pages, row;
  size_t layer_stride;
  int32_t *table;
} layout_t;

/* Element offset of (layer, tree, slot, e) in a pool. */
static size_t elem(const layout_t *L, int layer, int b, int slot, int e) {
  int page = L->table[b * L->max_pages + slot / L->page_size];
  return (size_t)layer * L->layer_stride + ((size_t)page * L->page_size + slot % L->page_size) * L->row + e;
}

static void run_case(int page_size, int B, int n_layers, uint64_t seed) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  layout_t L = {B, n_layers, page_size, 0, 0, 2 * 3, 0, NULL};
  const int kv_heads = 2, head_dim = 3;
  int32_t prefix[16], len[16], path[16 * DECO_TREE_MAX_NODES];
  uint64_t s = seed;
  int max_slots = 0;
  for (int b = 0; b < B; ++b) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    prefix[b] = (int)((s >> 33) % 40);
    int32_t *p = path + b * DECO_TREE_MAX_NODES;
    for (int i = 0; i < DECO_TREE_MAX_NODES; ++i) p[i] = -1;
    /* fixed awkward paths first, then random increasing ones */
    static const int32_t fixed[4][6] = {{0, 2, 3, 5, -1}, {0, 1, 2, -1}, {0, 7, -1}, {0, 1, 5, 6, 9, 10}};
    static const int fixed_len[4] = {4, 3, 2, 6};
    if (b < 4) {
      len[b] = fixed_len[b];
      memcpy(p, fixed[b], (size_t)len[b] * sizeof(int32_t));
    } else {
      int n = 0, v = 0;
      p[n++] = 0;
      while (n < 12) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v += 1 + (int)((s >> 33) % 3);
        p[n++] = v;
        if (((s >> 40) & 3) == 0) break;
      }
      len[b] = n;
    }
    int slots = prefix[b] + p[len[b] - 1] + 1;
    if (slots > max_slots) max_slots = slots;
  }
  L.max_pages = (max_slots + page_size - 1) / page_size;
  L.n_pages = B * L.max_pages + 3;
  L.table = malloc((size_t)B * L.max_pages * sizeof(int32_t));
  /* a shuffled page assignment so that trees interleave in the pool */
  int *perm = malloc((size_t)L.n_pages * sizeof(int));
  for (int i = 0; i < L.n_pages; ++i) perm[i] = i;
  for (int i = L.n_pages - 1; i > 0; --i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    int j = (int)((s >> 33) % (uint64_t)(i + 1));
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (int i = 0; i < B * L.max_pages; ++i) L.table[i] = perm[i];
  size_t pool = (size_t)L.n_pages * page_size * L.row;
  L.layer_stride = pool + 5; /* a gap between layers: it must stay untouched too */
  size_t total = L.layer_stride * n_layers;
  float *k = malloc(total * sizeof(float)), *v = malloc(total * sizeof(float));
  float *k0 = malloc(total * sizeof(float)), *v0 = malloc(total * sizeof(float));
  for (size_t i = 0; i < total; ++i) {
    k[i] = k0[i] = (float)i;
    v[i] = v0[i] = -(float)i - 0.5f;
  }
  /* expected: stage every source, then write */
  float *ek = malloc(total * sizeof(float)), *ev = malloc(total * sizeof(float));
  memcpy(ek, k0, total * sizeof(float));
  memcpy(ev, v0, total * sizeof(float));
  for (int layer = 0; layer < n_layers; ++layer)
    for (int b = 0; b < B; ++b)
      for (int d = 1; d < len[b]; ++d)
        for (int e = 0; e < L.row; ++e) {
          int src = prefix[b] + path[b * DECO_TREE_MAX_NODES + d], dst = prefix[b] + d;
          ek[elem(&L, layer, b, dst, e)] = k0[elem(&L, layer, b, src, e)];
          ev[elem(&L, layer, b, dst, e)] = v0[elem(&L, layer, b, src, e)];
        }
  deco_kv_compact_args_t a = {.cache = {.dtype = DECO_DTYPE_F32, .n_kv_heads = kv_heads, .head_dim = head_dim,
                                        .page_size = page_size, .n_pages = L.n_pages, .k_pages = k, .v_pages = v,
                                        .block_table = L.table, .max_pages_per_seq = L.max_pages},
                              .n_layers = n_layers, .layer_stride = L.layer_stride, .n_trees = B, .prefix_lens = prefix,
                              .path = path, .accept_len = len};
  cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_test_compare_i32("k", (const int32_t *)k, (const int32_t *)ek, total), 0, "page %d", page_size);
  cr_assert_eq(deco_test_compare_i32("v", (const int32_t *)v, (const int32_t *)ev, total), 0, "page %d", page_size);
  free(k), free(v), free(k0), free(v0), free(ek), free(ev), free(perm), free(L.table);
  deco_ctx_destroy(ctx);
}

Test(kv_compact, overlapping_page1) { run_case(1, 5, 3, 1); }
Test(kv_compact, overlapping_page16) { run_case(16, 9, 2, 2); }
Test(kv_compact, one_tree_one_layer) { run_case(16, 1, 1, 3); }

Test(kv_compact, rejects_bad_arguments) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  float k[64], v[64];
  int32_t table[4] = {0, 1, 2, 3}, prefix[1] = {0}, len[1] = {3}, path[DECO_TREE_MAX_NODES] = {0, 2, 1};
  deco_kv_compact_args_t ok = {.cache = {.dtype = DECO_DTYPE_F32, .n_kv_heads = 1, .head_dim = 4, .page_size = 4,
                                         .n_pages = 4, .k_pages = k, .v_pages = v, .block_table = table,
                                         .max_pages_per_seq = 4},
                               .n_layers = 1, .layer_stride = 0, .n_trees = 1, .prefix_lens = prefix, .path = path,
                               .accept_len = len};
  deco_kv_compact_args_t a = ok;
  cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_INVALID_ARGUMENT, "a path must increase");
  path[1] = 1;
  path[2] = 2;
  cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  a.n_layers = 2;
  cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_INVALID_ARGUMENT, "layer_stride below one pool");
  a.n_layers = 65536; /* past what both backends take (CUDA: one grid row per layer) */
  a.layer_stride = 64;
  cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(ctx), "n_layers") != NULL, "%s", deco_last_error(ctx));
  a = ok;
  a.path = NULL;
  cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_NULL_POINTER);
  a = ok;
  a.n_trees = 0;
  cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_INVALID_ARGUMENT);
  a = ok;
  a.cache.dtype = DECO_DTYPE_BF16;
  cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_UNSUPPORTED);
  a = ok;
  len[0] = 0;
  cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_INVALID_ARGUMENT);
  len[0] = 3;
  path[2] = 3;
  prefix[0] = 13; /* source slot 16 is past the block table */
  cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_INVALID_ARGUMENT);
  deco_ctx_destroy(ctx);
}

/* A tree with a slot of its accepted path without a page is invalid as a
 * whole (deco/kv.h), even where that slot does not move: the twin touches
 * none of its rows and reports it, after compacting the trees before it and
 * none after it (the CUDA op skips it and compacts the others). */
Test(kv_compact, tree_with_a_slot_without_a_page_is_untouched) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  enum { ROW = 2, PAGES = 8, MAXP = 4 };
  float k[PAGES * ROW], v[PAGES * ROW], k0[PAGES * ROW], v0[PAGES * ROW];
  for (int i = 0; i < PAGES * ROW; ++i) k[i] = k0[i] = (float)i, v[i] = v0[i] = -(float)i;
  /* page size 1. good: slot 2 -> 1; bad: slot 1 (which stays) has no page,
   * slot 3 -> 2 would move. */
  const int32_t good_row[MAXP] = {0, 1, 2, 3}, bad_row[MAXP] = {4, -1, 5, 6};
  int32_t table[2 * MAXP], prefix[2] = {0, 0}, len[2], path[2 * DECO_TREE_MAX_NODES] = {0};
  for (int order = 0; order < 2; ++order) {
    const int g = order, bad = 1 - order; /* the good tree first, then second */
    memcpy(table + g * MAXP, good_row, sizeof good_row);
    memcpy(table + bad * MAXP, bad_row, sizeof bad_row);
    int32_t *pg = path + g * DECO_TREE_MAX_NODES, *pb = path + bad * DECO_TREE_MAX_NODES;
    pg[0] = 0, pg[1] = 2, len[g] = 2;
    pb[0] = 0, pb[1] = 1, pb[2] = 3, len[bad] = 3;
    memcpy(k, k0, sizeof k);
    memcpy(v, v0, sizeof v);
    deco_kv_compact_args_t a = {.cache = {.dtype = DECO_DTYPE_F32, .n_kv_heads = 1, .head_dim = ROW, .page_size = 1,
                                          .n_pages = PAGES, .k_pages = k, .v_pages = v, .block_table = table,
                                          .max_pages_per_seq = MAXP},
                                .n_layers = 1, .layer_stride = 0, .n_trees = 2, .prefix_lens = prefix, .path = path,
                                .accept_len = len};
    cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_INVALID_ARGUMENT, "order %d: the tree with a slot without a page",
                 order);
    cr_assert(strstr(deco_last_error(ctx), "has no page") != NULL, "%s", deco_last_error(ctx));
    for (int p = 4; p < PAGES; ++p)
      for (int e = 0; e < ROW; ++e)
        cr_assert(k[p * ROW + e] == k0[p * ROW + e] && v[p * ROW + e] == v0[p * ROW + e],
                  "order %d: page %d of the invalid tree was written", order, p);
    /* the good tree: compacted when it comes first, untouched when after */
    for (int e = 0; e < ROW; ++e) {
      const float want_k = g == 0 ? k0[2 * ROW + e] : k0[1 * ROW + e];
      const float want_v = g == 0 ? v0[2 * ROW + e] : v0[1 * ROW + e];
      cr_assert(k[1 * ROW + e] == want_k && v[1 * ROW + e] == want_v, "order %d: slot 1 of the valid tree", order);
    }
  }
  deco_ctx_destroy(ctx);
}

/* The entry point's refusals in order, each with its status and exact
 * message: the ctx and args, the cache view, the counts, the arrays, the
 * layer stride. */
Test(kv_compact, refusals_in_order) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  float k[64], v[64];
  int32_t table[4] = {0, 1, 2, 3}, prefix[1] = {0}, len[1] = {1}, path[DECO_TREE_MAX_NODES] = {0};
  deco_kv_compact_args_t a = {.cache = {.dtype = (deco_dtype_t)99, .n_kv_heads = 1, .head_dim = 4, .page_size = 4,
                                        .n_pages = 4, .k_pages = k, .v_pages = v, .block_table = table,
                                        .max_pages_per_seq = 4},
                              .n_layers = 0, .layer_stride = 63, .n_trees = 0, .prefix_lens = NULL, .path = NULL,
                              .accept_len = NULL};
  const deco_status_t nullp = DECO_STATUS_NULL_POINTER, bad = DECO_STATUS_INVALID_ARGUMENT;
  deco_test_refused(NULL, deco_kv_compact(NULL, &a), nullp, "deco_kv_compact: ctx is NULL");
  deco_test_refused(ctx, deco_kv_compact(ctx, NULL), nullp, "deco_kv_compact: (a) is NULL");
  deco_test_refused(ctx, deco_kv_compact(ctx, &a), bad, "deco_kv_compact: cache.dtype = 99 is not a dtype");
  a.cache.dtype = DECO_DTYPE_F32;
  a.cache.page_size = 0;
  deco_test_refused(ctx, deco_kv_compact(ctx, &a), bad, "deco_kv_compact: c->page_size = 0 outside [1, 65536]");
  a.cache.page_size = 4;
  a.cache.block_table = NULL;
  deco_test_refused(ctx, deco_kv_compact(ctx, &a), nullp, "deco_kv_compact: c->block_table is NULL");
  a.cache.block_table = table;
  deco_test_refused(ctx, deco_kv_compact(ctx, &a), bad, "deco_kv_compact: a->n_layers = 0 outside [1, 65535]");
  a.n_layers = 65536;
  deco_test_refused(ctx, deco_kv_compact(ctx, &a), bad, "deco_kv_compact: a->n_layers = 65536 outside [1, 65535]");
  a.n_layers = 2;
  deco_test_refused(ctx, deco_kv_compact(ctx, &a), bad, "deco_kv_compact: a->n_trees = 0 outside [1, 1048576]");
  a.n_trees = (1 << 20) + 1;
  deco_test_refused(ctx, deco_kv_compact(ctx, &a), bad, "deco_kv_compact: a->n_trees = 1048577 outside [1, 1048576]");
  a.n_trees = 1;
  deco_test_refused(ctx, deco_kv_compact(ctx, &a), nullp, "deco_kv_compact: a->prefix_lens is NULL");
  a.prefix_lens = prefix;
  deco_test_refused(ctx, deco_kv_compact(ctx, &a), nullp, "deco_kv_compact: a->path is NULL");
  a.path = path;
  deco_test_refused(ctx, deco_kv_compact(ctx, &a), nullp, "deco_kv_compact: a->accept_len is NULL");
  a.accept_len = len;
  deco_test_refused(ctx, deco_kv_compact(ctx, &a), bad,
                    "deco_kv_compact: layer_stride = 63 elements is smaller than one layer's pool (64 elements)");
  a.n_layers = 1; /* one layer: the stride is not read */
  cr_assert_eq(deco_kv_compact(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_ctx_destroy(ctx);
}
