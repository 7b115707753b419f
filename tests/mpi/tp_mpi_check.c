/* tests/mpi/tp_mpi_check.c — the MPI communicator, run under mpirun (ctest
 * label mpi). `collectives`: every rank's all-reduce of f32, f16, bf16 and
 * int32 buffers equals, bit for bit, what the threads backend computes for
 * the same inputs at the same size (run inside each process); all-gather,
 * broadcast, the agreement check (same values pass; a different value on
 * the last rank fails every rank naming both) and a wrapped MPI_COMM_WORLD
 * (deco_comm_from_mpi). `sigkill`: collectives in a loop; rank 0 prints
 * `rank 0 completed 100 all-reduces` after that many, then rank 1 kills
 * itself with SIGKILL (past half a second); mpirun must end the job (the
 * caller times it and looks for the line and mpirun's report of the kill). Prints one line per failure; exit 0 when all pass.
 */
#define _GNU_SOURCE
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/testutil.h"
#include "common/tp_run.h"

#define N_ELEMS 1031

static int failures;
#define CHECK(cond, ...)                                  \
  do {                                                    \
    if (!(cond)) {                                        \
      fprintf(stderr, "tp_mpi_check: FAIL: " __VA_ARGS__); \
      fputc('\n', stderr);                                \
      ++failures;                                         \
    }                                                     \
  } while (0)



typedef struct threads_job {
  deco_comm_dtype_t dt;
  void *result[DECO_COMM_MAX_RANKS];
} threads_job_t;

static deco_status_t threads_rank(deco_comm_t *comm, int rank, void *user) {
  threads_job_t *j = user;
  j->result[rank] = malloc(N_ELEMS * 4);
  deco_test_tp_rank_input(j->result[rank], rank, N_ELEMS, j->dt);
  return deco_comm_all_reduce_sum(comm, NULL, j->result[rank], N_ELEMS, j->dt);
}

static void collectives(deco_comm_t *comm) {
  const int rank = deco_comm_rank(comm), size = deco_comm_size(comm);
  const deco_comm_dtype_t dts[] = {DECO_COMM_F32, DECO_COMM_F16, DECO_COMM_BF16, DECO_COMM_INT32};
  for (int d = 0; d < 4; ++d) {
    void *buf = malloc(N_ELEMS * 4);
    deco_test_tp_rank_input(buf, rank, N_ELEMS, dts[d]);
    deco_status_t st = deco_comm_all_reduce_sum(comm, NULL, buf, N_ELEMS, dts[d]);
    CHECK(st == DECO_STATUS_SUCCESS, "rank %d all-reduce: %s", rank, deco_last_error(NULL));
    threads_job_t job = {.dt = dts[d]};
    deco_status_t tst[DECO_COMM_MAX_RANKS];
    CHECK(deco_test_tp_run(size, threads_rank, &job, tst, NULL) == 0, "threads run");
    CHECK(tst[0] == DECO_STATUS_SUCCESS, "threads all-reduce");
    CHECK(memcmp(buf, job.result[0], N_ELEMS * deco_test_tp_esize(dts[d])) == 0,
          "rank %d dtype %d: the MPI all-reduce differs from the threads backend's", rank, (int)dts[d]);
    for (int r = 0; r < size; ++r) free(job.result[r]);
    free(buf);
  }
  int32_t send[3] = {rank, rank * 10, -rank}, *recv = malloc(sizeof(int32_t) * 3 * (size_t)size);
  CHECK(deco_comm_all_gather(comm, NULL, send, recv, 3, DECO_COMM_INT32) == DECO_STATUS_SUCCESS, "all-gather");
  for (int r = 0; r < size; ++r)
    CHECK(recv[3 * r] == r && recv[3 * r + 1] == r * 10 && recv[3 * r + 2] == -r, "rank %d all-gather slot %d", rank,
          r);
  free(recv);
  float b[4] = {(float)rank, 1, 2, 3};
  CHECK(deco_comm_broadcast(comm, NULL, b, 4, DECO_COMM_F32, size - 1) == DECO_STATUS_SUCCESS, "broadcast");
  CHECK(b[0] == (float)(size - 1), "rank %d broadcast got %g", rank, (double)b[0]);
  CHECK(deco_comm_check_same(comm, NULL, 0xabcdef0123456789ull, "hash") == DECO_STATUS_SUCCESS, "same values");
  const uint64_t v = rank == size - 1 ? 0x1111222233334444ull : 0x5555666677778888ull;
  deco_status_t st = deco_comm_check_same(comm, NULL, v, "config hash");
  CHECK(st == DECO_STATUS_INVALID_ARGUMENT && strstr(deco_last_error(NULL), "1111222233334444") &&
            strstr(deco_last_error(NULL), "5555666677778888"),
        "rank %d: differing values: %s", rank, deco_last_error(NULL));
  CHECK(deco_comm_barrier(comm, NULL) == DECO_STATUS_SUCCESS, "barrier");
  /* An engine's communicator, wrapped and not owned. */
  MPI_Comm world = MPI_COMM_WORLD;
  deco_comm_t *wrapped = NULL;
  CHECK(deco_comm_from_mpi(&world, &wrapped) == DECO_STATUS_SUCCESS, "deco_comm_from_mpi: %s", deco_last_error(NULL));
  if (wrapped) {
    int32_t one = 1;
    CHECK(deco_comm_all_reduce_sum(wrapped, NULL, &one, 1, DECO_COMM_INT32) == DECO_STATUS_SUCCESS && one == size,
          "wrapped all-reduce gave %d", one);
    deco_comm_destroy(wrapped);
  }
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define SIGKILL_ROUNDS 100

static void sigkill_loop(deco_comm_t *comm) {
  const double t0 = now_s();
  const int rank = deco_comm_rank(comm);
  float x[64] = {0};
  for (int round = 0; now_s() - t0 < 60.0; ++round) {
    /* Rank 0 says the collectives worked before rank 1 goes (rank 1 cannot
     * pass round SIGKILL_ROUNDS before rank 0 finished it). */
    if (rank == 0 && round == SIGKILL_ROUNDS) {
      fprintf(stderr, "tp_mpi_check: rank 0 completed %d all-reduces\n", SIGKILL_ROUNDS);
      fflush(stderr);
    }
    if (rank == 1 && round > SIGKILL_ROUNDS && now_s() - t0 > 0.5) raise(SIGKILL);
    if (deco_comm_all_reduce_sum(comm, NULL, x, 64, DECO_COMM_F32) != DECO_STATUS_SUCCESS) break;
  }
  fprintf(stderr, "tp_mpi_check: rank %d is still running after 60 s\n", deco_comm_rank(comm));
  ++failures;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "collectives";
  deco_comm_t *comm = NULL;
  if (deco_comm_mpi_create(&comm) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "tp_mpi_check: %s\n", deco_last_error(NULL));
    return 1;
  }
  if (strcmp(mode, "sigkill") == 0) sigkill_loop(comm);
  else collectives(comm);
  const int rank = deco_comm_rank(comm);
  deco_comm_destroy(comm);
  if (failures == 0 && rank == 0) fprintf(stderr, "tp_mpi_check: %s passed\n", mode);
  return failures ? 1 : 0;
}
