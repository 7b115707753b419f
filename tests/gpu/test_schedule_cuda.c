/* tests/gpu/test_schedule_cuda.c — the model config's layer schedules and
 * the device forward's ready embeddings on the GPU: stories260K in f32 under
 * a schedule with a layer group and a skipped layer gives the CPU's logits
 * under the same schedule (the forward tolerance of TESTING.md); every layer
 * alone gives the default forward's logits bit for bit; embeddings in device
 * memory give the logits of the ids they embed, bit for bit.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/tolerances.h"
#include "gpu_suite.h"

DECO_GPU_SUITE(schedule_cuda, 120);

#define NT 12

/* Logits [NT][vocab] (host) of a causal prefill of ids under schedule s
 * (NULL: the model's), ids given as ids or, with embeds (context memory),
 * as their embeddings, through deco_forward_device. */
static float *prefill(deco_model_t *m, const deco_layer_schedule_t *s, const int32_t *ids, const float *embeds) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  const int V = deco_model_get_hparams(m)->vocab_size;
  deco_kv_cache_t *kc;
  int seq;
  cr_assert_eq(deco_kv_cache_create(m, 16, 4, 1, &kc), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, NT, &seq), DECO_STATUS_SUCCESS);
  const int P = deco_kv_cache_max_pages(kc);
  int32_t meta[3 + 2 * NT], *d_meta, *d_table;
  float *d_logits;
  meta[0] = 0, meta[1] = NT, meta[2] = NT; /* q_indptr {0, NT}, kv_lens {NT} */
  for (int t = 0; t < NT; ++t) meta[3 + t] = t, meta[3 + NT + t] = ids[t];
  cr_assert_eq(deco_malloc(ctx, (void **)&d_meta, sizeof meta), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_malloc(ctx, (void **)&d_table, sizeof(int32_t) * (size_t)P), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_malloc(ctx, (void **)&d_logits, sizeof(float) * NT * (size_t)V), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memcpy(ctx, d_meta, meta, sizeof meta, DECO_COPY_HOST_TO_CTX), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_block_table(kc, &seq, 1, d_table), DECO_STATUS_SUCCESS);
  deco_forward_device_args_t fa = DECO_FORWARD_DEVICE_ARGS_INIT;
  fa.n_seqs = 1;
  fa.n_tokens = NT;
  fa.tokens = embeds ? NULL : d_meta + 3 + NT;
  fa.embeds = embeds;
  fa.positions = d_meta + 3;
  fa.q_indptr = d_meta;
  fa.kv_lens = d_meta + 2;
  fa.block_table = d_table;
  fa.logits = d_logits;
  fa.schedule = s;
  cr_assert_eq(deco_forward_device(m, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  float *host = malloc(sizeof(float) * NT * (size_t)V);
  cr_assert_eq(deco_memcpy(ctx, host, d_logits, sizeof(float) * NT * (size_t)V, DECO_COPY_CTX_TO_HOST),
               DECO_STATUS_SUCCESS);
  deco_free(ctx, d_meta), deco_free(ctx, d_table), deco_free(ctx, d_logits);
  deco_kv_cache_destroy(kc);
  return host;
}

Test(schedule_cuda, groups_and_subsets_match_the_cpu) {
  deco_model_t *mg = deco_test_load_stories(gpu, DECO_DTYPE_F32), *mc = deco_test_load_stories(cpu, DECO_DTYPE_F32);
  int n_ids;
  int32_t *ids = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/greedy_bos_256.ids"), &n_ids);
  const int V = deco_model_get_hparams(mg)->vocab_size;
  /* {0} {1,2} {4}: a group, then layer 3 skipped. */
  const int first[3] = {0, 1, 4}, count[3] = {1, 2, 1};
  const deco_layer_schedule_t s = {.n_groups = 3, .first = first, .count = count};
  float *g = prefill(mg, &s, ids, NULL), *c = prefill(mc, &s, ids, NULL);
  cr_assert_eq(deco_test_compare("grouped f32", g, c, NT * (size_t)V, DECO_TOL_FORWARD_F32_ATOL,
                                 DECO_TOL_FORWARD_F32_RTOL),
               0);
  /* Every layer alone is the default forward. */
  const int af[5] = {0, 1, 2, 3, 4}, ac[5] = {1, 1, 1, 1, 1};
  const deco_layer_schedule_t alone = {.n_groups = 5, .first = af, .count = ac};
  float *a = prefill(mg, &alone, ids, NULL), *d = prefill(mg, NULL, ids, NULL);
  cr_assert_eq(memcmp(a, d, sizeof(float) * NT * (size_t)V), 0, "every layer alone differs from the default");
  free(g), free(c), free(a), free(d), free(ids);
  deco_model_destroy(mg);
  deco_model_destroy(mc);
}

Test(schedule_cuda, device_embeddings_equal_ids) {
  deco_model_t *m = deco_test_load_stories(gpu, DECO_DTYPE_F32);
  int n_ids;
  int32_t *ids = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/greedy_bos_256.ids"), &n_ids);
  size_t bytes;
  float *file = deco_test_read_file(deco_test_data_file("models/stories260K.bin"), &bytes);
  const float *emb = (const float *)((const char *)file + 28); /* [512][64], the first tensor */
  float rows[NT * 64], *d_rows;
  for (int t = 0; t < NT; ++t) memcpy(rows + t * 64, emb + (size_t)ids[t] * 64, sizeof(float) * 64);
  cr_assert_eq(deco_malloc(gpu, (void **)&d_rows, sizeof rows), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memcpy(gpu, d_rows, rows, sizeof rows, DECO_COPY_HOST_TO_CTX), DECO_STATUS_SUCCESS);
  float *a = prefill(m, NULL, ids, NULL), *b = prefill(m, NULL, ids, d_rows);
  cr_assert_eq(memcmp(a, b, sizeof(float) * NT * 512), 0, "embeddings in device memory differ from their ids");
  free(a), free(b), free(file), free(ids);
  deco_free(gpu, d_rows);
  deco_model_destroy(m);
}
