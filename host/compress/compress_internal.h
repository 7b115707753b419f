/* host/compress/compress_internal.h — library-private parts of KV-head
 * compression (deco/compress.h), reached by the tests: a checkpoint's
 * weights in host f32 memory (llama2.c order), its readers and writers, the
 * calibration, the eigendecompositions (LAPACK or cuSOLVER) and the folding.
 */
#ifndef DECO_HOST_COMPRESS_INTERNAL_H
#define DECO_HOST_COMPRESS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "deco/compress.h"
#include "deco/model.h"

/* Owned host copies, shapes as [rows][cols] ([out][in]). */
typedef struct deco_cw {
  deco_model_hparams_t hp;
  int is_gguf;      /* read from a GGUF file (else llama2.c) */
  float *tok;       /* [vocab][dim] */
  float *rms_att;   /* [n_layers][dim] */
  float *wq;        /* [n_layers][n_heads*hd][dim] */
  float *wk;        /* [n_layers][n_kv*hd][dim] */
  float *wv;        /* [n_layers][n_kv*hd][dim] */
  float *wo;        /* [n_layers][dim][n_heads*hd] */
  float *rms_ffn;   /* [n_layers][dim] */
  float *w1;        /* [n_layers][hidden][dim] */
  float *w2;        /* [n_layers][dim][hidden] */
  float *w3;        /* [n_layers][hidden][dim] */
  float *rms_final; /* [dim] */
  float *wcls;      /* [vocab][dim], NULL when shared with tok */
} deco_cw_t;

/* Reads a llama2.c checkpoint or a GGUF file (dequantised to f32). */
deco_status_t deco_cw_read(const char *path, deco_cw_t *w);
void deco_cw_free(deco_cw_t *w);
/* Writes a llama2.c legacy-v0 checkpoint (the RoPE tables of base 10000
 * included; another base is refused). */
deco_status_t deco_cw_write_llama2c(const deco_cw_t *w, const char *path);
/* Writes a GGUF (version 3, every tensor F32) whose metadata is the one of
 * the GGUF file at template_path, with head_count_kv and file_type set. */
deco_status_t deco_cw_write_gguf(const deco_cw_t *w, const char *template_path, const char *path);

/* Calibration Grams of every layer (host f64), for groups of g heads. */
typedef struct deco_grams {
  int n_layers, n_groups, group, head_dim;
  double *v; /* [n_layers][n_groups][g*hd][g*hd] */
  double *k; /* [n_layers][n_groups][hd/2][g][g][2] */
  size_t rows;
} deco_grams_t;

/* Runs the model (loaded on ctx) over tokens in chunks and accumulates
 * with deco_kv_gram; g = the group size. DECO_STATUS_NON_FINITE, naming
 * the layer, when a layer's Grams hold an infinity or a NaN. */
deco_status_t deco_compress_calibrate(deco_model_t *model, const int32_t *tokens, size_t n_tokens, int group,
                                      int chunk, deco_compress_progress_fn progress, void *progress_user,
                                      deco_grams_t *out);
void deco_grams_free(deco_grams_t *g);

/* svd's eigenvectors of every Gram (host f64), normalised: the component
 * of largest magnitude (the first on ties) real and positive. */
typedef struct deco_eigs {
  int n_layers, n_groups, group, head_dim;
  double *v; /* [n_layers][n_groups][hd][g*hd]: row c = the eigenvector of the value Gram's c-th largest eigenvalue */
  double *k; /* [n_layers][n_groups][hd/2][g][2]: the key Gram's top eigenvector, (re, im) */
} deco_eigs_t;

/* The solver that runs for `asked` on ctx (NULL: the host, as a CPU
 * context): AUTO resolves to CUSOLVER on a CUDA context of a CUDA build,
 * else LAPACK. Fails with DECO_STATUS_UNSUPPORTED, recorded on ctx, when
 * the solver is not built in or cannot run on ctx, INVALID_ARGUMENT when
 * asked is not a solver. */
deco_status_t deco_compress_solver_resolve(deco_ctx_t *ctx, deco_compress_solver_t asked,
                                           deco_compress_solver_t *used);
/* Decomposes every Gram of grams with solver (resolved as above); out's
 * arrays are allocated (deco_eigs_free). Errors are recorded on ctx (the
 * thread's slot when ctx is NULL) and name the layer and group. */
deco_status_t deco_compress_eigs(deco_ctx_t *ctx, const deco_grams_t *grams, deco_compress_solver_t solver,
                                 deco_eigs_t *out);
void deco_eigs_free(deco_eigs_t *e);
/* The normalisation both solvers apply. x: n reals at stride; out: n. */
void deco_eig_normalise_real(const double *x, size_t stride, int n, double *out);
/* u: g complex (re, im) pairs, normalised in place. */
void deco_eig_normalise_complex(double *u, int g);
/* svd's vectors from a column-major solver's output, as the cuSOLVER path
 * brings it back from the row-major Grams (read column-major: C itself,
 * and conj(H) for a key Gram), eigenvalues ascending: vtop [n_v][d][g*d],
 * the last d eigenvector columns of each of the n_v = n_layers*n_groups
 * value Grams; ktop [n_v*d/2][g][2], the last column of each key Gram's.
 * The key vectors are conjugated back; all are normalised into out. */
void deco_eigs_from_colmajor(const double *vtop, const double *ktop, size_t n_v, int g, int d, deco_eigs_t *out);
/* The cuSOLVER path (eigs_cusolver.c): ctx a CUDA context; out's arrays
 * allocated by the caller. Without CUDA it fails with UNSUPPORTED. */
deco_status_t deco_compress_eigs_cusolver(deco_ctx_t *ctx, const deco_grams_t *grams, deco_eigs_t *out);

/* Folds w in place to n_kv_heads KV heads by method, from grams (pairs in
 * w->hp.rope_style) and, for svd, eigs (deco_compress_eigs of the same
 * grams); key_energy/value_energy [n_layers] or NULL. */
deco_status_t deco_compress_fold_eigs(deco_cw_t *w, const deco_grams_t *grams, const deco_eigs_t *eigs,
                                      int n_kv_heads, deco_compress_method_t method, double *key_energy,
                                      double *value_energy);
/* deco_compress_fold_eigs with svd's eigenvectors from LAPACK on the host. */
deco_status_t deco_compress_fold(deco_cw_t *w, const deco_grams_t *grams, int n_kv_heads,
                                 deco_compress_method_t method, double *key_energy, double *value_energy);

#endif
