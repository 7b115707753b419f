/* kernels/superpose/superpose_embed.cu — the superposed input embedding on
 * the GPU (deco/superpose_ops.h, Shen et al. 2024): out[r] = sum of
 * weights[r][i] * f32(table[tokens[r][i]]) over the nonzero weights, in
 * slot order from the first such term, for an f32, f16 or bf16 table.
 * One block per row, consecutive threads on consecutive elements
 * (coalesced); products and sums rounded one by one (__fmul_rn,
 * __fadd_rn), so the result equals the C reference's bit for bit.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"

template <typename T>
static __global__ void superpose_embed_kernel(const T *__restrict__ table,       /* [vocab][dim] */
                                              const int32_t *__restrict__ tokens, /* [n_rows][k] */
                                              const float *__restrict__ weights,  /* [n_rows][k] */
                                              float *__restrict__ out,            /* [n_rows][dim] */
                                              int k, int vocab, int dim) {
  const size_t r = blockIdx.x;
  const int32_t *tok = tokens + r * (size_t)k;
  const float *w = weights + r * (size_t)k;
  float *row = out + r * (size_t)dim;
  bool bad = false;
  for (int i = 0; i < k; ++i)
    if (w[i] != 0.0f && (tok[i] < 0 || tok[i] >= vocab)) bad = true;
  for (int e = threadIdx.x; e < dim; e += blockDim.x) {
    if (bad) {
      row[e] = deco_nan_f32();
      continue;
    }
    float acc = 0.0f;
    bool first = true;
    for (int i = 0; i < k; ++i) {
      const float wi = w[i];
      if (wi == 0.0f) continue;
      const float p = __fmul_rn(wi, deco_to_f32(table[(size_t)tok[i] * dim + e]));
      acc = first ? p : __fadd_rn(acc, p);
      first = false;
    }
    row[e] = acc;
  }
}

template <typename T>
static deco_status_t superpose_embed_launch(const deco_exec_t *exec, const deco_superpose_embed_args_t *a) {
  const int threads = a->dim >= 256 ? 256 : (a->dim + 31) / 32 * 32;
  superpose_embed_kernel<T><<<a->n_rows, threads, 0, DECO_CUDA_STREAM(exec)>>>(
      (const T *)a->table, a->tokens, a->weights, a->out, a->k, a->vocab, a->dim);
  DECO_CUDA_CHECK_LAUNCH(exec, "superpose_embed_kernel");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_superpose_embed_cuda(const deco_exec_t *exec, const deco_superpose_embed_args_t *a) {
  DECO_DTYPE_SWITCH(a->dtype, T, return superpose_embed_launch<T>(exec, a));
  return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_superpose_embed: dtype %d", (int)a->dtype);
}
