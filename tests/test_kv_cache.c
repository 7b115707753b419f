/* tests/test_kv_cache.c — the paged KV cache manager: reservation at
 * admission, page accounting, release, commit, truncation and capacity
 * errors, and compaction of an accepted path over its pools. */
#include <criterion/criterion.h>
#include <limits.h>

#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

static deco_ctx_t *ctx;
static deco_model_t *model;
static void setup(void) {
  ctx = deco_test_cpu_ctx();
  cr_assert_eq(deco_model_create_synthetic(ctx, "tiny", DECO_SYNTHETIC_SEED, NULL, &model),
               DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
}
static void teardown(void) {
  deco_model_destroy(model);
  deco_ctx_destroy(ctx);
}
TestSuite(kv_cache, .init = setup, .fini = teardown);

Test(kv_cache, admit_reserves_pages_and_release_returns_them) {
  deco_kv_cache_t *kc;
  cr_assert_eq(deco_kv_cache_create(model, 16, 10, 3, &kc), DECO_STATUS_SUCCESS);
  int a, b, c;
  cr_assert_eq(deco_kv_cache_admit(kc, 33, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_free_pages(kc), 7);
  cr_assert_eq(deco_kv_cache_seq_capacity(kc, a), 48);
  cr_assert_eq(deco_kv_cache_admit(kc, 113, &b), DECO_STATUS_CAPACITY, "7 pages cannot hold 113 slots");
  cr_assert_eq(deco_kv_cache_admit(kc, 112, &b), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_free_pages(kc), 0);
  cr_assert_eq(deco_kv_cache_admit(kc, 1, &c), DECO_STATUS_CAPACITY);
  cr_assert_eq(deco_kv_cache_release(kc, a), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_free_pages(kc), 3);
  cr_assert_eq(deco_kv_cache_release(kc, a), DECO_STATUS_INVALID_ARGUMENT, "double release");
  cr_assert_eq(deco_kv_cache_seq_len(kc, a), -1);
  cr_assert_eq(deco_kv_cache_admit(kc, 1, &c), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, 1, &a), DECO_STATUS_SUCCESS);
  int d;
  cr_assert_eq(deco_kv_cache_admit(kc, 1, &d), DECO_STATUS_CAPACITY, "all sequences in use");
  deco_kv_cache_destroy(kc);
}

Test(kv_cache, commit_bounds) {
  deco_kv_cache_t *kc;
  cr_assert_eq(deco_kv_cache_create(model, 4, 8, 1, &kc), DECO_STATUS_SUCCESS);
  int s;
  cr_assert_eq(deco_kv_cache_admit(kc, 6, &s), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_seq_capacity(kc, s), 8);
  cr_assert_eq(deco_kv_cache_commit(kc, s, 5), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_seq_len(kc, s), 5);
  cr_assert_eq(deco_kv_cache_commit(kc, s, 4), DECO_STATUS_CAPACITY);
  cr_assert_eq(deco_kv_cache_commit(kc, s, -1), DECO_STATUS_CAPACITY);
  cr_assert_eq(deco_kv_cache_commit(kc, s, INT_MAX - 2), DECO_STATUS_CAPACITY); /* len + n would wrap */
  cr_assert_eq(deco_kv_cache_seq_len(kc, s), 5);
  cr_assert_eq(deco_kv_cache_commit(kc, s + 1, 1), DECO_STATUS_INVALID_ARGUMENT);
  /* Truncation: back to any committed length, never past it. */
  cr_assert_eq(deco_kv_cache_truncate(kc, s, 6), DECO_STATUS_INVALID_ARGUMENT, "longer than committed");
  cr_assert_eq(deco_kv_cache_truncate(kc, s, -1), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_kv_cache_truncate(kc, s + 1, 0), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_kv_cache_seq_len(kc, s), 5);
  cr_assert_eq(deco_kv_cache_truncate(kc, s, 2), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_seq_len(kc, s), 2);
  cr_assert_eq(deco_kv_cache_seq_capacity(kc, s), 8, "the pages stay reserved");
  cr_assert_eq(deco_kv_cache_commit(kc, s, 6), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_truncate(kc, s, 8), DECO_STATUS_SUCCESS, "the same length");
  cr_assert_eq(deco_kv_cache_truncate(kc, s, 0), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_seq_len(kc, s), 0);
  cr_assert_eq(deco_kv_cache_truncate(NULL, s, 0), DECO_STATUS_NULL_POINTER);
  deco_kv_cache_destroy(kc);
}

Test(kv_cache, bad_arguments) {
  deco_kv_cache_t *kc = (deco_kv_cache_t *)0x1;
  cr_assert_eq(deco_kv_cache_create(model, 0, 8, 1, &kc), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_kv_cache_create(model, 16, 0, 1, &kc), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_kv_cache_create(NULL, 16, 8, 1, &kc), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_kv_cache_create(model, 16, 8, 1, &kc), DECO_STATUS_SUCCESS);
  int s;
  cr_assert_eq(deco_kv_cache_admit(kc, 0, &s), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_kv_cache_admit(kc, 1 << 20, &s), DECO_STATUS_INVALID_ARGUMENT);
  deco_kv_cache_destroy(kc);
}

/* deco_kv_cache_compact moves the accepted path to the slots after the
 * prefix in every layer, through the block table, and touches nothing else;
 * its own refusals come first. */
Test(kv_cache, compact_moves_the_path_in_every_layer) {
  deco_kv_cache_t *kc;
  enum { PAGE = 4, PAGES = 16 };
  cr_assert_eq(deco_kv_cache_create(model, PAGE, PAGES, 2, &kc), DECO_STATUS_SUCCESS);
  int other, seq;
  cr_assert_eq(deco_kv_cache_admit(kc, 6, &other), DECO_STATUS_SUCCESS); /* seq's pages are not the first */
  cr_assert_eq(deco_kv_cache_admit(kc, 20, &seq), DECO_STATUS_SUCCESS);
  void *kp, *vp;
  size_t bytes;
  cr_assert_eq(deco_kv_cache_pools(kc, &kp, &vp, &bytes), DECO_STATUS_SUCCESS);
  const size_t n = bytes / sizeof(float); /* CPU: f32 pools in host memory */
  float *k = kp, *v = vp, *k0 = malloc(bytes), *v0 = malloc(bytes);
  for (size_t i = 0; i < n; ++i) k[i] = (float)i, v[i] = -(float)i;
  memcpy(k0, k, bytes);
  memcpy(v0, v, bytes);
  const int max_pages = deco_kv_cache_max_pages(kc);
  int32_t *table = malloc(sizeof(int32_t) * (size_t)max_pages);
  cr_assert_eq(deco_kv_cache_block_table(kc, &seq, 1, table), DECO_STATUS_SUCCESS);
  static int32_t path[256];
  path[0] = 0, path[1] = 2, path[2] = 5, path[3] = 6;
  const int32_t prefix = 3, accept = 4;
  deco_kv_cache_compact_args_t a = DECO_KV_CACHE_COMPACT_ARGS_INIT;
  a.n_seqs = 1;
  a.block_table = table;
  a.prefix_lens = &prefix;
  a.path = path;
  a.accept_len = &accept;

  cr_assert_eq(deco_kv_cache_compact(NULL, &a), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_kv_cache_compact(kc, NULL), DECO_STATUS_NULL_POINTER);
  a.n_seqs = 3; /* more than the cache's 2 */
  cr_assert_eq(deco_kv_cache_compact(kc, &a), DECO_STATUS_INVALID_ARGUMENT);
  a.n_seqs = 1;
  a.block_table = NULL;
  cr_assert_eq(deco_kv_cache_compact(kc, &a), DECO_STATUS_NULL_POINTER);
  a.block_table = table;
  cr_assert_eq(memcmp(k, k0, bytes), 0, "a refused call wrote");

  cr_assert_eq(deco_kv_cache_compact(kc, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  const deco_model_hparams_t *hp = deco_model_get_hparams(model);
  const size_t row = (size_t)hp->n_kv_heads * (size_t)hp->head_dim, layer = (size_t)PAGES * PAGE * row;
  cr_assert_eq(n, (size_t)hp->n_layers * layer);
  /* Slot s of seq, layer l: its first element. */
#define AT_SLOT(l, s) ((size_t)(l) * layer + ((size_t)table[(s) / PAGE] * PAGE + (size_t)((s) % PAGE)) * row)
  for (int l = 0; l < hp->n_layers; ++l)
    for (int d = 1; d < accept; ++d) {
      const size_t to = AT_SLOT(l, prefix + d), from = AT_SLOT(l, prefix + path[d]);
      cr_assert_eq(memcmp(k + to, k0 + from, sizeof(float) * row), 0, "layer %d: K of slot %d", l, prefix + d);
      cr_assert_eq(memcmp(v + to, v0 + from, sizeof(float) * row), 0, "layer %d: V of slot %d", l, prefix + d);
      for (size_t e = 0; e < row; ++e) k0[to + e] = k0[from + e], v0[to + e] = v0[from + e];
    }
#undef AT_SLOT
  cr_assert_eq(memcmp(k, k0, bytes), 0, "a slot off the path changed (K)");
  cr_assert_eq(memcmp(v, v0, bytes), 0, "a slot off the path changed (V)");
  free(table);
  free(k0);
  free(v0);
  deco_kv_cache_destroy(kc);
}

Test(kv_cache, synthetic_tiny_shape_and_determinism) {
  const deco_model_hparams_t *c = deco_model_get_hparams(model);
  cr_assert_eq(c->dim, 256);
  cr_assert_eq(c->n_layers, 4);
  cr_assert_eq(c->n_heads, 4);
  cr_assert_eq(c->n_kv_heads, 2);
  cr_assert_eq(c->vocab_size, 259);
  cr_assert_eq(c->builtin_vocab, 1);
  size_t mb = deco_model_weight_bytes(model) >> 20;
  cr_assert(mb >= 11 && mb <= 13, "tiny is about 12 MB, got %zu MB", mb);
  /* The same seed gives the same model: identical logits. */
  deco_model_t *again;
  cr_assert_eq(deco_model_create_synthetic(ctx, "tiny", DECO_SYNTHETIC_SEED, NULL, &again),
               DECO_STATUS_SUCCESS);
  float l1[259], l2[259];
  deco_model_t *models[2] = {model, again};
  float *outs[2] = {l1, l2};
  for (int i = 0; i < 2; ++i) {
    deco_kv_cache_t *kc;
    int s, n = 3;
    int32_t ids[3] = {1, 72, 105};
    cr_assert_eq(deco_kv_cache_create(models[i], 16, 2, 1, &kc), DECO_STATUS_SUCCESS);
    cr_assert_eq(deco_kv_cache_admit(kc, 8, &s), DECO_STATUS_SUCCESS);
    deco_forward_args_t fa = {.n_seqs = 1, .seqs = &s, .n_new = &n, .tokens = ids, .embeds = NULL, .parents = NULL,
                              .logits_mode = DECO_LOGITS_LAST, .logits = outs[i]};
    cr_assert_eq(deco_forward(models[i], kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    deco_kv_cache_destroy(kc);
  }
  cr_assert_eq(memcmp(l1, l2, sizeof l1), 0);
  deco_model_destroy(again);
  deco_model_t *big;
  cr_assert_eq(deco_model_create_synthetic(ctx, "llama3-8b", 1, NULL, &big), DECO_STATUS_UNSUPPORTED);
  cr_assert(strstr(deco_last_error(ctx), "CPU") != NULL, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_model_create_synthetic(ctx, "nope", 1, NULL, &big), DECO_STATUS_INVALID_ARGUMENT);
  deco_model_config_t bf16 = DECO_MODEL_CONFIG_INIT;
  bf16.dtype = DECO_DTYPE_BF16;
  cr_assert_eq(deco_model_create_synthetic(ctx, "tiny", 1, &bf16, &big), DECO_STATUS_UNSUPPORTED);
}
