/* host/compress/eigs.c — svd's eigendecompositions for KV-head compression
 * (compress_internal.h): the choice of solver, LAPACK on the host (dsyevd
 * for the value Grams, zheevd for the key Grams) and the normalisation both
 * solvers apply. The cuSOLVER path is eigs_cusolver.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <complex.h>
#ifdef DECO_HAVE_LAPACKE
#include <lapacke.h>
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress_internal.h"
#include "core/internal.h"

void deco_eigs_free(deco_eigs_t *e) {
  if (!e) return;
  free(e->v);
  free(e->k);
  e->v = e->k = NULL;
}

void deco_eig_normalise_real(const double *x, size_t stride, int n, double *out) {
  int m = 0;
  for (int i = 1; i < n; ++i)
    if (fabs(x[(size_t)i * stride]) > fabs(x[(size_t)m * stride])) m = i;
  const double s = x[(size_t)m * stride] < 0 ? -1.0 : 1.0;
  for (int i = 0; i < n; ++i) out[i] = s * x[(size_t)i * stride];
}

void deco_eig_normalise_complex(double *u, int g) {
  int m = 0;
  for (int b = 1; b < g; ++b)
    if (cabs(u[2 * b] + I * u[2 * b + 1]) > cabs(u[2 * m] + I * u[2 * m + 1])) m = b;
  const double complex um = u[2 * m] + I * u[2 * m + 1];
  const double complex phase = cabs(um) > 0 ? conj(um) / cabs(um) : 1.0;
  for (int b = 0; b < g; ++b) {
    const double complex x = (u[2 * b] + I * u[2 * b + 1]) * phase;
    u[2 * b] = creal(x);
    u[2 * b + 1] = cimag(x);
  }
}

void deco_eigs_from_colmajor(const double *vtop, const double *ktop, size_t n_v, int g, int d, deco_eigs_t *out) {
  const int gd = g * d, half = d / 2;
  for (size_t m = 0; m < n_v; ++m)
    for (int c = 0; c < d; ++c) /* the c-th largest: column d - 1 - c of the top d */
      deco_eig_normalise_real(vtop + (m * d + (size_t)(d - 1 - c)) * gd, 1, gd, out->v + (m * d + c) * gd);
  for (size_t m = 0; m < n_v * half; ++m) {
    double *u = out->k + m * g * 2;
    const double *x = ktop + m * g * 2;
    for (int b = 0; b < g; ++b) { /* conj: the solver decomposed conj(H) */
      u[2 * b] = x[2 * b];
      u[2 * b + 1] = -x[2 * b + 1];
    }
    deco_eig_normalise_complex(u, g);
  }
}

deco_status_t deco_compress_solver_resolve(deco_ctx_t *ctx, deco_compress_solver_t asked,
                                           deco_compress_solver_t *used) {
  const int cuda_ctx = ctx && ctx->backend == DECO_BACKEND_CUDA;
  if (asked != DECO_COMPRESS_SOLVER_AUTO && asked != DECO_COMPRESS_SOLVER_LAPACK &&
      asked != DECO_COMPRESS_SOLVER_CUSOLVER)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "compress: solver = %d is not auto, lapack or cusolver",
                     (int)asked);
#ifdef DECO_HAVE_CUDA
  if (asked == DECO_COMPRESS_SOLVER_AUTO && cuda_ctx) asked = DECO_COMPRESS_SOLVER_CUSOLVER;
#endif
  if (asked == DECO_COMPRESS_SOLVER_CUSOLVER) {
#ifndef DECO_HAVE_CUDA
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                     "compress: solver cusolver needs a deco built with CUDA, and this one has no CUDA backend");
#else
    if (!cuda_ctx)
      return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                       "compress: solver cusolver runs on a CUDA context, and this one is %s (use --backend cuda, "
                       "or solver lapack)",
                       ctx ? deco_backend_name(ctx->backend) : "the host");
    *used = DECO_COMPRESS_SOLVER_CUSOLVER;
    return DECO_STATUS_SUCCESS;
#endif
  }
#ifndef DECO_HAVE_LAPACKE
  return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                   "compress: --method svd on the host needs LAPACKE, which this deco was built without "
                   "(Debian liblapacke-dev)%s",
                   cuda_ctx ? "" : "; a CUDA build decomposes with cuSOLVER on a CUDA context");
#else
  (void)cuda_ctx;
  *used = DECO_COMPRESS_SOLVER_LAPACK;
  return DECO_STATUS_SUCCESS;
#endif
}

#ifdef DECO_HAVE_LAPACKE
/* LAPACK on the host, row-major (the Grams' layout): dsyevd and zheevd
 * give the eigenvalues in ascending order and the vectors as columns. */
static deco_status_t eigs_lapack(deco_ctx_t *ctx, const deco_grams_t *gr, deco_eigs_t *out) {
  const int g = gr->group, d = gr->head_dim, gd = g * d, half = d / 2;
  const size_t vmat = (size_t)gd * gd, kmat = (size_t)g * g;
  double *work = malloc(sizeof(double) * vmat), *eig = malloc(sizeof(double) * (size_t)gd);
  double complex *cwork = malloc(sizeof(double complex) * kmat);
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (!work || !eig || !cwork) st = DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "compress: out of host memory");
  for (int l = 0; st == DECO_STATUS_SUCCESS && l < gr->n_layers; ++l)
    for (int G = 0; st == DECO_STATUS_SUCCESS && G < gr->n_groups; ++G) {
      const size_t m = (size_t)l * gr->n_groups + G;
      memcpy(work, gr->v + m * vmat, sizeof(double) * vmat);
      lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', gd, work, gd, eig);
      if (info != 0) {
        st = DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "compress: dsyevd failed on layer %d group %d (info %d)", l, G,
                       (int)info);
        break;
      }
      for (int c = 0; c < d; ++c) /* the c-th largest: column gd - 1 - c */
        deco_eig_normalise_real(work + (gd - 1 - c), (size_t)gd, gd, out->v + (m * d + c) * gd);
      for (int f = 0; f < half; ++f) {
        const double *H = gr->k + (m * half + f) * kmat * 2;
        for (size_t i = 0; i < kmat; ++i) cwork[i] = H[2 * i] + I * H[2 * i + 1];
        info = LAPACKE_zheevd(LAPACK_ROW_MAJOR, 'V', 'U', g, (lapack_complex_double *)cwork, g, eig);
        if (info != 0) {
          st = DECO_FAIL(ctx, DECO_STATUS_INTERNAL,
                         "compress: zheevd failed on layer %d group %d frequency %d (info %d)", l, G, f, (int)info);
          break;
        }
        double *u = out->k + (m * half + f) * g * 2;
        for (int b = 0; b < g; ++b) { /* the top eigenvector: column g - 1 */
          u[2 * b] = creal(cwork[(size_t)b * g + g - 1]);
          u[2 * b + 1] = cimag(cwork[(size_t)b * g + g - 1]);
        }
        deco_eig_normalise_complex(u, g);
      }
    }
  free(work);
  free(eig);
  free(cwork);
  return st;
}
#endif

deco_status_t deco_compress_eigs(deco_ctx_t *ctx, const deco_grams_t *gr, deco_compress_solver_t solver,
                                 deco_eigs_t *out) {
  memset(out, 0, sizeof(*out));
  deco_compress_solver_t used = DECO_COMPRESS_SOLVER_LAPACK;
  DECO_TRY(deco_compress_solver_resolve(ctx, solver, &used));
  const int g = gr->group, d = gr->head_dim;
  if (g < 1 || d < 2 || d % 2 != 0 || gr->n_layers < 1 || gr->n_groups < 1 || !gr->v || !gr->k)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "compress: the Grams are empty or malformed");
  const size_t n = (size_t)gr->n_layers * gr->n_groups;
  out->v = malloc(sizeof(double) * n * d * (size_t)g * d);
  out->k = malloc(sizeof(double) * n * (size_t)(d / 2) * g * 2);
  if (!out->v || !out->k) {
    deco_eigs_free(out);
    return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "compress: out of host memory");
  }
  out->n_layers = gr->n_layers;
  out->n_groups = gr->n_groups;
  out->group = g;
  out->head_dim = d;
  deco_status_t st;
  if (used == DECO_COMPRESS_SOLVER_CUSOLVER) {
    st = deco_compress_eigs_cusolver(ctx, gr, out);
  } else {
#ifdef DECO_HAVE_LAPACKE
    st = eigs_lapack(ctx, gr, out);
#else
    st = DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "compress: LAPACK resolved in a build without it");
#endif
  }
  if (st != DECO_STATUS_SUCCESS) deco_eigs_free(out);
  return st;
}
