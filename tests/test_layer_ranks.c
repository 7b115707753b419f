/* tests/test_layer_ranks.c — layer groups across ranks (EasySpec across
 * devices, issue 19 item 2) with the threads communicator on the CPU:
 * stories260K with a group of N = 2 (ranks 2 and 3) and N = 3 (ranks 3),
 * each rank running one layer's attention of the group and holding its K/V,
 * the group input broadcast, the attention outputs all-gathered and added
 * in order around the replicated MLPs. Every rank's logits (a prefill, then
 * decode steps, then a tree step) equal the one-rank unfused grouped
 * forward's bit for bit (the same ops on the same values, only moved
 * between ranks), hence the one-rank fused forward's within
 * DECO_TOL_FUSED_GROUP_F32; rank r's cache holds, bit for bit, the one-rank
 * K/V of the group's r-th layer. A communicator smaller than a group, of
 * the view's schedule or of a forward's own, is refused.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/tp_run.h"

enum { V = 512, NL = 5, KVD = 32, NT = 10, NSTEP = 3, NTREE = 4, NPOS = NT + NSTEP + NTREE };
static const int32_t prompt[NT] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 280};
static const int32_t steps[NSTEP] = {298, 265, 330};
static const int32_t tree_ids[NTREE] = {271, 299, 402, 330}, tree_par[NTREE] = {-1, 0, 0, 1};

typedef struct job {
  const deco_layer_schedule_t *s;
  float *logits[DECO_COMM_MAX_RANKS]; /* [NPOS][V] */
  float *k[DECO_COMM_MAX_RANKS], *v[DECO_COMM_MAX_RANKS];
  size_t kv_bytes;
} job_t;

/* The prompt, NSTEP single steps, then the tree; logits [NPOS][V]; the K/V
 * pools copied out (every layer, [NL][pages][16][KVD]). */
static deco_status_t run(deco_model_t *m, float *logits, float **k, float **v, size_t *bytes) {
  deco_kv_cache_t *kc;
  int seq;
  deco_status_t st = deco_kv_cache_create(m, 16, 2, 1, &kc);
  if (st != DECO_STATUS_SUCCESS) return st;
  st = deco_kv_cache_admit(kc, NPOS, &seq);
  void *kp, *vp;
  if (st == DECO_STATUS_SUCCESS) st = deco_kv_cache_pools(kc, &kp, &vp, bytes);
  if (st == DECO_STATUS_SUCCESS) {
    /* Unwritten slots compare as zero (CPU: the pools are host memory). */
    memset(kp, 0, *bytes);
    memset(vp, 0, *bytes);
  }
  for (int step = 0; step < 2 + NSTEP && st == DECO_STATUS_SUCCESS; ++step) {
    const int tree = step == 1 + NSTEP;
    int n = step == 0 ? NT : tree ? NTREE : 1;
    const int at = step == 0 ? 0 : tree ? NT + NSTEP : NT + step - 1;
    deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
    fa.n_seqs = 1, fa.seqs = &seq, fa.n_new = &n;
    fa.tokens = step == 0 ? prompt : tree ? tree_ids : steps + step - 1;
    fa.parents = tree ? tree_par : NULL;
    fa.logits_mode = DECO_LOGITS_ALL, fa.logits = logits + (size_t)at * V;
    st = deco_forward(m, kc, &fa);
  }
  if (st == DECO_STATUS_SUCCESS) {
    *k = malloc(*bytes), *v = malloc(*bytes);
    memcpy(*k, kp, *bytes), memcpy(*v, vp, *bytes);
  }
  deco_kv_cache_destroy(kc);
  return st;
}

/* A rank's view of stories260K with schedule s over comm, on a one-thread
 * CPU context; the caller destroys what was made (NULL where nothing was). */
static deco_status_t load_view(deco_comm_t *comm, const deco_layer_schedule_t *s, deco_ctx_t **ctx,
                               deco_model_t **base, deco_model_t **view) {
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.backend = DECO_BACKEND_CPU, cc.n_threads = 1;
  *ctx = NULL, *base = NULL, *view = NULL;
  deco_status_t st = deco_ctx_create(&cc, ctx);
  if (st == DECO_STATUS_SUCCESS) st = deco_model_load(*ctx, deco_test_data_file("models/stories260K.bin"), NULL, base);
  if (st == DECO_STATUS_SUCCESS) st = deco_model_create_view_ranks(*base, s, comm, view);
  return st;
}

static deco_status_t rank_main(deco_comm_t *comm, int rank, void *user) {
  job_t *j = user;
  deco_ctx_t *ctx;
  deco_model_t *base, *view;
  deco_status_t st = load_view(comm, j->s, &ctx, &base, &view);
  j->logits[rank] = calloc((size_t)NPOS * V, sizeof(float));
  if (st == DECO_STATUS_SUCCESS) st = run(view, j->logits[rank], &j->k[rank], &j->v[rank], &j->kv_bytes);
  if (st != DECO_STATUS_SUCCESS) deco_comm_abort(comm);
  deco_model_destroy(view);
  deco_model_destroy(base);
  deco_ctx_destroy(ctx);
  return st;
}

/* Schedule {0} {1 .. N} {N+1 ..} over `ranks` threads. */
static void check(int N, int ranks) {
  int first[NL], count[NL], ng = 0;
  first[ng] = 0, count[ng++] = 1;
  first[ng] = 1, count[ng++] = N;
  for (int l = N + 1; l < NL; ++l) first[ng] = l, count[ng++] = 1;
  const deco_layer_schedule_t s = {.n_groups = ng, .first = first, .count = count};
  /* One rank: the unfused grouped forward (the schedule on the base) and the fused one (a view). */
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *base = deco_test_load_stories(ctx, DECO_DTYPE_F32), *fused_view;
  cr_assert_eq(deco_model_create_view(base, &s, &fused_view), DECO_STATUS_SUCCESS);
  deco_model_t *unfused_view;
  {
    /* The unfused grouped forward: the schedule as a loaded model's default
     * (only views fuse their groups). */
    deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
    mc.schedule = s;
    cr_assert_eq(deco_model_load_llama2c(ctx, deco_test_data_file("models/stories260K.bin"), &mc, &unfused_view),
                 DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  }
  static float one[NPOS * V], fused[NPOS * V];
  float *k1, *v1, *kf, *vf;
  size_t b1, bf;
  cr_assert_eq(run(unfused_view, one, &k1, &v1, &b1), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(run(fused_view, fused, &kf, &vf, &bf), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));

  static job_t j;
  memset(&j, 0, sizeof j);
  j.s = &s;
  deco_status_t status[DECO_COMM_MAX_RANKS];
  char (*msg)[512] = calloc(DECO_COMM_MAX_RANKS, 512);
  cr_assert_eq(deco_test_tp_run(ranks, rank_main, &j, status, msg), 0);
  char what[96];
  for (int r = 0; r < ranks; ++r) {
    cr_assert_eq(status[r], DECO_STATUS_SUCCESS, "rank %d: %s", r, msg[r]);
    cr_assert_eq(memcmp(j.logits[r], one, sizeof one), 0, "N = %d over %d ranks: rank %d differs from one rank", N,
                 ranks, r);
    snprintf(what, sizeof what, "N = %d, %d ranks, rank %d vs one rank fused", N, ranks, r);
    cr_assert_eq(deco_test_compare(what, j.logits[r], fused, (size_t)NPOS * V, DECO_TOL_FUSED_GROUP_F32,
                                   DECO_TOL_FUSED_GROUP_F32),
                 0, "%s", what);
    /* Rank r holds the K/V of the group's r-th layer (layer 1 + r) and of the
     * single layers; the group's other layers stay unwritten on it. */
    cr_assert_eq(j.kv_bytes, b1);
    const size_t layer = b1 / NL;
    for (int l = 0; l < NL; ++l) {
      const int grouped = l >= 1 && l <= N, mine = !grouped || l == 1 + r;
      if (!mine) {
        const char *kl = (const char *)j.k[r] + l * layer;
        for (size_t b = 0; b < layer; ++b) cr_assert_eq(kl[b], 0, "rank %d wrote K of layer %d", r, l);
        continue;
      }
      cr_assert_eq(memcmp((char *)j.k[r] + l * layer, (char *)k1 + l * layer, layer), 0, "rank %d: K of layer %d",
                   r, l);
      cr_assert_eq(memcmp((char *)j.v[r] + l * layer, (char *)v1 + l * layer, layer), 0, "rank %d: V of layer %d",
                   r, l);
    }
    free(j.logits[r]), free(j.k[r]), free(j.v[r]);
  }
  free(msg), free(k1), free(v1), free(kf), free(vf);
  deco_model_destroy(fused_view);
  deco_model_destroy(unfused_view);
  deco_model_destroy(base);
  deco_ctx_destroy(ctx);
}

Test(layer_ranks, a_group_of_two_over_two_ranks) { check(2, 2); }
Test(layer_ranks, a_group_of_two_over_three_ranks) { check(2, 3); }
Test(layer_ranks, a_group_of_three_over_three_ranks) { check(3, 3); }

static deco_status_t too_few(deco_comm_t *comm, int rank, void *user) {
  (void)rank;
  deco_ctx_t *ctx;
  deco_model_t *base, *view;
  deco_status_t st = load_view(comm, user, &ctx, &base, &view);
  deco_model_destroy(view);
  deco_model_destroy(base);
  deco_ctx_destroy(ctx);
  return st;
}

Test(layer_ranks, a_communicator_smaller_than_a_group_is_refused) {
  const int first[3] = {0, 1, 4}, count[3] = {1, 3, 1};
  const deco_layer_schedule_t s = {.n_groups = 3, .first = first, .count = count};
  deco_status_t status[DECO_COMM_MAX_RANKS];
  char (*msg)[512] = calloc(DECO_COMM_MAX_RANKS, 512);
  cr_assert_eq(deco_test_tp_run(2, too_few, (void *)&s, status, msg), 0);
  for (int r = 0; r < 2; ++r) {
    cr_assert_eq(status[r], DECO_STATUS_INVALID_ARGUMENT);
    cr_assert(strstr(msg[r], "needs 3 ranks, the communicator has 2"), "%s", msg[r]);
  }
  free(msg);
}

/* A forward's own schedule must fit the communicator too: a group of
 * three over two ranks is refused on every rank before any collective. */
static deco_status_t call_too_big(deco_comm_t *comm, int rank, void *user) {
  (void)rank, (void)user;
  const int vf[4] = {0, 1, 3, 4}, vc[4] = {1, 2, 1, 1}, cf[3] = {0, 1, 4}, cc[3] = {1, 3, 1};
  const deco_layer_schedule_t own = {.n_groups = 4, .first = vf, .count = vc};
  const deco_layer_schedule_t call = {.n_groups = 3, .first = cf, .count = cc};
  deco_ctx_t *ctx;
  deco_model_t *base, *view;
  deco_kv_cache_t *kc = NULL;
  int seq = -1, n = NT;
  deco_status_t st = load_view(comm, &own, &ctx, &base, &view);
  if (st == DECO_STATUS_SUCCESS) st = deco_kv_cache_create(view, 16, 2, 1, &kc);
  if (st == DECO_STATUS_SUCCESS) st = deco_kv_cache_admit(kc, NPOS, &seq);
  static float logits[DECO_COMM_MAX_RANKS][V];
  if (st == DECO_STATUS_SUCCESS) {
    deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
    fa.n_seqs = 1, fa.seqs = &seq, fa.n_new = &n, fa.tokens = prompt, fa.schedule = &call;
    fa.logits_mode = DECO_LOGITS_LAST, fa.logits = logits[rank];
    st = deco_forward(view, kc, &fa);
  }
  deco_kv_cache_destroy(kc);
  deco_model_destroy(view);
  deco_model_destroy(base);
  deco_ctx_destroy(ctx);
  return st;
}

Test(layer_ranks, a_call_schedule_larger_than_the_communicator_is_refused) {
  deco_status_t status[DECO_COMM_MAX_RANKS];
  char (*msg)[512] = calloc(DECO_COMM_MAX_RANKS, 512);
  cr_assert_eq(deco_test_tp_run(2, call_too_big, NULL, status, msg), 0);
  for (int r = 0; r < 2; ++r) {
    cr_assert_eq(status[r], DECO_STATUS_INVALID_ARGUMENT, "rank %d: %s", r, msg[r]);
    cr_assert(strstr(msg[r], "schedule: a group of 3 layers needs 3 ranks, the communicator has 2"), "%s", msg[r]);
  }
  free(msg);
}
