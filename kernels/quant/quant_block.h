/* kernels/quant/quant_block.h — ggml's weight formats, one definition for the
 * dequantisation op (dequant_ref.c, dequant.cu) and the GGUF reader
 * (host/model/gguf.c): the block layouts of Q4_0, Q4_1 and Q8_0, element i
 * of a tensor of any of the six types deco reads as the exact f32 value, and
 * the f32 -> f16 / bf16 roundings of the op's output. Integer code only
 * (no intrinsics), shared by the C reference and the CUDA kernel, so both
 * give the same bits by construction.
 *
 * Blocks of 32 elements. Q4_0: f16 d, 16 bytes of nibbles, x = d * (q - 8).
 * Q4_1: f16 d, f16 m, 16 bytes of nibbles, x = fmaf(d, q, m). Q8_0: f16 d,
 * 32 int8, x = d * q. Byte j of the nibbles holds element j (j < 16) in its
 * low nibble and element j + 16 in its high one. d*q is exact in fp32 (an
 * 11-bit significand times an integer below 2^8), so Q4_0 and Q8_0 round
 * once, and Q4_1's fmaf rounds once like the gguf package's (d*q) + m: every
 * value equals the package's (tests/test_gguf.c checks it bit for bit).
 */
#ifndef DECO_KERNELS_QUANT_BLOCK_H
#define DECO_KERNELS_QUANT_BLOCK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/hd.h"
#include "deco/quant.h"

#define DECO_QB_Q4_0_BYTES 18
#define DECO_QB_Q4_1_BYTES 20
#define DECO_QB_Q8_0_BYTES 34

/* Elements and bytes of one block of a type deco reads; 0 for another. */
DECO_KERNEL_HD int deco_qb_block(int type, uint32_t *elems, uint32_t *bytes) {
  switch (type) {
    case DECO_QUANT_F32: *elems = 1, *bytes = 4; return 1;
    case DECO_QUANT_F16: case DECO_QUANT_BF16: *elems = 1, *bytes = 2; return 1;
    case DECO_QUANT_Q4_0: *elems = DECO_QUANT_BLOCK, *bytes = DECO_QB_Q4_0_BYTES; return 1;
    case DECO_QUANT_Q4_1: *elems = DECO_QUANT_BLOCK, *bytes = DECO_QB_Q4_1_BYTES; return 1;
    case DECO_QUANT_Q8_0: *elems = DECO_QUANT_BLOCK, *bytes = DECO_QB_Q8_0_BYTES; return 1;
    default: *elems = 0, *bytes = 0; return 0;
  }
}

/* Little-endian loads from any alignment (GGUF blocks are 2-byte aligned at
 * best; a caller's buffer may be anywhere). */
DECO_KERNEL_HD uint32_t deco_qb_u16(const unsigned char *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
DECO_KERNEL_HD uint32_t deco_qb_u32(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

DECO_KERNEL_HD float deco_qb_as_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}

DECO_KERNEL_HD uint32_t deco_qb_as_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
#endif
}

/* IEEE half -> float, exact for every input (subnormals normalised, NaN
 * payloads kept); the same bits as host/core/half.c's deco_f16_to_f32. */
DECO_KERNEL_HD float deco_qb_f16(uint32_t h) {
  uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
  if (e == 0) {
    if (m == 0) {
      u = sign;
    } else { /* subnormal: normalise */
      uint32_t shift = 0;
      while (!(m & 0x400u)) {
        m <<= 1;
        shift++;
      }
      u = sign | ((113u - shift) << 23) | ((m & 0x3ffu) << 13);
    }
  } else if (e == 31) {
    u = sign | 0x7f800000u | (m << 13);
  } else {
    u = sign | ((e + 112u) << 23) | (m << 13);
  }
  return deco_qb_as_float(u);
}

DECO_KERNEL_HD float deco_qb_bf16(uint32_t h) { return deco_qb_as_float(h << 16); }

/* Element j (0..31) of one block. */
DECO_KERNEL_HD float deco_qb_q4_0(const unsigned char *blk, int j) {
  const float d = deco_qb_f16(deco_qb_u16(blk));
  const unsigned char b = blk[2 + (j & 15)];
  const int q = j < 16 ? (b & 0x0f) : (b >> 4);
  return d * (float)(q - 8);
}

DECO_KERNEL_HD float deco_qb_q4_1(const unsigned char *blk, int j) {
  const float d = deco_qb_f16(deco_qb_u16(blk)), m = deco_qb_f16(deco_qb_u16(blk + 2));
  const unsigned char b = blk[4 + (j & 15)];
  const int q = j < 16 ? (b & 0x0f) : (b >> 4);
  return fmaf(d, (float)q, m);
}

DECO_KERNEL_HD float deco_qb_q8_0(const unsigned char *blk, int j) {
  const float d = deco_qb_f16(deco_qb_u16(blk));
  return d * (float)(int8_t)blk[2 + j];
}

/* Element i of a tensor of a type deco reads (deco_qb_block), stored from
 * in; 0 for another type. */
DECO_KERNEL_HD float deco_qb_element(int type, const unsigned char *in, size_t i) {
  switch (type) {
    case DECO_QUANT_F32: return deco_qb_as_float(deco_qb_u32(in + 4 * i));
    case DECO_QUANT_F16: return deco_qb_f16(deco_qb_u16(in + 2 * i));
    case DECO_QUANT_BF16: return deco_qb_bf16(deco_qb_u16(in + 2 * i));
    case DECO_QUANT_Q4_0: return deco_qb_q4_0(in + i / DECO_QUANT_BLOCK * DECO_QB_Q4_0_BYTES, (int)(i % DECO_QUANT_BLOCK));
    case DECO_QUANT_Q4_1: return deco_qb_q4_1(in + i / DECO_QUANT_BLOCK * DECO_QB_Q4_1_BYTES, (int)(i % DECO_QUANT_BLOCK));
    case DECO_QUANT_Q8_0: return deco_qb_q8_0(in + i / DECO_QUANT_BLOCK * DECO_QB_Q8_0_BYTES, (int)(i % DECO_QUANT_BLOCK));
    default: return 0.0f;
  }
}

/* f32 -> bf16 and f16, round to nearest even (NaN stays a quiet NaN), the
 * same bits as host/core/half.c and the device's __float2bfloat16_rn /
 * __float2half_rn. */
DECO_KERNEL_HD uint16_t deco_qb_round_bf16(float x) {
  uint32_t u = deco_qb_as_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

DECO_KERNEL_HD uint16_t deco_qb_round_f16(float f) {
  const uint32_t x = deco_qb_as_bits(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
  if (ax < 0x38800000u) {                                    /* below 2^-14: subnormal or zero */
    if (ax < 0x33000000u) return (uint16_t)sign;             /* below 2^-25 (ties to even 0) */
    const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e; /* value / 2^-24 = m * 2^(e - 126) */
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = (ax >> 13) - (112u << 10); /* rebias the exponent 127 -> 15 */
  const uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
  return (uint16_t)(sign | r);
}

/* Writes v as element i of out in dtype (deco_dtype_t: f32, f16, bf16). */
DECO_KERNEL_HD void deco_qb_store(void *out, int dtype, size_t i, float v) {
  if (dtype == DECO_DTYPE_F32) ((float *)out)[i] = v;
  else if (dtype == DECO_DTYPE_F16) ((uint16_t *)out)[i] = deco_qb_round_f16(v);
  else ((uint16_t *)out)[i] = deco_qb_round_bf16(v);
}

#endif
