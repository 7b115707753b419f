/* host/model/model_view.c — views of a model: the same weights (pointers
 * into the base model's arena, never copied) run under a layer schedule of
 * the view's own, with the view's own forward scratch and workspace, so a
 * view and its base can run forwards in turn on their own caches (a
 * layer-subset draft of the target: self-speculative drafting). A view's
 * groups of several layers run fused, on stacked norm-folded Q/K/V copies
 * of those layers' weights (fused_group.c).
 */
#include <stdlib.h>
#include <string.h>

#include "deco/comm.h"
#include "model/model_internal.h"

static deco_status_t create_view(deco_model_t *base, const deco_layer_schedule_t *schedule, deco_comm_t *comm,
                                 deco_model_t **out, const char *op) {
  if (!base || !schedule || !out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  deco_ctx_t *ctx = base->ctx;
  *out = NULL;
  if (base->tp_size > 1 || base->lp_comm)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                     "%s: a view of a tensor-parallel model is unsupported (model drafts run at TP 1)", op);
  int max_group = 1;
  DECO_TRY(deco_schedule_check(ctx, schedule, base->hp.n_layers, &max_group, op));
  deco_model_t *m = calloc(1, sizeof *m);
  if (!m) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  m->ctx = ctx;
  m->hp = base->hp;
  m->full = base->full;
  m->shard = base->shard;
  m->dtype = base->dtype;
  m->w = base->w;     /* borrowed: arena stays NULL, so destroying the view frees no weight */
  m->tp_size = 1;
  m->schedule.max_group = max_group;
  if (schedule->n_groups > 0) {
    const size_t bytes = sizeof(int) * (size_t)schedule->n_groups;
    m->schedule.first = malloc(bytes);
    m->schedule.count = malloc(bytes);
    if (!m->schedule.first || !m->schedule.count) {
      deco_model_destroy(m);
      return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
    }
    memcpy(m->schedule.first, schedule->first, bytes);
    memcpy(m->schedule.count, schedule->count, bytes);
    m->schedule.n_groups = schedule->n_groups;
  }
  if (comm) {
    /* Across ranks each rank runs one layer of a group: nothing to fuse. */
    m->lp_comm = comm;
    m->lp_rank = deco_comm_rank(comm);
    m->lp_size = deco_comm_size(comm);
    *out = m;
    return DECO_STATUS_SUCCESS;
  }
  /* The groups of more than one layer run fused: their Q/K/V weights
   * stacked with the attention norms folded in (host/model/fused_group.c). */
  deco_status_t st = deco_model_fuse_groups(m);
  if (st != DECO_STATUS_SUCCESS) {
    deco_model_destroy(m);
    return st;
  }
  *out = m;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_model_create_view(deco_model_t *base, const deco_layer_schedule_t *schedule,
                                     deco_model_t **out) {
  return create_view(base, schedule, NULL, out, "deco_model_create_view");
}

deco_status_t deco_model_create_view_ranks(deco_model_t *base, const deco_layer_schedule_t *schedule,
                                           deco_comm_t *comm, deco_model_t **out) {
  static const char op[] = "deco_model_create_view_ranks";
  if (!base || !schedule || !comm || !out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  DECO_TRY(deco_model_check_comm_backend(base->ctx, comm, op));
  int max_group = 1;
  DECO_TRY(deco_schedule_check(base->ctx, schedule, base->hp.n_layers, &max_group, op));
  const int size = deco_comm_size(comm);
  if (size < max_group)
    return DECO_FAIL(base->ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: a group of %d layers needs %d ranks, the communicator has %d", op, max_group, max_group,
                     size);
  return create_view(base, schedule, comm, out, op);
}
