/* kernels/linear/matmul_cpu.h — library-internal: the CPU backend's fast
 * matmul (matmul_cpu.c) and a way to force one of its instruction-set paths,
 * for the tests that prove every path gives the same bits and for the CPU
 * bench. Every path sums each output in one fixed order (matmul_cpu.c), so
 * the choice changes the speed, never a bit of the result.
 */
#ifndef DECO_KERNELS_MATMUL_CPU_H
#define DECO_KERNELS_MATMUL_CPU_H

#include "common/exec.h"
#include "deco/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum deco_matmul_cpu_isa {
  DECO_MATMUL_CPU_AUTO = 0,     /* the fastest path this build and this CPU support */
  DECO_MATMUL_CPU_PORTABLE = 1, /* plain C with fmaf: every compiler and CPU */
  DECO_MATMUL_CPU_AVX2 = 2,     /* x86-64 with AVX2 and FMA (checked at run time) */
  DECO_MATMUL_CPU_AVX512 = 3    /* x86-64 with AVX-512F (checked at run time) */
} deco_matmul_cpu_isa_t;

/* Summation lanes of every output: lane l sums the k with k % 16 == l. */
#define DECO_MATMUL_CPU_LANES 16

/* When threads pay (uncontended, one parallel region costs ~1 us; with
 * more threads than free cores a spinning worker can cost milliseconds):
 * for weights of at least this many elements (n * k: 1 MB of f32, a
 * memory-bound decode step reads them at ~15 GB/s per core, >= 60 us), or
 * at least this much arithmetic (m * n * k). A small model's matmuls
 * (stories260K: n * k <= 32K, m * n * k <= 2.7M) stay on one thread. */
#define DECO_MATMUL_CPU_PARALLEL_MIN_WEIGHTS (1LL << 18)
#define DECO_MATMUL_CPU_PARALLEL_MIN_MACS (1LL << 24)

/* 1 when this build and this CPU run the path (AUTO and PORTABLE: always). */
int deco_matmul_cpu_isa_available(deco_matmul_cpu_isa_t isa);
/* What AUTO picks here. */
deco_matmul_cpu_isa_t deco_matmul_cpu_isa_best(void);
/* "auto", "portable", "avx2", "avx512", or "?" */
const char *deco_matmul_cpu_isa_name(deco_matmul_cpu_isa_t isa);

/* deco_matmul on the CPU with the path chosen by the caller (f32, args valid
 * as after deco_matmul's checks). A path this CPU or build lacks returns
 * DECO_STATUS_UNSUPPORTED. Threads: exec->n_threads (0 = OpenMP's default),
 * over output columns only. */
deco_status_t deco_matmul_cpu_isa(const deco_exec_t *exec, const deco_matmul_args_t *args,
                                  deco_matmul_cpu_isa_t isa);

/* deco_matmul_cpu (common/op_impl.h) is deco_matmul_cpu_isa with AUTO. */

#ifdef __cplusplus
}
#endif
#endif
