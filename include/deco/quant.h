/* deco/quant.h — weights stored in ggml's formats (the tensor types of GGUF
 * files) turned into a dtype deco computes in: deco_dequant reads F32, F16,
 * BF16 and the block formats Q8_0, Q4_0 and Q4_1, and writes f32, f16 or
 * bf16. The GGUF loader (deco_model_load_gguf) calls it once per tensor at
 * load time; the forward itself never sees a quantised weight.
 */
#ifndef DECO_QUANT_H
#define DECO_QUANT_H

#include <stddef.h>

#include "deco/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The stored types, numbered as ggml numbers them (GGUF's tensor type ids). */
typedef enum deco_quant_type {
  DECO_QUANT_F32 = 0,
  DECO_QUANT_F16 = 1,
  DECO_QUANT_Q4_0 = 2, /* blocks of 32: f16 d, 16 bytes of nibbles; x = d * (q - 8) */
  DECO_QUANT_Q4_1 = 3, /* blocks of 32: f16 d, f16 m, 16 bytes of nibbles; x = fmaf(d, q, m) */
  DECO_QUANT_Q8_0 = 8, /* blocks of 32: f16 d, 32 int8; x = d * q */
  DECO_QUANT_BF16 = 30
} deco_quant_type_t;

/* Elements per block of the Q formats (the others are one element). */
#define DECO_QUANT_BLOCK 32

/* "F32", "Q4_1", ...; "?" for a type deco does not read (never NULL). */
DECO_API const char *deco_quant_type_name(deco_quant_type_t type);
/* Bytes n elements of type take; 0 for a type deco does not read or an n
 * that is not a whole number of blocks. */
DECO_API size_t deco_quant_bytes(deco_quant_type_t type, size_t n);

/* out[i] = element i of in, decoded exactly to f32 (the block formats as
 * ggml and the gguf package define them: every value is bitwise the
 * package's), then rounded to out_dtype (nearest even) when that is f16 or
 * bf16. Both backends give the same bits. in holds deco_quant_bytes(type, n)
 * bytes in context memory at any alignment; out [n] in out_dtype. Unlike
 * the model's ops, the CPU backend writes f16 and bf16 too (a host-side
 * loader can prepare such weights with it). */
typedef struct deco_dequant_args {
  deco_quant_type_t type;
  deco_dtype_t out_dtype;
  size_t n;       /* elements, a multiple of the type's block */
  const void *in;
  void *out;
} deco_dequant_args_t;
#define DECO_DEQUANT_ARGS_INIT \
  {.type = DECO_QUANT_F32, .out_dtype = DECO_DTYPE_F32, .n = 0, .in = NULL, .out = NULL}
DECO_API deco_status_t deco_dequant(deco_ctx_t *ctx, const deco_dequant_args_t *args);

#ifdef __cplusplus
}
#endif
#endif /* DECO_QUANT_H */
