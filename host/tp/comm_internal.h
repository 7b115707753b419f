/* host/tp/comm_internal.h — library-private: a communicator is a rank, a
 * size and a table of backend operations (comm_threads.c, comm_mpi.c,
 * comm_nccl.c); comm.c checks the arguments and dispatches. The rank-order
 * sum all host backends share lives in comm.c.
 */
#ifndef DECO_HOST_TP_COMM_INTERNAL_H
#define DECO_HOST_TP_COMM_INTERNAL_H

#include <stdatomic.h>

#include "core/internal.h"
#include "deco/comm.h"

typedef struct deco_comm_ops {
  deco_status_t (*all_reduce_sum)(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n, deco_comm_dtype_t dtype);
  deco_status_t (*all_gather)(deco_comm_t *c, deco_ctx_t *ctx, const void *send, void *recv, size_t n,
                              deco_comm_dtype_t dtype);
  /* An all-gather of host buffers, complete on return, whatever memory the
   * backend's collectives take (NCCL stages through the device). */
  deco_status_t (*host_all_gather)(deco_comm_t *c, deco_ctx_t *ctx, const void *send, void *recv, size_t n,
                                   deco_comm_dtype_t dtype);
  deco_status_t (*broadcast)(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n, deco_comm_dtype_t dtype,
                             int root);
  deco_status_t (*barrier)(deco_comm_t *c, deco_ctx_t *ctx);
  void (*abort)(deco_comm_t *c);
  /* Whether another rank's abort has reached this handle's communicator;
   * NULL: only what this handle saw counts. */
  int (*aborted)(const deco_comm_t *c);
  void (*destroy)(deco_comm_t *c);
  /* n handles of this backend (NULL entries skipped) destroyed together
   * from one thread; NULL: destroy each in turn does. */
  void (*destroy_all)(deco_comm_t **c, int n);
} deco_comm_ops_t;

struct deco_comm {
  const deco_comm_ops_t *ops;
  deco_comm_backend_t backend;
  int rank, size;
  atomic_int aborted; /* this handle saw or raised an abort */
  void *impl;         /* the backend's state */
};

/* Bytes of one element. */
size_t deco_comm_dtype_size(deco_comm_dtype_t dtype);

/* out[i] = in[0][i] + in[1][i] + ... + in[size-1][i], in this order, in f32
 * for the float types (one rounding to f16 / bf16 at the end) and wrapping
 * for int32: the one sum every host backend computes, so their results
 * agree bit for bit. out must not overlap any in[r]. */
void deco_comm_sum_rank_order(const void *const *in, int size, void *out, size_t n, deco_comm_dtype_t dtype);

/* The TCP rendezvous (comm_tcp.c), for the NCCL backend's unique id: rank
 * 0 serves blob[bytes] on port (every passive address, IPv4 and IPv6) to
 * size - 1 peers; every other rank connects to addr:port (each address it
 * resolves to, retrying) and reads it. Every wait ends at timeout_s: a
 * peer that never comes fails rank 0, a server that never answers fails
 * the peer (DECO_STATUS_IO_ERROR, op naming the caller). */
deco_status_t deco_comm_tcp_share(void *blob, size_t bytes, int rank, int size, const char *addr, const char *port,
                                  double timeout_s, const char *op);

#ifdef DECO_HAVE_MPI
/* MPI shared by the MPI and NCCL backends (comm_mpi.c): acquire initialises
 * MPI when nobody has and counts the handles that did; release by the last
 * of them calls MPI_Finalize. *init_by_us is what release takes. */
deco_status_t deco_comm_mpi_acquire(int *init_by_us, const char *op);
void deco_comm_mpi_release(int init_by_us);
#endif

#endif
