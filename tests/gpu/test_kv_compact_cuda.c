/* tests/gpu/test_kv_compact_cuda.c — KV compaction on the CUDA backend:
 * overlapping paths (0,2,3,5 / 0,1,2 / ...), several trees and layers, page
 * sizes 1 and 16, f32 (against the C reference) and bf16 / odd row widths
 * (against a staged copy model), bit for bit over whole pools, with guard
 * words after the pools; invalid paths leave the cache untouched. A block
 * table without a page for a slot of one tree (id -1, an id past the pool,
 * a slot past the table's row; a moved slot or one that stays): the other
 * trees, before and after it in the batch, are compacted and nothing outside
 * that tree's own pages is written (kv.h says nothing of such a tree; the
 * kernel skips it, the C reference stops with an error).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "gpu_suite.h"
#include "deco/deco.h"

DECO_GPU_SUITE(kv_compact_cuda, 120);

static uint64_t next(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

/* corrupt: 0 a valid batch; 1 tree 0's path does not increase; for tree 3
 * (path 0,1,5,6,9,10), a block table without a page for: 2 slot L+9 (the
 * source of d = 4; id -1), 3 slot L+1 (path[1] = 1, not moved; an id past
 * the pool), 4 slots L+3.. (past the row's pages). */
enum { VALID = 0, BAD_PATH = 1, NO_PAGE_MOVED = 2, NO_PAGE_UNMOVED = 3, PAST_ROW = 4 };

static void run_case(deco_dtype_t dt, int page_size, int B, int n_layers, int kv_heads, int head_dim, uint64_t seed,
                     int corrupt) {
  const int bad = corrupt == BAD_PATH ? 0 : 3; /* the invalid tree */
  cr_assert(corrupt < NO_PAGE_MOVED || (B > 4 && (corrupt == PAST_ROW || page_size == 1)));
  const size_t es = deco_dtype_size(dt);
  const int row = kv_heads * head_dim;
  int32_t *prefix = malloc(B * sizeof(int32_t)), *len = malloc(B * sizeof(int32_t));
  int32_t *path = malloc((size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t));
  uint64_t s = seed;
  int max_slots = 0;
  static const int32_t fixed[4][6] = {{0, 2, 3, 5}, {0, 1, 2}, {0, 7}, {0, 1, 5, 6, 9, 10}};
  static const int fixed_len[4] = {4, 3, 2, 6};
  for (int b = 0; b < B; ++b) {
    int32_t *p = path + (size_t)b * DECO_TREE_MAX_NODES;
    for (int i = 0; i < DECO_TREE_MAX_NODES; ++i) p[i] = -1;
    prefix[b] = (int)(next(&s) % 50);
    if (b < 4) {
      len[b] = fixed_len[b];
      memcpy(p, fixed[b], len[b] * sizeof(int32_t));
    } else {
      int n = 0, v = 0;
      p[n++] = 0;
      int target = 1 + (int)(next(&s) % 40);
      while (n < target) {
        v += 1 + (int)(next(&s) % 3);
        p[n++] = v;
      }
      len[b] = n;
    }
    int slots = prefix[b] + p[len[b] - 1] + 1;
    if (slots > max_slots) max_slots = slots;
  }
  if (corrupt == BAD_PATH) path[2] = path[1]; /* tree 0: not increasing -> skipped on the GPU */
  const int max_pages = (max_slots + page_size - 1) / page_size, n_pages = B * max_pages + 2;
  int32_t *table = malloc((size_t)B * max_pages * sizeof(int32_t));
  for (int i = 0; i < B * max_pages; ++i) table[i] = i; /* start sorted ... */
  for (int i = B * max_pages - 1; i > 0; --i) { /* ... then shuffle */
    int j = (int)(next(&s) % (uint64_t)(i + 1)), t = table[i];
    table[i] = table[j];
    table[j] = t;
  }
  if (corrupt == NO_PAGE_MOVED) table[bad * max_pages + prefix[bad] + 9] = -1; /* page size 1 */
  if (corrupt == NO_PAGE_UNMOVED) table[bad * max_pages + prefix[bad] + 1] = n_pages;
  if (corrupt == PAST_ROW) prefix[bad] = max_pages * page_size - 3;
  /* odd seeds: a layer stride that breaks 16-byte alignment (narrower copy units) */
  const size_t pool = (size_t)n_pages * page_size * row, stride = pool + (seed % 2 ? 3 : 16 / es);
  const size_t total = stride * n_layers;
  float *k = malloc(total * sizeof(float)), *v = malloc(total * sizeof(float));
  deco_test_fill_uniform(k, total, seed, 1, -1.0f, 1.0f);
  deco_test_fill_uniform(v, total, seed, 2, -1.0f, 1.0f);
  deco_test_round_to(k, total, dt);
  deco_test_round_to(v, total, dt);
  /* expected: staged model (every source read before any write) */
  float *ek = malloc(total * sizeof(float)), *ev = malloc(total * sizeof(float));
  memcpy(ek, k, total * sizeof(float));
  memcpy(ev, v, total * sizeof(float));
  for (int b = 0; b < B; ++b) {
    if (corrupt && b == bad) continue;
    for (int l = 0; l < n_layers; ++l)
      for (int d = 1; d < len[b]; ++d) {
        int src = prefix[b] + path[(size_t)b * DECO_TREE_MAX_NODES + d], dst = prefix[b] + d;
        size_t rs = (size_t)table[b * max_pages + src / page_size] * page_size + src % page_size;
        size_t rd = (size_t)table[b * max_pages + dst / page_size] * page_size + dst % page_size;
        memcpy(ek + l * stride + rd * row, k + l * stride + rs * row, row * sizeof(float));
        memcpy(ev + l * stride + rd * row, v + l * stride + rs * row, row * sizeof(float));
      }
  }
  if (dt == DECO_DTYPE_F32 && !corrupt) { /* the reference agrees with the model */
    float *rk = malloc(total * sizeof(float)), *rv = malloc(total * sizeof(float));
    memcpy(rk, k, total * sizeof(float));
    memcpy(rv, v, total * sizeof(float));
    deco_kv_compact_args_t ra = {.cache = {.dtype = dt, .n_kv_heads = kv_heads, .head_dim = head_dim,
                                           .page_size = page_size, .n_pages = n_pages, .k_pages = rk, .v_pages = rv,
                                           .block_table = table, .max_pages_per_seq = max_pages},
                                 .n_layers = n_layers, .layer_stride = stride, .n_trees = B, .prefix_lens = prefix,
                                 .path = path, .accept_len = len};
    cr_assert_eq(deco_kv_compact(cpu, &ra), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
    cr_assert_eq(deco_test_compare_i32("ref k", (int32_t *)rk, (int32_t *)ek, total), 0);
    cr_assert_eq(deco_test_compare_i32("ref v", (int32_t *)rv, (int32_t *)ev, total), 0);
    free(rk), free(rv);
  }
  void *hk = malloc(total * es), *hv = malloc(total * es);
  deco_test_pack(hk, k, total, dt);
  deco_test_pack(hv, v, total, dt);
  deco_test_buf_t dk = deco_test_buf_alloc(gpu, total * es), dv = deco_test_buf_alloc(gpu, total * es);
  deco_test_buf_t dt_ = deco_test_buf_alloc(gpu, (size_t)B * max_pages * sizeof(int32_t));
  deco_test_buf_t dp = deco_test_buf_alloc(gpu, B * sizeof(int32_t)), dl = deco_test_buf_alloc(gpu, B * sizeof(int32_t));
  deco_test_buf_t dpath = deco_test_buf_alloc(gpu, (size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t));
  deco_test_buf_upload(&dk, hk, total * es);
  deco_test_buf_upload(&dv, hv, total * es);
  deco_test_buf_upload(&dt_, table, (size_t)B * max_pages * sizeof(int32_t));
  deco_test_buf_upload(&dp, prefix, B * sizeof(int32_t));
  deco_test_buf_upload(&dl, len, B * sizeof(int32_t));
  deco_test_buf_upload(&dpath, path, (size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t));
  deco_kv_compact_args_t a = {.cache = {.dtype = dt, .n_kv_heads = kv_heads, .head_dim = head_dim,
                                        .page_size = page_size, .n_pages = n_pages, .k_pages = dk.ptr,
                                        .v_pages = dv.ptr, .block_table = dt_.ptr, .max_pages_per_seq = max_pages},
                              .n_layers = n_layers, .layer_stride = stride, .n_trees = B, .prefix_lens = dp.ptr,
                              .path = dpath.ptr, .accept_len = dl.ptr};
  cr_assert_eq(deco_kv_compact(gpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  void *gk = malloc(total * es), *gv = malloc(total * es), *xk = malloc(total * es), *xv = malloc(total * es);
  deco_test_buf_download(&dk, gk, total * es);
  deco_test_buf_download(&dv, gv, total * es);
  deco_test_pack(xk, ek, total, dt);
  deco_test_pack(xv, ev, total, dt);
  if (corrupt >= NO_PAGE_MOVED) /* the invalid tree's own pages: not compared */
    for (int i = 0; i < max_pages; ++i) {
      const int pg = table[bad * max_pages + i];
      if (pg < 0 || pg >= n_pages) continue;
      for (int l = 0; l < n_layers; ++l) {
        const size_t at = (l * stride + (size_t)pg * page_size * row) * es, bytes = (size_t)page_size * row * es;
        memcpy((char *)gk + at, (char *)xk + at, bytes);
        memcpy((char *)gv + at, (char *)xv + at, bytes);
      }
    }
  cr_assert(deco_test_buf_guard_ok(&dk) && deco_test_buf_guard_ok(&dv), "guard words after the pools overwritten");
  cr_assert_eq(memcmp(gk, xk, total * es), 0, "%s page %d rows %d: K differs", deco_dtype_name(dt), page_size, row);
  cr_assert_eq(memcmp(gv, xv, total * es), 0, "%s page %d rows %d: V differs", deco_dtype_name(dt), page_size, row);
  printf("kv_compact %s page %d B=%d layers %d row %d%s: ok\n", deco_dtype_name(dt), page_size, B, n_layers, row,
         corrupt == BAD_PATH ? " (tree 0's path invalid, skipped)"
         : corrupt         ? " (tree 3 without a page; the other trees compacted, nothing else written)"
                           : "");
  deco_test_buf_free(&dk), deco_test_buf_free(&dv), deco_test_buf_free(&dt_), deco_test_buf_free(&dp);
  deco_test_buf_free(&dl), deco_test_buf_free(&dpath);
  free(k), free(v), free(ek), free(ev), free(hk), free(hv), free(gk), free(gv), free(xk), free(xv);
  free(prefix), free(len), free(path), free(table);
}

Test(kv_compact_cuda, overlapping_f32) {
  run_case(DECO_DTYPE_F32, 1, 6, 3, 2, 64, 1, 0);
  run_case(DECO_DTYPE_F32, 16, 9, 2, 8, 128, 2, 0);
}

Test(kv_compact_cuda, bf16_and_odd_rows) {
  run_case(DECO_DTYPE_BF16, 16, 7, 4, 8, 128, 3, 0);
  run_case(DECO_DTYPE_BF16, 1, 5, 2, 1, 3, 4, 0);  /* 6-byte rows: 2-byte units */
  run_case(DECO_DTYPE_F32, 16, 5, 2, 1, 3, 5, 0);  /* 12-byte rows: 4-byte units */
  run_case(DECO_DTYPE_F16, 16, 33, 1, 4, 64, 6, 0);
}

Test(kv_compact_cuda, invalid_path_skipped) { run_case(DECO_DTYPE_F32, 16, 5, 2, 2, 64, 7, BAD_PATH); }

Test(kv_compact_cuda, missing_page_spares_other_trees) {
  run_case(DECO_DTYPE_F32, 1, 6, 3, 2, 64, 8, NO_PAGE_MOVED);
  run_case(DECO_DTYPE_F32, 1, 6, 3, 2, 64, 9, NO_PAGE_UNMOVED);
  run_case(DECO_DTYPE_BF16, 16, 6, 2, 8, 128, 10, PAST_ROW);
}
