/* kernels/init/fill_random_ref.c — reference seeded fill for synthetic
 * weights: u = Philox4x32-10 of counter (i low, i high, tensor, 0), key seed;
 * out[i] = constant != 0 ? constant : (2u - 1) * scale. out [n] f32.
 */
#include "common/op_impl.h"
#include "deco/philox.h"

deco_status_t deco_fill_random_ref(const deco_exec_t *exec, const deco_fill_random_args_t *a) {
  (void)exec;
  float *o = (float *)a->out;
  if (a->constant != 0.0f) {
    for (size_t i = 0; i < a->n; ++i) o[i] = a->constant;
    return DECO_STATUS_SUCCESS;
  }
  for (size_t i = 0; i < a->n; ++i) {
    deco_philox_u32x4_t r = deco_philox4x32_10((uint32_t)i, (uint32_t)((uint64_t)i >> 32), a->tensor, 0,
                                               (uint32_t)a->seed, (uint32_t)(a->seed >> 32));
    float u = deco_philox_to_unit(r.v[0]);
    o[i] = (2.0f * u - 1.0f) * a->scale;
  }
  return DECO_STATUS_SUCCESS;
}
