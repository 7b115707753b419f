/* tests/ops/harness.h — the op harness (docs/TESTING.md, "The op harness"):
 * one loop that runs every case of the table (op_cases.h) on every backend
 * with poisoned outputs and guard words, and compares each result with an
 * expectation: on the CPU, an independent double-precision oracle written
 * here (tests/ops/harness_*.c), checked against both the public op on a CPU
 * context and the kernel-level reference (deco_<op>_ref); on CUDA, the
 * reference run on the same rounded inputs, under the per-op tolerances of
 * tests/common/tolerances.h. "Not supported" is reported, never hidden; an
 * unexpected one fails.
 *
 * A case becomes tensors (ht_t) in host memory: inputs, tensors the op
 * updates in place, outputs. An op (harness_op_t) builds them from the
 * case's seed (setup), computes what they must hold afterwards (oracle),
 * and calls the op on buffers in a target's memory (call).
 */
#ifndef DECO_TESTS_OPS_HARNESS_H
#define DECO_TESTS_OPS_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "common/op_impl.h" /* the kernel-level entry points deco_<op>_ref */
#include "common/testutil.h"
#include "deco/deco.h"
#include "ops/op_cases.h"

/* ---- Tensors ---------------------------------------------------------------------- */

enum { HT_IN = 0, HT_INOUT = 1, HT_OUT = 2 };
enum { HT_FLOAT = 0, HT_I32 = 1, HT_U8 = 2 };

#define HT_MAX 16

typedef struct ht {
  const char *name;
  int role, kind;
  deco_dtype_t dtype;     /* float: storage dtype in the case's own run (a CUDA reference run stores f32) */
  deco_dtype_t tol_dtype; /* float: the dtype whose tolerance applies (the case's, or f32 for the residual stream) */
  size_t n;               /* elements the op sees */
  size_t offset;          /* elements of filler before them (misaligned pointers); left poisoned */
  size_t n_written;       /* OUT: the first n_written elements must be written, the rest stays poisoned */
  deco_op_cmp_t cmp;      /* how the expected contents are compared */
  float *f;               /* contents before the op (IN, INOUT), rounded to dtype */
  int32_t *i;
  uint8_t *b;
  float *ef;              /* expected after the op (INOUT, OUT); NULL: not compared */
  int32_t *ei;
} ht_t;

typedef struct hcase {
  const deco_op_case_t *c;
  ht_t t[HT_MAX];
  int n_t;
  int iv[32];               /* sizes an op derives in setup and reads in call */
  float fv[4];
  deco_status_t bad_status; /* with bad device data (corrupt): what the CPU reference returns */
  int corrupted;            /* the inputs hold bad device data */
  int shapes_only;          /* a run that must be refused: inputs are left poisoned, not generated */
} hcase_t;

/* New tensors; float contents start zeroed (fill h->t[k].f), int likewise. */
int ht_add(hcase_t *h, const char *name, int role, int kind, deco_dtype_t dtype, size_t n);
/* A float input uniform in [lo, hi) from (case seed, stream), rounded to dtype. */
int ht_uniform(hcase_t *h, const char *name, int role, deco_dtype_t dtype, size_t n, uint32_t stream, float lo,
               float hi);
/* Expected arrays (allocated, zeroed) of tensor k. */
float *ht_expect_f(hcase_t *h, int k);
int32_t *ht_expect_i(hcase_t *h, int k);
void hcase_free(hcase_t *h);

/* ---- Targets ---------------------------------------------------------------------- */

typedef struct harness_target {
  const char *name;    /* "cpu" (the public op), "ref" (deco_<op>_ref), "cuda" */
  deco_ctx_t *ctx;     /* holds the buffers; runs the public op unless ref */
  int ref;             /* call the kernel-level reference with exec */
  int twin;            /* float tensors stored and passed as f32 (the CUDA run's reference) */
  deco_exec_t exec;
  char message[DECO_EXEC_MESSAGE_CAPACITY];
  /* per run */
  deco_test_buf_t ws;
  int has_ws;
  char path[64];
} harness_target_t;

void harness_target_init(harness_target_t *t, const char *name, deco_ctx_t *ctx, int ref);

/* Runs name on the target: the public op on its context, or the reference. */
#define HARNESS_CALL(t, op, args) ((t)->ref ? deco_##op##_ref(&(t)->exec, (args)) : deco_##op((t)->ctx, (args)))
/* The dtype an op is told in this run (f32 in a reference twin). */
static inline deco_dtype_t harness_dt(const harness_target_t *t, deco_dtype_t dt) {
  return t->twin ? DECO_DTYPE_F32 : dt;
}
/* A guarded workspace of bytes set on the target's context (0: none). */
void harness_workspace(harness_target_t *t, size_t bytes);
/* Records the kernel path the run takes (checked against the case's). */
void harness_path(harness_target_t *t, const char *path);

/* ---- Ops ---------------------------------------------------------------------------- */

typedef struct harness_op {
  deco_op_kind_t kind;
  void (*setup)(hcase_t *h);
  void (*oracle)(hcase_t *h);
  deco_status_t (*call)(hcase_t *h, void *const *p, harness_target_t *t);
  /* Bad device data, for cases that carry some: breaks the inputs and, when
   * expected values exist, turns them into what CUDA must write. */
  void (*corrupt)(hcase_t *h);
  /* Whether the CPU backend takes the case (its reference takes the same). */
  int (*cpu_supports)(const deco_op_case_t *c);
} harness_op_t;

/* Every op of the harness, X(name, kind) in deco_op_kind_t's order: the op
 * harness_op_<name> (harness_*.c), looked up by kind, and one test per op in
 * each suite (test_ops_harness.c, gpu_test_ops_harness.c). */
#define HARNESS_OPS(X)                                                                                        \
  X(embedding, DECO_OP_EMBEDDING)                                                                             \
  X(rmsnorm, DECO_OP_RMSNORM)                                                                                 \
  X(rope, DECO_OP_ROPE)                                                                                       \
  X(matmul, DECO_OP_MATMUL)                                                                                   \
  X(swiglu, DECO_OP_SWIGLU)                                                                                   \
  X(fill_random, DECO_OP_FILL_RANDOM)                                                                         \
  X(convert, DECO_OP_CONVERT)                                                                                 \
  X(dequant, DECO_OP_DEQUANT)                                                                                 \
  X(kv_append, DECO_OP_KV_APPEND)                                                                             \
  X(attention, DECO_OP_ATTENTION)                                                                             \
  X(tree_attention, DECO_OP_TREE_ATTENTION)                                                                   \
  X(accept_greedy, DECO_OP_ACCEPT_GREEDY)                                                                     \
  X(kv_compact, DECO_OP_KV_COMPACT)                                                                           \
  X(topk_rows, DECO_OP_TOPK_ROWS)                                                                             \
  X(recycle_draft, DECO_OP_RECYCLE_DRAFT)                                                                     \
  X(recycle_update, DECO_OP_RECYCLE_UPDATE)                                                                   \
  X(spec_prepare, DECO_OP_SPEC_PREPARE)                                                                       \
  X(spec_commit, DECO_OP_SPEC_COMMIT)                                                                         \
  X(matmul_batched, DECO_OP_MATMUL_BATCHED)                                                                   \
  X(draft_chain, DECO_OP_DRAFT_CHAIN)

const harness_op_t *harness_op(deco_op_kind_t kind);
/* The ops of each file. */
#define HARNESS_OP_DECLARE(name, kind) extern const harness_op_t harness_op_##name;
HARNESS_OPS(HARNESS_OP_DECLARE)
#undef HARNESS_OP_DECLARE
int harness_cpu_f32_only(const deco_op_case_t *c);

/* ---- The loop ------------------------------------------------------------------------ */

/* Counts of one op over the table, per target. */
typedef struct harness_tally {
  int cases;
  int passed[3], failed[3], unsupported[3], refused[3];
  char unsupported_why[3][160];
  char refused_why[3][160];
} harness_tally_t;

/* Every case of op in the table on the CPU: the public op on a CPU context
 * and the reference, each against the oracle. Returns the failures. */
int harness_run_cpu(deco_op_kind_t op, harness_tally_t *tally);
/* Every case of op on CUDA against the reference (needs a device). */
int harness_run_cuda(deco_op_kind_t op, unsigned tags, harness_tally_t *tally);
/* Prints the summary line of one op. */
void harness_print_tally(deco_op_kind_t op, const harness_tally_t *tally, const char *const *targets, int n_targets);

/* The table, built once per process. */
const deco_op_cases_t *harness_table(void);

/* ---- Numbers the oracles share ----------------------------------------------------------- */

/* Round to nearest even into f16 / bf16 bits, and back (independent of the
 * library's host conversions). */
uint16_t harness_f32_to_f16(float x);
uint16_t harness_f32_to_bf16(float x);
float harness_f16_to_f32(uint16_t h);
float harness_bf16_to_f32(uint16_t h);
/* x rounded through dtype. */
float harness_round(float x, deco_dtype_t dtype);
/* Uniform in [lo, hi) from (seed, stream, i): deterministic inputs. */
void harness_uniform(float *x, size_t n, uint64_t seed, uint32_t stream, float lo, float hi);
/* splitmix64 draws for shapes and ids. */
uint64_t harness_rng(uint64_t *state);
int harness_rng_int(uint64_t *state, int lo, int hi);

#endif
