/* tests/test_tp_smollm2.c — SmolLM2 (9 query heads, 3 KV heads, FFN 1536)
 * sharded three ways: its 3-layer mini GGUF (Q4_1, dequantised per rank,
 * each rank uploading its slices) at TP 3 gives every rank the same logits,
 * within the f32 forward tolerance of TP 1, teacher-forced over a prefill
 * and decode steps. The file is not in git (label model).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/tp_run.h"

#define MINI "SmolLM2-135M-mini.gguf"
#define N_POS 12

static const int32_t ids[N_POS] = {1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 30};

typedef struct job {
  const char *path;
  int tp, vocab;
  float *logits[DECO_COMM_MAX_RANKS]; /* [N_POS][vocab] */
  size_t weight_bytes[DECO_COMM_MAX_RANKS];
} job_t;

static deco_status_t rank_main(deco_comm_t *comm, int rank, void *user) {
  job_t *j = user;
  deco_ctx_t *ctx;
  deco_model_t *m;
  deco_status_t st = deco_test_tp_load(j->tp > 1 ? comm : NULL, rank, j->tp, j->path, &ctx, &m);
  if (st != DECO_STATUS_SUCCESS) {
    deco_comm_abort(comm);
    deco_ctx_destroy(ctx);
    return st;
  }
  j->weight_bytes[rank] = deco_model_weight_bytes(m);
  deco_kv_cache_t *kc = NULL;
  int seq = -1, half = N_POS / 2, one = 1;
  st = deco_kv_cache_create(m, 16, 2, 1, &kc);
  if (st == DECO_STATUS_SUCCESS) st = deco_kv_cache_admit(kc, N_POS, &seq);
  float *out = j->logits[rank] = calloc((size_t)N_POS * j->vocab, sizeof(float));
  deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &half, .tokens = ids, .logits_mode = DECO_LOGITS_ALL,
                            .logits = out};
  if (st == DECO_STATUS_SUCCESS) st = deco_forward(m, kc, &fa);
  for (int p = half; p < N_POS && st == DECO_STATUS_SUCCESS; ++p) {
    fa = (deco_forward_args_t){.n_seqs = 1, .seqs = &seq, .n_new = &one, .tokens = ids + p,
                               .logits_mode = DECO_LOGITS_LAST, .logits = out + (size_t)p * j->vocab};
    st = deco_forward(m, kc, &fa);
  }
  deco_kv_cache_destroy(kc);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
  return st;
}

static void run(job_t *j) { deco_test_tp_run_ok(j->tp, rank_main, j); }

Test(tp_smollm2, mini_at_tp_3_matches_tp_1) {
  const char *path = deco_test_model_file(MINI);
  deco_model_hparams_t hp;
  cr_assert_eq(deco_model_read_hparams(path, &hp), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert(hp.n_heads == 9 && hp.n_kv_heads == 3, "%d / %d heads", hp.n_heads, hp.n_kv_heads);
  job_t one = {.path = path, .tp = 1, .vocab = hp.vocab_size}, three = {.path = path, .tp = 3, .vocab = hp.vocab_size};
  run(&one);
  run(&three);
  const size_t n = (size_t)N_POS * hp.vocab_size;
  for (int r = 1; r < 3; ++r)
    cr_assert(memcmp(three.logits[r], three.logits[0], n * sizeof(float)) == 0, "rank %d differs from rank 0", r);
  cr_assert_eq(deco_test_compare("SmolLM2 mini TP 3 vs TP 1", three.logits[0], one.logits[0], n,
                                 DECO_TOL_FORWARD_F32_ATOL, DECO_TOL_FORWARD_F32_RTOL),
               0);
  /* TP 3 divides the heads (9 / 3, KV 3 / 3) and the FFN (1536 / 3): each
   * rank holds a third of the split weights plus the replicated ones, all
   * f32 on the CPU. */
  const size_t L = (size_t)hp.n_layers, dim = (size_t)hp.dim, hd = (size_t)hp.head_dim, V = (size_t)hp.vocab_size;
  const size_t replicated = (V * dim * (hp.shared_classifier ? 1 : 2) + 2 * L * dim + dim) * sizeof(float);
  const size_t split =
      L * dim * (2 * (size_t)hp.n_heads * hd + 2 * (size_t)hp.n_kv_heads * hd + 3 * (size_t)hp.hidden_dim) *
      sizeof(float);
  cr_assert_eq(one.weight_bytes[0], replicated + split, "TP 1 holds %zu bytes", one.weight_bytes[0]);
  for (int r = 0; r < 3; ++r) {
    cr_assert_eq(three.weight_bytes[r], replicated + split / 3, "rank %d holds %zu bytes, expected %zu", r,
                 three.weight_bytes[r], replicated + split / 3);
    free(three.logits[r]);
  }
  free(one.logits[0]);
}
