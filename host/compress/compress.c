/* host/compress/compress.c — KV-head compression, MHA -> GQA
 * (deco/compress.h): calibration over the K/V a forward writes to the
 * cache (deco_kv_gram), the folding of the transforms into W_Q, W_K, W_V
 * and W_O (svd's eigenvectors from eigs.c: LAPACK or cuSOLVER), and the
 * whole tool.
 */
#define _POSIX_C_SOURCE 200809L
#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress_internal.h"
#include "core/internal.h"
#include "util/sized.h"

size_t deco_compress_min_tokens(int group, int head_dim) {
  const size_t n = 2 * (size_t)(group > 0 ? group : 1) * (size_t)(head_dim > 0 ? head_dim : 1);
  return n > 256 ? n : 256;
}

void deco_grams_free(deco_grams_t *g) {
  if (!g) return;
  free(g->v);
  free(g->k);
  g->v = g->k = NULL;
}

/* Elements of one layer's Grams for n_groups groups of g heads of dim d,
 * in deco_grams_t's layout: the value Grams [n_groups][g*d][g*d], the key
 * Grams [n_groups][d/2][g][g][2]. */
typedef struct gram_sizes {
  size_t v, k;
} gram_sizes_t;

static gram_sizes_t gram_sizes(int n_groups, int g, int d) {
  const int gd = g * d, half = d / 2;
  return (gram_sizes_t){.v = (size_t)n_groups * gd * gd, .k = (size_t)n_groups * half * g * g * 2};
}

/* ---- calibration ---------------------------------------------------------------- */

#define CALIB_PAGE 16

static const char calib_op[] = "deco_compress_calibrate";

/* A calibration's shapes and buffers: the cache the forward fills (one
 * sequence of at most chunk tokens, pages of CALIB_PAGE), the Grams
 * accumulated on ctx, and the scratch of the chunks. */
typedef struct calib {
  deco_model_t *model;
  const int32_t *tokens; /* the calibration's, read in chunks */
  deco_ctx_t *ctx;
  const deco_model_hparams_t *hp;
  deco_dtype_t dtype;
  int g, d, kvh, n_groups, chunk; /* chunk: tokens per forward */
  int n_pages, max_pages;
  size_t vper, kper, vbytes, kbytes; /* Gram elements per layer, bytes of all layers */
  size_t kvd, es, layer_bytes; /* a cache row's elements, an element's bytes, a layer's pool bytes */
  deco_kv_cache_t *cache;
  void *vg, *kg, *logits, *bt_dev; /* ctx memory */
  int32_t *bt;                     /* the block table's host copy */
  void *kpool, *vpool;
} calib_t;

static deco_status_t calib_check(const calib_t *c, size_t n_tokens) {
  if (c->g < 1 || c->kvh % c->g != 0)
    return DECO_FAIL(c->ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: group %d does not divide %d KV heads", calib_op, c->g,
                     c->kvh);
  const size_t i = deco_first_id_outside(c->tokens, n_tokens, c->hp->vocab_size);
  if (i < n_tokens)
    return DECO_FAIL(c->ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: calibration token %zu is id %d, outside 0..%d",
                     calib_op, i, (int)c->tokens[i], c->hp->vocab_size - 1);
  return DECO_STATUS_SUCCESS;
}

/* The shapes of a calibration of model in groups of g (checked: g >= 1). */
static void calib_shapes(calib_t *c, int chunk) {
  const deco_model_hparams_t *hp = c->hp;
  const int d = c->d;
  c->n_groups = c->kvh / c->g;
  c->chunk = chunk > 0 ? chunk : 512;
  if (c->chunk > hp->seq_len) c->chunk = hp->seq_len;
  const gram_sizes_t per_layer = gram_sizes(c->n_groups, c->g, d);
  c->vper = per_layer.v;
  c->kper = per_layer.k;
  c->vbytes = c->vper * hp->n_layers * sizeof(double);
  c->kbytes = c->kper * hp->n_layers * sizeof(double);
  c->n_pages = (c->chunk + CALIB_PAGE - 1) / CALIB_PAGE;
  c->kvd = (size_t)c->kvh * d;
  c->es = deco_dtype_size(c->dtype);
  c->layer_bytes = (size_t)c->n_pages * CALIB_PAGE * c->kvd * c->es;
}

/* The cache, the zeroed Grams on ctx, the scratch, and out's host arrays. */
static deco_status_t calib_alloc(calib_t *c, deco_grams_t *out) {
  deco_ctx_t *ctx = c->ctx;
  deco_status_t st = deco_kv_cache_create(c->model, CALIB_PAGE, c->n_pages, 1, &c->cache);
  c->max_pages = st == DECO_STATUS_SUCCESS ? deco_kv_cache_max_pages(c->cache) : 0;
  const size_t bt_bytes = (size_t)c->max_pages * sizeof(int32_t);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, &c->vg, c->vbytes);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, &c->kg, c->kbytes);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, &c->logits, (size_t)c->hp->vocab_size * sizeof(float));
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, &c->bt_dev, bt_bytes);
  if (st == DECO_STATUS_SUCCESS) st = deco_memset(ctx, c->vg, 0, c->vbytes);
  if (st == DECO_STATUS_SUCCESS) st = deco_memset(ctx, c->kg, 0, c->kbytes);
  if (st == DECO_STATUS_SUCCESS) {
    out->v = malloc(c->vbytes);
    out->k = malloc(c->kbytes);
    c->bt = malloc(bt_bytes);
    if (!out->v || !out->k || !c->bt)
      st = DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", calib_op);
  }
  size_t pool_bytes = 0;
  if (st == DECO_STATUS_SUCCESS) st = deco_kv_cache_pools(c->cache, &c->kpool, &c->vpool, &pool_bytes);
  return st;
}

static void calib_release(calib_t *c) {
  deco_free(c->ctx, c->vg);
  deco_free(c->ctx, c->kg);
  deco_free(c->ctx, c->logits);
  deco_free(c->ctx, c->bt_dev);
  free(c->bt);
  deco_kv_cache_destroy(c->cache);
}

/* Runs the forward over the len tokens at off as sequence seq and brings
 * its block table to the host. */
static deco_status_t calib_forward(calib_t *c, int seq, size_t off, int len) {
  deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
  fa.n_seqs = 1;
  fa.seqs = &seq;
  fa.n_new = &len;
  fa.tokens = c->tokens + off;
  fa.logits_mode = DECO_LOGITS_LAST;
  fa.logits = c->logits;
  deco_status_t st = deco_forward(c->model, c->cache, &fa);
  if (st == DECO_STATUS_SUCCESS) st = deco_kv_cache_block_table(c->cache, &seq, 1, c->bt_dev);
  if (st == DECO_STATUS_SUCCESS)
    st = deco_memcpy(c->ctx, c->bt, c->bt_dev, (size_t)c->max_pages * sizeof(int32_t), DECO_COPY_CTX_TO_HOST);
  return st;
}

/* Adds page p (of a chunk of len rows) of layer l's K and V to the Grams. */
static deco_status_t calib_page_gram(calib_t *c, int l, int p, int len) {
  const size_t at = (size_t)l * c->layer_bytes + (size_t)c->bt[p] * CALIB_PAGE * c->kvd * c->es;
  deco_kv_gram_args_t ga = DECO_KV_GRAM_ARGS_INIT;
  ga.dtype = c->dtype;
  ga.style = c->hp->rope_style;
  ga.n_rows = len - p * CALIB_PAGE < CALIB_PAGE ? len - p * CALIB_PAGE : CALIB_PAGE;
  ga.n_kv_heads = c->kvh;
  ga.head_dim = c->d;
  ga.group = c->g;
  ga.k = (const char *)c->kpool + at;
  ga.v = (const char *)c->vpool + at;
  ga.k_gram = (double *)c->kg + (size_t)l * c->kper;
  ga.v_gram = (double *)c->vg + (size_t)l * c->vper;
  return deco_kv_gram(c->ctx, &ga);
}

/* The chunk of len tokens at off: admitted, run, its K/V added to the
 * Grams of every layer, released. */
static deco_status_t calib_chunk(calib_t *c, size_t off, int len) {
  int seq = -1;
  deco_status_t st = deco_kv_cache_admit(c->cache, len, &seq);
  if (st != DECO_STATUS_SUCCESS) return st;
  st = calib_forward(c, seq, off, len);
  for (int l = 0; st == DECO_STATUS_SUCCESS && l < c->hp->n_layers; ++l)
    for (int p = 0; st == DECO_STATUS_SUCCESS && p * CALIB_PAGE < len; ++p) st = calib_page_gram(c, l, p, len);
  const deco_status_t rs = deco_kv_cache_release(c->cache, seq);
  return st == DECO_STATUS_SUCCESS ? rs : st;
}

/* Grams with an infinity or a NaN (activations that overflowed) would
 * reach the eigensolver, which refuses them with a bare error code. */
static deco_status_t calib_finite(const calib_t *c, const deco_grams_t *out) {
  for (int l = 0; l < c->hp->n_layers; ++l) {
    int finite = 1;
    for (size_t i = 0; i < c->vper; ++i) finite &= isfinite(out->v[(size_t)l * c->vper + i]) != 0;
    for (size_t i = 0; i < c->kper; ++i) finite &= isfinite(out->k[(size_t)l * c->kper + i]) != 0;
    if (!finite)
      return DECO_FAIL(c->ctx, DECO_STATUS_NON_FINITE,
                       "compress: layer %d's calibration K/V second moments are not finite (the model's activations "
                       "overflow)",
                       l);
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_compress_calibrate(deco_model_t *model, const int32_t *tokens, size_t n_tokens, int group,
                                      int chunk, deco_compress_progress_fn progress, void *progress_user,
                                      deco_grams_t *out) {
  memset(out, 0, sizeof(*out));
  const deco_model_hparams_t *hp = deco_model_get_hparams(model);
  calib_t c = {.model = model, .tokens = tokens, .ctx = deco_model_ctx(model), .hp = hp,
               .dtype = deco_model_dtype(model), .g = group, .d = hp->head_dim, .kvh = hp->n_kv_heads};
  DECO_TRY(calib_check(&c, n_tokens));
  calib_shapes(&c, chunk);
  deco_status_t st = calib_alloc(&c, out);
  const size_t L = (size_t)c.chunk;
  for (size_t off = 0; st == DECO_STATUS_SUCCESS && off < n_tokens; off += L) {
    const int len = n_tokens - off < L ? (int)(n_tokens - off) : c.chunk;
    st = calib_chunk(&c, off, len);
    if (st == DECO_STATUS_SUCCESS && progress) progress(progress_user, off + (size_t)len, n_tokens);
  }
  if (st == DECO_STATUS_SUCCESS) st = deco_memcpy(c.ctx, out->v, c.vg, c.vbytes, DECO_COPY_CTX_TO_HOST);
  if (st == DECO_STATUS_SUCCESS) st = deco_memcpy(c.ctx, out->k, c.kg, c.kbytes, DECO_COPY_CTX_TO_HOST);
  if (st == DECO_STATUS_SUCCESS) st = calib_finite(&c, out);
  calib_release(&c);
  if (st != DECO_STATUS_SUCCESS) {
    deco_grams_free(out);
    return st;
  }
  out->n_layers = hp->n_layers;
  out->n_groups = c.n_groups;
  out->group = c.g;
  out->head_dim = c.d;
  out->rows = n_tokens;
  return DECO_STATUS_SUCCESS;
}

/* ---- folding ---------------------------------------------------------------------- */

/* Value transforms of one group: enc [d][gd] (v' = enc V) and dec [gd][d]
 * (v_b ~ dec_b v', dec_b = rows b*d .. b*d+d-1); ev: svd's eigenvectors
 * ([d][gd], deco_eigs_t). */
static void value_transform(const double *ev, int g, int d, deco_compress_method_t method, double *enc,
                            double *dec) {
  const int gd = g * d;
  memset(enc, 0, sizeof(double) * (size_t)d * gd);
  memset(dec, 0, sizeof(double) * (size_t)gd * d);
  if (method == DECO_COMPRESS_MEAN || method == DECO_COMPRESS_KEEP) {
    for (int b = 0; b < g; ++b)
      for (int i = 0; i < d; ++i) {
        dec[((size_t)b * d + i) * d + i] = 1.0;
        if (method == DECO_COMPRESS_MEAN) enc[(size_t)i * gd + b * d + i] = 1.0 / g;
        else if (b == 0) enc[(size_t)i * gd + i] = 1.0;
      }
    return;
  }
  for (int c = 0; c < d; ++c)
    for (int i = 0; i < gd; ++i) {
      const double x = ev[(size_t)c * gd + i];
      enc[(size_t)c * gd + i] = x;
      dec[(size_t)i * d + c] = x;
    }
}

/* Key transforms of one group and frequency: complex enc[g] (z = sum_b
 * enc_b k_b) and dec[g] (k_b ~ dec_b z); u: svd's top eigenvector ([g][2]). */
static void key_transform(const double *u, int g, deco_compress_method_t method, double complex *enc,
                          double complex *dec) {
  for (int b = 0; b < g; ++b) {
    if (method == DECO_COMPRESS_MEAN || method == DECO_COMPRESS_KEEP) {
      dec[b] = 1.0;
      enc[b] = method == DECO_COMPRESS_MEAN ? 1.0 / g : (b == 0 ? 1.0 : 0.0);
    } else {
      dec[b] = u[2 * b] + I * u[2 * b + 1];
      enc[b] = conj(dec[b]);
    }
  }
}

deco_status_t deco_compress_fold(deco_cw_t *w, const deco_grams_t *gr, int n_kv_heads, deco_compress_method_t method,
                                 double *key_energy, double *value_energy) {
  deco_eigs_t e = {0};
  if (method == DECO_COMPRESS_SVD) DECO_TRY(deco_compress_eigs(NULL, gr, DECO_COMPRESS_SOLVER_LAPACK, &e));
  const deco_status_t st = deco_compress_fold_eigs(w, gr, method == DECO_COMPRESS_SVD ? &e : NULL, n_kv_heads, method,
                                                   key_energy, value_energy);
  deco_eigs_free(&e);
  return st;
}

/* The fold's inputs, shapes and scratch, shared by its steps. Each group
 * G of g KV heads (heads G*g .. G*g+g-1) becomes KV head G; the query
 * heads j of the group are those with j*kvh/nq in it. */
typedef struct fold {
  deco_cw_t *w; /* W_Q and W_O folded in place */
  const deco_grams_t *gr;
  const deco_eigs_t *eigs; /* svd only */
  deco_compress_method_t method;
  int kvh, nq, d, half, dim; /* the model's, before the fold */
  int g, gd, N;              /* group size, g*d, groups (= KV heads after) */
  size_t vper, kper, qd;     /* value and key Gram elements per layer, nq*d */
  float *wk, *wv;            /* the new W_K, W_V [L][N*d][dim] */
  double *enc, *dec;         /* value transforms [d][gd], [gd][d] */
  double *work;              /* [gd][gd] */
  double *acc;               /* [2][dim] */
  double complex *cenc, *cdec; /* key transforms of one frequency [g] */
} fold_t;

/* One layer's energy sums, over its groups (and frequencies). */
typedef struct fold_energy {
  double v_res, v_tot, k_res, k_tot;
} fold_energy_t;

static deco_status_t fold_check(const deco_cw_t *w, const deco_grams_t *gr, const deco_eigs_t *eigs, int n_kv_heads,
                                deco_compress_method_t method) {
  const deco_model_hparams_t *hp = &w->hp;
  const int kvh = hp->n_kv_heads, d = hp->head_dim;
  if (n_kv_heads < 1 || n_kv_heads >= kvh || kvh % n_kv_heads != 0)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                     "compress: --kv-heads %d must divide the model's %d KV heads and be smaller", n_kv_heads, kvh);
  const int g = kvh / n_kv_heads, L = hp->n_layers, N = n_kv_heads;
  if (gr->n_layers != L || gr->group != g || gr->head_dim != d || gr->n_groups != N)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "compress: the Grams do not match the model");
  if (method == DECO_COMPRESS_SVD &&
      (!eigs || !eigs->v || !eigs->k || eigs->n_layers != L || eigs->group != g || eigs->head_dim != d ||
       eigs->n_groups != N))
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "compress: svd's eigenvectors do not match the model");
  return DECO_STATUS_SUCCESS;
}

static void fold_free(fold_t *fold) {
  free(fold->wk);
  free(fold->wv);
  free(fold->enc);
  free(fold->dec);
  free(fold->work);
  free(fold->acc);
  free(fold->cenc);
  free(fold->cdec);
}

/* Fills fold's shapes and allocates its scratch (fold_free either way). */
static deco_status_t fold_init(fold_t *fold, deco_cw_t *w, const deco_grams_t *gr, const deco_eigs_t *eigs,
                               int n_kv_heads, deco_compress_method_t method) {
  const deco_model_hparams_t *hp = &w->hp;
  const int kvh = hp->n_kv_heads, nq = hp->n_heads, d = hp->head_dim, half = d / 2, dim = hp->dim;
  const int g = kvh / n_kv_heads, gd = g * d, L = hp->n_layers, N = n_kv_heads;
  *fold = (fold_t){.w = w, .gr = gr, .eigs = eigs, .method = method, .kvh = kvh, .nq = nq, .d = d, .half = half,
                   .dim = dim, .g = g, .gd = gd, .N = N};
  const gram_sizes_t per_layer = gram_sizes(N, g, d);
  fold->vper = per_layer.v;
  fold->kper = per_layer.k;
  fold->qd = (size_t)nq * d;
  fold->wk = malloc(sizeof(float) * L * (size_t)N * d * dim);
  fold->wv = malloc(sizeof(float) * L * (size_t)N * d * dim);
  fold->enc = malloc(sizeof(double) * (size_t)d * gd);
  fold->dec = malloc(sizeof(double) * (size_t)gd * d);
  fold->work = malloc(sizeof(double) * (size_t)gd * gd);
  fold->acc = malloc(sizeof(double) * (size_t)dim * 2);
  fold->cenc = malloc(sizeof(double complex) * g);
  fold->cdec = malloc(sizeof(double complex) * g);
  if (!fold->wk || !fold->wv || !fold->enc || !fold->dec || !fold->work || !fold->acc || !fold->cenc || !fold->cdec)
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "compress: out of host memory");
  return DECO_STATUS_SUCCESS;
}

/* The KV head query head j reads. */
static int fold_kv_head(const fold_t *fold, int j) { return (int)((long long)j * fold->kvh / fold->nq); }

/* Value energy of group Gram C: tr(R C R^T), R = I - dec enc (in work). */
static void fold_value_energy(const fold_t *fold, const double *C, fold_energy_t *e) {
  const int gd = fold->gd, d = fold->d;
  const double *enc = fold->enc, *dec = fold->dec;
  double *work = fold->work;
  for (int i = 0; i < gd; ++i)
    for (int j = 0; j < gd; ++j) {
      double p = 0;
      for (int c = 0; c < d; ++c) p += dec[(size_t)i * d + c] * enc[(size_t)c * gd + j];
      work[(size_t)i * gd + j] = (i == j ? 1.0 : 0.0) - p;
    }
  for (int i = 0; i < gd; ++i) {
    e->v_tot += C[(size_t)i * gd + i];
    for (int p = 0; p < gd; ++p) {
      double rc = 0;
      for (int q = 0; q < gd; ++q) rc += work[(size_t)i * gd + q] * C[(size_t)q * gd + p];
      e->v_res += rc * work[(size_t)i * gd + p];
    }
  }
}

/* W_V' = enc W_V,group: the d value rows of new KV head G of layer l. */
static void fold_value_rows(fold_t *fold, int l, int G) {
  const int gd = fold->gd, d = fold->d, dim = fold->dim, N = fold->N;
  const float *Wv = fold->w->wv + (size_t)l * fold->kvh * d * dim;
  double *acc = fold->acc;
  for (int c = 0; c < d; ++c) {
    for (int x = 0; x < dim; ++x) acc[x] = 0;
    for (int i = 0; i < gd; ++i) {
      const double e = fold->enc[(size_t)c * gd + i];
      if (e == 0) continue;
      const float *row = Wv + ((size_t)G * gd + i) * dim;
      for (int x = 0; x < dim; ++x) acc[x] += e * row[x];
    }
    float *dst = fold->wv + (((size_t)l * N + G) * d + c) * dim;
    for (int x = 0; x < dim; ++x) dst[x] = (float)acc[x];
  }
}

/* W_O[:, j] <- W_O[:, j] dec_b for the query heads j of group G (b: the
 * position of j's KV head in the group). */
static void fold_output_columns(fold_t *fold, int l, int G) {
  const int g = fold->g, d = fold->d, dim = fold->dim;
  const size_t qd = fold->qd;
  float *Wo = fold->w->wo + (size_t)l * dim * qd;
  for (int j = 0; j < fold->nq; ++j) {
    const int h = fold_kv_head(fold, j);
    if (h / g != G) continue;
    const int b = h % g;
    for (int r = 0; r < dim; ++r) {
      float *row = Wo + (size_t)r * qd + (size_t)j * d;
      double tmp[256];
      for (int c = 0; c < d; ++c) {
        double s = 0;
        for (int i = 0; i < d; ++i) s += (double)row[i] * fold->dec[((size_t)b * d + i) * d + c];
        tmp[c] = s;
      }
      for (int c = 0; c < d; ++c) row[c] = (float)tmp[c];
    }
  }
}

/* Key energy of one frequency's Gram H: tr(R H R^H), R = I - dec enc^T. */
static void fold_key_energy(const fold_t *fold, const double *H, fold_energy_t *e) {
  const int g = fold->g;
  const double complex *cenc = fold->cenc, *cdec = fold->cdec;
  for (int a = 0; a < g; ++a) {
    e->k_tot += H[((size_t)a * g + a) * 2];
    for (int p = 0; p < g; ++p) {
      double complex s = 0;
      for (int q = 0; q < g; ++q) {
        const double complex r = (a == q ? 1.0 : 0.0) - cdec[a] * cenc[q];
        s += r * (H[((size_t)q * g + p) * 2] + I * H[((size_t)q * g + p) * 2 + 1]);
      }
      const double complex rap = (a == p ? 1.0 : 0.0) - cdec[a] * cenc[p];
      e->k_res += creal(s * conj(rap));
    }
  }
}

/* z = sum_b enc_b k_b: the key rows i0, i1 (one frequency's pair) of new
 * KV head G of layer l. */
static void fold_key_rows(fold_t *fold, int l, int G, int i0, int i1) {
  const int g = fold->g, d = fold->d, dim = fold->dim, N = fold->N;
  const float *Wk = fold->w->wk + (size_t)l * fold->kvh * d * dim;
  double *a0 = fold->acc, *a1 = fold->acc + dim;
  for (int x = 0; x < dim; ++x) a0[x] = a1[x] = 0;
  for (int b = 0; b < g; ++b) {
    const double er = creal(fold->cenc[b]), ei = cimag(fold->cenc[b]);
    if (er == 0 && ei == 0) continue;
    const float *r0 = Wk + ((size_t)(G * g + b) * d + i0) * dim, *r1 = Wk + ((size_t)(G * g + b) * d + i1) * dim;
    for (int x = 0; x < dim; ++x) {
      a0[x] += er * r0[x] - ei * r1[x];
      a1[x] += ei * r0[x] + er * r1[x];
    }
  }
  float *d0 = fold->wk + (((size_t)l * N + G) * d + i0) * dim, *d1 = fold->wk + (((size_t)l * N + G) * d + i1) * dim;
  for (int x = 0; x < dim; ++x) {
    d0[x] = (float)a0[x];
    d1[x] = (float)a1[x];
  }
}

/* q' = q conj(dec_b): the query rows i0, i1 of the query heads of group G. */
static void fold_query_rows(fold_t *fold, int l, int G, int i0, int i1) {
  const int g = fold->g, d = fold->d, dim = fold->dim;
  float *Wq = fold->w->wq + (size_t)l * fold->qd * dim;
  for (int j = 0; j < fold->nq; ++j) {
    const int h = fold_kv_head(fold, j);
    if (h / g != G) continue;
    const double dr = creal(fold->cdec[h % g]), di = cimag(fold->cdec[h % g]);
    float *q0 = Wq + ((size_t)j * d + i0) * dim, *q1 = Wq + ((size_t)j * d + i1) * dim;
    for (int x = 0; x < dim; ++x) {
      const double x0 = q0[x], x1 = q1[x];
      q0[x] = (float)(dr * x0 + di * x1);
      q1[x] = (float)(-di * x0 + dr * x1);
    }
  }
}

/* Group G of layer l, values: the transforms, their energy, W_V and W_O. */
static void fold_group_values(fold_t *fold, int l, int G, fold_energy_t *e) {
  const int d = fold->d, gd = fold->gd;
  const size_t m = (size_t)l * fold->N + G;
  const double *C = fold->gr->v + (size_t)l * fold->vper + (size_t)G * gd * gd;
  value_transform(fold->method == DECO_COMPRESS_SVD ? fold->eigs->v + m * d * gd : NULL, fold->g, d, fold->method,
                  fold->enc, fold->dec);
  fold_value_energy(fold, C, e);
  fold_value_rows(fold, l, G);
  fold_output_columns(fold, l, G);
}

/* Group G of layer l, keys of frequency f: the transforms, their energy,
 * W_K and W_Q on the frequency's pair of rows (w->hp.rope_style). */
static void fold_group_key_frequency(fold_t *fold, int l, int G, int f, fold_energy_t *e) {
  const int g = fold->g, half = fold->half;
  const size_t m = (size_t)l * fold->N + G;
  const double *H = fold->gr->k + (size_t)l * fold->kper + ((size_t)G * half + f) * g * g * 2;
  key_transform(fold->method == DECO_COMPRESS_SVD ? fold->eigs->k + (m * half + f) * g * 2 : NULL, g, fold->method,
                fold->cenc, fold->cdec);
  fold_key_energy(fold, H, e);
  const int interleaved = fold->w->hp.rope_style == DECO_ROPE_INTERLEAVED;
  const int i0 = interleaved ? 2 * f : f, i1 = interleaved ? 2 * f + 1 : f + half;
  fold_key_rows(fold, l, G, i0, i1);
  fold_query_rows(fold, l, G, i0, i1);
}

deco_status_t deco_compress_fold_eigs(deco_cw_t *w, const deco_grams_t *gr, const deco_eigs_t *eigs, int n_kv_heads,
                                      deco_compress_method_t method, double *key_energy, double *value_energy) {
  DECO_TRY(fold_check(w, gr, eigs, n_kv_heads, method));
  fold_t fold;
  const deco_status_t st = fold_init(&fold, w, gr, eigs, n_kv_heads, method);
  if (st != DECO_STATUS_SUCCESS) {
    fold_free(&fold);
    return st;
  }
  for (int l = 0; l < w->hp.n_layers; ++l) {
    fold_energy_t e = {0, 0, 0, 0};
    for (int G = 0; G < fold.N; ++G) {
      fold_group_values(&fold, l, G, &e);
      for (int f = 0; f < fold.half; ++f) fold_group_key_frequency(&fold, l, G, f, &e);
    }
    if (key_energy) key_energy[l] = e.k_tot > 0 ? 1.0 - e.k_res / e.k_tot : 1.0;
    if (value_energy) value_energy[l] = e.v_tot > 0 ? 1.0 - e.v_res / e.v_tot : 1.0;
  }
  free(w->wk);
  free(w->wv);
  w->wk = fold.wk;
  w->wv = fold.wv;
  fold.wk = fold.wv = NULL;
  w->hp.n_kv_heads = fold.N;
  fold_free(&fold);
  return DECO_STATUS_SUCCESS;
}

/* ---- the whole tool ------------------------------------------------------------ */

static const char model_op[] = "deco_compress_model";

/* The checks of config (read) against the header of the checkpoint at
 * in_path (into hp) and of the calibration ids, and the solver svd will
 * use (LAPACK for mean and keep, which decompose nothing): everything that
 * can fail before the (long) calibration. */
static deco_status_t compress_check(deco_ctx_t *ctx, const char *in_path, const int32_t *tokens, size_t n_tokens,
                                    const deco_compress_config_t *config, deco_model_hparams_t *hp,
                                    deco_compress_solver_t *solver) {
  if (config->method != DECO_COMPRESS_SVD && config->method != DECO_COMPRESS_MEAN &&
      config->method != DECO_COMPRESS_KEEP)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: method = %d is not svd, mean or keep", model_op,
                     (int)config->method);
  const deco_status_t st = deco_model_read_hparams(in_path, hp);
  if (st != DECO_STATUS_SUCCESS) return DECO_FAIL(ctx, st, "%s", deco_last_error(NULL));
  const int N = config->n_kv_heads;
  if (N < 1 || N >= hp->n_kv_heads || hp->n_kv_heads % N != 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: --kv-heads %d must divide the model's %d KV heads and be smaller than it", in_path, N,
                     hp->n_kv_heads);
  const int g = hp->n_kv_heads / N;
  const size_t need = deco_compress_min_tokens(g, hp->head_dim);
  if (n_tokens < need)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: %zu calibration tokens are too few: merging groups of %d heads of dim %d needs at least %zu",
                     in_path, n_tokens, g, hp->head_dim, need);
  const size_t i = deco_first_id_outside(tokens, n_tokens, hp->vocab_size);
  if (i < n_tokens)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: calibration token %zu is id %d, outside 0..%d", in_path,
                     i, (int)tokens[i], hp->vocab_size - 1);
  *solver = DECO_COMPRESS_SOLVER_LAPACK;
  if (config->method == DECO_COMPRESS_SVD) DECO_TRY(deco_compress_solver_resolve(ctx, config->solver, solver));
  return DECO_STATUS_SUCCESS;
}

/* Loads the model at in_path on ctx for the calibration, in groups of g. */
static deco_status_t compress_calibrate_file(deco_ctx_t *ctx, const char *in_path, const int32_t *tokens,
                                             size_t n_tokens, int g, const deco_compress_config_t *config,
                                             deco_grams_t *gr) {
  deco_model_t *model = NULL;
  DECO_TRY(deco_model_load(ctx, in_path, NULL, &model));
  const deco_status_t st = deco_compress_calibrate(model, tokens, n_tokens, g, config->chunk, config->progress,
                                                   config->progress_user, gr);
  deco_model_destroy(model);
  return st;
}

/* Reads the checkpoint at in_path, folds it to n_kv_heads and writes it to
 * out_path in its own format; errors on the thread's slot. */
static deco_status_t compress_fold_file(const char *in_path, const char *out_path, const deco_grams_t *gr,
                                        const deco_eigs_t *eigs, int n_kv_heads, deco_compress_method_t method,
                                        deco_compress_report_t *report) {
  deco_cw_t w;
  DECO_TRY(deco_cw_read(in_path, &w));
  deco_status_t st = deco_compress_fold_eigs(&w, gr, eigs, n_kv_heads, method, report ? report->key_energy : NULL,
                                             report ? report->value_energy : NULL);
  if (st == DECO_STATUS_SUCCESS)
    st = w.is_gguf ? deco_cw_write_gguf(&w, in_path, out_path) : deco_cw_write_llama2c(&w, out_path);
  deco_cw_free(&w);
  return st;
}

deco_status_t deco_compress_model(deco_ctx_t *ctx, const char *in_path, const int32_t *tokens, size_t n_tokens,
                                  const deco_compress_config_t *config, const char *out_path,
                                  deco_compress_report_t *report) {
  const char *op = model_op;
  if (!ctx) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  DECO_CHECK_PTR(ctx, in_path, op);
  DECO_CHECK_PTR(ctx, out_path, op);
  DECO_CHECK_PTR(ctx, config, op);
  if (n_tokens) DECO_CHECK_PTR(ctx, tokens, op);
  const deco_compress_config_t defaults = DECO_COMPRESS_CONFIG_INIT;
  deco_compress_config_t given;
  DECO_TRY(deco_sized_read(ctx, &given, config, &defaults, sizeof given, "deco_compress_model: config"));
  deco_model_hparams_t hp;
  deco_compress_solver_t solver;
  DECO_TRY(compress_check(ctx, in_path, tokens, n_tokens, &given, &hp, &solver));
  const int N = given.n_kv_heads, svd = given.method == DECO_COMPRESS_SVD;
  deco_grams_t gr;
  DECO_TRY(compress_calibrate_file(ctx, in_path, tokens, n_tokens, hp.n_kv_heads / N, &given, &gr));
  deco_eigs_t eigs = {0};
  deco_status_t st = svd ? deco_compress_eigs(ctx, &gr, solver, &eigs) : DECO_STATUS_SUCCESS;
  if (st != DECO_STATUS_SUCCESS) {
    deco_grams_free(&gr);
    return st;
  }
  st = compress_fold_file(in_path, out_path, &gr, svd ? &eigs : NULL, N, given.method, report);
  deco_eigs_free(&eigs);
  deco_grams_free(&gr);
  /* The checkpoint's readers and writers report to the thread's slot. */
  if (st != DECO_STATUS_SUCCESS) return DECO_FAIL(ctx, st, "%s", deco_last_error(NULL));
  return st;
}
