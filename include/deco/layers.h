/* deco/layers.h — the dense ops of a Llama forward: embedding gather,
 * RMSNorm with fused residual add, RoPE, matmul, SwiGLU, and the seeded
 * weight fill used by synthetic models.
 *
 * Each op: deco_<op>(ctx, const deco_<op>_args_t *). Shapes are written on
 * every pointer ([rows][cols], row-major). Activations, weights and the KV
 * cache share one dtype per call; the residual stream and logits are f32.
 * The CPU backend supports f32 only; CUDA supports f32, f16 and bf16 (fp32
 * accumulation everywhere).
 *
 * Every argument struct has a DECO_<NAME>_INIT macro of designated
 * initialisers (deco_rmsnorm_args_t a = DECO_RMSNORM_ARGS_INIT; then set
 * the fields): pointers NULL, counts 0 (to be set), strides 0 (dense),
 * dtypes f32, and the defaults named above each macro.
 */
#ifndef DECO_LAYERS_H
#define DECO_LAYERS_H

#include "deco/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[t][:] = f32(table[tokens[t]][:]) — or, when tokens is NULL,
 * out[t][:] = embeds[t][:] (ready input embeddings, e.g. a superposition).
 * Token ids outside [0, vocab) produce a row of NaN (ops never trust ids). */
typedef struct deco_embedding_args {
  deco_dtype_t dtype;     /* dtype of table */
  int n_tokens;
  int vocab;
  int dim;
  const void *table;      /* [vocab][dim] dtype */
  const int32_t *tokens;  /* [n_tokens], or NULL to use embeds */
  const float *embeds;    /* [n_tokens][dim] f32, used when tokens == NULL */
  float *out;             /* [n_tokens][dim] f32: the residual stream */
} deco_embedding_args_t;
#define DECO_EMBEDDING_ARGS_INIT                                                                                \
  {.dtype = DECO_DTYPE_F32, .n_tokens = 0, .vocab = 0, .dim = 0, .table = NULL, .tokens = NULL, .embeds = NULL, \
   .out = NULL}
DECO_API deco_status_t deco_embedding(deco_ctx_t *ctx, const deco_embedding_args_t *args);

/* RMSNorm with an optional fused residual add (llama2.c's rmsnorm):
 *   if add: residual[t] += f32(add[t])           (residual updated in place)
 *   out[t][i] = weight[i] * (residual[t][i] / sqrt(mean(residual[t]^2) + eps))
 * The sum of squares is accumulated in fp32. */
typedef struct deco_rmsnorm_args {
  deco_dtype_t dtype;     /* dtype of add, weight and out */
  int n_rows;
  int dim;
  float eps;
  float *residual;        /* [n_rows][dim] f32, in/out */
  const void *add;        /* [n_rows][dim] dtype, or NULL */
  const void *weight;     /* [dim] dtype */
  void *out;              /* [n_rows][dim] dtype; shares no byte with residual or weight, and is
                           * add or apart from it; with add, residual is apart from weight, and
                           * from add unless it is add in f32 (rows run in parallel) */
} deco_rmsnorm_args_t;
/* eps 1e-5 (llama2.c's), add NULL (no residual add). */
#define DECO_RMSNORM_ARGS_INIT                                                                                  \
  {.dtype = DECO_DTYPE_F32, .n_rows = 0, .dim = 0, .eps = 1e-5f, .residual = NULL, .add = NULL, .weight = NULL, \
   .out = NULL}
DECO_API deco_status_t deco_rmsnorm(deco_ctx_t *ctx, const deco_rmsnorm_args_t *args);

typedef enum deco_rope_style {
  /* llama2.c / Meta: rotate pairs (2i, 2i+1) of each head. */
  DECO_ROPE_INTERLEAVED = 0,
  /* Hugging Face / GPT-NeoX: rotate (i, i + head_dim/2). */
  DECO_ROPE_HALF_SPLIT = 1
} deco_rope_style_t;

/* Rotary position embedding applied in place to q and k. Pair j of a head
 * (j < head_dim/2) has frequency theta^(-2j/head_dim) and is rotated by the
 * angle position * frequency, computed in fp32 with powf/cosf/sinf as
 * llama2.c does. k may be NULL (rotate q only) and vice versa. Token t's
 * rows start q_stride / k_stride elements apart (0: dense), so q and k may
 * be column blocks of one fused Q/K/V projection output. */
typedef struct deco_rope_args {
  deco_dtype_t dtype;
  deco_rope_style_t style;
  int n_tokens;
  int n_heads;               /* heads in q */
  int n_kv_heads;            /* heads in k */
  int head_dim;              /* even, 2..256 */
  float theta;               /* 10000 for Llama 2, 500000 for Llama 3 */
  const int32_t *positions;  /* [n_tokens] */
  void *q;                   /* [n_tokens][n_heads][head_dim] dtype, in place */
  void *k;                   /* [n_tokens][n_kv_heads][head_dim] dtype, in place */
  int q_stride;              /* elements between tokens in q: 0 = n_heads * head_dim, else >= that */
  int k_stride;              /* elements between tokens in k: 0 = n_kv_heads * head_dim, else >= that */
} deco_rope_args_t;
/* Interleaved pairs, theta 10000 (Llama 2), dense q and k. */
#define DECO_ROPE_ARGS_INIT                                                                               \
  {.dtype = DECO_DTYPE_F32, .style = DECO_ROPE_INTERLEAVED, .n_tokens = 0, .n_heads = 0, .n_kv_heads = 0, \
   .head_dim = 0, .theta = 10000.0f, .positions = NULL, .q = NULL, .k = NULL, .q_stride = 0, .k_stride = 0}
DECO_API deco_status_t deco_rope(deco_ctx_t *ctx, const deco_rope_args_t *args);

/* out[m][n] = sum_k a[m][k] * w[n][k]   (out = a · wᵀ, llama2.c's weight layout)
 * CUDA: cuBLAS with CUBLAS_COMPUTE_32F (no TF32), a weight-streaming kernel
 * for few rows in f16/bf16, or a one-launch tiled kernel for small f32
 * problems (2 <= m, m·n·k <= 2^23). CPU: a blocked SIMD kernel (AVX-512,
 * AVX2 or portable C, chosen at run time) that is batch-invariant: out[i][j]
 * depends only on a[i], w[j] and k, never on m, the thread count or the
 * instruction set — each output is 16 lanes of fused multiply-adds over k
 * (lane l takes k % 16 == l) combined in a fixed tree; threads split the
 * output columns (deco_ctx_config_t.n_threads).
 * out_dtype is dtype or f32 (logits). With accumulate, out += a · wᵀ. */
typedef struct deco_matmul_args {
  deco_dtype_t dtype;      /* dtype of a and w */
  deco_dtype_t out_dtype;  /* dtype, or DECO_DTYPE_F32 */
  int m, n, k;
  const void *a;           /* [m][k] */
  const void *w;           /* [n][k] */
  void *out;               /* [m][n] out_dtype */
  int accumulate;          /* 0: out = a·wᵀ; 1: out += a·wᵀ */
} deco_matmul_args_t;
#define DECO_MATMUL_ARGS_INIT                                                                                       \
  {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = 0, .n = 0, .k = 0, .a = NULL, .w = NULL, .out = NULL, \
   .accumulate = 0}
DECO_API deco_status_t deco_matmul(deco_ctx_t *ctx, const deco_matmul_args_t *args);

/* n_batch products of one shape in one call (a strided-batched GEMM):
 *   out + b·stride_out = (a + b·stride_a) · (w + b·stride_w)ᵀ,  b = 0 .. n_batch - 1
 * mm gives one product's dtypes, shape, base pointers and accumulate, as
 * for deco_matmul; strides are in elements of a's, w's and out's dtype.
 * stride_a may be 0: one input for every product (a layer group's Q/K/V
 * projections over one normalised input). The products' outputs must not
 * overlap. CPU: each product is the batch-invariant deco_matmul of its
 * operands, bit for bit. CUDA: one cublasGemmStridedBatchedEx with fp32
 * accumulation (CUBLAS_COMPUTE_32F, no TF32). */
typedef struct deco_matmul_batched_args {
  deco_matmul_args_t mm;
  int n_batch;             /* >= 1 */
  long long stride_a;      /* >= 0 */
  long long stride_w;      /* >= 0 */
  long long stride_out;    /* >= m * n */
} deco_matmul_batched_args_t;
#define DECO_MATMUL_BATCHED_ARGS_INIT \
  {.mm = DECO_MATMUL_ARGS_INIT, .n_batch = 1, .stride_a = 0, .stride_w = 0, .stride_out = 0}
DECO_API deco_status_t deco_matmul_batched(deco_ctx_t *ctx, const deco_matmul_batched_args_t *args);

/* out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x)), in fp32.
 * With row_len > 0 the n elements are rows of row_len and row r of gate and
 * of up starts r * in_stride elements in (e.g. the two halves of a fused
 * gate/up projection output, in_stride = 2 * row_len); out stays dense
 * [n / row_len][row_len] and must then not overlap gate or up. */
typedef struct deco_swiglu_args {
  deco_dtype_t dtype;
  size_t n;                /* elements */
  const void *gate;        /* [n] */
  const void *up;          /* [n] */
  void *out;               /* [n]; when row_len = 0 may be gate or up, else apart from both */
  int row_len;             /* 0: flat arrays; else a divisor of n */
  int in_stride;           /* with row_len: elements between rows of gate and up, >= row_len */
} deco_swiglu_args_t;
/* Flat arrays (row_len 0). */
#define DECO_SWIGLU_ARGS_INIT \
  {.dtype = DECO_DTYPE_F32, .n = 0, .gate = NULL, .up = NULL, .out = NULL, .row_len = 0, .in_stride = 0}
DECO_API deco_status_t deco_swiglu(deco_ctx_t *ctx, const deco_swiglu_args_t *args);

/* Seeded weights for synthetic models, generated where they live:
 *   u = philox uniform of counter (index low, index high, tensor, 0), key seed
 *   out[i] = constant != 0 ? constant : (2u - 1) * scale
 * i.e. uniform on [-scale, scale), so scale = 0.02 * sqrt(3) gives std 0.02.
 * Values are exactly representable products, rounded once to dtype: CPU and
 * GPU produce the same bits. */
typedef struct deco_fill_random_args {
  deco_dtype_t dtype;
  size_t n;
  uint64_t seed;
  uint32_t tensor;         /* distinguishes the tensors of one model */
  float scale;
  float constant;          /* if nonzero, fill with this value instead */
  void *out;               /* [n] dtype */
} deco_fill_random_args_t;
#define DECO_FILL_RANDOM_ARGS_INIT \
  {.dtype = DECO_DTYPE_F32, .n = 0, .seed = 0, .tensor = 0, .scale = 0.0f, .constant = 0.0f, .out = NULL}
DECO_API deco_status_t deco_fill_random(deco_ctx_t *ctx, const deco_fill_random_args_t *args);

/* out[i] = dtype(in[i]) — converts f32 host-loaded weights to the context
 * dtype. out shares no byte with in, except out == in with in_dtype ==
 * out_dtype (elements are converted in parallel). */
typedef struct deco_convert_args {
  deco_dtype_t in_dtype;
  deco_dtype_t out_dtype;
  size_t n;
  const void *in;
  void *out;
} deco_convert_args_t;
#define DECO_CONVERT_ARGS_INIT \
  {.in_dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .n = 0, .in = NULL, .out = NULL}
DECO_API deco_status_t deco_convert(deco_ctx_t *ctx, const deco_convert_args_t *args);

#ifdef __cplusplus
}
#endif
#endif /* DECO_LAYERS_H */
