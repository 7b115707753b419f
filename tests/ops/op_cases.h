/* tests/ops/op_cases.h — the case table of the op harness (tests/ops/, in the
 * spirit of llama.cpp's test-backend-ops): every op of deco, each case an op,
 * a dtype, a shape, a seed and how its main output is compared (a tolerance
 * of tests/common/tolerances.h by dtype, exact, or bitwise). The harness runs
 * every case on every backend; perf/bench_ops.c and perf/bench_tree_attention.c
 * take their shapes from the shared lists below (DECO_CASES_*), which the
 * table also checks.
 *
 * Header-only (static inline), so the benches, which link neither Criterion
 * nor the test helpers, include it as "../tests/ops/op_cases.h". Inputs are
 * not here: the harness derives every value from a case's seed.
 */
#ifndef DECO_TESTS_OP_CASES_H
#define DECO_TESTS_OP_CASES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deco/deco.h"

#if defined(__GNUC__)
#define DECO_CASES_UNUSED __attribute__((unused))
#else
#define DECO_CASES_UNUSED
#endif

typedef enum deco_op_kind {
  DECO_OP_EMBEDDING,
  DECO_OP_RMSNORM,
  DECO_OP_ROPE,
  DECO_OP_MATMUL,
  DECO_OP_SWIGLU,
  DECO_OP_FILL_RANDOM,
  DECO_OP_CONVERT,
  DECO_OP_DEQUANT,
  DECO_OP_KV_APPEND,
  DECO_OP_ATTENTION,
  DECO_OP_TREE_ATTENTION,
  DECO_OP_ACCEPT_GREEDY,
  DECO_OP_KV_COMPACT,
  DECO_OP_TOPK_ROWS,
  DECO_OP_RECYCLE_DRAFT,
  DECO_OP_RECYCLE_UPDATE,
  DECO_OP_SPEC_PREPARE,
  DECO_OP_SPEC_COMMIT,
  DECO_OP_MATMUL_BATCHED,
  DECO_OP_DRAFT_CHAIN,
  DECO_OP_COUNT
} deco_op_kind_t;

static inline const char *deco_op_kind_name(deco_op_kind_t op) {
  static const char *const names[DECO_OP_COUNT] = {
      "embedding",     "rmsnorm",        "rope",          "matmul",        "swiglu",         "fill_random",
      "convert",       "dequant",        "kv_append",     "attention",     "tree_attention", "accept_greedy",
      "kv_compact",    "topk_rows",      "recycle_draft", "recycle_update", "spec_prepare",  "spec_commit",
      "matmul_batched", "draft_chain"};
  return (unsigned)op < DECO_OP_COUNT ? names[op] : "?";
}

/* How the main output is compared. ELEMENTWISE and REDUCTION are
 * |a - r| <= tol + tol·|r| with tol by dtype (tolerances.h: f32 1e-5 or 1e-4,
 * f16 1e-3, bf16 1e-2; NaN fails unless NaN is expected); EXACT: equal values
 * (integers, copies); BITWISE: equal bits in the output dtype. */
typedef enum deco_op_cmp {
  DECO_CMP_ELEMENTWISE = 0,
  DECO_CMP_REDUCTION = 1,
  DECO_CMP_EXACT = 2,
  DECO_CMP_BITWISE = 3
} deco_op_cmp_t;

static inline const char *deco_op_cmp_name(deco_op_cmp_t c) {
  return c == DECO_CMP_ELEMENTWISE ? "elementwise" : c == DECO_CMP_REDUCTION ? "reduction"
                                                : c == DECO_CMP_EXACT      ? "exact"
                                                                           : "bitwise";
}

/* Whether the CUDA run must split the keys (attention: a workspace; tree
 * attention: "+split" in the path). */
enum { DECO_SPLIT_ANY = 0, DECO_SPLIT_NEVER = 1, DECO_SPLIT_ALWAYS = 2 };

/* Tags: where a case's shape comes from, for selecting and reporting. */
enum {
  DECO_CASE_TAG_SMALL = 1u << 0,       /* the small-shape pass (compute-sanitizer runs it: tests/gpu/run.sh) */
  DECO_CASE_TAG_BENCH = 1u << 1,       /* a shape the benches time (DECO_CASES_* lists) */
  DECO_CASE_TAG_BAD_DATA = 1u << 2,    /* broken device-side data: the CPU reference refuses it, CUDA stays local */
  DECO_CASE_TAG_STRIDED = 1u << 3,     /* inputs as column blocks of a fused projection */
};

#define DECO_CASE_MAX_SEQS 16
#define DECO_CASE_MAX_TREES 8

typedef struct deco_op_case {
  deco_op_kind_t op;
  deco_dtype_t dtype;  /* the op's dtype: activations/weights/KV; convert, dequant: out; acceptance, top-k: logits */
  deco_op_cmp_t cmp;   /* comparison of the main output (other outputs: see the op in tests/ops/harness_ops.c) */
  uint64_t seed;
  unsigned tags;
  const char *origin;  /* the suite or bench the shape comes from */
  const char *path;    /* CUDA path name prefix the case must take, or NULL */
  int split;           /* DECO_SPLIT_* */
  union {
    struct {
      int vocab, dim, n_tokens, ready; /* ready: tokens NULL, f32 embeddings copied */
      int bad_ids;                     /* ids -1 and >= vocab (INT_MAX when 2) among the tokens: NaN rows */
    } embedding;
    struct {
      int dim, n_rows, add;
      float eps, amp; /* amp: |residual| scale (small values make eps matter) */
    } rmsnorm;
    struct {
      int style, head_dim, n_heads, n_kv_heads, n_tokens;
      int which; /* 0: q and k, 1: q only, 2: k only */
      int fused; /* q | k | v of a token in one row (q_stride = k_stride = that row) */
      int pos0;  /* positions pos0 + t when fused, else scattered in [0, 4096) */
      float theta;
    } rope;
    struct {
      int m, n, k, out_f32, accumulate, a_offset;
    } matmul;
    struct {
      int m, n, k, n_batch, shared, out_f32, accumulate; /* shared: stride_a 0 (one input) */
    } matmul_batched;
    struct {
      int n, mode; /* mode 0: separate out, 1: out aliases gate, 2: pointers one element off alignment */
      int row_len, in_stride; /* row_len > 0: rows of gate | up in_stride apart (mode 0 only) */
    } swiglu;
    struct {
      int n;
      uint32_t tensor;
      float scale, constant;
    } fill;
    struct {
      deco_dtype_t in_dtype;
      int n;
    } convert;
    struct {
      int type, n, in_offset; /* in_offset: bytes by which in is off alignment */
    } dequant;
    struct { /* kv_append and attention: a ragged batch over a shuffled paged cache */
      int n_seqs, page_size, n_kv, head_dim, group, extra;
      int corrupt;                   /* kv_append: sequence 1 loses page 1 (1: id -1, 2: id n_pages) */
      int corrupt_seq, corrupt_page; /* attention: a bad page id in that entry (-1: none) */
      int fused;                     /* q (attention) or k, v (kv_append) inside fused q | k | v rows */
      int kv_len[DECO_CASE_MAX_SEQS], n_new[DECO_CASE_MAX_SEQS];
    } kv;
    struct {
      int B, n_kv, group, head_dim, page_size, extra_cap;
      int shape;       /* -1: random per tree */
      int spare_pages; /* pool pages beyond the block table's */
      int q_pad;       /* q_stride = n_heads * head_dim + q_pad (0: dense) */
      int sizes[DECO_CASE_MAX_TREES], prefix[DECO_CASE_MAX_TREES];
    } tree;
    struct {
      int B, vocab, shape;
      int match_pct; /* % of drafted tokens set to the argmax of their parent's row */
      int ties;      /* rows whose maximum appears twice */
      int nonfinite; /* rows holding a NaN or an infinity */
      int sizes[DECO_CASE_MAX_TREES];
    } accept;
    struct {
      int B, n_layers, page_size, n_kv, head_dim;
      int prefix[DECO_CASE_MAX_TREES], n_nodes[DECO_CASE_MAX_TREES], accept_len[DECO_CASE_MAX_TREES];
    } compact;
    struct {
      int n_rows, vocab, k;
      int row_count; /* -1: NULL (all rows) */
      int values;    /* 1: values out too */
      int specials;  /* ties, +-0, NaN and infinities in the rows */
    } topk;
    struct {
      int B, n_nodes, vocab, k, shape;
      int default_template; /* the built-in 80-node template (n_nodes ignored) */
    } draft;
    struct {
      int B, vocab, k;
      int sizes[DECO_CASE_MAX_TREES];
    } update;
    struct {
      int n_nodes, shape, len, steps, done;
    } prepare;
    struct {
      int n_nodes, shape, len, steps, done;
      int accept_len, n_stop, out_capacity, n_out, nonfinite;
      int malformed; /* 1: accept_len 0, 2: a path entry out of range */
      int stop_at;   /* position on the emitted path that carries a stop id (-1: none) */
    } commit;
    struct {
      int stage, draft_len, vocab, len, steps, slots, done;
      int count;      /* rows the last draft forward computed (levels) */
      int accept_len; /* observe */
      int specials;   /* 0: plain rows; 1: ties, ±0, NaN (one at id 0), infinities; 2: every value NaN */
      float temperature; /* > 0: sampled (q rows, a draw keyed by the case's seed) */
      int width;         /* > 1: a top-w tree of n_nodes (the full W-ary shape, draft_len its depth) */
      int n_nodes;
      int irregular;     /* the tree's nodes take 0..W children (drawn), not W */
    } chain;
  };
} deco_op_case_t;

/* ---- Shapes shared with the benches ------------------------------------------------ */

/* perf/bench_ops.c: the Llama-2-7B projections of one decode step (k x n), the
 * GEMMs of that shape per step, at deco_cases_skinny_ms rows; bf16. */
typedef struct deco_cases_proj {
  int k, n;
  const char *name;
  int per_step;
} deco_cases_proj_t;
static const deco_cases_proj_t DECO_CASES_LLAMA2_7B_PROJ[4] DECO_CASES_UNUSED = {
    {4096, 4096, "qkvo", 4 * 32}, {4096, 11008, "gate/up", 2 * 32}, {11008, 4096, "down", 32}, {4096, 32000, "classifier", 1}};
#define DECO_CASES_N_SKINNY_MS 5
static const int DECO_CASES_SKINNY_MS[DECO_CASES_N_SKINNY_MS] DECO_CASES_UNUSED = {1, 2, 4, 8, 16};

/* perf/bench_ops.c: small problems (stories260K's projections, n x k, and two
 * past the tiled kernel's limit) at 1, 81 and 256 rows, f32 and bf16. */
static const int DECO_CASES_SMALL_MATMUL_NK[7][2] DECO_CASES_UNUSED = {{128, 64}, {64, 64}, {344, 64}, {64, 172},
                                                                      {512, 64}, {1024, 1024}, {2048, 2048}};
static const int DECO_CASES_SMALL_MATMUL_MS[3] DECO_CASES_UNUSED = {1, 81, 256};

/* Decode attention at the Llama-3-8B attention shape (32 query / 8 KV heads,
 * head dim 128, page 16, bf16): B sequences of L slots, one new token each
 * (perf/bench_ops.c; the table checks the B, L = 4096 ones). */
#define DECO_CASES_ATT_HEADS 32
#define DECO_CASES_ATT_KV_HEADS 8
#define DECO_CASES_ATT_HEAD_DIM 128
#define DECO_CASES_ATT_PAGE 16
static const int DECO_CASES_DECODE_ATTENTION[3][2] DECO_CASES_UNUSED = {{1, 4096}, {8, 4096}, {1, 32768}};

/* perf/bench_tree_attention.c at the same heads: trees of these sizes after
 * (B, L) — the validation cases, and the timed grid. */
static const int DECO_CASES_TREE_SIZES[3] DECO_CASES_UNUSED = {16, 64, 128};
static const int DECO_CASES_TREE_CHECKS[3][2] DECO_CASES_UNUSED = {{2, 300}, {1, 1500}, {12, 40}};
static const int DECO_CASES_TREE_GRID[5][2] DECO_CASES_UNUSED = {{1, 4096}, {8, 4096}, {1, 32768}, {32, 4096}, {8, 16384}};

/* ---- Building the table ---------------------------------------------------------------- */

typedef struct deco_op_cases {
  deco_op_case_t *v;
  int n, cap;
} deco_op_cases_t;

static inline deco_op_case_t *deco_op_cases_push(deco_op_cases_t *t, deco_op_case_t c) {
  if (t->n == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 1024;
    t->v = (deco_op_case_t *)realloc(t->v, sizeof(deco_op_case_t) * (size_t)t->cap);
    if (!t->v) abort();
  }
  t->v[t->n] = c;
  return &t->v[t->n++];
}

/* splitmix64, as tests/common/randtree.c (the tree sweeps draw their shapes with it). */
static inline uint64_t deco_cases_rng(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static inline int deco_cases_rng_int(uint64_t *s, int lo, int hi) {
  return lo + (int)(deco_cases_rng(s) % (uint64_t)(hi - lo + 1));
}

static const deco_dtype_t DECO_CASES_DTYPES[3] DECO_CASES_UNUSED = {DECO_DTYPE_F32, DECO_DTYPE_F16, DECO_DTYPE_BF16};

static inline deco_op_case_t deco_cases_base(deco_op_kind_t op, deco_dtype_t dt, deco_op_cmp_t cmp, uint64_t seed,
                                             const char *origin) {
  deco_op_case_t c;
  memset(&c, 0, sizeof c);
  c.op = op;
  c.dtype = dt;
  c.cmp = cmp;
  c.seed = seed;
  c.origin = origin;
  return c;
}

/* ---- dense ops (tests/gpu/test_ops_cuda.c's sweeps, each shape a case) ---- */

static inline void deco_cases_embedding(deco_op_cases_t *t, deco_dtype_t dt, int vocab, int dim, int n, uint64_t seed,
                                        unsigned tags, const char *origin) {
  for (int ready = 0; ready < 2; ++ready) {
    deco_op_case_t c = deco_cases_base(DECO_OP_EMBEDDING, dt, DECO_CMP_EXACT, seed, origin);
    c.tags = tags;
    c.embedding.vocab = vocab;
    c.embedding.dim = dim;
    c.embedding.n_tokens = n;
    c.embedding.ready = ready;
    c.embedding.bad_ids = ready || n < 3 ? 0 : n == 19 ? 2 : 1;
    deco_op_cases_push(t, c);
  }
}

static inline void deco_cases_rmsnorm(deco_op_cases_t *t, deco_dtype_t dt, int dim, int rows, int add, float eps,
                                      float amp, uint64_t seed, unsigned tags, const char *origin) {
  deco_op_case_t c = deco_cases_base(DECO_OP_RMSNORM, dt, DECO_CMP_REDUCTION, seed, origin);
  c.tags = tags;
  c.rmsnorm.dim = dim;
  c.rmsnorm.n_rows = rows;
  c.rmsnorm.add = add;
  c.rmsnorm.eps = eps;
  c.rmsnorm.amp = amp;
  deco_op_cases_push(t, c);
}

static inline void deco_cases_rope(deco_op_cases_t *t, deco_dtype_t dt, int style, int hd, int nh, int nkv, int n,
                                   int which, float theta, int fused, int pos0, uint64_t seed, unsigned tags,
                                   const char *origin) {
  deco_op_case_t c = deco_cases_base(DECO_OP_ROPE, dt, DECO_CMP_ELEMENTWISE, seed, origin);
  c.tags = tags;
  c.rope.style = style;
  c.rope.head_dim = hd;
  c.rope.n_heads = nh;
  c.rope.n_kv_heads = nkv;
  c.rope.n_tokens = n;
  c.rope.which = which;
  c.rope.theta = theta;
  c.rope.fused = fused;
  c.rope.pos0 = pos0;
  deco_op_cases_push(t, c);
}

static inline void deco_cases_matmul_batched(deco_op_cases_t *t, deco_dtype_t dt, int m, int n, int k, int n_batch,
                                             int shared, int out_f32, int acc, uint64_t seed, unsigned tags,
                                             const char *origin) {
  deco_op_case_t c = deco_cases_base(DECO_OP_MATMUL_BATCHED, dt, DECO_CMP_REDUCTION, seed, origin);
  c.tags = tags;
  c.matmul_batched.m = m;
  c.matmul_batched.n = n;
  c.matmul_batched.k = k;
  c.matmul_batched.n_batch = n_batch;
  c.matmul_batched.shared = shared;
  c.matmul_batched.out_f32 = out_f32;
  c.matmul_batched.accumulate = acc;
  deco_op_cases_push(t, c);
}

static inline void deco_cases_matmul(deco_op_cases_t *t, deco_dtype_t dt, int m, int n, int k, int out_f32, int acc,
                                     int a_offset, uint64_t seed, unsigned tags, const char *origin) {
  deco_op_case_t c = deco_cases_base(DECO_OP_MATMUL, dt, DECO_CMP_REDUCTION, seed, origin);
  c.tags = tags;
  c.matmul.m = m;
  c.matmul.n = n;
  c.matmul.k = k;
  c.matmul.out_f32 = out_f32;
  c.matmul.accumulate = acc;
  c.matmul.a_offset = a_offset;
  deco_op_cases_push(t, c);
}

/* Nine (m, n, k) shapes in the dtypes from DECO_CASES_DTYPES[first_dtype]
 * on, each plain, with an f32 out and accumulating; seeds seed0, seed0 + 1, ... */
static inline void deco_cases_matmul_shapes(deco_op_cases_t *t, const int shapes[9][3], int first_dtype,
                                            uint64_t seed0, const char *origin) {
  uint64_t seed = seed0;
  for (int di = first_dtype; di < 3; ++di)
    for (int si = 0; si < 9; ++si)
      for (int variant = 0; variant < 3; ++variant)
        deco_cases_matmul(t, DECO_CASES_DTYPES[di], shapes[si][0], shapes[si][1], shapes[si][2], variant == 1,
                          variant == 2, 0, seed++, 0, origin);
}

static inline void deco_cases_swiglu(deco_op_cases_t *t, deco_dtype_t dt, int n, int mode, int row_len, int in_stride,
                                     uint64_t seed, unsigned tags, const char *origin) {
  deco_op_case_t c = deco_cases_base(DECO_OP_SWIGLU, dt, DECO_CMP_ELEMENTWISE, seed, origin);
  c.tags = tags;
  c.swiglu.n = n;
  c.swiglu.mode = mode;
  c.swiglu.row_len = row_len;
  c.swiglu.in_stride = in_stride;
  deco_op_cases_push(t, c);
}

static inline void deco_cases_fill(deco_op_cases_t *t, deco_dtype_t dt, int n, uint64_t seed, uint32_t tensor,
                                   float scale, float constant, unsigned tags, const char *origin) {
  deco_op_case_t c = deco_cases_base(DECO_OP_FILL_RANDOM, dt, DECO_CMP_BITWISE, seed, origin);
  c.tags = tags;
  c.fill.n = n;
  c.fill.tensor = tensor;
  c.fill.scale = scale;
  c.fill.constant = constant;
  deco_op_cases_push(t, c);
}

static inline void deco_cases_convert(deco_op_cases_t *t, deco_dtype_t in_dt, deco_dtype_t out_dt, int n,
                                      uint64_t seed, unsigned tags, const char *origin) {
  deco_op_case_t c = deco_cases_base(DECO_OP_CONVERT, out_dt, DECO_CMP_BITWISE, seed, origin);
  c.tags = tags;
  c.convert.in_dtype = in_dt;
  c.convert.n = n;
  deco_op_cases_push(t, c);
}

/* A ragged batch for kv_append / attention. */
static inline deco_op_case_t deco_cases_kv(deco_op_kind_t op, deco_dtype_t dt, int n_seqs, const int *kv_len,
                                           const int *n_new, int page_size, int n_kv, int group, int hd,
                                           uint64_t seed, const char *origin) {
  deco_op_case_t c = deco_cases_base(op, dt, op == DECO_OP_KV_APPEND ? DECO_CMP_EXACT : DECO_CMP_REDUCTION, seed,
                                     origin);
  c.kv.n_seqs = n_seqs;
  c.kv.page_size = page_size;
  c.kv.n_kv = n_kv;
  c.kv.group = group;
  c.kv.head_dim = hd;
  c.kv.extra = op == DECO_OP_KV_APPEND ? 3 : 2;
  c.kv.corrupt_seq = -1;
  for (int s = 0; s < n_seqs; ++s) {
    c.kv.kv_len[s] = kv_len[s];
    c.kv.n_new[s] = n_new[s];
  }
  return c;
}

/* Causal attention: the tensor-core kernel for head dims 64/128 in f16/bf16. */
static inline void deco_cases_attention(deco_op_cases_t *t, deco_dtype_t dt, const int *kv_len, const int *n_new,
                                        int n_seqs, int page_size, int n_kv, int group, int hd, int split,
                                        int corrupt_seq, int corrupt_page, uint64_t seed, unsigned tags,
                                        const char *origin) {
  deco_op_case_t c = deco_cases_kv(DECO_OP_ATTENTION, dt, n_seqs, kv_len, n_new, page_size, n_kv, group, hd, seed,
                                   origin);
  c.tags = tags | (corrupt_seq >= 0 ? DECO_CASE_TAG_BAD_DATA : 0u);
  c.kv.corrupt_seq = corrupt_seq;
  c.kv.corrupt_page = corrupt_page;
  c.split = split;
  c.path = dt != DECO_DTYPE_F32 && (hd == 64 || hd == 128) ? "mma" : "simt";
  deco_op_cases_push(t, c);
}

static inline void deco_cases_kv_append(deco_op_cases_t *t, deco_dtype_t dt, int page_size, int n_kv, int hd,
                                        int corrupt, uint64_t seed, unsigned tags, const char *origin) {
  static const int kv_len[] = {1, 19, 40, 37};
  static const int n_new[] = {1, 19, 1, 5};
  deco_op_case_t c = deco_cases_kv(DECO_OP_KV_APPEND, dt, 4, kv_len, n_new, page_size, n_kv, 1, hd, seed, origin);
  c.tags = tags | (corrupt ? DECO_CASE_TAG_BAD_DATA : 0u);
  c.kv.corrupt = corrupt;
  deco_op_cases_push(t, c);
}

/* One sequence of T new tokens after L0 cached slots, q | k | v of a token in
 * one row: RoPE, KV append, causal and tree attention through the strides
 * (test_ops_cuda's strided_inputs). */
static inline void deco_cases_strided(deco_op_cases_t *t, deco_dtype_t dt, int H, int KH, int hd, int T, int L0,
                                      int ps, uint64_t seed) {
  const char *origin = "test_ops_cuda.strided_inputs";
  const unsigned tags = DECO_CASE_TAG_STRIDED;
  deco_cases_rope(t, dt, (hd / 8) % 2 ? DECO_ROPE_INTERLEAVED : DECO_ROPE_HALF_SPLIT, hd, H, KH, T, 0, 10000.0f, 1,
                  L0, seed, tags, origin);
  const int kv_len[1] = {L0 + T}, n_new[1] = {T};
  deco_op_case_t a = deco_cases_kv(DECO_OP_KV_APPEND, dt, 1, kv_len, n_new, ps, KH, H / KH, hd, seed + 1, origin);
  a.tags = tags;
  a.kv.fused = 1;
  a.kv.extra = 0;
  deco_op_cases_push(t, a);
  deco_op_case_t c = deco_cases_kv(DECO_OP_ATTENTION, dt, 1, kv_len, n_new, ps, KH, H / KH, hd, seed + 2, origin);
  c.tags = tags;
  c.kv.fused = 1;
  c.kv.extra = 0;
  c.path = dt != DECO_DTYPE_F32 && (hd == 64 || hd == 128) ? "mma" : "simt";
  deco_op_cases_push(t, c);
  deco_op_case_t x = deco_cases_base(DECO_OP_TREE_ATTENTION, dt, DECO_CMP_REDUCTION, seed + 3, origin);
  x.tags = tags;
  x.tree.B = 1;
  x.tree.n_kv = KH;
  x.tree.group = H / KH;
  x.tree.head_dim = hd;
  x.tree.page_size = ps;
  x.tree.shape = 4;
  x.tree.spare_pages = 5;
  x.tree.q_pad = 2 * KH * hd;
  x.tree.sizes[0] = T;
  x.tree.prefix[0] = L0;
  x.path = dt != DECO_DTYPE_F32 && (hd == 64 || hd == 128) ? "mma" : "generic";
  deco_op_cases_push(t, x);
}

static inline void deco_cases_dense(deco_op_cases_t *t) {
  const char *o;
  int case_id;
  /* Embedding. */
  o = "test_ops_cuda.embedding";
  case_id = 0;
  {
    static const int vocabs[] = {1, 19, 733}, dims[] = {1, 7, 733, 4096}, ntoks[] = {1, 3, 19};
    for (int di = 0; di < 3; ++di)
      for (int vi = 0; vi < 3; ++vi)
        for (int mi = 0; mi < 4; ++mi, ++case_id)
          deco_cases_embedding(t, DECO_CASES_DTYPES[di], vocabs[vi], dims[mi], ntoks[(vi + mi) % 3],
                               11 + (uint64_t)case_id, 0, o);
  }
  /* RMSNorm, and small rows where eps decides the scale. */
  o = "test_ops_cuda.rmsnorm";
  case_id = 0;
  {
    static const int dims[] = {1, 3, 7, 19, 733, 4096, 5120}, rows[] = {1, 3, 19};
    for (int di = 0; di < 3; ++di)
      for (int mi = 0; mi < 7; ++mi)
        for (int add = 0; add < 2; ++add, ++case_id)
          deco_cases_rmsnorm(t, DECO_CASES_DTYPES[di], dims[mi], rows[(mi + add) % 3], add, 1e-5f, 2.0f,
                             21 + (uint64_t)case_id, 0, o);
    for (int di = 0; di < 3; ++di) {
      deco_cases_rmsnorm(t, DECO_CASES_DTYPES[di], 64, 5, 1, 0.5f, 0.01f, 120 + (uint64_t)di, 0, "harness.rmsnorm_eps");
      deco_cases_rmsnorm(t, DECO_CASES_DTYPES[di], 733, 3, 0, 1e-2f, 0.05f, 130 + (uint64_t)di, 0, "harness.rmsnorm_eps");
    }
  }
  /* RoPE: both styles, q and/or k, GQA head counts, theta 1e4 / 5e5. */
  o = "test_ops_cuda.rope";
  case_id = 0;
  {
    static const int head_dims[] = {2, 8, 24, 64, 100, 128, 256};
    static const int heads[][2] = {{1, 1}, {4, 2}, {3, 3}, {8, 1}};
    static const int ntoks[] = {1, 3, 19};
    for (int di = 0; di < 3; ++di)
      for (int style = 0; style < 2; ++style)
        for (int hi = 0; hi < 7; ++hi)
          for (int which = 0; which < 3; ++which, ++case_id) {
            const int h = (hi + which) % 4;
            deco_cases_rope(t, DECO_CASES_DTYPES[di], style, head_dims[hi], heads[h][0], heads[h][1],
                            ntoks[(hi + style + which) % 3], which, (hi + which) % 2 ? 500000.0f : 10000.0f, 0, 0,
                            31 + (uint64_t)case_id, 0, o);
          }
  }
  /* Matmul: every path (cuBLAS, tiled, skinny), both out dtypes, accumulate. */
  o = "test_ops_cuda.matmul";
  case_id = 0;
  {
    static const int ms[] = {1, 2, 7, 8, 9, 64}, ks[] = {8, 64, 4096, 4100}, ns[] = {1, 3, 19, 733};
    for (int di = 0; di < 3; ++di)
      for (int mi = 0; mi < 6; ++mi)
        for (int ki = 0; ki < 4; ++ki, ++case_id) {
          const int n = ns[(mi + ki) % 4], out_f32 = (mi + ki + di) % 2, acc = (mi / 2 + ki) % 2;
          deco_cases_matmul(t, DECO_CASES_DTYPES[di], ms[mi], n, ks[ki], out_f32, acc, 0, 41 + (uint64_t)case_id, 0,
                            o);
        }
  }
  {
    static const int small[][3] = {{81, 128, 64}, {81, 512, 64}, {81, 64, 172}, {2, 344, 64}, {256, 512, 64},
                                   {33, 31, 95},  {5, 7, 3},     {81, 1, 1000}, {100, 65, 33}};
    static const int skinny[][3] = {{1, 4099, 1024}, {2, 1001, 2056}, {3, 517, 11008}, {4, 4096, 8}, {4, 33, 4096},
                                    {1, 6, 4096},    {3, 4097, 264},  {5, 33, 4096},   {8, 4097, 264}};
    deco_cases_matmul_shapes(t, small, 0, 91, "test_ops_cuda.matmul_small_shapes");
    deco_cases_matmul_shapes(t, skinny, 1, 51, "test_ops_cuda.matmul_skinny_shapes");
    /* An unaligned a sends f16/bf16 to cuBLAS. */
    deco_cases_matmul(t, DECO_DTYPE_BF16, 3, 517, 4096, 0, 0, 1, 77, 0, "test_ops_cuda.matmul_skinny_shapes");
    deco_cases_matmul(t, DECO_DTYPE_F16, 1, 4099, 1024, 1, 1, 3, 78, 0, "test_ops_cuda.matmul_skinny_shapes");
    deco_cases_matmul(t, DECO_DTYPE_F32, 3, 67, 133, 0, 1, 1, 79, 0, "harness.matmul_offset");
  }
  /* The benches' matmul shapes (perf/bench_ops.c). */
  for (int si = 0; si < 4; ++si)
    for (int mi = 0; mi < DECO_CASES_N_SKINNY_MS; ++mi)
      deco_cases_matmul(t, DECO_DTYPE_BF16, DECO_CASES_SKINNY_MS[mi], DECO_CASES_LLAMA2_7B_PROJ[si].n,
                        DECO_CASES_LLAMA2_7B_PROJ[si].k, 0, 0, 0, 1000 + (uint64_t)(si * 8 + mi), DECO_CASE_TAG_BENCH,
                        "bench_ops.llama2_7b");
  /* f32 at 81 and 256 rows of the two shapes past the tiled kernel's limit
   * are timed only: their CPU oracle and reference would take seconds. */
  for (int di = 0; di < 3; di += 2)
    for (int si = 0; si < 7; ++si)
      for (int mi = 0; mi < 3; ++mi)
        if (di == 2 || mi == 0 || DECO_CASES_SMALL_MATMUL_NK[si][0] * DECO_CASES_SMALL_MATMUL_NK[si][1] <= 1 << 16)
          deco_cases_matmul(t, DECO_CASES_DTYPES[di], DECO_CASES_SMALL_MATMUL_MS[mi], DECO_CASES_SMALL_MATMUL_NK[si][0],
                          DECO_CASES_SMALL_MATMUL_NK[si][1], 0, 0, 0, 1100 + (uint64_t)(di * 32 + si * 3 + mi),
                          DECO_CASE_TAG_BENCH, "bench_ops.small_matmul");
  /* SwiGLU: flat (separate, aliased, misaligned) and rows of a fused gate | up. */
  o = "test_ops_cuda.swiglu";
  case_id = 0;
  {
    static const int ns[] = {1, 3, 7, 19, 733, 4099, 11008 * 3};
    for (int di = 0; di < 3; ++di)
      for (int ni = 0; ni < 7; ++ni)
        for (int mode = 0; mode < 3; ++mode, ++case_id)
          deco_cases_swiglu(t, DECO_CASES_DTYPES[di], ns[ni], mode, 0, 0, 61 + (uint64_t)case_id, 0, o);
    static const int lens[] = {172, 256, 11};
    for (int di = 0; di < 3; ++di)
      for (int li = 0; li < 3; ++li)
        deco_cases_swiglu(t, DECO_CASES_DTYPES[di], 37 * lens[li], 0, lens[li], 2 * lens[li],
                          71 + (uint64_t)(li * 3 + di), DECO_CASE_TAG_STRIDED, "test_ops_cuda.swiglu_rows");
    for (int di = 0; di < 3; ++di) /* separate gate and up buffers, rows further apart */
      deco_cases_swiglu(t, DECO_CASES_DTYPES[di], 5 * 24, 0, 24, 31, 80 + (uint64_t)di, DECO_CASE_TAG_STRIDED,
                        "harness.swiglu_rows");
  }
  /* fill_random and convert: bit for bit. */
  o = "test_ops_cuda.fill_random";
  case_id = 0;
  {
    static const int ns[] = {1, 7, 733, 100003};
    static const float scales[] = {0.0346410162f, 1.0f, 3.0e-3f};
    static const float constants[] = {0.0f, 0.0f, 1.0f, 0.3f};
    for (int di = 0; di < 3; ++di)
      for (int ni = 0; ni < 4; ++ni)
        for (int ci = 0; ci < 4; ++ci, ++case_id) {
          const uint64_t seed = ci == 1 ? 0xfedcba9876543210ull : 42u + (uint64_t)case_id;
          deco_cases_fill(t, DECO_CASES_DTYPES[di], ns[ni], seed, (uint32_t)case_id, scales[(ni + ci) % 3],
                          constants[ci], 0, o);
        }
  }
  o = "test_ops_cuda.convert";
  case_id = 0;
  {
    static const int ns[] = {1, 7, 733, 65537};
    for (int ii = 0; ii < 3; ++ii)
      for (int oi = 0; oi < 3; ++oi)
        for (int ni = 0; ni < 4; ++ni, ++case_id)
          deco_cases_convert(t, DECO_CASES_DTYPES[ii], DECO_CASES_DTYPES[oi], ns[ni], 71 + (uint64_t)case_id, 0, o);
  }
}

/* ---- dequant (deco/quant.h) ---- */

static inline void deco_cases_dequant(deco_op_cases_t *t) {
  /* DECO_QUANT_F32, F16, Q4_0, Q4_1, Q8_0, BF16 (ggml's numbers). */
  static const int types[6] = {0, 1, 2, 3, 8, 30};
  static const int ns[3] = {32, 32 * 37, 32 * 1027};
  int case_id = 0;
  for (int ti = 0; ti < 6; ++ti)
    for (int oi = 0; oi < 3; ++oi)
      for (int ni = 0; ni < 3; ++ni, ++case_id) {
        deco_op_case_t c = deco_cases_base(DECO_OP_DEQUANT, DECO_CASES_DTYPES[oi], DECO_CMP_BITWISE,
                                           1300 + (uint64_t)case_id, "harness.dequant");
        c.dequant.type = types[ti];
        c.dequant.n = ns[ni];
        c.dequant.in_offset = (ti + ni) % 3; /* "any alignment" */
        deco_op_cases_push(t, c);
      }
}

/* ---- KV append and causal attention ---- */

static inline void deco_cases_kv_attention(deco_op_cases_t *t) {
  int case_id = 0;
  {
    static const int page_sizes[] = {1, 3, 16};
    static const int shapes[][2] = {{1, 8}, {2, 24}, {4, 100}, {8, 128}, {2, 256}, {3, 9}};
    for (int di = 0; di < 3; ++di)
      for (int pi = 0; pi < 3; ++pi)
        for (int si = 0; si < 6; ++si, ++case_id)
          deco_cases_kv_append(t, DECO_CASES_DTYPES[di], page_sizes[pi], shapes[si][0], shapes[si][1], (si + pi) % 3,
                               81 + (uint64_t)case_id, 0, "test_ops_cuda.kv_append");
  }
  static const int hds[] = {8, 24, 64, 100, 128, 256}, groups[] = {1, 2, 4, 8};
  {
    static const int kv_len[] = {1, 19, 733, 37, 300}, n_new[] = {1, 19, 1, 5, 12}, page_sizes[] = {1, 3, 16};
    case_id = 0;
    for (int di = 0; di < 3; ++di)
      for (int hi = 0; hi < 6; ++hi)
        for (int gi = 0; gi < 4; ++gi, ++case_id)
          deco_cases_attention(t, DECO_CASES_DTYPES[di], kv_len, n_new, 5, page_sizes[(hi + gi + di) % 3], 2,
                               groups[gi], hds[hi], DECO_SPLIT_ALWAYS, -1, 0, 91 + (uint64_t)case_id, 0,
                               "test_ops_cuda.attention_mixed_batch");
  }
  {
    static const int kv_len[] = {1, 19, 100, 3, 64}, n_new[] = {1, 19, 7, 3, 1};
    case_id = 0;
    for (int di = 0; di < 3; ++di)
      for (int hi = 0; hi < 6; ++hi)
        for (int gi = 0; gi < 4; ++gi, ++case_id)
          deco_cases_attention(t, DECO_CASES_DTYPES[di], kv_len, n_new, 5, (hi + gi) % 2 ? 16 : 3, 3, groups[gi],
                               hds[hi], DECO_SPLIT_NEVER, -1, 0, 191 + (uint64_t)case_id, 0,
                               "test_ops_cuda.attention_short_single_pass");
  }
  {
    static const int kv_len[] = {1000, 1, 2049, 517}, n_new[] = {1, 1, 1, 1};
    const char *o = "test_ops_cuda.attention_decode";
    case_id = 0;
    for (int di = 0; di < 3; ++di) {
      const deco_dtype_t dt = DECO_CASES_DTYPES[di];
      deco_cases_attention(t, dt, kv_len, n_new, 4, 16, 8, 4, 128, DECO_SPLIT_ALWAYS, -1, 0, 291 + (uint64_t)case_id++,
                           0, o);
      deco_cases_attention(t, dt, kv_len, n_new, 4, 3, 1, 32, 64, DECO_SPLIT_ANY, -1, 0, 291 + (uint64_t)case_id++, 0,
                           o);
      deco_cases_attention(t, dt, kv_len, n_new, 4, 1, 2, 12, 256, DECO_SPLIT_ANY, -1, 0, 291 + (uint64_t)case_id++,
                           0, o);
    }
  }
  {
    int kv_len[16], n_new[16];
    for (int s = 0; s < 16; ++s) {
      kv_len[s] = 1 + 37 * s;
      n_new[s] = 1;
    }
    kv_len[3] = n_new[3] = 300;
    kv_len[9] = n_new[9] = 600;
    const char *o = "test_ops_cuda.attention_long_prefill_in_batch";
    case_id = 0;
    for (int di = 1; di < 3; ++di) {
      const deco_dtype_t dt = DECO_CASES_DTYPES[di];
      deco_cases_attention(t, dt, kv_len, n_new, 16, 16, 8, 4, 64, DECO_SPLIT_ANY, -1, 0, 501 + (uint64_t)case_id++, 0,
                           o);
      deco_cases_attention(t, dt, kv_len, n_new, 16, 16, 8, 4, 64, DECO_SPLIT_ANY, 9, 20, 501 + (uint64_t)case_id++,
                           0, o);
      deco_cases_attention(t, dt, kv_len, n_new, 16, 16, 64, 1, 64, DECO_SPLIT_ANY, -1, 0, 501 + (uint64_t)case_id++,
                           0, o);
      for (int hd = 64; hd <= 128; hd += 64)
        deco_cases_attention(t, dt, kv_len, n_new, 16, 16, 1, 8, hd, DECO_SPLIT_ALWAYS, -1, 0,
                             501 + (uint64_t)case_id++, 0, o);
    }
  }
  {
    static const int kv_len[] = {19, 733, 40}, n_new[] = {19, 1, 3}, short_len[] = {19, 30, 40};
    const char *o = "test_ops_cuda.attention_invalid_page";
    for (int di = 0; di < 3; ++di) {
      const deco_dtype_t dt = DECO_CASES_DTYPES[di];
      deco_cases_attention(t, dt, kv_len, n_new, 3, 3, 2, 4, 64, DECO_SPLIT_ALWAYS, 0, 4, 401 + (uint64_t)di, 0, o);
      deco_cases_attention(t, dt, kv_len, n_new, 3, 16, 2, 2, 100, DECO_SPLIT_ALWAYS, 1, 7, 411 + (uint64_t)di, 0, o);
      deco_cases_attention(t, dt, short_len, n_new, 3, 3, 2, 4, 64, DECO_SPLIT_NEVER, 0, 5, 421 + (uint64_t)di, 0, o);
    }
  }
  /* Strided: q, k, v as column blocks of one fused projection. */
  {
    static const int shds[] = {8, 24, 64, 128};
    case_id = 0;
    for (int di = 0; di < 3; ++di)
      for (int hi = 0; hi < 4; ++hi) {
        deco_cases_strided(t, DECO_CASES_DTYPES[di], 8, 2, shds[hi], 37, 5, 3, 601 + 4 * (uint64_t)case_id++);
        deco_cases_strided(t, DECO_CASES_DTYPES[di], 4, 4, shds[hi], 19, 700, 16, 601 + 4 * (uint64_t)case_id++);
      }
    for (int di = 0; di < 3; ++di) /* head dim 10: k off 16-byte alignment */
      deco_cases_strided(t, DECO_CASES_DTYPES[di], 3, 1, 10, 11, 4, 5, 700 + 4 * (uint64_t)di);
  }
  /* The benches' decode attention, at the context lengths a test affords. */
  for (int i = 0; i < 3; ++i) {
    const int B = DECO_CASES_DECODE_ATTENTION[i][0], L = DECO_CASES_DECODE_ATTENTION[i][1];
    if (L > 4096) continue; /* 32K slots: timed only (bench_ops validates two heads itself) */
    int kv_len[DECO_CASE_MAX_SEQS], n_new[DECO_CASE_MAX_SEQS];
    for (int b = 0; b < B; ++b) {
      kv_len[b] = L;
      n_new[b] = 1;
    }
    deco_cases_attention(t, DECO_DTYPE_BF16, kv_len, n_new, B, DECO_CASES_ATT_PAGE, DECO_CASES_ATT_KV_HEADS,
                         DECO_CASES_ATT_HEADS / DECO_CASES_ATT_KV_HEADS, DECO_CASES_ATT_HEAD_DIM, DECO_SPLIT_ANY, -1, 0,
                         1200 + (uint64_t)i, DECO_CASE_TAG_BENCH, "bench_ops.decode_attention");
  }
}

/* ---- Tree attention (the builders' shapes: tests/test_tree.c, tests/gpu/test_tree_attention.c) ---- */

static inline deco_op_case_t deco_cases_tree(deco_dtype_t dt, int hd, int n_kv, int group, int page, int B,
                                             const int *sizes, const int *prefix, int shape, int extra_cap,
                                             uint64_t seed, const char *origin) {
  deco_op_case_t c = deco_cases_base(DECO_OP_TREE_ATTENTION, dt, DECO_CMP_REDUCTION, seed, origin);
  c.tree.B = B;
  c.tree.n_kv = n_kv;
  c.tree.group = group;
  c.tree.head_dim = hd;
  c.tree.page_size = page;
  c.tree.extra_cap = extra_cap;
  c.tree.shape = shape;
  c.tree.spare_pages = 5;
  for (int b = 0; b < B; ++b) {
    c.tree.sizes[b] = sizes[b];
    c.tree.prefix[b] = prefix[b];
  }
  return c;
}

static inline double deco_cases_tree_cost(const deco_op_case_t *c) {
  double s = 0;
  for (int b = 0; b < c->tree.B; ++b) s += (double)c->tree.sizes[b] * (c->tree.prefix[b] + c->tree.sizes[b]);
  return s * c->tree.n_kv * c->tree.group * c->tree.head_dim * 2;
}

static inline void deco_cases_tree_push(deco_op_cases_t *t, deco_op_case_t c, const char *path, int split) {
  c.path = path;
  c.split = split;
  deco_op_cases_push(t, c);
}

static inline void deco_cases_tree_attention(deco_op_cases_t *t) {
  /* test_tree_attention.c's sweeps: every dtype and head dim, random batches
   * drawn exactly as that suite draws them (shapes trimmed to a reference
   * cost of 1.5e8 multiply-adds). */
  static const int hds[6] = {8, 24, 64, 100, 128, 256};
  static const int groups[4] = {1, 2, 4, 8};
  uint64_t sweep_seed = 1;
  for (int di = 0; di < 3; ++di)
    for (int hi = 0; hi < 6; ++hi, ++sweep_seed) {
      static const int prefixes[5] = {0, 1, 37, 1000, 4100};
      const int hd = hds[hi];
      uint64_t s = sweep_seed;
      for (int k = 0; k < 4; ++k) {
        int sizes[DECO_CASE_MAX_TREES] = {0}, prefix[DECO_CASE_MAX_TREES] = {0};
        const int group = groups[(k + hd / 8) % 4];
        const int n_kv = deco_cases_rng_int(&s, 1, group >= 4 ? 2 : 3);
        const int page = (k % 2) ? 16 : 1;
        const int B = deco_cases_rng_int(&s, 1, 5);
        const uint64_t seed = deco_cases_rng(&s);
        const int extra = deco_cases_rng_int(&s, 0, 3);
        for (int b = 0; b < B; ++b) {
          const int r = deco_cases_rng_int(&s, 0, 7);
          sizes[b] = r == 0 && B > 1 ? 0 : r <= 2 ? deco_cases_rng_int(&s, 100, 256) : deco_cases_rng_int(&s, 1, 64);
          prefix[b] = prefixes[deco_cases_rng_int(&s, 0, 4)];
        }
        deco_op_case_t c = deco_cases_tree(DECO_CASES_DTYPES[di], hd, n_kv, group, page, B, sizes, prefix, -1, extra,
                                           seed, "test_tree_attention.sweep");
        while (deco_cases_tree_cost(&c) > 1.5e8) { /* shrink the costliest tree */
          int worst = 0;
          for (int b = 1; b < B; ++b)
            if ((double)c.tree.sizes[b] * (c.tree.prefix[b] + c.tree.sizes[b]) >
                (double)c.tree.sizes[worst] * (c.tree.prefix[worst] + c.tree.sizes[worst]))
              worst = b;
          if (c.tree.sizes[worst] > 1) c.tree.sizes[worst] = (c.tree.sizes[worst] + 1) / 2;
          else c.tree.prefix[worst] /= 2;
        }
        deco_cases_tree_push(t, c, NULL, DECO_SPLIT_ANY);
      }
    }
  /* Every kernel path (test_tree_attention.c's every_path). */
  {
    const char *o = "test_tree_attention.every_path";
    int s1[3] = {64, 100, 37}, p1[3] = {100, 17, 0};
    deco_op_case_t g = deco_cases_tree(DECO_DTYPE_BF16, 128, 2, 4, 16, 3, s1, p1, -1, 2, 41, o);
    deco_cases_tree_push(t, g, "mma-w8", DECO_SPLIT_NEVER);
    g.dtype = DECO_DTYPE_F16;
    deco_cases_tree_push(t, g, "mma-w8", DECO_SPLIT_NEVER);
    int s2[4] = {10, 30, 1, 17}, p2[4] = {5, 200, 0, 33};
    g = deco_cases_tree(DECO_DTYPE_F16, 64, 4, 2, 1, 4, s2, p2, -1, 2, 42, o);
    deco_cases_tree_push(t, g, "mma-w4", DECO_SPLIT_NEVER);
    g.dtype = DECO_DTYPE_BF16;
    deco_cases_tree_push(t, g, "mma-w4", DECO_SPLIT_NEVER);
    int s3[1] = {64}, p3[1] = {4100};
    g = deco_cases_tree(DECO_DTYPE_BF16, 128, 1, 4, 16, 1, s3, p3, -1, 2, 43, o);
    deco_cases_tree_push(t, g, "mma-w8", DECO_SPLIT_ALWAYS);
    g.tree.head_dim = 64;
    g.dtype = DECO_DTYPE_F16;
    deco_cases_tree_push(t, g, "mma-w8", DECO_SPLIT_ALWAYS);
    int s4[2] = {16, 9}, p4[2] = {1000, 37};
    g = deco_cases_tree(DECO_DTYPE_F16, 64, 2, 4, 1, 2, s4, p4, -1, 2, 44, o);
    deco_cases_tree_push(t, g, "mma-w4", DECO_SPLIT_ALWAYS);
    g.tree.head_dim = 128;
    g.dtype = DECO_DTYPE_BF16;
    g.tree.group = 1; /* 16 rows of one head: only one warp of four has rows */
    deco_cases_tree_push(t, g, "mma-w4", DECO_SPLIT_ALWAYS);
    int s5[3] = {50, 3, 120}, p5[3] = {60, 1, 9};
    g = deco_cases_tree(DECO_DTYPE_F32, 100, 2, 2, 1, 3, s5, p5, -1, 2, 45, o);
    deco_cases_tree_push(t, g, "generic", DECO_SPLIT_NEVER);
    int s6[1] = {40}, p6[1] = {4100};
    g = deco_cases_tree(DECO_DTYPE_F32, 8, 2, 4, 16, 1, s6, p6, -1, 2, 46, o);
    deco_cases_tree_push(t, g, "generic", DECO_SPLIT_ALWAYS);
    g.dtype = DECO_DTYPE_BF16;
    g.tree.head_dim = 256;
    g.tree.n_kv = 1;
    deco_cases_tree_push(t, g, "generic", DECO_SPLIT_ALWAYS);
  }
  /* Splits whose key ranges hold no ancestor of early nodes (fully masked rows). */
  {
    const char *o = "test_tree_attention.splits_with_fully_masked_rows";
    int s[1] = {256}, p[1] = {200};
    deco_op_case_t g = deco_cases_tree(DECO_DTYPE_BF16, 64, 1, 1, 16, 1, s, p, 2, 0, 51, o);
    deco_cases_tree_push(t, g, "mma-w8", DECO_SPLIT_ALWAYS);
    g.dtype = DECO_DTYPE_F32;
    deco_cases_tree_push(t, g, "generic", DECO_SPLIT_ALWAYS);
    g.tree.shape = 1; /* a chain of 256 */
    g.dtype = DECO_DTYPE_F16;
    g.tree.head_dim = 128;
    deco_cases_tree_push(t, g, "mma-w8", DECO_SPLIT_ALWAYS);
  }
  /* Tensor-core shapes: every GQA ratio, tree shape and page size. */
  for (int k = 0; k < 8; ++k) {
    int s[3] = {1 + (k * 37) % 256, 1 + (k * 11) % 40, 16}, p[3] = {(k * 131) % 700, k, 37};
    deco_op_case_t g = deco_cases_tree(k % 2 ? DECO_DTYPE_BF16 : DECO_DTYPE_F16, k % 4 < 2 ? 64 : 128, 1 + k % 2,
                                       groups[k % 4], k % 3 ? 16 : 1, 3, s, p, k % 5, 2, 60 + (uint64_t)k,
                                       "test_tree_attention.mma_shapes");
    if (deco_cases_tree_cost(&g) > 3e8) g.tree.sizes[0] /= 2;
    deco_cases_tree_push(t, g, NULL, DECO_SPLIT_ANY); /* paths as the suite left them: not asserted */
  }
  /* tests/test_tree.c's reference sweeps (f32): head dims 8, 64, 128 over GQA
   * ratios and page sizes 1 / 16, prefixes up to 1000; whole, empty and
   * single-node trees. */
  {
    static const int sweep_hd[3] = {8, 64, 128};
    static const uint64_t sweep_seeds[3] = {101, 202, 303};
    static const int prefixes[5] = {0, 1, 37, 300, 1000};
    for (int si = 0; si < 3; ++si) {
      const int hd = sweep_hd[si];
      uint64_t s = sweep_seeds[si];
      for (int gi = 0; gi < 4; ++gi)
        for (int ps = 1; ps <= 16; ps += 15) {
          int B = deco_cases_rng_int(&s, 1, 4), sizes[DECO_CASE_MAX_TREES] = {0}, pre[DECO_CASE_MAX_TREES] = {0};
          int budget = hd >= 64 ? 600 : 900;
          for (int b = 0; b < B; ++b) {
            const int big = deco_cases_rng_int(&s, 0, 3) == 0;
            sizes[b] = big ? deco_cases_rng_int(&s, 100, DECO_TREE_MAX_NODES) : deco_cases_rng_int(&s, 1, 40);
            if (sizes[b] > budget) sizes[b] = budget > 1 ? budget : 1;
            budget -= sizes[b];
            pre[b] = prefixes[deco_cases_rng_int(&s, 0, 4)];
          }
          const int n_kv = groups[gi] >= 4 ? 1 : 2;
          const uint64_t seed = deco_cases_rng(&s);
          const int extra = deco_cases_rng_int(&s, 0, 5);
          deco_op_case_t g = deco_cases_tree(DECO_DTYPE_F32, hd, n_kv, groups[gi], ps, B, sizes, pre, -1, extra, seed,
                                             "test_tree.sweep");
          deco_cases_tree_push(t, g, NULL, DECO_SPLIT_ANY);
        }
    }
    int s1[2] = {DECO_TREE_MAX_NODES, DECO_TREE_MAX_NODES}, p1[2] = {3, 0};
    deco_cases_tree_push(t, deco_cases_tree(DECO_DTYPE_F32, 16, 1, 2, 16, 2, s1, p1, -1, 0, 77, "test_tree.full_256"),
                         NULL, DECO_SPLIT_ANY);
    int s2[5] = {1, 0, 7, 1, 0}, p2[5] = {0, 4, 9, 0, 2};
    deco_cases_tree_push(t, deco_cases_tree(DECO_DTYPE_F32, 8, 2, 2, 1, 5, s2, p2, -1, 4, 5, "test_tree.empty_single"),
                         NULL, DECO_SPLIT_ANY);
    for (int di = 0; di < 3; ++di) { /* chains and stars in every dtype */
      int s3[3] = {12, 1, 30}, p3[3] = {20, 0, 5};
      deco_cases_tree_push(t, deco_cases_tree(DECO_CASES_DTYPES[di], 64, 2, 4, 16, 3, s3, p3, 1, 0, 9, "test_tree.chain"),
                           NULL, DECO_SPLIT_ANY);
      int s4[1] = {6}, p4[1] = {0};
      deco_cases_tree_push(t, deco_cases_tree(DECO_CASES_DTYPES[di], 8, 1, 1, 1, 1, s4, p4, 2, 0, 21, "test_tree.star"),
                           NULL, DECO_SPLIT_ANY);
    }
  }
  /* The tree bench's validation shapes (Llama-3-8B heads, bf16, page 16). */
  for (int ci = 0; ci < 3; ++ci)
    for (int ni = 0; ni < 3; ++ni) {
      const int B = DECO_CASES_TREE_CHECKS[ci][0], L = DECO_CASES_TREE_CHECKS[ci][1];
      int sizes[DECO_CASE_MAX_TREES], prefix[DECO_CASE_MAX_TREES];
      if (B > DECO_CASE_MAX_TREES) continue; /* 12 trees: validated by the bench itself */
      for (int b = 0; b < B; ++b) {
        sizes[b] = DECO_CASES_TREE_SIZES[ni];
        prefix[b] = L;
      }
      deco_op_case_t g = deco_cases_tree(DECO_DTYPE_BF16, DECO_CASES_ATT_HEAD_DIM, DECO_CASES_ATT_KV_HEADS,
                                         DECO_CASES_ATT_HEADS / DECO_CASES_ATT_KV_HEADS, DECO_CASES_ATT_PAGE, B, sizes,
                                         prefix, 0, 0, 1400 + (uint64_t)(ci * 3 + ni), "bench_tree_attention.checks");
      g.tags = DECO_CASE_TAG_BENCH;
      deco_cases_tree_push(t, g, NULL, DECO_SPLIT_ANY);
    }
}

/* ---- Verification and drafting ops: integer outputs, compared exactly ---- */

static inline void deco_cases_spec_ops(deco_op_cases_t *t) {
  /* Greedy acceptance: random trees, drafts that mostly follow the argmax,
   * tied maxima, rows with NaN or infinities; f32 and bf16 logits. */
  {
    static const int shapes[6] = {0, 1, 2, 3, 4, -1};
    int case_id = 0;
    for (int di = 0; di < 3; di += 2)
      for (int k = 0; k < 12; ++k, ++case_id) {
        deco_op_case_t c = deco_cases_base(DECO_OP_ACCEPT_GREEDY, DECO_CASES_DTYPES[di], DECO_CMP_EXACT,
                                           1500 + (uint64_t)case_id, "harness.accept_greedy");
        static const int vocabs[4] = {1, 7, 733, 5003};
        c.accept.B = 1 + (k * 5) % 8;
        c.accept.vocab = vocabs[k % 4];
        c.accept.shape = shapes[k % 6];
        c.accept.match_pct = k % 3 == 0 ? 100 : k % 3 == 1 ? 85 : 30;
        c.accept.ties = k % 2;
        c.accept.nonfinite = k % 4 == 3;
        for (int b = 0; b < c.accept.B; ++b)
          c.accept.sizes[b] = b == 0 && k == 4 ? DECO_TREE_MAX_NODES : 1 + (int)((k * 37 + b * 19) % 90);
        deco_op_cases_push(t, c);
      }
  }
  /* KV compaction: several layers, shuffled pages, paths with gaps. */
  {
    int case_id = 0;
    for (int di = 0; di < 3; ++di)
      for (int k = 0; k < 4; ++k, ++case_id) {
        deco_op_case_t c = deco_cases_base(DECO_OP_KV_COMPACT, DECO_CASES_DTYPES[di], DECO_CMP_EXACT,
                                           1600 + (uint64_t)case_id, "harness.kv_compact");
        c.compact.B = 1 + (k * 3) % 5;
        c.compact.n_layers = 1 + k % 3;
        c.compact.page_size = k % 2 ? 16 : 3;
        c.compact.n_kv = 1 + k % 2;
        c.compact.head_dim = k == 3 ? 128 : 8 + 8 * k;
        for (int b = 0; b < c.compact.B; ++b) {
          c.compact.prefix[b] = (b * 29 + k * 7) % 50;
          c.compact.n_nodes[b] = b == 1 ? 1 : 10 + (b * 23 + k) % 60;
          c.compact.accept_len[b] = b == 1 ? 1 : 1 + (b * 7 + k * 3) % 9;
          if (c.compact.accept_len[b] > c.compact.n_nodes[b]) c.compact.accept_len[b] = c.compact.n_nodes[b];
        }
        deco_op_cases_push(t, c);
      }
  }
  /* Top-k rows: k 1..16, ties, +-0, NaN, infinities; a row count in memory. */
  {
    static const int vocabs[5] = {1, 16, 733, 5003, 32000};
    static const int ks[4] = {1, 8, 16, 3};
    int case_id = 0;
    for (int di = 0; di < 3; di += 2)
      for (int k = 0; k < 10; ++k, ++case_id) {
        deco_op_case_t c = deco_cases_base(DECO_OP_TOPK_ROWS, DECO_CASES_DTYPES[di], DECO_CMP_EXACT,
                                           1700 + (uint64_t)case_id, "harness.topk_rows");
        c.topk.vocab = vocabs[k % 5];
        c.topk.k = ks[k % 4] > c.topk.vocab ? c.topk.vocab : ks[k % 4];
        c.topk.n_rows = k == 9 ? 81 : 1 + (k * 3) % 7;
        c.topk.row_count = k % 3 == 1 ? c.topk.n_rows / 2 : -1;
        c.topk.values = k % 2 == 0;
        c.topk.specials = k % 4 != 0;
        deco_op_cases_push(t, c);
      }
  }
  /* Token Recycling: draft from the table, update it. */
  {
    int case_id = 0;
    for (int k = 0; k < 6; ++k, ++case_id) {
      deco_op_case_t c = deco_cases_base(DECO_OP_RECYCLE_DRAFT, DECO_DTYPE_F32, DECO_CMP_EXACT,
                                         1800 + (uint64_t)case_id, "harness.recycle_draft");
      static const int vocabs[3] = {1, 50, 32000};
      c.draft.B = 1 + (k * 3) % 5;
      c.draft.k = k % 3 == 0 ? 1 : k % 3 == 1 ? 8 : 16;
      c.draft.vocab = vocabs[k % 3];
      c.draft.n_nodes = k == 0 ? 1 : 7 + 41 * k % 250;
      c.draft.shape = k % 5;
      c.draft.default_template = k == 5;
      if (c.draft.default_template) c.draft.k = 8;
      deco_op_cases_push(t, c);
    }
    for (int k = 0; k < 6; ++k, ++case_id) {
      deco_op_case_t c = deco_cases_base(DECO_OP_RECYCLE_UPDATE, DECO_DTYPE_F32, DECO_CMP_EXACT,
                                         1800 + (uint64_t)case_id, "harness.recycle_update");
      static const int vocabs[3] = {3, 61, 32000};
      c.update.B = 1 + (k * 2) % 4;
      c.update.vocab = vocabs[k % 3];
      c.update.k = k % 2 ? 8 : 16;
      for (int b = 0; b < c.update.B; ++b) c.update.sizes[b] = k == 1 && b == 0 ? 0 : 1 + (k * 31 + b * 57) % 81;
      deco_op_cases_push(t, c);
    }
  }
  /* The device-resident step's bookkeeping. */
  {
    int case_id = 0;
    for (int k = 0; k < 8; ++k, ++case_id) {
      deco_op_case_t c = deco_cases_base(DECO_OP_SPEC_PREPARE, DECO_DTYPE_F32, DECO_CMP_EXACT,
                                         1900 + (uint64_t)case_id, "harness.spec_prepare");
      c.prepare.n_nodes = k == 0 ? 1 : 5 + 37 * k % 80;
      c.prepare.shape = k % 5;
      c.prepare.len = k * 13;
      c.prepare.steps = k % 3 == 0 ? 1 << 20 : c.prepare.len + 1 + k % 4; /* prunes deep nodes */
      c.prepare.done = k == 6;
      deco_op_cases_push(t, c);
    }
    for (int k = 0; k < 12; ++k, ++case_id) {
      deco_op_case_t c = deco_cases_base(DECO_OP_SPEC_COMMIT, DECO_DTYPE_F32, DECO_CMP_EXACT,
                                         1900 + (uint64_t)case_id, "harness.spec_commit");
      c.commit.n_nodes = 2 + 29 * k % 80;
      c.commit.shape = k % 5;
      c.commit.len = 3 + k * 11;
      c.commit.steps = k % 4 == 1 ? c.commit.len + 2 : 1 << 20;
      c.commit.done = k == 7;
      c.commit.accept_len = -1; /* as long as the tree allows */
      c.commit.n_stop = k % 3 == 0 ? 0 : k % 3 == 1 ? 2 : DECO_SPEC_MAX_STOP_IDS;
      c.commit.stop_at = k % 3 == 2 ? k % 4 : -1;
      c.commit.out_capacity = k == 5 ? 2 : 64;
      c.commit.n_out = k == 5 ? 1 : k;
      c.commit.nonfinite = k == 9 ? 3 : 0;
      c.commit.malformed = k == 10 ? 1 : k == 11 ? 2 : 0;
      deco_op_cases_push(t, c);
    }
    /* A model's chain inside the step: every stage, len 0, done, the step
     * limit and the cache's reservation, vocabularies across the CUDA
     * block's strides. */
    static const int vocabs[6] = {1, 7, 512, 513, 5003, 32000};
    for (int k = 0; k < 18; ++k, ++case_id) {
      deco_op_case_t c = deco_cases_base(DECO_OP_DRAFT_CHAIN, DECO_DTYPE_F32, DECO_CMP_EXACT,
                                         1900 + (uint64_t)case_id, "harness.draft_chain");
      c.chain.draft_len = 1 + (k * 5) % 9;
      c.chain.stage = k % 6 == 0 ? DECO_DRAFT_CHAIN_START : k % 6 == 5 ? DECO_DRAFT_CHAIN_OBSERVE
                                                                         : 1 + k % c.chain.draft_len;
      c.chain.vocab = vocabs[k % 6 == 1 ? 0 : (k / 2) % 6];
      c.chain.len = k % 7 == 3 ? 0 : 4 + 9 * k;
      c.chain.steps = k % 4 == 2 ? c.chain.len + 1 + k % 5 : 1 << 20; /* clips deep drafts */
      c.chain.slots = k % 5 == 4 ? c.chain.len + k % 4 : (1 << 20) + 256;
      c.chain.done = k == 11;
      c.chain.count = k % 3;
      c.chain.accept_len = k % 4 == 1 ? c.chain.draft_len + 2 : k % c.chain.draft_len + 1;
      c.chain.specials = k % 9 == 8 ? 2 : k % 2;
      deco_op_cases_push(t, c);
    }
    /* Sampled chains: q and the draw at every level, plain and non-finite
     * rows, empty forwards, temperatures around 1, the same vocabularies. */
    static const float temps[4] = {0.7f, 1.0f, 0.05f, 3.0f};
    for (int k = 0; k < 16; ++k, ++case_id) {
      deco_op_case_t c = deco_cases_base(DECO_OP_DRAFT_CHAIN, DECO_DTYPE_F32, DECO_CMP_EXACT,
                                         1900 + (uint64_t)case_id, "harness.draft_chain.sampled");
      c.chain.draft_len = 1 + (k * 3) % 8;
      c.chain.stage = k % 8 == 7 ? DECO_DRAFT_CHAIN_START : 1 + k % c.chain.draft_len;
      c.chain.vocab = vocabs[k % 6];
      c.chain.len = k % 5 == 2 ? 0 : 3 + 7 * k;
      c.chain.steps = k % 6 == 3 ? c.chain.len + 1 : 1 << 20; /* clips level 1's successors */
      c.chain.slots = (1 << 20) + 256;
      c.chain.done = k == 9;
      c.chain.count = k % 7 == 5 ? 0 : 1 + k % 2;
      c.chain.accept_len = 1;
      c.chain.specials = k % 5 == 4 ? 1 : k % 11 == 10 ? 2 : 0;
      c.chain.temperature = temps[k % 4];
      deco_op_cases_push(t, c);
    }
    /* Top-w trees: every stage of full W-ary shapes cut by a node budget,
     * len 0 (no prev), done, clipped levels, the reservation, observe. */
    for (int k = 0; k < 16; ++k, ++case_id) {
      deco_op_case_t c = deco_cases_base(DECO_OP_DRAFT_CHAIN, DECO_DTYPE_F32, DECO_CMP_EXACT,
                                         1900 + (uint64_t)case_id, "harness.draft_chain.tree");
      c.chain.width = 2 + k % 3;
      c.chain.n_nodes = k == 15 ? 255 : 3 + (k * 7) % 30;
      c.chain.draft_len = k == 15 ? 8 : 1 + k % 5; /* the depth limit: setup cuts the shape there */
      int depth = 0;                                 /* the shape's own depth (harness_spec.c's rule) */
      for (int n = 1, f = 1; depth < c.chain.draft_len && n < c.chain.n_nodes; ++depth) {
        const int next = f * c.chain.width < c.chain.n_nodes - n ? f * c.chain.width : c.chain.n_nodes - n;
        n += next;
        f = next;
      }
      c.chain.stage = k % 5 == 0 ? DECO_DRAFT_CHAIN_START : k % 5 == 4 ? DECO_DRAFT_CHAIN_OBSERVE : 1 + k % depth;
      c.chain.vocab = 64;
      c.chain.len = k % 6 == 3 ? 0 : 5 + 11 * k;
      c.chain.steps = k % 4 == 2 ? c.chain.len + 1 + k % 3 : 1 << 20;
      c.chain.slots = k % 7 == 6 ? c.chain.len + 3 : (1 << 20) + 256;
      c.chain.done = k == 9;
      c.chain.count = k % 8 != 7; /* 0: the forward was empty */
      c.chain.accept_len = k % 9 == 4 ? 40 : 1 + k % 4;
      deco_op_cases_push(t, c);
      /* The same with 0..W children per node (stages past the drawn
       * depth run its last level). */
      ++case_id;
      c.seed = 1900 + (uint64_t)case_id;
      c.chain.irregular = 1;
      deco_op_cases_push(t, c);
    }
  }
}

/* The small-shape pass over every op (test_ops_cuda's small_ops; the GPU
 * script runs it under compute-sanitizer). */
static inline void deco_cases_small(deco_op_cases_t *t) {
  static const int kv_len[] = {1, 19, 300}, n_new[] = {1, 5, 1}, short_len[] = {3, 19}, short_new[] = {3, 2};
  const char *o = "test_ops_cuda.small_ops";
  const unsigned S = DECO_CASE_TAG_SMALL;
  for (int di = 0; di < 3; ++di) {
    const deco_dtype_t dt = DECO_CASES_DTYPES[di];
    deco_cases_embedding(t, dt, 19, 7, 3, 500 + (uint64_t)di, S, o);
    deco_cases_rmsnorm(t, dt, 733, 3, 1, 1e-5f, 2.0f, 510 + (uint64_t)di, S, o);
    deco_cases_rope(t, dt, di % 2, 24, 4, 2, 3, 0, 10000.0f, 0, 0, 520 + (uint64_t)di, S, o);
    deco_cases_swiglu(t, dt, 733, di, 0, 0, 530 + (uint64_t)di, S, o);
    deco_cases_fill(t, dt, 733, 5, 7, 0.5f, 0.0f, S, o);
    deco_cases_convert(t, dt, DECO_CASES_DTYPES[(di + 1) % 3], 733, 540 + (uint64_t)di, S, o);
    deco_cases_matmul(t, dt, 2, 19, 64, di == 1, di == 2, 0, 550 + (uint64_t)di, S, o); /* skinny in f16/bf16 */
    deco_cases_matmul(t, dt, 9, 19, 72, di == 2, di == 1, 0, 560 + (uint64_t)di, S, o); /* cuBLAS */
    /* A fused layer group's Q/K/V (one input, N weights) and O (N of each). */
    deco_cases_matmul_batched(t, dt, 3, 40, 64, 3, 1, di == 2, 0, 600 + (uint64_t)di, S, o);
    deco_cases_matmul_batched(t, dt, 5, 64, 32, 4, 0, 0, di == 1, 610 + (uint64_t)di, S, o);
    deco_cases_kv_append(t, dt, 3, 2, 24, di, 570 + (uint64_t)di, S, o);
    deco_cases_attention(t, dt, kv_len, n_new, 3, 3, 2, 4, 24, DECO_SPLIT_ALWAYS, di == 1 ? 2 : -1, 50,
                         580 + (uint64_t)di, S, o);
    deco_cases_attention(t, dt, short_len, short_new, 2, 16, 1, 3, 100, DECO_SPLIT_NEVER, -1, 0, 590 + (uint64_t)di, S,
                         o);
  }
}

/* The whole table, in a fixed order; free t->v when done. */
static inline void deco_op_cases_build(deco_op_cases_t *t) {
  memset(t, 0, sizeof *t);
  deco_cases_dense(t);
  deco_cases_dequant(t);
  deco_cases_kv_attention(t);
  deco_cases_tree_attention(t);
  deco_cases_spec_ops(t);
  deco_cases_small(t);
}

/* One line naming a case's op, dtype and shape. */
static inline void deco_op_case_describe(const deco_op_case_t *c, char *buf, size_t n) {
  int w = snprintf(buf, n, "%s %s ", deco_op_kind_name(c->op), deco_dtype_name(c->dtype));
  if (w < 0 || (size_t)w >= n) return;
  char *p = buf + w;
  size_t left = n - (size_t)w;
  switch (c->op) {
  case DECO_OP_EMBEDDING:
    snprintf(p, left, "vocab=%d dim=%d n=%d%s%s", c->embedding.vocab, c->embedding.dim, c->embedding.n_tokens,
             c->embedding.ready ? " ready" : "", c->embedding.bad_ids ? " bad-ids" : "");
    break;
  case DECO_OP_RMSNORM:
    snprintf(p, left, "dim=%d rows=%d add=%d eps=%g amp=%g", c->rmsnorm.dim, c->rmsnorm.n_rows, c->rmsnorm.add,
             (double)c->rmsnorm.eps, (double)c->rmsnorm.amp);
    break;
  case DECO_OP_ROPE:
    snprintf(p, left, "%s hd=%d heads=%d/%d n=%d q=%d k=%d theta=%g%s", c->rope.style ? "half-split" : "interleaved",
             c->rope.head_dim, c->rope.n_heads, c->rope.n_kv_heads, c->rope.n_tokens, c->rope.which != 2,
             c->rope.which != 1, (double)c->rope.theta, c->rope.fused ? " fused-qkv" : "");
    break;
  case DECO_OP_MATMUL_BATCHED:
    snprintf(p, left, "m=%d n=%d k=%d batch=%d shared=%d out=%s acc=%d", c->matmul_batched.m, c->matmul_batched.n,
             c->matmul_batched.k, c->matmul_batched.n_batch, c->matmul_batched.shared,
             c->matmul_batched.out_f32 ? "f32" : deco_dtype_name(c->dtype), c->matmul_batched.accumulate);
    break;
  case DECO_OP_MATMUL:
    snprintf(p, left, "m=%d n=%d k=%d out=%s acc=%d a_offset=%d", c->matmul.m, c->matmul.n, c->matmul.k,
             c->matmul.out_f32 ? "f32" : deco_dtype_name(c->dtype), c->matmul.accumulate, c->matmul.a_offset);
    break;
  case DECO_OP_SWIGLU:
    snprintf(p, left, "n=%d mode=%d row_len=%d in_stride=%d", c->swiglu.n, c->swiglu.mode, c->swiglu.row_len,
             c->swiglu.in_stride);
    break;
  case DECO_OP_FILL_RANDOM:
    snprintf(p, left, "n=%d seed=%llx tensor=%u scale=%g constant=%g", c->fill.n, (unsigned long long)c->seed,
             c->fill.tensor, (double)c->fill.scale, (double)c->fill.constant);
    break;
  case DECO_OP_CONVERT:
    snprintf(p, left, "from %s n=%d", deco_dtype_name(c->convert.in_dtype), c->convert.n);
    break;
  case DECO_OP_DEQUANT:
    snprintf(p, left, "type=%d n=%d in_offset=%d", c->dequant.type, c->dequant.n, c->dequant.in_offset);
    break;
  case DECO_OP_KV_APPEND:
  case DECO_OP_ATTENTION: {
    int tok = 0, w2 = 0;
    for (int s = 0; s < c->kv.n_seqs; ++s) tok += c->kv.n_new[s];
    w2 = snprintf(p, left, "seqs=%d tokens=%d page=%d kv_heads=%d group=%d hd=%d", c->kv.n_seqs, tok,
                  c->kv.page_size, c->kv.n_kv, c->kv.group, c->kv.head_dim);
    if (w2 > 0 && (size_t)w2 < left) {
      if (c->kv.fused) snprintf(p + w2, left - (size_t)w2, " fused-qkv L0=%d", c->kv.kv_len[0] - c->kv.n_new[0]);
      else if (c->kv.corrupt) snprintf(p + w2, left - (size_t)w2, " corrupt=%d", c->kv.corrupt);
      else if (c->kv.corrupt_seq >= 0)
        snprintf(p + w2, left - (size_t)w2, " bad-page=%d/%d", c->kv.corrupt_seq, c->kv.corrupt_page);
    }
    break;
  }
  case DECO_OP_TREE_ATTENTION: {
    int w2 = snprintf(p, left, "hd=%d kv=%d group=%d page=%d B=%d [", c->tree.head_dim, c->tree.n_kv, c->tree.group,
                      c->tree.page_size, c->tree.B);
    for (int b = 0; b < c->tree.B && w2 > 0 && (size_t)w2 < left; ++b)
      w2 += snprintf(p + w2, left - (size_t)w2, "%s%d@%d", b ? " " : "", c->tree.sizes[b], c->tree.prefix[b]);
    if (w2 > 0 && (size_t)w2 < left)
      snprintf(p + w2, left - (size_t)w2, "] shape=%d%s", c->tree.shape, c->tree.q_pad ? " strided-q" : "");
    break;
  }
  case DECO_OP_ACCEPT_GREEDY:
    snprintf(p, left, "B=%d vocab=%d shape=%d match=%d%% ties=%d nonfinite=%d", c->accept.B, c->accept.vocab,
             c->accept.shape, c->accept.match_pct, c->accept.ties, c->accept.nonfinite);
    break;
  case DECO_OP_KV_COMPACT:
    snprintf(p, left, "B=%d layers=%d page=%d kv_heads=%d hd=%d", c->compact.B, c->compact.n_layers,
             c->compact.page_size, c->compact.n_kv, c->compact.head_dim);
    break;
  case DECO_OP_TOPK_ROWS:
    snprintf(p, left, "rows=%d vocab=%d k=%d row_count=%d values=%d specials=%d", c->topk.n_rows, c->topk.vocab,
             c->topk.k, c->topk.row_count, c->topk.values, c->topk.specials);
    break;
  case DECO_OP_RECYCLE_DRAFT:
    snprintf(p, left, "B=%d nodes=%d vocab=%d k=%d shape=%d%s", c->draft.B, c->draft.n_nodes, c->draft.vocab,
             c->draft.k, c->draft.shape, c->draft.default_template ? " default-template" : "");
    break;
  case DECO_OP_RECYCLE_UPDATE:
    snprintf(p, left, "B=%d vocab=%d k=%d", c->update.B, c->update.vocab, c->update.k);
    break;
  case DECO_OP_SPEC_PREPARE:
    snprintf(p, left, "nodes=%d len=%d steps=%d done=%d", c->prepare.n_nodes, c->prepare.len, c->prepare.steps,
             c->prepare.done);
    break;
  case DECO_OP_SPEC_COMMIT:
    snprintf(p, left, "nodes=%d len=%d steps=%d stops=%d cap=%d nonfinite=%d malformed=%d done=%d", c->commit.n_nodes,
             c->commit.len, c->commit.steps, c->commit.n_stop, c->commit.out_capacity, c->commit.nonfinite,
             c->commit.malformed, c->commit.done);
    break;
  default: break;
  }
}

#endif /* DECO_TESTS_OP_CASES_H */
