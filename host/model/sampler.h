/* host/model/sampler.h — the sampling law's check, one for the sampler
 * (deco_sampler_create) and the speculative loops (deco_generate).
 */
#ifndef DECO_HOST_SAMPLER_H
#define DECO_HOST_SAMPLER_H

#include "deco/core.h"

/* top_k in [0, 2^24] (0: off), a finite temperature >= 0 (0: greedy) and a
 * finite top_p > 0 (above 1 the nucleus is everything, as at 1). Errors
 * name op and go to ctx (NULL: the thread's last error). */
deco_status_t deco_sampling_law_check(deco_ctx_t *ctx, int top_k, float temperature, float top_p, const char *op);

#endif
