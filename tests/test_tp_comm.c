/* tests/test_tp_comm.c — the communicator (deco/comm.h) over the threads
 * backend: all-reduce sums in rank order, bit-identical on every rank and
 * from run to run, for f32, f16, bf16 and int32 at sizes 1..8; all-gather
 * and broadcast; an abort that reaches a waiting rank within a second; the
 * 64-bit agreement check naming both values; the launcher environment;
 * ranks calling a collective with different counts, dtypes, roots or
 * collectives all failing with both calls named, a barrier against a
 * collective included.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/testutil.h"
#include "common/tp_run.h"

#define N_ELEMS 1031 /* odd, so no size divides it */

static const deco_comm_dtype_t all_dtypes[] = {DECO_COMM_F32, DECO_COMM_F16, DECO_COMM_BF16, DECO_COMM_INT32};

/* The sum as the contract states it, written out independently. */
static void expected_sum(void *out, int size, size_t n, deco_comm_dtype_t dt) {
  void *in = malloc(n * 4);
  float *acc = calloc(n, sizeof(float));
  uint32_t *iacc = calloc(n, sizeof(uint32_t));
  for (int r = 0; r < size; ++r) {
    deco_test_tp_rank_input(in, r, n, dt);
    for (size_t i = 0; i < n; ++i) {
      float x = 0;
      if (dt == DECO_COMM_F32) x = ((float *)in)[i];
      if (dt == DECO_COMM_F16) x = deco_f16_to_f32(((uint16_t *)in)[i]);
      if (dt == DECO_COMM_BF16) x = deco_bf16_to_f32(((uint16_t *)in)[i]);
      if (dt == DECO_COMM_INT32) iacc[i] += (uint32_t)((int32_t *)in)[i];
      acc[i] = r == 0 ? x : acc[i] + x;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (dt == DECO_COMM_F32) ((float *)out)[i] = acc[i];
    if (dt == DECO_COMM_F16) ((uint16_t *)out)[i] = deco_f32_to_f16(acc[i]);
    if (dt == DECO_COMM_BF16) ((uint16_t *)out)[i] = deco_f32_to_bf16(acc[i]);
    if (dt == DECO_COMM_INT32) ((int32_t *)out)[i] = (int32_t)iacc[i];
  }
  free(in);
  free(acc);
  free(iacc);
}

typedef struct reduce_job {
  deco_comm_dtype_t dt;
  int rounds;
  void *result[DECO_COMM_MAX_RANKS]; /* each rank's buffer after the last round */
} reduce_job_t;

static deco_status_t reduce_rank(deco_comm_t *comm, int rank, void *user) {
  reduce_job_t *j = user;
  /* No assertion on a rank's thread: a status the test checks instead. */
  if (deco_comm_rank(comm) != rank || deco_comm_backend(comm) != DECO_COMM_THREADS) return DECO_STATUS_INTERNAL;
  void *buf = malloc(N_ELEMS * 4);
  deco_status_t st = DECO_STATUS_SUCCESS;
  for (int round = 0; round < j->rounds && st == DECO_STATUS_SUCCESS; ++round) {
    deco_test_tp_rank_input(buf, rank, N_ELEMS, j->dt);
    st = deco_comm_all_reduce_sum(comm, NULL, buf, N_ELEMS, j->dt);
  }
  j->result[rank] = buf;
  return st;
}

Test(tp_comm, all_reduce_is_the_rank_order_sum_on_every_rank_bit_for_bit) {
  const int sizes[] = {1, 2, 3, 4, 8};
  for (size_t d = 0; d < 4; ++d)
    for (size_t si = 0; si < 5; ++si) {
      const int size = sizes[si];
      reduce_job_t job = {.dt = all_dtypes[d], .rounds = 3};
      deco_status_t st[DECO_COMM_MAX_RANKS];
      char msg[DECO_COMM_MAX_RANKS][512];
      cr_assert_eq(deco_test_tp_run(size, reduce_rank, &job, st, msg), 0);
      void *want = malloc(N_ELEMS * 4);
      expected_sum(want, size, N_ELEMS, job.dt);
      for (int r = 0; r < size; ++r) {
        cr_assert_eq(st[r], DECO_STATUS_SUCCESS, "size %d rank %d: %s", size, r, msg[r]);
        cr_assert(memcmp(job.result[r], want, N_ELEMS * deco_test_tp_esize(job.dt)) == 0, "dtype %d size %d rank %d differs",
                  (int)job.dt, size, r);
        free(job.result[r]);
      }
      free(want);
    }
}

typedef struct gather_job {
  int root;
  int32_t *gathered[DECO_COMM_MAX_RANKS];
  float *bcast[DECO_COMM_MAX_RANKS];
} gather_job_t;

static deco_status_t gather_rank(deco_comm_t *comm, int rank, void *user) {
  gather_job_t *j = user;
  const int size = deco_comm_size(comm);
  int32_t send[5];
  for (int i = 0; i < 5; ++i) send[i] = rank * 100 + i;
  j->gathered[rank] = malloc(sizeof(int32_t) * 5 * (size_t)size);
  deco_status_t st = deco_comm_all_gather(comm, NULL, send, j->gathered[rank], 5, DECO_COMM_INT32);
  if (st != DECO_STATUS_SUCCESS) return st;
  j->bcast[rank] = malloc(sizeof(float) * 9);
  for (int i = 0; i < 9; ++i) j->bcast[rank][i] = (float)(rank * 10 + i);
  st = deco_comm_broadcast(comm, NULL, j->bcast[rank], 9, DECO_COMM_F32, j->root);
  if (st != DECO_STATUS_SUCCESS) return st;
  return deco_comm_barrier(comm, NULL);
}

Test(tp_comm, all_gather_is_in_rank_order_and_broadcast_copies_the_root) {
  for (int size = 1; size <= 5; ++size) {
    gather_job_t job = {.root = size - 1};
    deco_status_t st[DECO_COMM_MAX_RANKS];
    char msg[DECO_COMM_MAX_RANKS][512];
    cr_assert_eq(deco_test_tp_run(size, gather_rank, &job, st, msg), 0);
    for (int r = 0; r < size; ++r) {
      cr_assert_eq(st[r], DECO_STATUS_SUCCESS, "size %d rank %d: %s", size, r, msg[r]);
      for (int q = 0; q < size; ++q)
        for (int i = 0; i < 5; ++i) cr_assert_eq(job.gathered[r][q * 5 + i], q * 100 + i);
      for (int i = 0; i < 9; ++i) cr_assert_eq(job.bcast[r][i], (float)(job.root * 10 + i));
      free(job.gathered[r]);
      free(job.bcast[r]);
    }
  }
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct abort_job {
  double returned_at[DECO_COMM_MAX_RANKS];
  double aborted_at;
} abort_job_t;

/* Rank 2 fails (after the others are already waiting) and aborts. */
static deco_status_t abort_rank(deco_comm_t *comm, int rank, void *user) {
  abort_job_t *j = user;
  if (rank == 2) {
    usleep(200 * 1000);
    j->aborted_at = now_s();
    deco_comm_abort(comm);
    return DECO_STATUS_IO_ERROR;
  }
  float x = 1.0f;
  deco_status_t st = deco_comm_all_reduce_sum(comm, NULL, &x, 1, DECO_COMM_F32);
  j->returned_at[rank] = now_s();
  if (st != DECO_STATUS_ABORTED) return st;
  /* Every later call fails the same way, at once. */
  return deco_comm_barrier(comm, NULL);
}

Test(tp_comm, an_aborting_rank_releases_the_waiting_ones_within_a_second) {
  abort_job_t job = {0};
  deco_status_t st[DECO_COMM_MAX_RANKS];
  char msg[DECO_COMM_MAX_RANKS][512];
  cr_assert_eq(deco_test_tp_run(4, abort_rank, &job, st, msg), 0);
  for (int r = 0; r < 4; ++r) {
    if (r == 2) continue;
    cr_assert_eq(st[r], DECO_STATUS_ABORTED, "rank %d: %s (%s)", r, deco_status_string(st[r]), msg[r]);
    cr_assert(strstr(msg[r], "abort") != NULL, "rank %d: %s", r, msg[r]);
    cr_assert_lt(job.returned_at[r] - job.aborted_at, 1.0, "rank %d took %.3f s", r,
                 job.returned_at[r] - job.aborted_at);
  }
  cr_assert_eq(st[2], DECO_STATUS_IO_ERROR);
}

/* Ranks in a loop of all-reduces, each on a buffer of its own that it
 * frees on return, while a thread outside them aborts the communicator:
 * every rank ends with DECO_STATUS_ABORTED after the same number of
 * successful calls (a collective completes for all or for none), each
 * success holds the full sum, and no rank's buffer is read after it was
 * freed. The buffers, 4 MiB, are ones malloc maps and free unmaps, so such
 * a read crashes without ASan too: a rank that left a collective on the
 * abort while another still read its buffer did, in 2 of 3 runs. */
#define STRESS_RANKS 3
#define STRESS_N (1024 * 1024)
typedef struct stress_rank {
  deco_comm_t *comm;
  int rank, ok, wrong;
  deco_status_t end;
} stress_rank_t;

static void *stress_loop(void *p) {
  stress_rank_t *s = p;
  for (;;) {
    float *buf = malloc(sizeof(float) * STRESS_N);
    if (!buf) {
      s->end = DECO_STATUS_OUT_OF_MEMORY;
      return NULL;
    }
    for (size_t i = 0; i < STRESS_N; ++i) buf[i] = (float)(s->rank + 1);
    s->end = deco_comm_all_reduce_sum(s->comm, NULL, buf, STRESS_N, DECO_COMM_F32);
    if (s->end == DECO_STATUS_SUCCESS) {
      ++s->ok;
      s->wrong += buf[0] != 6.0f || buf[STRESS_N - 1] != 6.0f;
    }
    memset(buf, 0x7f, sizeof(float) * STRESS_N); /* reused at once, then freed */
    free(buf);
    if (s->end != DECO_STATUS_SUCCESS) return NULL;
  }
}

Test(tp_comm, an_abort_during_collectives_ends_them_together, .timeout = 60) {
  for (int trial = 0; trial < 20; ++trial) {
    deco_comm_t *c[STRESS_RANKS];
    cr_assert_eq(deco_comm_threads_create(STRESS_RANKS, c), DECO_STATUS_SUCCESS);
    stress_rank_t s[STRESS_RANKS];
    pthread_t th[STRESS_RANKS];
    for (int r = 0; r < STRESS_RANKS; ++r) {
      s[r] = (stress_rank_t){.comm = c[r], .rank = r};
      cr_assert_eq(pthread_create(&th[r], NULL, stress_loop, &s[r]), 0);
    }
    usleep(5000 + 1000 * trial);
    deco_comm_abort(c[trial % STRESS_RANKS]); /* a watchdog of one rank */
    for (int r = 0; r < STRESS_RANKS; ++r) pthread_join(th[r], NULL);
    for (int r = 0; r < STRESS_RANKS; ++r) {
      cr_assert_eq(s[r].end, DECO_STATUS_ABORTED, "trial %d rank %d: %s", trial, r, deco_status_string(s[r].end));
      cr_assert_eq(s[r].wrong, 0, "trial %d rank %d: %d wrong sums", trial, r, s[r].wrong);
      cr_assert_eq(s[r].ok, s[0].ok, "trial %d: rank %d completed %d all-reduces, rank 0 %d", trial, r, s[r].ok,
                   s[0].ok);
    }
    for (int r = 0; r < STRESS_RANKS; ++r) deco_comm_destroy(c[r]);
  }
}

/* An abort reaches every rank's handle at once, before any of them calls. */
Test(tp_comm, an_abort_shows_on_every_handle_at_once) {
  deco_comm_t *c[3];
  cr_assert_eq(deco_comm_threads_create(3, c), DECO_STATUS_SUCCESS);
  for (int r = 0; r < 3; ++r) cr_assert_eq(deco_comm_aborted(c[r]), 0);
  deco_comm_abort(c[1]);
  for (int r = 0; r < 3; ++r) cr_assert_eq(deco_comm_aborted(c[r]), 1, "rank %d", r);
  for (int r = 0; r < 3; ++r) deco_comm_destroy(c[r]);
}

static deco_status_t same_rank(deco_comm_t *comm, int rank, void *user) {
  const int odd_one = *(int *)user;
  const uint64_t v = rank == odd_one ? 0x1234567890abcdefull : 0xfeedfacecafebeefull;
  return deco_comm_check_same(comm, NULL, v, "config hash");
}

Test(tp_comm, a_differing_hash_fails_every_rank_naming_both_values) {
  int odd_one = 2;
  deco_status_t st[DECO_COMM_MAX_RANKS];
  char msg[DECO_COMM_MAX_RANKS][512];
  cr_assert_eq(deco_test_tp_run(3, same_rank, &odd_one, st, msg), 0);
  for (int r = 0; r < 3; ++r) {
    cr_assert_eq(st[r], DECO_STATUS_INVALID_ARGUMENT, "rank %d: %s", r, msg[r]);
    cr_assert(strstr(msg[r], "feedfacecafebeef") && strstr(msg[r], "1234567890abcdef") && strstr(msg[r], "rank 2") &&
                  strstr(msg[r], "config hash"),
              "rank %d: %s", r, msg[r]);
  }
  odd_one = -1;
  deco_test_tp_run_ok(3, same_rank, &odd_one);
}

static void clear_env(void) {
  const char *names[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_RANK",
                         "PMI_SIZE", "MPI_LOCALRANKID", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "RANK",
                         "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) unsetenv(names[i]);
}

Test(tp_comm, the_launcher_environment_is_read_in_order) {
  deco_comm_env_t e;
  clear_env();
  cr_assert_eq(deco_comm_env_read(&e), 0);
  cr_assert_eq(e.size, 1);
  setenv("RANK", "3", 1);
  setenv("WORLD_SIZE", "4", 1);
  setenv("LOCAL_RANK", "1", 1);
  cr_assert_eq(deco_comm_env_read(&e), 1);
  cr_assert(e.rank == 3 && e.size == 4 && e.local_rank == 1 && strcmp(e.source, "RANK/WORLD_SIZE") == 0);
  setenv("SLURM_PROCID", "5", 1);
  setenv("SLURM_NTASKS", "8", 1);
  setenv("SLURM_LOCALID", "2", 1);
  /* An sbatch script (no srun step) is not a rank. */
  cr_assert_eq(deco_comm_env_read(&e), 1);
  cr_assert(strcmp(e.source, "RANK/WORLD_SIZE") == 0, "%s", e.source);
  setenv("SLURM_STEP_NUM_TASKS", "8", 1);
  cr_assert_eq(deco_comm_env_read(&e), 1);
  cr_assert(e.rank == 5 && e.size == 8 && e.local_rank == 2 && strcmp(e.source, "SLURM") == 0);
  setenv("PMI_RANK", "0", 1);
  setenv("PMI_SIZE", "2", 1);
  cr_assert_eq(deco_comm_env_read(&e), 1);
  cr_assert(e.rank == 0 && e.size == 2 && strcmp(e.source, "PMI") == 0);
  setenv("OMPI_COMM_WORLD_RANK", "1", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
  cr_assert_eq(deco_comm_env_read(&e), 1);
  cr_assert(e.rank == 1 && e.size == 2 && e.local_rank == 1 && strcmp(e.source, "OMPI_COMM_WORLD") == 0);
  /* torchrun's workers, nested in srun or mpirun (one task per node),
   * take torchrun's ranks, not the outer launcher's they inherit. */
  setenv("TORCHELASTIC_RUN_ID", "job7", 1);
  cr_assert_eq(deco_comm_env_read(&e), 1);
  cr_assert(e.rank == 3 && e.size == 4 && e.local_rank == 1 && strcmp(e.source, "RANK/WORLD_SIZE") == 0, "%s",
            e.source);
  setenv("TORCHELASTIC_RUN_ID", "", 1);
  cr_assert_eq(deco_comm_env_read(&e), 1);
  cr_assert(strcmp(e.source, "OMPI_COMM_WORLD") == 0, "%s", e.source);
  unsetenv("RANK"); /* torchrun's set incomplete: the outer launcher's */
  setenv("TORCHELASTIC_RUN_ID", "job7", 1);
  cr_assert_eq(deco_comm_env_read(&e), 1);
  cr_assert(strcmp(e.source, "OMPI_COMM_WORLD") == 0, "%s", e.source);
  setenv("RANK", "4", 1); /* torchrun's rank >= its size */
  cr_assert_eq(deco_comm_env_read(&e), -1);
  cr_assert(strstr(deco_last_error(NULL), "RANK = 4"), "%s", deco_last_error(NULL));
  unsetenv("TORCHELASTIC_RUN_ID");
  setenv("OMPI_COMM_WORLD_RANK", "2", 1); /* rank >= size */
  cr_assert_eq(deco_comm_env_read(&e), -1);
  cr_assert(strstr(deco_last_error(NULL), "OMPI_COMM_WORLD_RANK"), "%s", deco_last_error(NULL));
  setenv("OMPI_COMM_WORLD_RANK", "x", 1);
  cr_assert_eq(deco_comm_env_read(&e), -1);
  /* A variable without its partner is no launch, whatever it holds. */
  clear_env();
  setenv("RANK", "x", 1);
  setenv("PMI_SIZE", "y", 1);
  cr_assert_eq(deco_comm_env_read(&e), 0, "%s", deco_last_error(NULL));
  cr_assert_eq(e.size, 1);
  clear_env();
}

/* The backends' names and which this build has; the dtype of a deco dtype. */
Test(tp_comm, names_availability_and_dtypes) {
  cr_assert_str_eq(deco_comm_backend_name(DECO_COMM_THREADS), "threads");
  cr_assert_str_eq(deco_comm_backend_name(DECO_COMM_MPI), "mpi");
  cr_assert_str_eq(deco_comm_backend_name(DECO_COMM_NCCL), "nccl");
  cr_assert_str_eq(deco_comm_backend_name((deco_comm_backend_t)7), "?");
  cr_assert_eq(deco_comm_backend_available(DECO_COMM_THREADS), 1);
  cr_assert_eq(deco_comm_backend_available(DECO_COMM_MPI), DECO_TEST_HAVE_MPI);
  cr_assert_eq(deco_comm_backend_available(DECO_COMM_NCCL), DECO_TEST_HAVE_NCCL);
  cr_assert_eq(deco_comm_backend_available((deco_comm_backend_t)7), 0);
  cr_assert_eq(deco_comm_dtype_of(DECO_DTYPE_F32), DECO_COMM_F32);
  cr_assert_eq(deco_comm_dtype_of(DECO_DTYPE_F16), DECO_COMM_F16);
  cr_assert_eq(deco_comm_dtype_of(DECO_DTYPE_BF16), DECO_COMM_BF16);
}

/* On a host without a CUDA device (where the build has NCCL), the
 * one-process NCCL communicators name the GPU that is not there. */
Test(tp_comm, nccl_without_a_device_names_the_gpu) {
  if (!DECO_TEST_HAVE_NCCL || deco_cuda_device_count() > 0) cr_skip_test("needs a build with NCCL on a host without a GPU");
  deco_comm_t *c[2] = {NULL, NULL};
  cr_assert_eq(deco_comm_nccl_create_all(2, NULL, c), DECO_STATUS_NO_DEVICE, "%s", deco_last_error(NULL));
  cr_assert(strstr(deco_last_error(NULL), "deco_comm_nccl_create_all: rank 0: GPU 0: ") != NULL, "%s",
            deco_last_error(NULL));
  cr_assert(c[0] == NULL && c[1] == NULL);
  /* One rank per process (no launcher here: a world of one). */
  deco_comm_t *one = NULL;
  cr_assert_eq(deco_comm_nccl_create(NULL, &one), DECO_STATUS_NO_DEVICE, "%s", deco_last_error(NULL));
  cr_assert(strstr(deco_last_error(NULL), "deco_comm_nccl_create: rank 0: GPU 0: ") != NULL, "%s",
            deco_last_error(NULL));
  cr_assert_null(one);
}

Test(tp_comm, bad_arguments_are_refused) {
  deco_comm_t *c[2];
  cr_assert_eq(deco_comm_threads_create(0, c), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_comm_threads_create(DECO_COMM_MAX_RANKS + 1, c), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_comm_threads_create(1, c), DECO_STATUS_SUCCESS);
  float x[4] = {0}, y[4];
  cr_assert_eq(deco_comm_all_reduce_sum(NULL, NULL, x, 4, DECO_COMM_F32), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_comm_all_reduce_sum(c[0], NULL, x, 4, (deco_comm_dtype_t)9), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_comm_all_gather(c[0], NULL, x, x, 4, DECO_COMM_F32), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_comm_broadcast(c[0], NULL, x, 4, DECO_COMM_F32, 1), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_comm_all_gather(c[0], NULL, x, y, 4, DECO_COMM_F32), DECO_STATUS_SUCCESS);
  deco_comm_abort(c[0]);
  cr_assert(deco_comm_aborted(c[0]));
  cr_assert_eq(deco_comm_barrier(c[0], NULL), DECO_STATUS_ABORTED);
  deco_comm_destroy(c[0]);
  /* Destroyed together: NULL entries skipped, every entry NULL after. */
  deco_comm_t *three[4] = {NULL};
  cr_assert_eq(deco_comm_threads_create(3, three), DECO_STATUS_SUCCESS);
  deco_comm_destroy_all(three, 4);
  for (int i = 0; i < 4; ++i) cr_assert_null(three[i]);
  deco_comm_destroy_all(NULL, 2);
  deco_comm_destroy_all(three, 0);
}

/* Rank 1 calls with one element more (then another dtype, then another
 * collective, then another root) than the others: every rank fails at
 * once with a message naming both calls, and nobody reads past a buffer. */
typedef struct mismatch_job {
  int variant;
} mismatch_job_t;

static deco_status_t mismatch_rank(deco_comm_t *comm, int rank, void *user) {
  const mismatch_job_t *j = user;
  float a[8] = {0}, b[8 * 3];
  const int odd = rank == 1;
  switch (j->variant) {
  case 0: return deco_comm_all_reduce_sum(comm, NULL, a, odd ? 5 : 4, DECO_COMM_F32);
  case 1: return deco_comm_all_gather(comm, NULL, a, b, 4, odd ? DECO_COMM_INT32 : DECO_COMM_F16);
  case 2:
    return odd ? deco_comm_all_gather(comm, NULL, a, b, 4, DECO_COMM_F32)
               : deco_comm_all_reduce_sum(comm, NULL, a, 4, DECO_COMM_F32);
  default: return deco_comm_broadcast(comm, NULL, a, 4, DECO_COMM_F32, odd ? 2 : 0);
  }
}

Test(tp_comm, ranks_calling_with_different_counts_dtypes_or_collectives_all_fail) {
  const char *expect[] = {"rank 0 called all-reduce of 4 elements", "rank 1 called all-gather of 4 elements (dtype 3",
                          "rank 1 called all-gather", "root 2"};
  for (int v = 0; v < 4; ++v) {
    mismatch_job_t j = {.variant = v};
    deco_status_t st[3];
    char msg[3][512];
    cr_assert_eq(deco_test_tp_run(3, mismatch_rank, &j, st, msg), 0);
    for (int r = 0; r < 3; ++r) {
      cr_assert_eq(st[r], DECO_STATUS_ABORTED, "variant %d rank %d: %s", v, r, msg[r]);
      cr_assert(strstr(msg[r], "calls differ") && strstr(msg[r], expect[v]), "variant %d rank %d: %s", v, r, msg[r]);
    }
  }
  /* The same calls still pass. */
  mismatch_job_t j = {.variant = 0};
  deco_status_t st[1];
  cr_assert_eq(deco_test_tp_run(1, mismatch_rank, &j, st, NULL), 0);
  cr_assert_eq(st[0], DECO_STATUS_SUCCESS);
}

/* One rank in a barrier while the other is in an all-reduce (either way
 * round): both fail as a mismatch naming the barrier, and the all-reduce
 * leaves its buffer as it was (no stale post read as a peer's values). */
typedef struct barrier_mismatch_job {
  int barrier_rank;
  float buf[DECO_COMM_MAX_RANKS][4];
} barrier_mismatch_job_t;

static deco_status_t barrier_mismatch_rank(deco_comm_t *comm, int rank, void *user) {
  barrier_mismatch_job_t *j = user;
  if (rank == j->barrier_rank) return deco_comm_barrier(comm, NULL);
  for (int i = 0; i < 4; ++i) j->buf[rank][i] = (float)(rank + 1) * 0.5f + (float)i;
  return deco_comm_all_reduce_sum(comm, NULL, j->buf[rank], 4, DECO_COMM_F32);
}

/* 50 barriers in a row, an all-reduce between them every tenth time. */
static deco_status_t barriers_rank(deco_comm_t *comm, int rank, void *user) {
  (void)user;
  for (int k = 0; k < 50; ++k) {
    deco_status_t st = deco_comm_barrier(comm, NULL);
    if (st != DECO_STATUS_SUCCESS) return st;
    if (k % 10 == 0) {
      int32_t x = rank + 1;
      st = deco_comm_all_reduce_sum(comm, NULL, &x, 1, DECO_COMM_INT32);
      if (st != DECO_STATUS_SUCCESS) return st;
      const int size = deco_comm_size(comm);
      if (x != size * (size + 1) / 2) return DECO_STATUS_INTERNAL;
    }
  }
  return DECO_STATUS_SUCCESS;
}

Test(tp_comm, a_barrier_against_a_collective_fails_both_ranks_as_a_mismatch) {
  for (int b = 0; b < 2; ++b) {
    barrier_mismatch_job_t j = {.barrier_rank = b};
    deco_status_t st[2];
    char msg[2][512];
    cr_assert_eq(deco_test_tp_run(2, barrier_mismatch_rank, &j, st, msg), 0);
    for (int r = 0; r < 2; ++r) {
      cr_assert_eq(st[r], DECO_STATUS_ABORTED, "barrier on rank %d, rank %d: %s", b, r, msg[r]);
      cr_assert(strstr(msg[r], "calls differ") && strstr(msg[r], "barrier") && strstr(msg[r], "all-reduce"),
                "barrier on rank %d, rank %d: %s", b, r, msg[r]);
    }
    const int other = 1 - b;
    for (int i = 0; i < 4; ++i) cr_assert_eq(j.buf[other][i], (float)(other + 1) * 0.5f + (float)i);
  }
  /* Barriers on every rank still pass, many times over. */
  for (int size = 1; size <= 4; ++size) {
    barrier_mismatch_job_t j = {.barrier_rank = -1};
    deco_test_tp_run_ok(size, barriers_rank, &j);
  }
}
