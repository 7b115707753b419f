/* host/compress/eigs_cusolver.c — svd's eigendecompositions for KV-head
 * compression on a CUDA context (compress_internal.h): cusolverDnDsyevd for
 * the value Grams and cusolverDnZheevd for the key Grams, on the context's
 * device and stream; the vectors come back for the host fold (docs/DESIGN.md,
 * "Decomposition"). A build without CUDA only refuses.
 */
#include <stdlib.h>
#include <string.h>

#include "compress/compress_internal.h"
#include "core/internal.h"

#ifndef DECO_HAVE_CUDA

deco_status_t deco_compress_eigs_cusolver(deco_ctx_t *ctx, const deco_grams_t *grams, deco_eigs_t *out) {
  (void)grams, (void)out;
  return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                   "compress: solver cusolver needs a deco built with CUDA, and this one has no CUDA backend");
}

#else

#include <cuda_runtime_api.h>
#include <cusolverDn.h>

static const char *cusolver_name(cusolverStatus_t s) {
  switch (s) {
  case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
  case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
  case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
  case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
  case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
  case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
  case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
  case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
  default: return "a cuSOLVER error";
  }
}

static deco_status_t solver_fail(deco_ctx_t *ctx, cusolverStatus_t s, const char *what) {
  return DECO_FAIL(ctx, s == CUSOLVER_STATUS_ALLOC_FAILED ? DECO_STATUS_OUT_OF_MEMORY : DECO_STATUS_CUDA_ERROR,
                   "compress: %s: %s", what, cusolver_name(s));
}

static deco_status_t cuda_fail(deco_ctx_t *ctx, cudaError_t e, const char *what) {
  (void)cudaGetLastError();
  return DECO_FAIL(ctx, e == cudaErrorMemoryAllocation ? DECO_STATUS_OUT_OF_MEMORY : DECO_STATUS_CUDA_ERROR,
                   "compress: %s: %s", what, cudaGetErrorString(e));
}

/* One handle and one workspace (sized once for the larger of the two
 * routines) per call. The Grams go up one layer at a time and every
 * decomposition of the layer is queued; only the vectors the fold uses
 * come back (a value Gram's top head_dim columns, a key Gram's top column).
 * Every call's devInfo stays on the device and is read once at the end. */
deco_status_t deco_compress_eigs_cusolver(deco_ctx_t *ctx, const deco_grams_t *gr, deco_eigs_t *out) {
  if (!ctx || ctx->backend != DECO_BACKEND_CUDA)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "compress: solver cusolver runs on a CUDA context");
  const int L = gr->n_layers, N = gr->n_groups, g = gr->group, d = gr->head_dim, gd = g * d, half = d / 2;
  const size_t vmat = (size_t)gd * gd, kmat = (size_t)g * g; /* elements of one matrix */
  const size_t n_v = (size_t)L * N, n_k = n_v * half;       /* decompositions */
  cudaStream_t stream = (cudaStream_t)ctx->stream;
  cusolverDnHandle_t h = NULL;
  double *dv = NULL, *dw = NULL;
  cuDoubleComplex *dk = NULL;
  void *work = NULL;
  int *dinfo = NULL;
  /* Host: the top head_dim columns of each value Gram's vectors in
   * ascending order ([n_v][d][gd]) and each key Gram's top column
   * ([n_k][g] complex), as cuSOLVER leaves them (column-major). */
  double *hv = malloc(sizeof(double) * n_v * d * gd), *hk = malloc(sizeof(double) * n_k * g * 2);
  int *hinfo = malloc(sizeof(int) * (n_v + n_k));
  deco_status_t st = DECO_STATUS_SUCCESS;
  cusolverStatus_t cs;
  cudaError_t ce;
  if (!hv || !hk || !hinfo) st = DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "compress: out of host memory");
  if (st == DECO_STATUS_SUCCESS && (cs = cusolverDnCreate(&h)) != CUSOLVER_STATUS_SUCCESS) {
    h = NULL;
    st = solver_fail(ctx, cs, "cusolverDnCreate");
  }
  if (st == DECO_STATUS_SUCCESS && (cs = cusolverDnSetStream(h, stream)) != CUSOLVER_STATUS_SUCCESS)
    st = solver_fail(ctx, cs, "cusolverDnSetStream");
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, (void **)&dv, sizeof(double) * (size_t)N * vmat);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, (void **)&dk, sizeof(cuDoubleComplex) * (size_t)N * half * kmat);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, (void **)&dw, sizeof(double) * (size_t)gd);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, (void **)&dinfo, sizeof(int) * (n_v + n_k));
  /* The workspace, sized once for both routines (the matrices of one kind
   * all have the same size). */
  int lwork_v = 0, lwork_k = 0;
  if (st == DECO_STATUS_SUCCESS &&
      (cs = cusolverDnDsyevd_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, gd, dv, gd, dw,
                                        &lwork_v)) != CUSOLVER_STATUS_SUCCESS)
    st = solver_fail(ctx, cs, "cusolverDnDsyevd_bufferSize");
  if (st == DECO_STATUS_SUCCESS &&
      (cs = cusolverDnZheevd_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, g, dk, g, dw,
                                        &lwork_k)) != CUSOLVER_STATUS_SUCCESS)
    st = solver_fail(ctx, cs, "cusolverDnZheevd_bufferSize");
  if (st == DECO_STATUS_SUCCESS) {
    size_t wb = sizeof(double) * (size_t)(lwork_v > 0 ? lwork_v : 1);
    const size_t kb = sizeof(cuDoubleComplex) * (size_t)(lwork_k > 0 ? lwork_k : 1);
    if (kb > wb) wb = kb;
    st = deco_malloc(ctx, &work, wb);
  }
  /* The Grams are row-major and fully stored. Read column-major, a value
   * Gram is itself (symmetric) and a key Gram H is H^T = conj(H), whose
   * eigenvectors are the conjugates of H's for the same eigenvalues: the
   * key vectors are conjugated back below. The lower triangle column-major
   * is the upper triangle LAPACK reads row-major. */
  for (int l = 0; st == DECO_STATUS_SUCCESS && l < L; ++l) {
    ce = cudaMemcpyAsync(dv, gr->v + (size_t)l * N * vmat, sizeof(double) * (size_t)N * vmat,
                         cudaMemcpyHostToDevice, stream);
    if (ce == cudaSuccess)
      ce = cudaMemcpyAsync(dk, gr->k + (size_t)l * N * half * kmat * 2,
                           sizeof(cuDoubleComplex) * (size_t)N * half * kmat, cudaMemcpyHostToDevice, stream);
    if (ce != cudaSuccess) {
      st = cuda_fail(ctx, ce, "uploading the Grams");
      break;
    }
    for (int G = 0; st == DECO_STATUS_SUCCESS && G < N; ++G) {
      cs = cusolverDnDsyevd(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, gd, dv + (size_t)G * vmat, gd, dw,
                            (double *)work, lwork_v, dinfo + (size_t)l * N + G);
      if (cs != CUSOLVER_STATUS_SUCCESS)
        st = DECO_FAIL(ctx, DECO_STATUS_CUDA_ERROR, "compress: cusolverDnDsyevd on layer %d group %d: %s", l, G,
                       cusolver_name(cs));
      for (int f = 0; st == DECO_STATUS_SUCCESS && f < half; ++f) {
        const size_t m = (size_t)G * half + f;
        cs = cusolverDnZheevd(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, g, dk + m * kmat, g, dw,
                              (cuDoubleComplex *)work, lwork_k, dinfo + n_v + (size_t)l * N * half + m);
        if (cs != CUSOLVER_STATUS_SUCCESS)
          st = DECO_FAIL(ctx, DECO_STATUS_CUDA_ERROR,
                         "compress: cusolverDnZheevd on layer %d group %d frequency %d: %s", l, G, f,
                         cusolver_name(cs));
      }
    }
    if (st != DECO_STATUS_SUCCESS) break;
    /* Eigenvalues ascend: a value Gram's top d vectors are its last d
     * columns, a key Gram's top vector its last column. */
    ce = cudaMemcpy2DAsync(hv + (size_t)l * N * d * gd, sizeof(double) * (size_t)d * gd, dv + (size_t)(gd - d) * gd,
                           sizeof(double) * vmat, sizeof(double) * (size_t)d * gd, (size_t)N, cudaMemcpyDeviceToHost,
                           stream);
    if (ce == cudaSuccess)
      ce = cudaMemcpy2DAsync(hk + (size_t)l * N * half * g * 2, sizeof(cuDoubleComplex) * (size_t)g,
                             dk + (size_t)(g - 1) * g, sizeof(cuDoubleComplex) * kmat,
                             sizeof(cuDoubleComplex) * (size_t)g, (size_t)N * half, cudaMemcpyDeviceToHost, stream);
    if (ce != cudaSuccess) st = cuda_fail(ctx, ce, "copying the eigenvectors back");
  }
  if (st == DECO_STATUS_SUCCESS) {
    ce = cudaMemcpyAsync(hinfo, dinfo, sizeof(int) * (n_v + n_k), cudaMemcpyDeviceToHost, stream);
    if (ce == cudaSuccess) ce = cudaStreamSynchronize(stream);
    if (ce != cudaSuccess) st = cuda_fail(ctx, ce, "cuSOLVER's eigendecompositions");
  } else if (stream) {
    (void)cudaStreamSynchronize(stream); /* nothing queued may outlive its buffers */
    (void)cudaGetLastError();
  }
  /* devInfo: 0 done; -i the i-th argument was wrong; i > 0 i off-diagonal
   * elements of the tridiagonal form did not converge. */
  for (size_t i = 0; st == DECO_STATUS_SUCCESS && i < n_v; ++i)
    if (hinfo[i] != 0)
      st = DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "compress: cusolverDnDsyevd failed on layer %d group %d (devInfo %d)",
                     (int)(i / N), (int)(i % N), hinfo[i]);
  for (size_t i = 0; st == DECO_STATUS_SUCCESS && i < n_k; ++i)
    if (hinfo[n_v + i] != 0)
      st = DECO_FAIL(ctx, DECO_STATUS_INTERNAL,
                     "compress: cusolverDnZheevd failed on layer %d group %d frequency %d (devInfo %d)",
                     (int)(i / ((size_t)N * half)), (int)(i / half % N), (int)(i % half), hinfo[n_v + i]);
  if (st == DECO_STATUS_SUCCESS) deco_eigs_from_colmajor(hv, hk, n_v, g, d, out);
  deco_free(ctx, work);
  deco_free(ctx, dinfo);
  deco_free(ctx, dw);
  deco_free(ctx, dk);
  deco_free(ctx, dv);
  if (h) cusolverDnDestroy(h);
  free(hv);
  free(hk);
  free(hinfo);
  return st;
}

#endif
