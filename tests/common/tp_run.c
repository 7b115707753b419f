/* tests/common/tp_run.c — one thread per rank of a threads communicator;
 * each rank's communicator test input. */
#include "common/tp_run.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/testutil.h"

typedef struct rank_job {
  deco_comm_t *comm;
  int rank;
  deco_test_rank_fn fn;
  void *user;
  deco_status_t status;
  char message[512];
} rank_job_t;

static void *rank_main(void *p) {
  rank_job_t *j = p;
  j->status = j->fn(j->comm, j->rank, j->user);
  snprintf(j->message, sizeof j->message, "%s", j->status == DECO_STATUS_SUCCESS ? "" : deco_last_error(NULL));
  return NULL;
}

int deco_test_tp_run(int size, deco_test_rank_fn fn, void *user, deco_status_t *status, char (*message)[512]) {
  deco_comm_t *comms[DECO_COMM_MAX_RANKS];
  if (size < 1 || size > DECO_COMM_MAX_RANKS || deco_comm_threads_create(size, comms) != DECO_STATUS_SUCCESS) return -1;
  rank_job_t jobs[DECO_COMM_MAX_RANKS];
  pthread_t th[DECO_COMM_MAX_RANKS];
  int started = 0, rc = 0;
  for (int r = 0; r < size; ++r) {
    jobs[r] = (rank_job_t){.comm = comms[r], .rank = r, .fn = fn, .user = user, .status = DECO_STATUS_INTERNAL};
    if (pthread_create(&th[r], NULL, rank_main, &jobs[r]) != 0) {
      deco_comm_abort(comms[0]); /* the started ranks must not wait for this one */
      rc = -1;
      break;
    }
    ++started;
  }
  for (int r = 0; r < started; ++r) pthread_join(th[r], NULL);
  for (int r = 0; r < size; ++r) {
    if (status) status[r] = r < started ? jobs[r].status : DECO_STATUS_INTERNAL;
    if (message) snprintf(message[r], 512, "%s", r < started ? jobs[r].message : "not started");
    deco_comm_destroy(comms[r]);
  }
  return rc;
}

void deco_test_tp_run_ok(int size, deco_test_rank_fn fn, void *user) {
  deco_status_t st[DECO_COMM_MAX_RANKS];
  char msg[DECO_COMM_MAX_RANKS][512];
  cr_assert_eq(deco_test_tp_run(size, fn, user, st, msg), 0, "TP %d: the rank threads did not all run", size);
  for (int r = 0; r < size; ++r)
    cr_assert_eq(st[r], DECO_STATUS_SUCCESS, "TP %d rank %d: %s (%s)", size, r, deco_status_string(st[r]), msg[r]);
}

deco_status_t deco_test_tp_load(deco_comm_t *comm, int rank, int tp, const char *path, deco_ctx_t **ctx,
                                deco_model_t **m) {
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.backend = DECO_BACKEND_CPU;
  cc.n_threads = 1;
  *ctx = NULL;
  *m = NULL;
  deco_status_t st = deco_ctx_create(&cc, ctx);
  if (st != DECO_STATUS_SUCCESS) return st;
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.comm = comm;
  mc.tp_rank = rank;
  mc.tp_size = tp;
  return deco_model_load(*ctx, path, &mc, m);
}

void deco_test_tp_rank_input(void *dst, int rank, size_t n, deco_comm_dtype_t dt) {
  float *f = malloc(sizeof(float) * n);
  if (!f) abort();
  deco_test_fill_uniform(f, n, 77 + (uint64_t)rank, 3, -1.0f, 1.0f);
  for (size_t i = 0; i < n; ++i) {
    const float x = f[i] * (i % 7 == 0 ? 1e4f : 1.0f);
    switch (dt) {
    case DECO_COMM_F32: ((float *)dst)[i] = x; break;
    case DECO_COMM_F16: ((uint16_t *)dst)[i] = deco_f32_to_f16(x); break;
    case DECO_COMM_BF16: ((uint16_t *)dst)[i] = deco_f32_to_bf16(x); break;
    case DECO_COMM_INT32: ((int32_t *)dst)[i] = (int32_t)(x * 2e8f); break; /* overflows wrap */
    }
  }
  free(f);
}

size_t deco_test_tp_esize(deco_comm_dtype_t dt) { return dt == DECO_COMM_F16 || dt == DECO_COMM_BF16 ? 2 : 4; }
