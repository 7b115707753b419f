/* tests/common/tp_run.h — runs one function as every rank of a threads
 * communicator (one thread per rank) and collects each rank's status, for
 * the tensor-parallel suites; and the inputs the communicator suites
 * (threads and MPI) give each rank.
 */
#ifndef DECO_TESTS_TP_RUN_H
#define DECO_TESTS_TP_RUN_H

#include "deco/deco.h"

/* fn(comm, rank, user) on size threads over a fresh threads communicator;
 * status[r] gets rank r's result and message[r] (may be NULL) its thread's
 * last error (copied). Destroys the communicator. Returns 0 when every
 * thread ran. */
typedef deco_status_t (*deco_test_rank_fn)(deco_comm_t *comm, int rank, void *user);
int deco_test_tp_run(int size, deco_test_rank_fn fn, void *user, deco_status_t *status, char (*message)[512]);
/* deco_test_tp_run, asserting that every thread ran and every rank
 * succeeded (a failure names the size, the rank, its status and message). */
void deco_test_tp_run_ok(int size, deco_test_rank_fn fn, void *user);

/* A rank's model (inside fn): a one-thread CPU context in *ctx and the
 * rank-th of tp shards of the model file path in *m, over comm (NULL: the
 * whole model, tp 1). Returns the first failure; the caller destroys what
 * was made (*ctx and *m are NULL where nothing was). */
deco_status_t deco_test_tp_load(deco_comm_t *comm, int rank, int tp, const char *path, deco_ctx_t **ctx,
                                deco_model_t **m);

/* Rank r's input of n elements in dtype storage (the communicator suites):
 * floats of mixed signs and magnitudes, so that the order of a sum's
 * additions shows in its bits; int32 inputs large enough to wrap. */
void deco_test_tp_rank_input(void *dst, int rank, size_t n, deco_comm_dtype_t dt);
/* Bytes of one element of dt. */
size_t deco_test_tp_esize(deco_comm_dtype_t dt);

#endif
