/* deco/compress.h — KV-head compression, MHA -> GQA (Yu et al. 2024,
 * "Effectively Compress KV Heads for LLM"; docs/DESIGN.md, docs/CLI.md
 * `deco compress`): groups of g consecutive KV heads merge into one shared
 * head, with the transforms folded into W_Q, W_K, W_V and W_O so that the
 * result is an ordinary GQA checkpoint.
 *
 *  - deco_kv_gram: the calibration op. f64 second moments of the K and V
 *    rows the forward writes to the cache.
 *  - deco_compress_model: calibrate a model on tokens, decompose (cuSOLVER
 *    on a CUDA context, LAPACK on the host otherwise), fold, write a
 *    llama2.c (legacy v0) or GGUF (F32) checkpoint.
 */
#ifndef DECO_COMPRESS_H
#define DECO_COMPRESS_H

#include "deco/core.h"
#include "deco/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Accumulates, over n_rows rows of K and V as the cache holds them
 * ([n_rows][n_kv_heads][head_dim], the dtype of the call), per group
 * G = heads G*g .. G*g + g - 1 (g = group, dividing n_kv_heads):
 *   v_gram[G][i][j] += sum_t V_G[t][i] * V_G[t][j]      (i, j < g*head_dim)
 * where V_G[t] is the concatenation of the group's g value vectors, and per
 * rotary frequency f < head_dim/2, with k_{b,f} = k[t][G*g+b][i0] +
 * i*k[t][G*g+b][i1] the complex component of head b (pair (i0, i1) as
 * style pairs dims: (2f, 2f+1) or (f, f + head_dim/2)):
 *   k_gram[G][f][a][b] += sum_t k_{a,f} * conj(k_{b,f})   (Hermitian g x g)
 * stored as (re, im) doubles. Products and sums in f64; the output is
 * added to (zero it first). k or v may be NULL (the other gram is then not
 * touched). All pointers in context memory. */
typedef struct deco_kv_gram_args {
  deco_dtype_t dtype;      /* of k and v */
  deco_rope_style_t style; /* how key dims pair into complex components */
  int n_rows;
  int n_kv_heads;
  int head_dim;            /* even */
  int group;               /* g, dividing n_kv_heads */
  const void *k;           /* [n_rows][n_kv_heads][head_dim], or NULL */
  const void *v;           /* [n_rows][n_kv_heads][head_dim], or NULL */
  double *k_gram;          /* [n_kv_heads/g][head_dim/2][g][g][2], += */
  double *v_gram;          /* [n_kv_heads/g][g*head_dim][g*head_dim], += */
} deco_kv_gram_args_t;
#define DECO_KV_GRAM_ARGS_INIT                                                                               \
  {.dtype = DECO_DTYPE_F32, .style = DECO_ROPE_INTERLEAVED, .n_rows = 0, .n_kv_heads = 0, .head_dim = 0,      \
   .group = 1, .k = NULL, .v = NULL, .k_gram = NULL, .v_gram = NULL}
DECO_API deco_status_t deco_kv_gram(deco_ctx_t *ctx, const deco_kv_gram_args_t *args);

/* ---- Compressing a checkpoint ------------------------------------------------
 * Groups of g = n_kv_heads / N consecutive KV heads merge into one; query
 * head j, which read KV head h(j) = j * n_kv / n_q, reads h(j) / g after.
 * With b = h(j) mod g, a group's value vectors V = (v_0 .. v_{g-1}) and, per
 * rotary frequency f, its complex key components k_{b,f}:
 *  - svd: Psi = the top head_dim eigenvectors of the group's value Gram
 *    ((g*d) x d, blocks Psi_b); W_V' = Psi^T W_V,group and query head j's
 *    block of W_O is multiplied by Psi_b. Per frequency, u = the top
 *    eigenvector of the g x g key Gram; the shared key z_f = sum_b
 *    conj(u_b) k_{b,f} folds into W_K and q_{j,f} * conj(u_b) into W_Q (2x2
 *    rotation-scaling blocks, which commute with RoPE). Eigenvectors are
 *    normalised: the largest component (first on ties) real and positive.
 *  - mean: the group's heads averaged (W_V, W_K), W_Q and W_O unchanged.
 *  - keep: the group's first head kept, W_Q and W_O unchanged.
 * Energy kept (reported per layer, summed over groups and frequencies):
 * 1 - E|x - D E x|^2 / E|x|^2 over the calibration rows, for the encoder E
 * and decoder D a method defines (svd: the share of the top eigenvalues). */
typedef enum deco_compress_method {
  DECO_COMPRESS_SVD = 0,
  DECO_COMPRESS_MEAN = 1,
  DECO_COMPRESS_KEEP = 2
} deco_compress_method_t;

/* Where svd's eigendecompositions run (dsyevd for the value Grams, zheevd
 * for the key Grams; both give eigenvalues in ascending order, and the
 * vectors are normalised the same way, so the two solvers agree to f64
 * rounding on well-separated eigenvalues). Ignored by mean and keep.
 *  - AUTO: cuSOLVER on a CUDA context of a deco built with CUDA, else LAPACK.
 *  - LAPACK: LAPACKE on the host (Debian liblapacke-dev; a deco built
 *    without it fails with DECO_STATUS_UNSUPPORTED), on any context.
 *  - CUSOLVER: cusolverDnDsyevd / cusolverDnZheevd on the context's device
 *    and stream; a CPU context, or a deco built without CUDA, fails with
 *    DECO_STATUS_UNSUPPORTED (checked before calibrating). */
typedef enum deco_compress_solver {
  DECO_COMPRESS_SOLVER_AUTO = 0,
  DECO_COMPRESS_SOLVER_LAPACK = 1,
  DECO_COMPRESS_SOLVER_CUSOLVER = 2
} deco_compress_solver_t;

/* Called after each calibration chunk: tokens done of total. */
typedef void (*deco_compress_progress_fn)(void *user, size_t done, size_t total);

typedef struct deco_compress_config {
  size_t size;                    /* sizeof(deco_compress_config_t): set by the INIT macro */
  int n_kv_heads;                 /* N: the KV heads after; divides the checkpoint's and is smaller */
  deco_compress_method_t method;
  int chunk;                      /* tokens per calibration forward; 0: min(seq_len, 512) */
  deco_compress_progress_fn progress; /* NULL: none */
  void *progress_user;
  deco_compress_solver_t solver;  /* svd's eigendecompositions (above); AUTO by default */
} deco_compress_config_t;
#define DECO_COMPRESS_CONFIG_INIT                                                                          \
  {.size = sizeof(deco_compress_config_t), .n_kv_heads = 0, .method = DECO_COMPRESS_SVD, .chunk = 0,        \
   .progress = NULL, .progress_user = NULL, .solver = DECO_COMPRESS_SOLVER_AUTO}

/* Per layer energy kept, at most 1 (arrays of n_layers, owned by the
 * caller, or NULL): svd's is in [0, 1]; mean's and keep's are below 0 when
 * their reconstruction is further from the heads than zero is. */
typedef struct deco_compress_report {
  double *key_energy;
  double *value_energy;
} deco_compress_report_t;

/* The fewest calibration tokens compress accepts for merging groups of g
 * heads of dim head_dim: max(256, 2 * g * head_dim) (twice the size of a
 * group's value Gram; 8192 covers every g * head_dim up to 4096). */
DECO_API size_t deco_compress_min_tokens(int group, int head_dim);

/* Compresses the checkpoint at in_path (llama2.c or GGUF) to
 * config->n_kv_heads KV heads and writes out_path (created or replaced):
 * a llama2.c legacy-v0 checkpoint for a llama2.c input (a RoPE base other
 * than 10000 is refused: the format cannot say it), a GGUF with every
 * tensor F32 for a GGUF input (its metadata and tokenizer copied,
 * llama.attention.head_count_kv set, general.file_type ALL_F32).
 * Calibration runs the model on ctx over tokens[0..n_tokens) in chunks
 * (deco_kv_gram over the K/V the forward wrote); the Grams' eigenvectors
 * come from config->solver (cuSOLVER on a CUDA context by default, LAPACK
 * on the host otherwise). config is read by its size (fields added later
 * keep their defaults). Errors name the file and the field. */
DECO_API deco_status_t deco_compress_model(deco_ctx_t *ctx, const char *in_path, const int32_t *tokens,
                                           size_t n_tokens, const deco_compress_config_t *config,
                                           const char *out_path, deco_compress_report_t *report);

#ifdef __cplusplus
}
#endif
#endif /* DECO_COMPRESS_H */
