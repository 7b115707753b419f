/* kernels/common/dtype.c — sizes and names of the dtypes (deco/core.h),
 * here because kernels size rows and word their messages with them, and
 * the kernels build without the host layer.
 */
#include "deco/core.h"

size_t deco_dtype_size(deco_dtype_t dtype) {
  switch (dtype) {
  case DECO_DTYPE_F32: return 4;
  case DECO_DTYPE_F16: return 2;
  case DECO_DTYPE_BF16: return 2;
  }
  return 0;
}

const char *deco_dtype_name(deco_dtype_t dtype) {
  switch (dtype) {
  case DECO_DTYPE_F32: return "f32";
  case DECO_DTYPE_F16: return "f16";
  case DECO_DTYPE_BF16: return "bf16";
  }
  return "?";
}
