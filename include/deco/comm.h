/* deco/comm.h — a communicator for tensor parallelism: rank and size, and
 * the collectives a sharded forward needs (in-place all-reduce sum,
 * all-gather, broadcast, barrier) over f32, f16, bf16 and int32 buffers,
 * plus abort. One opaque handle over several backends:
 *   threads — N ranks as threads of one process (CPU, host buffers);
 *   mpi     — one rank per process over MPI (CPU, host buffers; optional);
 *   nccl    — one rank per GPU over NCCL (device buffers; optional).
 * Sums are reproducible: threads and MPI add the ranks' values in rank order
 * (0, 1, ..., size-1) in f32 (int32: wrapping), rounding once to f16 / bf16,
 * so every rank gets the same bits and the two backends agree bit for bit.
 */
#ifndef DECO_COMM_H
#define DECO_COMM_H

#include "deco/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct deco_comm deco_comm_t;

/* Ranks a communicator may have. */
#define DECO_COMM_MAX_RANKS 64

typedef enum deco_comm_backend {
  DECO_COMM_THREADS = 0,
  DECO_COMM_MPI = 1,
  DECO_COMM_NCCL = 2
} deco_comm_backend_t;

/* "threads", "mpi", "nccl" or "?" */
DECO_API const char *deco_comm_backend_name(deco_comm_backend_t backend);
/* 1 when this build has the backend (threads: always; mpi, nccl: found at
 * configure). */
DECO_API int deco_comm_backend_available(deco_comm_backend_t backend);

typedef enum deco_comm_dtype {
  DECO_COMM_F32 = 0,
  DECO_COMM_F16 = 1,
  DECO_COMM_BF16 = 2,
  DECO_COMM_INT32 = 3
} deco_comm_dtype_t;

/* The communicator dtype of a deco dtype. */
DECO_API deco_comm_dtype_t deco_comm_dtype_of(deco_dtype_t dtype);

/* size ranks in one process: comms[r] is rank r's handle, to be used by one
 * thread each (every rank must enter every collective, in the same order:
 * a rank whose call differs from rank 0's — collective, barrier included,
 * count, dtype or root — fails every rank with DECO_STATUS_ABORTED naming
 * both calls, before any buffer is read). Waits spin briefly, then block.
 * Each handle is destroyed on its own (or all with deco_comm_destroy_all);
 * the shared state goes with the last one. */
DECO_API deco_status_t deco_comm_threads_create(int size, deco_comm_t **comms);

/* Where a launcher (mpirun, srun, torchrun) says this process stands:
 * OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK, then PMI_RANK/PMI_SIZE (with
 * MPI_LOCALRANKID), then SLURM_PROCID/SLURM_STEP_NUM_TASKS/SLURM_LOCALID
 * (srun's step; an sbatch script's SLURM_NTASKS alone is no launch), then
 * RANK/WORLD_SIZE/LOCAL_RANK; the first complete set (rank and size both
 * set) wins, except in a torchrun worker (TORCHELASTIC_RUN_ID set), where
 * RANK/WORLD_SIZE comes first (torchrun nested in srun or mpirun: the
 * outer launcher's variables count nodes). Returns 0 (and rank 0 of 1)
 * when none is complete, 1 when found, -1 when a complete set is malformed
 * (the thread's error slot says which variable). */
typedef struct deco_comm_env {
  int rank, size, local_rank;
  const char *source; /* "OMPI_COMM_WORLD", "PMI", "SLURM", "RANK/WORLD_SIZE" or "none" */
} deco_comm_env_t;
DECO_API int deco_comm_env_read(deco_comm_env_t *env);

/* MPI: the world communicator of an MPI launch (MPI_Init is called when
 * MPI is not initialised yet, and MPI_Finalize by the last destroy then).
 * Outside a launcher (deco_comm_env_read finds nothing) it fails with
 * DECO_STATUS_INVALID_ARGUMENT naming the variables it looked for. Without
 * MPI in the build: DECO_STATUS_UNSUPPORTED. Create and destroy MPI
 * communicators from one thread (the initialisation is counted
 * process-wide, unguarded). */
DECO_API deco_status_t deco_comm_mpi_create(deco_comm_t **out);
/* An engine's MPI communicator (an MPI_Comm passed by address), wrapped,
 * not owned: destroying the handle leaves it alone. */
DECO_API deco_status_t deco_comm_from_mpi(const void *mpi_comm, deco_comm_t **out);

/* NCCL (device buffers; collectives on the context's stream, so they can
 * be captured in a CUDA graph). One rank per process: the GPU is
 * config->device, or the launcher's local rank when it is -1; the unique
 * id is shared over MPI under mpirun (builds with MPI), by NCCL's own
 * bootstrap when NCCL_COMM_ID is set, or served by rank 0 on
 * MASTER_ADDR:MASTER_PORT (not under torchrun, whose agent's store holds
 * that port: there NCCL_COMM_ID is needed); with none of them it fails
 * naming them (a world of one needs none). Every call polls
 * ncclCommGetAsyncError while in progress; an error or timeout_s without
 * progress aborts the communicator (ncclCommAbort) and returns
 * DECO_STATUS_ABORTED with a message naming the operation, never a hang.
 * deco_comm_check_same stages its host values through the device and
 * waits for its own stream. NCCL's sums are not in rank order. config
 * may be NULL (DECO_COMM_NCCL_CONFIG_INIT); it is read by its size as
 * every config is (deco/core.h). It makes the GPU the calling thread's
 * current device (cudaSetDevice) and leaves it so. Without NCCL in the
 * build: DECO_STATUS_UNSUPPORTED. */
#define DECO_COMM_NCCL_TIMEOUT_S 300.0
typedef struct deco_comm_nccl_config {
  size_t size;      /* sizeof(deco_comm_nccl_config_t): set by the INIT macro */
  int device;       /* -1: the launcher's local rank */
  double timeout_s; /* 0: DECO_COMM_NCCL_TIMEOUT_S */
} deco_comm_nccl_config_t;
#define DECO_COMM_NCCL_CONFIG_INIT {.size = sizeof(deco_comm_nccl_config_t), .device = -1, .timeout_s = 0.0}
DECO_API deco_status_t deco_comm_nccl_create(const deco_comm_nccl_config_t *config, deco_comm_t **out);
/* One process driving n GPUs (devices[r], or r when devices is NULL) with
 * one thread each (a non-blocking ncclCommInitRankConfig per GPU in one
 * group; every init polled to completion, all aborted when one fails):
 * comms[r] is rank r's handle; each thread makes its GPU current before
 * using it; the handles go together with deco_comm_destroy_all (or each
 * on its own thread at the same time). The n handles abort together: an abort of one (a failing rank,
 * an error, a timeout) aborts every communicator, and a watchdog thread
 * aborts them all on the first asynchronous error any reports or when one
 * rank stays behind the others' collectives for DECO_COMM_NCCL_TIMEOUT_S
 * (a rank that is merely that much slower, still loading while the others
 * entered their first collective, is taken for stuck too). */
DECO_API deco_status_t deco_comm_nccl_create_all(int n, const int *devices, deco_comm_t **comms);
/* An engine's NCCL communicator (an ncclComm_t passed by address), wrapped,
 * not owned (an error still aborts it: NCCL leaves it unusable); timeout_s
 * as in the config (0: the default). */
DECO_API deco_status_t deco_comm_from_nccl(const void *nccl_comm, double timeout_s, deco_comm_t **out);

/* The rank, size and backend. */
DECO_API int deco_comm_rank(const deco_comm_t *comm);
DECO_API int deco_comm_size(const deco_comm_t *comm);
DECO_API deco_comm_backend_t deco_comm_backend(const deco_comm_t *comm);

/* Collectives. ctx: the context whose memory the buffers are in (its stream
 * on NCCL) and where a failure's message goes; NULL is allowed for the host
 * backends (messages then go to the thread's slot). Every rank passes the
 * same n and dtype. After an abort, on any rank, every call returns
 * DECO_STATUS_ABORTED. */
/* buf[n] becomes the sum over ranks, identical on every rank. */
DECO_API deco_status_t deco_comm_all_reduce_sum(deco_comm_t *comm, deco_ctx_t *ctx, void *buf, size_t n,
                                                deco_comm_dtype_t dtype);
/* recv[size][n] gets every rank's send[n], in rank order (send may not
 * overlap recv). */
DECO_API deco_status_t deco_comm_all_gather(deco_comm_t *comm, deco_ctx_t *ctx, const void *send, void *recv,
                                            size_t n, deco_comm_dtype_t dtype);
/* buf[n] of rank root, copied to every rank. */
DECO_API deco_status_t deco_comm_broadcast(deco_comm_t *comm, deco_ctx_t *ctx, void *buf, size_t n,
                                           deco_comm_dtype_t dtype, int root);
DECO_API deco_status_t deco_comm_barrier(deco_comm_t *comm, deco_ctx_t *ctx);

/* Tells every rank to stop: the waits of collectives that have not yet
 * completed and every later collective return DECO_STATUS_ABORTED, with a
 * message that contains "the communicator was aborted" (threads: at once;
 * a collective whose ranks have all arrived still completes on every rank,
 * none returning while another reads its buffer; MPI: the job is aborted,
 * MPI_Abort). A rank that fails calls it so that the others never hang. */
DECO_API void deco_comm_abort(deco_comm_t *comm);
/* 1 once comm was aborted: by this rank, or by another as soon as this
 * handle can know it (threads and the one-process NCCL ranks: at once;
 * otherwise when one of its collectives failed); else 0 (NULL: 0). */
DECO_API int deco_comm_aborted(const deco_comm_t *comm);

DECO_API void deco_comm_destroy(deco_comm_t *comm);
/* Destroys n handles together from one thread (NULL entries are skipped;
 * every entry is NULL afterwards). The handles of deco_comm_nccl_create_all
 * go this way (or each on its own thread, all at the same time): NCCL's
 * finalize is collective over the communicators of a clique, so one thread
 * destroying them one after another would wait in the first for the others
 * until the timeout aborts them all. Here NCCL handles of one group are
 * finalized in one NCCL group call, polled together (the timeout aborts),
 * then freed; the other backends (and NCCL handles of different groups)
 * are destroyed one by one. */
DECO_API void deco_comm_destroy_all(deco_comm_t **comms, int n);

/* All ranks agree on a 64-bit value (a hash of the model config, the file
 * size and the options) before any work: the values are all-gathered and
 * any difference fails every rank with DECO_STATUS_INVALID_ARGUMENT naming
 * the first differing rank and both values (what names the value). */
DECO_API deco_status_t deco_comm_check_same(deco_comm_t *comm, deco_ctx_t *ctx, uint64_t value, const char *what);

/* FNV-1a, 64 bits, continued from h (start with DECO_COMM_HASH_INIT). */
#define DECO_COMM_HASH_INIT 0xcbf29ce484222325ull
DECO_API uint64_t deco_comm_hash(uint64_t h, const void *data, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* DECO_COMM_H */
