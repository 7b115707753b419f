/* kernels/linear/matmul_batched_ref.c — reference n_batch products of one
 * shape (deco/layers.h, deco_matmul_batched): product b is deco_matmul_ref
 * of a + b·stride_a, w + b·stride_w into out + b·stride_out. The spec of
 * the op tests; the CPU backend runs each product on matmul_cpu.c.
 */
#include "common/op_impl.h"

deco_status_t deco_matmul_batched_ref(const deco_exec_t *exec, const deco_matmul_batched_args_t *p) {
  for (int b = 0; b < p->n_batch; ++b) {
    deco_matmul_args_t one = p->mm;
    one.a = (const float *)p->mm.a + (size_t)b * (size_t)p->stride_a;
    one.w = (const float *)p->mm.w + (size_t)b * (size_t)p->stride_w;
    one.out = (float *)p->mm.out + (size_t)b * (size_t)p->stride_out;
    deco_status_t st = deco_matmul_ref(exec, &one);
    if (st != DECO_STATUS_SUCCESS) return st;
  }
  return DECO_STATUS_SUCCESS;
}
