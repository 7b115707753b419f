/* kernels/quant/dequant_ref.c — reference dequantisation: out[i] = element i
 * of in (quant_block.h: F32, F16, BF16, Q8_0, Q4_0, Q4_1, decoded exactly to
 * f32), rounded to out_dtype. in: the stored bytes, any alignment; out [n].
 * Every output is independent, so threads split the elements.
 */
#include "common/op_impl.h"
#include "quant/quant_block.h"

deco_status_t deco_dequant_ref(const deco_exec_t *exec, const deco_dequant_args_t *a) {
  (void)exec;
  const unsigned char *in = (const unsigned char *)a->in;
  const long long n = (long long)a->n;
  const int type = (int)a->type, dtype = (int)a->out_dtype;
#pragma omp parallel for schedule(static) if (n > (1LL << 20))
  for (long long i = 0; i < n; ++i) deco_qb_store(a->out, dtype, (size_t)i, deco_qb_element(type, in, (size_t)i));
  return DECO_STATUS_SUCCESS;
}
