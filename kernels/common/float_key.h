/* kernels/common/float_key.h — the order-preserving u32 image of a float
 * that the C references and the CUDA kernels rank values by (top-k rows,
 * top-k / top-p in stochastic acceptance): larger float -> larger key, -0
 * folded onto +0 so that the key agrees with float comparison, NaN left to
 * its bits (a caller that ranks NaN somewhere tests for it first).
 */
#ifndef DECO_KERNELS_FLOAT_KEY_H
#define DECO_KERNELS_FLOAT_KEY_H

#include <stdint.h>
#include <string.h>

#include "common/hd.h"

DECO_KERNEL_HD uint32_t deco_float_key(float x) {
  uint32_t b;
#ifdef __CUDA_ARCH__
  b = __float_as_uint(x);
#else
  memcpy(&b, &x, sizeof b);
#endif
  if (x == 0.0f) b = 0u; /* -0 ties with +0 */
  /* Negative floats order backwards as integers: flip all their bits; set
   * the sign bit of the others so every positive key is above them. */
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/* Inverse of deco_float_key (for keys it produced; -0 comes back as +0). */
DECO_KERNEL_HD float deco_float_unkey(uint32_t k) {
  const uint32_t b = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
#ifdef __CUDA_ARCH__
  return __uint_as_float(b);
#else
  float x;
  memcpy(&x, &b, sizeof x);
  return x;
#endif
}

#endif
