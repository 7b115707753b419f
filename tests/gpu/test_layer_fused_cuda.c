/* tests/gpu/test_layer_fused_cuda.c — fused layer groups on the GPU
 * (issue 19): a view of stories260K (f32) with a group of N = 2, 3, 4
 * layers runs fused (one weightless RMSNorm, one strided-batched Q/K/V
 * GEMM over the stacked norm-folded weights, one RoPE, one KV append and
 * one attention over the virtual batch, one strided-batched O GEMM) and
 * gives the CPU's fused logits, causal prefill then a tree step, within
 * the forward tolerance of TESTING.md; deco_matmul_batched gives the CPU's
 * products (cuBLAS, fp32 accumulation) within the reduction tolerance.
 * The CPU side of both is checked against the formula in
 * tests/test_layer_fused.c.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/tolerances.h"
#include "gpu_suite.h"

DECO_GPU_SUITE(layer_fused_cuda, 120);

enum { NT = 12, NTREE = 4 };
static const int32_t prompt[NT] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 280, 298, 265};
static const int32_t tree_ids[NTREE] = {330, 271, 299, 402}, tree_par[NTREE] = {-1, 0, 0, 1};

/* Logits (host) of the prompt then the tree, on a view of m with schedule s. */
static void run(deco_model_t *m, const deco_layer_schedule_t *s, float *pre, float *tree) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  const int V = deco_model_get_hparams(m)->vocab_size;
  deco_model_t *view;
  cr_assert_eq(deco_model_create_view(m, s, &view), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_kv_cache_t *kc;
  int seq;
  cr_assert_eq(deco_kv_cache_create(view, 16, 4, 1, &kc), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, NT + NTREE, &seq), DECO_STATUS_SUCCESS);
  float *d_logits;
  cr_assert_eq(deco_malloc(ctx, (void **)&d_logits, sizeof(float) * NT * (size_t)V), DECO_STATUS_SUCCESS);
  for (int step = 0; step < 2; ++step) {
    int n = step ? NTREE : NT;
    deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
    fa.n_seqs = 1, fa.seqs = &seq, fa.n_new = &n, fa.tokens = step ? tree_ids : prompt;
    fa.parents = step ? tree_par : NULL, fa.logits_mode = DECO_LOGITS_ALL, fa.logits = d_logits;
    cr_assert_eq(deco_forward(view, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    cr_assert_eq(deco_memcpy(ctx, step ? tree : pre, d_logits, sizeof(float) * (size_t)n * V, DECO_COPY_CTX_TO_HOST),
                 DECO_STATUS_SUCCESS);
  }
  deco_free(ctx, d_logits);
  deco_kv_cache_destroy(kc);
  deco_model_destroy(view);
}

Test(layer_fused_cuda, fused_groups_match_the_cpu) {
  deco_model_t *mg = deco_test_load_stories(gpu, DECO_DTYPE_F32), *mc = deco_test_load_stories(cpu, DECO_DTYPE_F32);
  const int V = deco_model_get_hparams(mg)->vocab_size;
  float *g0 = malloc(sizeof(float) * NT * V), *c0 = malloc(sizeof(float) * NT * V);
  float *g1 = malloc(sizeof(float) * NTREE * V), *c1 = malloc(sizeof(float) * NTREE * V);
  for (int N = 2; N <= 4; ++N) {
    int first[5], count[5], ng = 0;
    first[ng] = 0, count[ng++] = 1;
    first[ng] = 1, count[ng++] = N;
    for (int l = N + 1; l < 5; ++l) first[ng] = l, count[ng++] = 1;
    const deco_layer_schedule_t s = {.n_groups = ng, .first = first, .count = count};
    run(mg, &s, g0, g1);
    run(mc, &s, c0, c1);
    cr_assert_eq(deco_test_compare("fused prefill", g0, c0, NT * (size_t)V, DECO_TOL_FORWARD_F32_ATOL,
                                   DECO_TOL_FORWARD_F32_RTOL),
                 0, "N = %d", N);
    cr_assert_eq(deco_test_compare("fused tree", g1, c1, NTREE * (size_t)V, DECO_TOL_FORWARD_F32_ATOL,
                                   DECO_TOL_FORWARD_F32_RTOL),
                 0, "N = %d", N);
  }
  free(g0), free(c0), free(g1), free(c1);
  deco_model_destroy(mg);
  deco_model_destroy(mc);
}

Test(layer_fused_cuda, batched_matmul_matches_the_cpu) {
  enum { M = 7, N = 96, K = 64, B = 3 };
  const size_t na = (size_t)B * M * K, nw = (size_t)B * N * K, no = (size_t)B * M * N;
  float *a = malloc(sizeof(float) * na), *w = malloc(sizeof(float) * nw);
  float *oc = malloc(sizeof(float) * no), *og = malloc(sizeof(float) * no);
  deco_test_fill_uniform(a, na, 11, 0, -1.0f, 1.0f);
  deco_test_fill_uniform(w, nw, 11, 1, -1.0f, 1.0f);
  float *da, *dw, *dout;
  cr_assert_eq(deco_malloc(gpu, (void **)&da, sizeof(float) * na), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_malloc(gpu, (void **)&dw, sizeof(float) * nw), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_malloc(gpu, (void **)&dout, sizeof(float) * no), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memcpy(gpu, da, a, sizeof(float) * na, DECO_COPY_HOST_TO_CTX), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memcpy(gpu, dw, w, sizeof(float) * nw, DECO_COPY_HOST_TO_CTX), DECO_STATUS_SUCCESS);
  for (int shared = 0; shared < 2; ++shared) {
    deco_matmul_batched_args_t b = DECO_MATMUL_BATCHED_ARGS_INIT;
    b.mm.m = M, b.mm.n = N, b.mm.k = K, b.n_batch = B;
    b.stride_a = shared ? 0 : M * K, b.stride_w = N * K, b.stride_out = M * N;
    b.mm.a = a, b.mm.w = w, b.mm.out = oc;
    cr_assert_eq(deco_matmul_batched(cpu, &b), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
    b.mm.a = da, b.mm.w = dw, b.mm.out = dout;
    cr_assert_eq(deco_matmul_batched(gpu, &b), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    cr_assert_eq(deco_memcpy(gpu, og, dout, sizeof(float) * no, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS);
    cr_assert_eq(deco_test_compare("batched matmul", og, oc, no, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION),
                 0, "shared input %d", shared);
  }
  deco_free(gpu, da), deco_free(gpu, dw), deco_free(gpu, dout);
  free(a), free(w), free(oc), free(og);
}
