/* host/ops/quant.c — public entry point of the dequantisation op
 * (deco/quant.h): argument validation, then dispatch to the reference or
 * the CUDA kernel.
 */
#include <stdint.h>

#include "ops/dispatch.h"

/* Far above any tensor a device holds, and far below where n * 4 bytes
 * could overflow. */
#define DECO_MAX_DEQUANT_ELEMENTS (1ull << 40)

deco_status_t deco_dequant(deco_ctx_t *ctx, const deco_dequant_args_t *a) {
  static const char op[] = "deco_dequant";
  DECO_CHECK_CTX(ctx, a, op);
  const char *tname = deco_quant_type_name(a->type);
  /* DECO_QUANT_BLOCK elements are whole blocks of every type deco reads. */
  if (deco_quant_bytes(a->type, DECO_QUANT_BLOCK) == 0)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                     "%s: type = %d is not a stored type deco reads (F32, F16, BF16, Q8_0, Q4_0, Q4_1)", op,
                     (int)a->type);
  /* Every dtype on either backend: the reference writes f16 and bf16 too. */
  if (a->out_dtype != DECO_DTYPE_F32 && a->out_dtype != DECO_DTYPE_F16 && a->out_dtype != DECO_DTYPE_BF16)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: out_dtype = %d is not a dtype", op, (int)a->out_dtype);
  if ((unsigned long long)a->n > DECO_MAX_DEQUANT_ELEMENTS)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: n = %zu exceeds %llu elements", op, a->n,
                     DECO_MAX_DEQUANT_ELEMENTS);
  const size_t in_bytes = deco_quant_bytes(a->type, a->n);
  if (a->n != 0 && in_bytes == 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: n = %zu is not a multiple of the %s block (%d elements)",
                     op, a->n, tname, DECO_QUANT_BLOCK);
  DECO_CHECK_PTR(ctx, a->in, op);
  DECO_CHECK_PTR(ctx, a->out, op);
  if (a->n == 0) return DECO_STATUS_SUCCESS;
  if (deco_spans_overlap(a->in, in_bytes, a->out, a->n * deco_dtype_size(a->out_dtype)))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: out overlaps in", op);
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, dequant, a);
}
