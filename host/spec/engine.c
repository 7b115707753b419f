/* host/spec/engine.c — one speculative step for a batch of sequences whose
 * draft trees come from the host: tree forward (all nodes' logits) → the
 * verification pipeline (verify.h: acceptance, compaction, the drafter's
 * observation) → commit. Everything between the forward and the final copy
 * of the outputs stays on the device; the host only learns the emitted
 * tokens. Every buffer is sized when the engine is created (the plan).
 */
#include <stdlib.h>
#include <string.h>

#include "model/model_access.h"
#include "model/sampler.h"
#include "spec/verify.h"
#include "util/arena.h"

/* The step's int32 block, in context memory and (same layout) in a host
 * image uploaded at once; path .. nonfinite are read back at once. */
typedef struct engine_block {
  int32_t *indptr;     /* [B + 1] */
  int32_t *parents;    /* [B * N] */
  int32_t *tokens;     /* [B * N] */
  int32_t *path;       /* [B][DECO_TREE_MAX_NODES] */
  int32_t *accept_len; /* [B] */
  int32_t *bonus;      /* [B] */
  int32_t *nonfinite;  /* [B] */
  uint32_t *offset;    /* [1] */
  uint64_t *seed;      /* [1] */
} engine_block_t;

struct deco_spec_engine {
  deco_model_t *model;
  deco_kv_cache_t *cache;
  int max_seqs, max_nodes;
  float *logits;            /* [max_seqs * max_nodes][vocab] */
  deco_drafter_t *drafter;  /* observes every step, or NULL */
  void *block;              /* context memory */
  engine_block_t dev;       /* in block */
  void *image;              /* host memory */
  engine_block_t host;      /* in image */
  size_t block_bytes;
};

static void block_layout(deco_arena_t *a, engine_block_t *b, int B, int N) {
  const size_t w = sizeof(int32_t), nodes = (size_t)B * N;
  b->indptr = deco_arena_take(a, (size_t)B + 1, w, w);
  b->parents = deco_arena_take(a, nodes, w, w);
  b->tokens = deco_arena_take(a, nodes, w, w);
  b->path = deco_arena_take(a, (size_t)B * DECO_TREE_MAX_NODES, w, w);
  b->accept_len = deco_arena_take(a, (size_t)B, w, w);
  b->bonus = deco_arena_take(a, (size_t)B, w, w);
  b->nonfinite = deco_arena_take(a, (size_t)B, w, w);
  b->offset = deco_arena_take(a, 1, sizeof(uint32_t), sizeof(uint32_t));
  b->seed = deco_arena_take(a, 1, sizeof(uint64_t), sizeof(uint64_t));
}

/* The verification of n_trees trees of total nodes (the step's sizes, or
 * the plan's capacities); the compaction reads the last forward's batch. */
static deco_verify_args_t verify_args(const deco_spec_engine_t *e, int n_trees, int total,
                                      const deco_spec_sampling_t *sp) {
  const int32_t *prefix, *table;
  deco_forward_last_batch(e->model, &prefix, &table);
  return (deco_verify_args_t){.n_trees = n_trees,
                              .n_nodes = total,
                              .tree_indptr = e->dev.indptr,
                              .parents = e->dev.parents,
                              .tokens = e->dev.tokens,
                              .row_count = NULL,
                              .logits = e->logits,
                              .temperature = sp->temperature,
                              .top_k = sp->top_k,
                              .top_p = sp->top_p,
                              .seed = e->dev.seed,
                              .offset = e->dev.offset,
                              .prefix_lens = prefix,
                              .block_table = table,
                              .out = {.path = e->dev.path,
                                      .accept_len = e->dev.accept_len,
                                      .bonus = e->dev.bonus,
                                      .nonfinite = e->dev.nonfinite}};
}

/* Every buffer of the largest step: the forward's (max_seqs trees of
 * max_nodes nodes), acceptance's and the drafter's workspace. */
static deco_status_t plan(deco_spec_engine_t *e) {
  const deco_spec_sampling_t sp = DECO_SPEC_SAMPLING_INIT;
  const int B = e->max_seqs, T = e->max_seqs * e->max_nodes;
  deco_forward_plan_t fp = {.max_tokens = T, .max_seqs = B, .causal = 0, .tree = 1, .workspace_bytes = 0};
  /* The forward's scratch first: the verification reads its batch. */
  DECO_TRY(deco_model_plan(e->model, e->cache, &fp, NULL));
  const deco_verify_args_t va = verify_args(e, B, T, &sp);
  DECO_TRY(deco_verify_plan(e->model, e->drafter, &va, &fp.workspace_bytes));
  return deco_model_plan(e->model, e->cache, &fp, NULL);
}

deco_status_t deco_spec_engine_create(deco_model_t *model, deco_kv_cache_t *cache, int max_seqs, int max_nodes,
                                      deco_spec_engine_t **out) {
  static const char op[] = "deco_spec_engine_create";
  if (!model || !cache || !out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  deco_ctx_t *ctx = deco_model_ctx(model);
  *out = NULL;
  if (deco_kv_cache_model(cache) != model)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the cache belongs to another model", op);
  DECO_CHECK_RANGE(ctx, max_seqs, 1, 1 << 20, op);
  DECO_CHECK_RANGE(ctx, max_nodes, 1, DECO_TREE_MAX_NODES, op);
  deco_spec_engine_t *e = calloc(1, sizeof *e);
  if (!e) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  e->model = model;
  e->cache = cache;
  e->max_seqs = max_seqs;
  e->max_nodes = max_nodes;
  deco_arena_t a = DECO_ARENA_SIZING;
  block_layout(&a, &e->dev, max_seqs, max_nodes);
  e->block_bytes = a.bytes;
  e->image = malloc(e->block_bytes);
  deco_status_t st = e->image ? DECO_STATUS_SUCCESS : DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: host memory", op);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, &e->block, e->block_bytes);
  if (st == DECO_STATUS_SUCCESS) {
    memset(e->image, 0, e->block_bytes);
    a = deco_arena_at(e->block);
    block_layout(&a, &e->dev, max_seqs, max_nodes);
    a = deco_arena_at(e->image);
    block_layout(&a, &e->host, max_seqs, max_nodes);
    st = deco_malloc(ctx, (void **)&e->logits,
                     sizeof(float) * (size_t)max_seqs * max_nodes * deco_model_get_hparams(model)->vocab_size);
  }
  if (st == DECO_STATUS_SUCCESS) st = plan(e);
  if (st != DECO_STATUS_SUCCESS) {
    deco_spec_engine_destroy(e);
    return st;
  }
  *out = e;
  return DECO_STATUS_SUCCESS;
}

void deco_spec_engine_destroy(deco_spec_engine_t *e) {
  if (!e) return;
  deco_ctx_t *ctx = deco_model_ctx(e->model);
  deco_free(ctx, e->block);
  deco_free(ctx, e->logits);
  free(e->image);
  free(e);
}

deco_status_t deco_spec_engine_set_drafter(deco_spec_engine_t *e, deco_drafter_t *drafter) {
  if (!e) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_spec_engine_set_drafter: engine is NULL");
  e->drafter = drafter;
  deco_status_t st = plan(e);
  if (st != DECO_STATUS_SUCCESS) e->drafter = NULL;
  return st;
}

/* Acceptance's non-finite flags (host copy): the first tree whose logits
 * were not finite fails the step, naming the position of that row. */
static deco_status_t check_nonfinite(deco_spec_engine_t *e, int B, const int *seqs, const int *n_nodes,
                                     const int32_t *parents) {
  static const char op[] = "deco_spec_engine_step";
  deco_ctx_t *ctx = deco_model_ctx(e->model);
  for (int i = 0, t0 = 0; i < B; t0 += n_nodes[i], ++i) {
    const int flag = e->host.nonfinite[i];
    if (flag < 0 || flag > n_nodes[i])
      return DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: tree %d: non-finite flag %d outside [0, %d]", op, i, flag,
                       n_nodes[i]);
    if (flag == 0) continue;
    int depth = 0;
    for (int v = flag - 1; v > 0; v = parents[t0 + v]) depth++;
    return DECO_FAIL(ctx, DECO_STATUS_NON_FINITE, "%s: the model gave non-finite logits at position %d (sequence %d)",
                     op, deco_kv_cache_seq_len(e->cache, seqs[i]) + depth, seqs[i]);
  }
  return DECO_STATUS_SUCCESS;
}

/* The step's arguments against the engine's capacities; *total gets the
 * batch's node count. */
static deco_status_t check_step(deco_spec_engine_t *e, int B, const int *seqs, const int *n_nodes,
                                const int32_t *tokens, const int32_t *parents, const deco_spec_sampling_t *sampling,
                                const int32_t *emitted, const int *n_emitted, int *total) {
  static const char op[] = "deco_spec_engine_step";
  deco_ctx_t *ctx = deco_model_ctx(e->model);
  if (!seqs || !n_nodes || !tokens || !parents || !sampling || !emitted || !n_emitted)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  DECO_CHECK_RANGE(ctx, B, 1, e->max_seqs, op);
  /* Before the forward writes any K/V (acceptance checks it again). */
  DECO_TRY(deco_sampling_law_check(ctx, sampling->top_k, sampling->temperature, sampling->top_p, op));
  *total = 0;
  for (int i = 0; i < B; ++i) {
    DECO_CHECK_RANGE(ctx, n_nodes[i], 1, e->max_nodes, op);
    if (deco_tree_validate(parents + *total, n_nodes[i]) != DECO_STATUS_SUCCESS)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: tree %d: %s", op, i, deco_last_error(NULL));
    *total += n_nodes[i];
  }
  return DECO_STATUS_SUCCESS;
}

/* The accepted drafts and the bonus of each tree, from the read-back
 * verdict; commits them to the cache and shows them to the drafter. */
static deco_status_t commit(deco_spec_engine_t *e, int B, const int *seqs, const int *n_nodes, const int32_t *tokens,
                            int32_t *emitted, int *n_emitted) {
  static const char op[] = "deco_spec_engine_step";
  deco_ctx_t *ctx = deco_model_ctx(e->model);
  for (int i = 0, t0 = 0; i < B; t0 += n_nodes[i], ++i) {
    const int a = e->host.accept_len[i];
    if (a < 1 || a > n_nodes[i])
      return DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: tree %d: accept_len %d outside [1, %d]", op, i, a, n_nodes[i]);
    int32_t *em = emitted + (size_t)i * DECO_TREE_MAX_NODES;
    for (int d = 1; d < a; ++d) {
      const int node = e->host.path[(size_t)i * DECO_TREE_MAX_NODES + d];
      if (node <= 0 || node >= n_nodes[i])
        return DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: tree %d: path node %d out of range", op, i, node);
      em[d - 1] = tokens[t0 + node];
    }
    em[a - 1] = e->host.bonus[i];
    n_emitted[i] = a;
    DECO_TRY(deco_kv_cache_commit(e->cache, seqs[i], a));
    DECO_TRY(deco_drafter_observe_host(e->drafter, seqs[i], em, a));
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_spec_engine_step(deco_spec_engine_t *e, int B, const int *seqs, const int *n_nodes,
                                    const int32_t *tokens, const int32_t *parents,
                                    const deco_spec_sampling_t *sampling, int32_t *emitted, int *n_emitted) {
  if (!e) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_spec_engine_step: engine is NULL");
  deco_ctx_t *ctx = deco_model_ctx(e->model);
  int total = 0;
  DECO_TRY(check_step(e, B, seqs, n_nodes, tokens, parents, sampling, emitted, n_emitted, &total));

  /* 1. Tree forward: every node's logits. */
  deco_forward_args_t fa = {.n_seqs = B, .seqs = seqs, .n_new = n_nodes, .tokens = tokens, .embeds = NULL,
                            .parents = parents, .logits_mode = DECO_LOGITS_ALL, .logits = e->logits,
                            .schedule = NULL};
  DECO_TRY(deco_forward(e->model, e->cache, &fa));

  /* 2. The trees and the draws to the device. Stream-ordered: the host does
   * not wait for the forward; the image is not touched again before the
   * synchronous read-back below. */
  engine_block_t *h = &e->host;
  h->indptr[0] = 0;
  for (int i = 0; i < B; ++i) h->indptr[i + 1] = h->indptr[i] + n_nodes[i];
  memcpy(h->parents, parents, sizeof(int32_t) * (size_t)total);
  memcpy(h->tokens, tokens, sizeof(int32_t) * (size_t)total);
  *h->offset = sampling->offset;
  *h->seed = sampling->seed;
  DECO_TRY(deco_memcpy_async(ctx, e->block, e->image, e->block_bytes, DECO_COPY_HOST_TO_CTX));

  /* 3. Acceptance (with the drafts' kind: model drafts may be sampled),
   * compaction, the drafter's observation. */
  deco_verify_args_t va = verify_args(e, B, total, sampling);
  DECO_TRY(deco_drafter_draft_probs(e->drafter, seqs[0], &va.draft_kind, &va.draft_probs));
  if (va.draft_kind != DECO_DRAFT_DETERMINISTIC && B > 1)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                     "deco_spec_engine_step: sampled drafts (the %s drafter's) are verified one sequence per step",
                     deco_drafter_name(e->drafter));
  DECO_TRY(deco_verify_enqueue(e->model, e->cache, e->drafter, &va));

  /* 4. What was accepted; commit. */
  const size_t verdict = (size_t)((char *)e->dev.offset - (char *)e->dev.path);
  DECO_TRY(deco_memcpy(ctx, h->path, e->dev.path, verdict, DECO_COPY_CTX_TO_HOST));
  DECO_TRY(check_nonfinite(e, B, seqs, n_nodes, parents));
  return commit(e, B, seqs, n_nodes, tokens, emitted, n_emitted);
}
