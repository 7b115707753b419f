/* host/spec/device_step.h — library-private: the device-resident
 * speculative step of one sequence, every value it reads or writes in
 * context memory (deco_spec_state_t and the step's arrays), so it can be
 * captured once in a CUDA graph and replayed:
 *   [drafter drafts on the device] → deco_spec_prepare → deco_forward_device
 *   → verification (verify.h) → deco_spec_commit.
 * Plain decoding is the same step with a one-node tree and no drafter.
 * deco_device_step_create sizes and allocates every buffer (the plan);
 * enqueueing a step allocates nothing.
 */
#ifndef DECO_HOST_SPEC_DEVICE_STEP_H
#define DECO_HOST_SPEC_DEVICE_STEP_H

#include "deco/spec.h"

typedef struct deco_device_step deco_device_step_t;

typedef struct deco_device_step_config {
  deco_model_t *model;
  deco_kv_cache_t *cache;
  int seq;                    /* an admitted sequence of cache */
  deco_drafter_t *drafter;    /* device-resident, or NULL (one-node trees) */
  int steps;                  /* forward positions of the whole generation */
  float temperature;
  int top_k;
  float top_p;
  uint64_t seed;
  const int32_t *stop_ids;    /* host; none when n_stop_ids = 0 */
  int n_stop_ids;
  int max_prefill;            /* the largest causal forward to plan for (the prompt's), >= 0 */
} deco_device_step_config_t;

/* Checks the tree (breadth first), carves and uploads what never changes,
 * and plans every buffer of the step and of a prefill of max_prefill tokens. */
deco_status_t deco_device_step_create(const deco_device_step_config_t *config, deco_device_step_t **out);
void deco_device_step_destroy(deco_device_step_t *step);

/* The state of a sequence whose first len positions are committed and
 * whose last id is root (one synchronous upload; nothing allocated). */
deco_status_t deco_device_step_start(deco_device_step_t *step, int len, int32_t root);
/* Enqueues one step: nothing on the host reads device memory, so the call
 * can be captured. */
deco_status_t deco_device_step_enqueue(deco_device_step_t *step);
deco_status_t deco_device_step_state(deco_device_step_t *step, deco_spec_state_t *state);
/* After the run: fails for a malformed verification or non-finite logits
 * (naming the position), else copies the ids emitted to the host (*ids
 * points into the step, valid until it is destroyed) and commits the
 * sequence's length in the cache. */
deco_status_t deco_device_step_finish(deco_device_step_t *step, const int32_t **ids, int *n_ids);

#endif
