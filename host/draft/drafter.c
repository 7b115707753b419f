/* host/draft/drafter.c — deco_drafter_t's public entry points and the
 * pipeline's calls into a drafter's hooks (host/draft/drafter.h): argument
 * checks here, the work in each drafter's file.
 */
#include "draft/drafter.h"

#include "deco/tree.h"

void deco_drafter_destroy(deco_drafter_t *d) {
  if (d && d->ops->destroy) d->ops->destroy(d);
}

const char *deco_drafter_name(const deco_drafter_t *d) { return d ? d->ops->name : "none"; }
int deco_drafter_max_nodes(const deco_drafter_t *d) { return d ? d->max_nodes : 1; }
int deco_drafter_device_resident(const deco_drafter_t *d) { return d ? d->device_resident : 0; }

deco_status_t deco_drafter_plan(deco_drafter_t *d, deco_model_t *m, const deco_draft_observation_t *proto,
                                size_t *workspace_bytes) {
  return d->ops->plan ? d->ops->plan(d, m, proto, workspace_bytes) : DECO_STATUS_SUCCESS;
}

deco_status_t deco_drafter_begin(deco_drafter_t *d, deco_model_t *m, int seq, const int32_t *ids, int n_ids) {
  static const char op[] = "deco_drafter_begin";
  if (!d || !m) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: %s is NULL", op, d ? "model" : "drafter");
  deco_ctx_t *ctx = deco_model_ctx(m);
  DECO_CHECK_PTR(ctx, ids, op);
  DECO_CHECK_RANGE(ctx, seq, 0, 1 << 20, op);
  DECO_CHECK_RANGE(ctx, n_ids, 1, 1 << 30, op);
  return d->ops->begin ? d->ops->begin(d, m, seq, ids, n_ids) : DECO_STATUS_SUCCESS;
}

void deco_drafter_end(deco_drafter_t *d, int seq) {
  if (d && d->ops->end) d->ops->end(d, seq, 0);
}

int deco_drafter_max_steps(const deco_drafter_t *d) { return d && d->ops->max_steps ? d->ops->max_steps(d) : 0; }

void deco_drafter_keep_only(deco_drafter_t *d, int seq) {
  if (d && d->ops->end) d->ops->end(d, seq, 1);
}

deco_status_t deco_drafter_draft(deco_drafter_t *d, int seq, int32_t *tokens, int32_t *parents, int *n_nodes) {
  static const char op[] = "deco_drafter_draft";
  if (!d || !tokens || !parents || !n_nodes) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  if (!d->ops->draft_host)
    return DECO_FAIL(d->ctx, DECO_STATUS_UNSUPPORTED, "%s: the %s drafter drafts on the device only", op, d->ops->name);
  DECO_TRY(d->ops->draft_host(d, seq, tokens, parents, n_nodes));
  if (*n_nodes < 1 || *n_nodes > d->max_nodes)
    return DECO_FAIL(d->ctx, DECO_STATUS_INTERNAL, "%s: the %s drafter made %d nodes, at most %d", op, d->ops->name,
                     *n_nodes, d->max_nodes);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_drafter_refuse_device(const deco_drafter_t *d, deco_ctx_t *ctx, const char *op) {
  const char *why = d->host_only;
  return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "%s: the %s drafter drafts on the host%s%s%s; it has no device-resident loop",
                   op, d->ops->name, why ? " (" : "", why ? why : "", why ? ")" : "");
}

deco_status_t deco_drafter_draft_device(deco_drafter_t *d, const deco_draft_device_args_t *a) {
  if (!d->device_resident || !d->ops->draft_device) return deco_drafter_refuse_device(d, d->ctx, "deco_generate");
  return d->ops->draft_device(d, a);
}

deco_status_t deco_drafter_observe_device(deco_drafter_t *d, const deco_draft_observation_t *o) {
  return d && d->ops->observe_device ? d->ops->observe_device(d, o) : DECO_STATUS_SUCCESS;
}

deco_status_t deco_drafter_observe_host(deco_drafter_t *d, int seq, const int32_t *emitted, int n) {
  return d && d->ops->observe_host ? d->ops->observe_host(d, seq, emitted, n) : DECO_STATUS_SUCCESS;
}

deco_status_t deco_drafter_draft_probs(deco_drafter_t *d, int seq, deco_draft_kind_t *kind, const float **q) {
  *kind = DECO_DRAFT_DETERMINISTIC;
  *q = NULL;
  return d && d->ops->draft_probs ? d->ops->draft_probs(d, seq, kind, q) : DECO_STATUS_SUCCESS;
}

void deco_drafter_device_probs(const deco_drafter_t *d, deco_draft_kind_t *kind, const float **q) {
  *kind = DECO_DRAFT_DETERMINISTIC;
  *q = NULL;
  if (d && d->ops->device_probs) d->ops->device_probs(d, kind, q);
}
