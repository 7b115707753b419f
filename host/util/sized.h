/* host/util/sized.h — library-private: reading a public config struct that
 * carries its own size (as NCCL's ncclConfig_t does), so that the struct can
 * grow without breaking programs built against an older header: fields the
 * caller's struct does not have keep their defaults, a struct larger than
 * the library's is refused.
 */
#ifndef DECO_HOST_UTIL_SIZED_H
#define DECO_HOST_UTIL_SIZED_H

#include <string.h>

#include "core/internal.h"

/* *out <- defaults overlaid with the caller's first in->size bytes.
 * `size` must be the first member (a size_t) of the struct. what names the
 * argument in messages ("deco_generate: config"). */
static inline deco_status_t deco_sized_read(deco_ctx_t *ctx, void *out, const void *in, const void *defaults,
                                            size_t full, const char *what) {
  size_t given;
  memcpy(&given, in, sizeof given);
  if (given < sizeof(size_t) + 1 || given > full)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: size = %zu, expected %zu (start from its DECO_..._INIT macro)", what, given, full);
  memcpy(out, defaults, full);
  memcpy((char *)out + sizeof(size_t), (const char *)in + sizeof(size_t), given - sizeof(size_t));
  memcpy(out, &full, sizeof full);
  return DECO_STATUS_SUCCESS;
}

#endif
