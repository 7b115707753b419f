/* kernels/init/convert_ref.c — reference dtype conversion; on the CPU
 * backend both sides are f32, so this is a copy. in/out [n].
 */
#include <string.h>

#include "common/op_impl.h"

deco_status_t deco_convert_ref(const deco_exec_t *exec, const deco_convert_args_t *a) {
  (void)exec;
  memmove(a->out, a->in, a->n * sizeof(float));
  return DECO_STATUS_SUCCESS;
}
