/* host/draft/recycle.c — Token Recycling as a drafter (Luo et al. 2024):
 * a draft fills the static template from the table, root first
 * (deco_recycle_draft); after each verification the top-k of every tree
 * node's raw logits is written back into the table (deco_topk_rows, then
 * deco_recycle_update), rejected nodes included. Drafting and the update
 * run on the device, so the drafter can stay device-resident; host drafting
 * uploads the root and reads the tree back.
 */
#include <stdlib.h>
#include <string.h>

#include "deco/select.h"
#include "draft/drafter.h"
#include "draft/recycle_table.h"
#include "model/model_access.h"
#include "util/arena.h"

typedef struct recycle_drafter {
  deco_drafter_t base;
  deco_recycler_t *recycler;  /* borrowed */
  deco_tree_template_t tmpl;  /* copied */
  deco_model_t *model;        /* set by plan */
  void *block;                /* context memory: the template and the host draft's root and tokens */
  int32_t *d_parent, *d_rank, *d_root, *d_draft; /* [n] [n] [1] [n] in block */
  int32_t *topk;              /* [topk_rows][k] top-k ids of a step's nodes */
  int topk_rows;
  int32_t *last;              /* [n_last] host: each sequence's last id, by handle */
  int n_last;
} recycle_drafter_t;

static void block_layout(deco_arena_t *a, recycle_drafter_t *r) {
  const size_t n = (size_t)r->tmpl.n_nodes, w = sizeof(int32_t);
  r->d_parent = deco_arena_take(a, n, w, w);
  r->d_rank = deco_arena_take(a, n, w, w);
  r->d_root = deco_arena_take(a, 1, w, w);
  r->d_draft = deco_arena_take(a, n, w, w);
}

static deco_status_t recycle_plan(deco_drafter_t *d, deco_model_t *m, const deco_draft_observation_t *proto,
                                  size_t *ws) {
  static const char op[] = "token recycling";
  recycle_drafter_t *r = (recycle_drafter_t *)d;
  deco_ctx_t *ctx = deco_model_ctx(m);
  const int V = deco_model_get_hparams(m)->vocab_size, k = deco_recycler_k(r->recycler);
  if (ctx != d->ctx)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the table lives in another context than the model", op);
  if (deco_recycler_vocab(r->recycler) != V)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the table has vocab %d, the model %d", op,
                     deco_recycler_vocab(r->recycler), V);
  r->model = m;
  if (proto->n_nodes > r->topk_rows) {
    deco_free(ctx, r->topk);
    r->topk = NULL;
    r->topk_rows = 0;
    DECO_TRY(deco_malloc(ctx, (void **)&r->topk, sizeof(int32_t) * (size_t)proto->n_nodes * k));
    r->topk_rows = proto->n_nodes;
  }
  deco_topk_rows_args_t ta = {.n_rows = proto->n_nodes, .vocab = V, .k = k, .dtype = DECO_DTYPE_F32,
                              .logits = proto->logits, .row_count = proto->row_count, .ids = r->topk,
                              .values = NULL};
  deco_recycle_update_args_t ua = {.n_trees = proto->n_trees, .n_nodes = proto->n_nodes,
                                   .tree_indptr = proto->tree_indptr, .tokens = proto->tokens, .topk = r->topk,
                                   .table = deco_recycler_table(r->recycler), .vocab = V, .k = k};
  const size_t t = deco_topk_rows_workspace_size(ctx, &ta), u = deco_recycle_update_workspace_size(ctx, &ua);
  if (t > *ws) *ws = t;
  if (u > *ws) *ws = u;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t remember_last(recycle_drafter_t *r, int seq, int32_t id) {
  if (seq >= r->n_last) {
    int32_t *grown = realloc(r->last, sizeof(int32_t) * (size_t)(seq + 1));
    if (!grown) return DECO_FAIL(r->base.ctx, DECO_STATUS_OUT_OF_MEMORY, "token recycling: out of host memory");
    for (int i = r->n_last; i <= seq; ++i) grown[i] = -1;
    r->last = grown;
    r->n_last = seq + 1;
  }
  r->last[seq] = id;
  return DECO_STATUS_SUCCESS;
}

/* Forgets seq's last id (keep: every other sequence's); the table, which
 * every sequence shares, stays. */
static void recycle_end(deco_drafter_t *d, int seq, int keep) {
  recycle_drafter_t *r = (recycle_drafter_t *)d;
  for (int s = 0; s < r->n_last; ++s)
    if (keep ? s != seq : s == seq) r->last[s] = -1;
}

static deco_status_t recycle_begin(deco_drafter_t *d, deco_model_t *m, int seq, const int32_t *ids, int n) {
  return remember_last((recycle_drafter_t *)d, seq, ids[n - 1]);
}

static deco_status_t recycle_observe_host(deco_drafter_t *d, int seq, const int32_t *emitted, int n) {
  return n > 0 ? remember_last((recycle_drafter_t *)d, seq, emitted[n - 1]) : DECO_STATUS_SUCCESS;
}

static deco_status_t recycle_draft_device(deco_drafter_t *d, const deco_draft_device_args_t *a) {
  recycle_drafter_t *r = (recycle_drafter_t *)d;
  deco_recycle_draft_args_t da = {.n_trees = a->n_trees, .n_nodes = r->tmpl.n_nodes, .roots = a->roots,
                                  .parent = r->d_parent, .rank = r->d_rank,
                                  .table = deco_recycler_table(r->recycler),
                                  .vocab = deco_recycler_vocab(r->recycler), .k = deco_recycler_k(r->recycler),
                                  .tokens = a->tokens};
  return deco_recycle_draft(d->ctx, &da);
}

static deco_status_t recycle_draft_host(deco_drafter_t *d, int seq, int32_t *tokens, int32_t *parents, int *n) {
  recycle_drafter_t *r = (recycle_drafter_t *)d;
  deco_ctx_t *ctx = d->ctx;
  if (seq < 0 || seq >= r->n_last || r->last[seq] < 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "token recycling: sequence %d was not begun", seq);
  const int nn = r->tmpl.n_nodes;
  DECO_TRY(deco_memcpy(ctx, r->d_root, &r->last[seq], sizeof(int32_t), DECO_COPY_HOST_TO_CTX));
  deco_draft_device_args_t a = {.n_trees = 1, .roots = r->d_root, .tokens = r->d_draft};
  DECO_TRY(recycle_draft_device(d, &a));
  DECO_TRY(deco_memcpy(ctx, tokens, r->d_draft, sizeof(int32_t) * (size_t)nn, DECO_COPY_CTX_TO_HOST));
  memcpy(parents, r->tmpl.parent, sizeof(int32_t) * (size_t)nn);
  *n = nn;
  return DECO_STATUS_SUCCESS;
}

/* M[token j] <- top-k(logits j) for every node of the step. */
static deco_status_t recycle_observe_device(deco_drafter_t *d, const deco_draft_observation_t *o) {
  recycle_drafter_t *r = (recycle_drafter_t *)d;
  deco_ctx_t *ctx = d->ctx;
  if (!r->model || o->n_nodes > r->topk_rows)
    return DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "token recycling: a step of %d nodes beyond the plan's %d", o->n_nodes,
                     r->topk_rows);
  const int k = deco_recycler_k(r->recycler);
  deco_topk_rows_args_t ta = {.n_rows = o->n_nodes, .vocab = o->vocab, .k = k, .dtype = DECO_DTYPE_F32,
                              .logits = o->logits, .row_count = o->row_count, .ids = r->topk, .values = NULL};
  DECO_TRY(deco_model_ensure_workspace(r->model, deco_topk_rows_workspace_size(ctx, &ta)));
  DECO_TRY(deco_topk_rows(ctx, &ta));
  deco_recycle_update_args_t ua = {.n_trees = o->n_trees, .n_nodes = o->n_nodes, .tree_indptr = o->tree_indptr,
                                   .tokens = o->tokens, .topk = r->topk,
                                   .table = deco_recycler_table(r->recycler), .vocab = o->vocab, .k = k};
  DECO_TRY(deco_model_ensure_workspace(r->model, deco_recycle_update_workspace_size(ctx, &ua)));
  return deco_recycle_update(ctx, &ua);
}

static void recycle_destroy(deco_drafter_t *d) {
  recycle_drafter_t *r = (recycle_drafter_t *)d;
  deco_free(d->ctx, r->block);
  deco_free(d->ctx, r->topk);
  free(r->last);
  free(r);
}

static const deco_drafter_ops_t recycle_ops = {
    .name = "recycle",
    .plan = recycle_plan,
    .begin = recycle_begin,
    .draft_host = recycle_draft_host,
    .draft_device = recycle_draft_device,
    .observe_device = recycle_observe_device,
    .observe_host = recycle_observe_host,
    .end = recycle_end,
    .destroy = recycle_destroy,
};

deco_status_t deco_drafter_create_recycle(deco_recycler_t *recycler, const deco_tree_template_t *tmpl,
                                          deco_drafter_t **out) {
  static const char op[] = "deco_drafter_create_recycle";
  if (!recycler || !tmpl || !out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  *out = NULL;
  deco_ctx_t *ctx = deco_recycler_ctx(recycler);
  if (deco_tree_validate(tmpl->parent, tmpl->n_nodes) != DECO_STATUS_SUCCESS)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: template: %s", op, deco_last_error(NULL));
  if (deco_tree_template_check_k(tmpl, deco_recycler_k(recycler), "the template") != DECO_STATUS_SUCCESS)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: %s", op, deco_last_error(NULL));
  recycle_drafter_t *r = calloc(1, sizeof *r);
  if (!r) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  r->recycler = recycler;
  r->tmpl = *tmpl;
  r->base = (deco_drafter_t){.ops = &recycle_ops, .max_nodes = tmpl->n_nodes, .device_resident = 1,
                             .shape_parents = r->tmpl.parent, .ctx = ctx};
  /* The template in context memory, for every draft. */
  deco_arena_t a = DECO_ARENA_SIZING;
  block_layout(&a, r);
  deco_status_t st = deco_malloc(ctx, &r->block, a.bytes);
  if (st == DECO_STATUS_SUCCESS) {
    a = deco_arena_at(r->block);
    block_layout(&a, r);
    st = deco_memcpy(ctx, r->d_parent, r->tmpl.parent, sizeof(int32_t) * (size_t)tmpl->n_nodes,
                     DECO_COPY_HOST_TO_CTX);
  }
  if (st == DECO_STATUS_SUCCESS)
    st = deco_memcpy(ctx, r->d_rank, r->tmpl.rank, sizeof(int32_t) * (size_t)tmpl->n_nodes, DECO_COPY_HOST_TO_CTX);
  if (st != DECO_STATUS_SUCCESS) {
    recycle_destroy(&r->base);
    return st;
  }
  *out = &r->base;
  return DECO_STATUS_SUCCESS;
}
