/* host/core/half.c — f32 <-> bf16 / f16 on the host, round-to-nearest-even,
 * bit-identical to the device's __float2bfloat16_rn / __float2half_rn for
 * every non-NaN input (NaN stays NaN).
 */
#include <string.h>

#include "core/internal.h"

uint16_t deco_f32_to_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float deco_bf16_to_f32(uint16_t x) {
  uint32_t u = (uint32_t)x << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

uint16_t deco_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
  if (ax < 0x38800000u) {                                    /* below 2^-14: subnormal or zero */
    if (ax < 0x33000000u) return (uint16_t)sign;             /* below 2^-25 (ties to even 0) */
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e; /* value / 2^-24 = m * 2^(e - 126) */
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = (ax >> 13) - (112u << 10); /* rebias the exponent 127 -> 15 */
  uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
  return (uint16_t)(sign | r);
}

float deco_f16_to_f32(uint16_t h) {
  uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  uint32_t u;
  if (e == 0) {
    if (m == 0) {
      u = sign;
    } else { /* subnormal: normalise */
      int shift = 0;
      while (!(m & 0x400u)) {
        m <<= 1;
        shift++;
      }
      m &= 0x3ffu;
      u = sign | ((uint32_t)(113 - shift) << 23) | (m << 13);
    }
  } else if (e == 31) {
    u = sign | 0x7f800000u | (m << 13);
  } else {
    u = sign | ((e + 112u) << 23) | (m << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

float deco_load_as_f32(const void *base, size_t i, deco_dtype_t dtype) {
  switch (dtype) {
  case DECO_DTYPE_F32: return ((const float *)base)[i];
  case DECO_DTYPE_F16: return deco_f16_to_f32(((const uint16_t *)base)[i]);
  case DECO_DTYPE_BF16: return deco_bf16_to_f32(((const uint16_t *)base)[i]);
  }
  return 0.0f;
}
