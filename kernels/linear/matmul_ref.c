/* kernels/linear/matmul_ref.c — reference out = a · wᵀ (llama2.c's matmul):
 * a [m][k], w [n][k], out [m][n]; each output summed sequentially over k in
 * fp32, so the result does not depend on the thread count (OpenMP splits
 * outputs, never a sum; exec->n_threads threads, 0 = OpenMP's default).
 * The spec of the op tests; the CPU backend runs matmul_cpu.c.
 */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/op_impl.h"

deco_status_t deco_matmul_ref(const deco_exec_t *exec, const deco_matmul_args_t *p) {
  const float *a = (const float *)p->a;
  const float *w = (const float *)p->w;
  float *out = (float *)p->out;
  const long long total = (long long)p->m * p->n;
  const int k = p->k;
  /* Threads only pay for themselves on large products (spin-waiting
   * workers cost more than a small matmul on a busy machine). */
#ifdef _OPENMP
  const int threads = exec != NULL && exec->n_threads > 0 ? exec->n_threads : omp_get_max_threads();
#pragma omp parallel for schedule(static) num_threads(threads) if (total * k > (1LL << 24))
#endif
  for (long long idx = 0; idx < total; ++idx) {
    long long r = idx / p->n;
    long long c = idx % p->n;
    const float *x = a + r * k;
    const float *wr = w + c * k;
    float val = 0.0f;
    for (int j = 0; j < k; ++j) val += wr[j] * x[j];
    if (p->accumulate) out[idx] += val;
    else out[idx] = val;
  }
  return DECO_STATUS_SUCCESS;
}
