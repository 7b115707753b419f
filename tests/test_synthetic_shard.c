/* tests/test_synthetic_shard.c — synthetic models of explicit shapes
 * (deco_model_create_synthetic_hparams) and one rank's shapes under tensor
 * parallelism (deco_shard_hparams), which perf/bench_tp_layer.c combines to
 * time a rank's shard on one device: a named shape given explicitly is the
 * named model bit for bit; the shard shapes follow the plan of
 * docs/DESIGN.md (heads and FFN columns divided, FFN padded, KV heads
 * divided or replicated) and a shard model holds the weight bytes a loaded
 * rank holds at TP 2, 4 and 8 (stories260K, threads communicator); a shard
 * model, whose dim is not heads x head_dim, runs a forward; bad shapes are
 * refused naming the field.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "common/tp_run.h"

static deco_ctx_t *cpu_ctx(void) {
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.n_threads = 1;
  deco_ctx_t *ctx = NULL;
  cr_assert_eq(deco_ctx_create(&cc, &ctx), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  return ctx;
}

/* Logits of 4 tokens from an empty cache; malloc'd [4][vocab]. */
static float *forward4(deco_model_t *m) {
  const deco_model_hparams_t *hp = deco_model_get_hparams(m);
  deco_kv_cache_t *kc = NULL;
  int seq = -1, n = 4;
  cr_assert_eq(deco_kv_cache_create(m, 16, 2, 1, &kc), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, 4, &seq), DECO_STATUS_SUCCESS);
  int32_t tokens[4] = {1, 7, 42, 3};
  float *logits = calloc((size_t)4 * hp->vocab_size, sizeof(float));
  deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &n, .tokens = tokens,
                            .logits_mode = DECO_LOGITS_ALL, .logits = logits};
  cr_assert_eq(deco_forward(m, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(deco_model_ctx(m)));
  deco_kv_cache_destroy(kc);
  return logits;
}

Test(synthetic_shard, a_named_shape_given_explicitly_is_the_named_model_bit_for_bit) {
  deco_ctx_t *ctx = cpu_ctx();
  deco_model_hparams_t hp;
  cr_assert_eq(deco_synthetic_hparams("tiny", &hp), DECO_STATUS_SUCCESS);
  deco_model_t *a = NULL, *b = NULL;
  cr_assert_eq(deco_model_create_synthetic(ctx, "tiny", DECO_SYNTHETIC_SEED, NULL, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_model_create_synthetic_hparams(ctx, &hp, "tiny", DECO_SYNTHETIC_SEED, NULL, &b),
               DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_model_weight_bytes(a), deco_model_weight_bytes(b));
  float *la = forward4(a), *lb = forward4(b);
  cr_assert(memcmp(la, lb, sizeof(float) * 4 * (size_t)hp.vocab_size) == 0,
            "explicit tiny's logits differ from synthetic:tiny's");
  /* Another seed is another model. */
  deco_model_t *c = NULL;
  cr_assert_eq(deco_model_create_synthetic_hparams(ctx, &hp, "tiny", DECO_SYNTHETIC_SEED + 1, NULL, &c),
               DECO_STATUS_SUCCESS);
  float *lc = forward4(c);
  cr_assert(memcmp(la, lc, sizeof(float) * 4 * (size_t)hp.vocab_size) != 0);
  free(la);
  free(lb);
  free(lc);
  deco_model_destroy(a);
  deco_model_destroy(b);
  deco_model_destroy(c);
  deco_ctx_destroy(ctx);
}

Test(synthetic_shard, shard_shapes_follow_the_plan) {
  deco_model_hparams_t full, local;
  cr_assert_eq(deco_synthetic_hparams("llama3-8b", &full), DECO_STATUS_SUCCESS);
  /* 32 query heads, 8 KV heads, FFN 14336: TP 16 replicates the KV heads. */
  const int tps[] = {1, 2, 4, 8, 16}, heads[] = {32, 16, 8, 4, 2}, kv[] = {8, 4, 2, 1, 1},
            hid[] = {14336, 7168, 3584, 1792, 896};
  for (int i = 0; i < 5; ++i) {
    cr_assert_eq(deco_shard_hparams(&full, tps[i], &local), DECO_STATUS_SUCCESS, "TP %d: %s", tps[i],
                 deco_last_error(NULL));
    cr_assert_eq(local.n_heads, heads[i], "TP %d", tps[i]);
    cr_assert_eq(local.n_kv_heads, kv[i], "TP %d", tps[i]);
    cr_assert_eq(local.hidden_dim, hid[i], "TP %d", tps[i]);
    cr_assert_eq(local.dim, 4096);
    cr_assert_eq(local.head_dim, 128);
    cr_assert_eq(local.vocab_size, 128256);
    cr_assert_eq(local.n_layers, 32);
  }
  /* An FFN width TP does not divide is padded: 172 at TP 8 is 22 per rank. */
  deco_model_hparams_t s = full;
  s.hidden_dim = 172;
  cr_assert_eq(deco_shard_hparams(&s, 8, &local), DECO_STATUS_SUCCESS);
  cr_assert_eq(local.hidden_dim, 22);
  /* TP 3 divides neither the heads: refused naming 32, 8 and 3. */
  cr_assert_eq(deco_shard_hparams(&full, 3, &local), DECO_STATUS_INVALID_ARGUMENT);
  const char *msg = deco_last_error(NULL);
  cr_assert(strstr(msg, "32") && strstr(msg, "8") && strstr(msg, "3"), "%s", msg);
  cr_assert_eq(deco_shard_hparams(&full, 0, &local), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_shard_hparams(NULL, 2, &local), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_shard_hparams(&full, 2, NULL), DECO_STATUS_NULL_POINTER);
}

typedef struct bytes_job {
  const char *path;
  int tp;
  size_t bytes[DECO_COMM_MAX_RANKS];
} bytes_job_t;

static deco_status_t load_rank(deco_comm_t *comm, int rank, void *user) {
  bytes_job_t *j = user;
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.n_threads = 1;
  deco_ctx_t *ctx = NULL;
  deco_status_t st = deco_ctx_create(&cc, &ctx);
  if (st != DECO_STATUS_SUCCESS) return st;
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.comm = comm;
  mc.tp_rank = rank;
  mc.tp_size = j->tp;
  deco_model_t *m = NULL;
  st = deco_model_load(ctx, j->path, &mc, &m);
  if (st == DECO_STATUS_SUCCESS) j->bytes[rank] = deco_model_weight_bytes(m);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
  return st;
}

Test(synthetic_shard, a_shard_model_holds_what_a_loaded_rank_holds_and_runs) {
  const char *path = deco_test_data_file("models/stories260K.bin");
  deco_model_hparams_t full;
  cr_assert_eq(deco_model_read_hparams(path, &full), DECO_STATUS_SUCCESS);
  deco_ctx_t *ctx = cpu_ctx();
  const int tps[] = {2, 4, 8};
  for (int i = 0; i < 3; ++i) {
    bytes_job_t j = {.path = path, .tp = tps[i]};
    deco_test_tp_run_ok(j.tp, load_rank, &j);
    deco_model_hparams_t local;
    cr_assert_eq(deco_shard_hparams(&full, j.tp, &local), DECO_STATUS_SUCCESS);
    deco_model_t *m = NULL;
    cr_assert_eq(deco_model_create_synthetic_hparams(ctx, &local, "stories260K-shard", DECO_SYNTHETIC_SEED, NULL, &m),
                 DECO_STATUS_SUCCESS, "TP %d: %s", j.tp, deco_last_error(ctx));
    for (int r = 0; r < j.tp; ++r)
      cr_assert_eq(deco_model_weight_bytes(m), j.bytes[r], "TP %d: the shard model holds %zu bytes, rank %d %zu", j.tp,
                   deco_model_weight_bytes(m), r, j.bytes[r]);
    /* dim 64 with n_heads x head_dim = 64 / TP: the forward runs. */
    cr_assert_neq(local.n_heads * local.head_dim, local.dim);
    float *logits = forward4(m);
    for (size_t k = 0; k < (size_t)4 * local.vocab_size; ++k)
      cr_assert(isfinite(logits[k]), "TP %d: logit %zu is %g", j.tp, k, logits[k]);
    free(logits);
    deco_model_destroy(m);
  }
  deco_ctx_destroy(ctx);
}

Test(synthetic_shard, explicit_shapes_are_checked) {
  deco_ctx_t *ctx = cpu_ctx();
  deco_model_hparams_t ok, hp;
  cr_assert_eq(deco_synthetic_hparams("tiny", &ok), DECO_STATUS_SUCCESS);
  deco_model_t *m = NULL;
  const char *fields[] = {"head_dim", "n_kv_heads", "stop_ids", "dim", "norm_eps"};
  for (int i = 0; i < 5; ++i) {
    hp = ok;
    switch (i) {
    case 0: hp.head_dim = 7; break;                      /* odd: RoPE pairs */
    case 1: hp.n_kv_heads = 3; break;                    /* 4 query heads */
    case 2: hp.stop_ids[0] = hp.vocab_size; break;       /* outside the vocabulary */
    case 3: hp.dim = 0; break;
    case 4: hp.norm_eps = 0.0f; break;
    }
    cr_assert_eq(deco_model_create_synthetic_hparams(ctx, &hp, "bad", 1, NULL, &m), DECO_STATUS_INVALID_ARGUMENT,
                 "case %s", fields[i]);
    cr_assert_null(m);
    cr_assert(strstr(deco_last_error(ctx), fields[i]) && strstr(deco_last_error(ctx), "synthetic:bad"), "%s",
              deco_last_error(ctx));
  }
  cr_assert_eq(deco_model_create_synthetic_hparams(ctx, NULL, "x", 1, NULL, &m), DECO_STATUS_NULL_POINTER);
  /* Synthetic models run at TP 1 only, explicit ones too. */
  deco_comm_t *comms[2];
  cr_assert_eq(deco_comm_threads_create(2, comms), DECO_STATUS_SUCCESS);
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.comm = comms[0];
  mc.tp_size = 2;
  cr_assert_eq(deco_model_create_synthetic_hparams(ctx, &ok, "tiny", 1, &mc, &m), DECO_STATUS_UNSUPPORTED);
  cr_assert(strstr(deco_last_error(ctx), "tensor parallelism 1 only"), "%s", deco_last_error(ctx));
  deco_comm_destroy(comms[0]);
  deco_comm_destroy(comms[1]);
  deco_ctx_destroy(ctx);
}
