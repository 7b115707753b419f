/* kernels/quant/quant_types.c — names and sizes of the stored weight types
 * (deco/quant.h), from the block table of quant_block.h; here because the
 * kernels build without the host layer.
 */
#include "deco/quant.h"
#include "quant/quant_block.h"

const char *deco_quant_type_name(deco_quant_type_t type) {
  switch (type) {
  case DECO_QUANT_F32: return "F32";
  case DECO_QUANT_F16: return "F16";
  case DECO_QUANT_BF16: return "BF16";
  case DECO_QUANT_Q4_0: return "Q4_0";
  case DECO_QUANT_Q4_1: return "Q4_1";
  case DECO_QUANT_Q8_0: return "Q8_0";
  }
  return "?";
}

size_t deco_quant_bytes(deco_quant_type_t type, size_t n) {
  uint32_t elems, bytes;
  if (!deco_qb_block((int)type, &elems, &bytes) || n % elems != 0) return 0;
  /* n / elems * bytes <= n * 4: callers bound n far below SIZE_MAX / 4. */
  return n / elems * bytes;
}
