/* kernels/recycle/topk_key.h — the total order of deco_topk_rows, shared by
 * the C reference and the CUDA kernel so both pick the same ids: a logit x
 * at id i becomes one 64-bit key, value in the high word (order-preserving
 * image of the float: -0 and +0 equal, NaN below -inf) and ~i in the low
 * word, so larger keys are larger values and, among equal values, lower ids.
 * Keys of one row are distinct; 0 is below every key and marks "no entry".
 */
#ifndef DECO_KERNELS_RECYCLE_TOPK_KEY_H
#define DECO_KERNELS_RECYCLE_TOPK_KEY_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define DECO_TOPK_HD __host__ __device__ __forceinline__
#else
#define DECO_TOPK_HD static inline
#endif

DECO_TOPK_HD uint32_t deco_topk_value_key(float x) {
  if (x != x) return 0u; /* NaN: the lowest value */
  uint32_t b;
#ifdef __CUDA_ARCH__
  b = __float_as_uint(x);
#else
  memcpy(&b, &x, sizeof b);
#endif
  if (x == 0.0f) b = 0u; /* -0 ties with +0, so the lower id wins */
  /* Negative floats order backwards as integers: flip all their bits; set
   * the sign bit of the others so every positive key is above them. */
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/* -inf maps to 0x007FFFFF and ids are < 2^24, so a real key is never 0. */
DECO_TOPK_HD uint64_t deco_topk_key(float x, int32_t id) {
  return ((uint64_t)deco_topk_value_key(x) << 32) | (uint64_t)(~(uint32_t)id);
}

DECO_TOPK_HD int32_t deco_topk_key_id(uint64_t key) { return (int32_t)(~(uint32_t)key); }

#endif
