/* kernels/select/topk_key.h — the total order of deco_topk_rows, shared by
 * the C reference and the CUDA kernel so both pick the same ids: a logit x
 * at id i becomes one 64-bit key, value in the high word (the
 * order-preserving image of common/float_key.h: -0 and +0 equal; NaN below
 * -inf) and ~i in the low word, so larger keys are larger values and, among
 * equal values, lower ids. Keys of one row are distinct; 0 is below every
 * key and marks "no entry".
 */
#ifndef DECO_KERNELS_SELECT_TOPK_KEY_H
#define DECO_KERNELS_SELECT_TOPK_KEY_H

#include <stdint.h>

#include "common/float_key.h"
#include "common/hd.h"

DECO_KERNEL_HD uint32_t deco_topk_value_key(float x) {
  if (x != x) return 0u; /* NaN: the lowest value */
  return deco_float_key(x);
}

/* -inf maps to 0x007FFFFF and ids are < 2^24, so a real key is never 0. */
DECO_KERNEL_HD uint64_t deco_topk_key(float x, int32_t id) {
  return ((uint64_t)deco_topk_value_key(x) << 32) | (uint64_t)(~(uint32_t)id);
}

DECO_KERNEL_HD int32_t deco_topk_key_id(uint64_t key) { return (int32_t)(~(uint32_t)key); }

#endif
