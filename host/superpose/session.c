/* host/superpose/session.c — superposed decoding's runner (deco/superpose.h;
 * Shen et al. 2024): B prompts, k drafts each sharing one sequence of a
 * private KV cache. One block of context memory holds the drafts' state and
 * every array of a step, laid out by one function and uploaded once; a step
 *   mix (deco_superpose_embed) → one-token forward of every prompt
 *   (deco_forward_device, embeddings in context memory) → top-m
 *   (deco_topk_rows) → [n-gram lookup] → deco_superpose_select
 * reads its sizes from that block, so it can be captured once as a CUDA
 * graph and replayed. Everything is planned before the prefill.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "deco/select.h"
#include "deco/superpose.h"
#include "model/token_embedding.h"
#include "util/arena.h"
#include "util/sized.h"

static const char OP[] = "deco_superpose";

/* The prefill's forwards take at most this many ids: a batch of prompts
 * longer than that (up to 4096 prompts of seq_len ids) runs in several,
 * within what one forward takes and with activations of this size. */
#define PREFILL_CHUNK (1 << 14)

typedef struct block {
  deco_superpose_drafts_t d;
  float *embeds;       /* [B][dim] */
  float *logits;       /* [B][vocab] */
  int32_t *cand_ids;   /* [B][m] */
  float *cand_logits;  /* [B][m] */
  double *probs;       /* [B][k][m] */
  int32_t *positions;  /* [B] */
  int32_t *kv_lens;    /* [B] */
  int32_t *q_indptr;   /* [B + 1] */
  int32_t *table;      /* [B][P] block tables */
  int32_t *stop_ids;   /* [n_stop] */
} block_t;

struct deco_superpose_session {
  deco_model_t *m;
  deco_ctx_t *ctx;
  deco_superpose_config_t c;
  int B, k, mc, V, dim, P, rows;
  int32_t stop_ids[DECO_SUPERPOSE_MAX_STOP_IDS];
  int n_stop;
  int32_t **prompts; /* host copies */
  int *n_prompt, *n_forced, *max_steps, *seqs;
  deco_kv_cache_t *kc;
  deco_ngram_device_t *ngram;
  const void *table;
  deco_dtype_t table_dtype;
  void *mem;
  block_t dev;
  void *image;
  block_t host;
  size_t block_bytes;
  int prefilled; /* 0 before the prefill, 1 after it, -1 after one that failed (part of it may be in the cache) */
  size_t allocs_at_plan;
  double capture_seconds;
  deco_superpose_prompt_t *info; /* [B] host: the last poll */
};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The session's block (b: the device's or the host image's) for s's sizes. */
static void layout(deco_arena_t *a, block_t *b, const deco_superpose_session_t *s) {
  const int B = s->B, k = s->k, m = s->mc, rows = s->rows, V = s->V, dim = s->dim, P = s->P, n_stop = s->n_stop;
  const size_t w = sizeof(int32_t), bk = (size_t)B * (size_t)k, d8 = sizeof(double);
  b->d.prompt = deco_arena_take(a, (size_t)B, sizeof(deco_superpose_prompt_t), 8);
  b->d.score = deco_arena_take(a, bk, d8, d8);
  b->d.fin_score = deco_arena_take(a, bk, d8, d8);
  b->probs = deco_arena_take(a, bk * (size_t)m, d8, d8);
  b->d.token = deco_arena_take(a, bk, w, w);
  b->d.ctx = deco_arena_take(a, bk * DECO_NGRAM_CONTEXT, w, w);
  b->d.ctx_len = deco_arena_take(a, bk, w, w);
  b->d.mix_token = deco_arena_take(a, bk, w, w);
  b->d.mix_weight = deco_arena_take(a, bk, sizeof(float), sizeof(float));
  b->d.hist_token = deco_arena_take(a, bk * (size_t)rows, w, w);
  b->d.hist_parent = deco_arena_take(a, bk * (size_t)rows, w, w);
  b->d.fin_len = deco_arena_take(a, bk, w, w);
  b->d.fin_slot = deco_arena_take(a, bk, w, w);
  b->cand_ids = deco_arena_take(a, (size_t)B * (size_t)m, w, w);
  b->cand_logits = deco_arena_take(a, (size_t)B * (size_t)m, sizeof(float), sizeof(float));
  b->positions = deco_arena_take(a, (size_t)B, w, w);
  b->kv_lens = deco_arena_take(a, (size_t)B, w, w);
  b->q_indptr = deco_arena_take(a, (size_t)B + 1, w, w);
  b->table = deco_arena_take(a, (size_t)B * (size_t)P, w, w);
  b->stop_ids = deco_arena_take(a, (size_t)(n_stop > 0 ? n_stop : 1), w, w);
  b->embeds = deco_arena_take(a, (size_t)B * (size_t)dim, sizeof(float), DECO_ARENA_ALIGN);
  b->logits = deco_arena_take(a, (size_t)B * (size_t)V, sizeof(float), DECO_ARENA_ALIGN);
}

void deco_superpose_session_destroy(deco_superpose_session_t *s) {
  if (!s) return;
  if (s->mem) deco_free(s->ctx, s->mem);
  deco_ngram_device_destroy(s->ngram);
  deco_kv_cache_destroy(s->kc);
  if (s->prompts)
    for (int b = 0; b < s->B; ++b) free(s->prompts[b]);
  free(s->prompts);
  free(s->n_prompt);
  free(s->n_forced);
  free(s->max_steps);
  free(s->seqs);
  free(s->image);
  free(s->info);
  free(s);
}

/* The search's numbers: drafts, candidates, temperature, weights, the
 * penalty and the steps, within their ranges for the model. */
static deco_status_t check_search(deco_ctx_t *ctx, const deco_superpose_config_t *c, const deco_model_hparams_t *hp) {
  if (c->k < 1 || c->k > DECO_SUPERPOSE_MAX_K)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: k = %d drafts outside [1, %d]", OP, c->k,
                     DECO_SUPERPOSE_MAX_K);
  if (c->m < 1 || c->m > DECO_SUPERPOSE_MAX_M || c->m > hp->vocab_size)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: m = %d candidates outside [1, %d] (vocabulary %d)", OP,
                     c->m, hp->vocab_size < DECO_SUPERPOSE_MAX_M ? hp->vocab_size : DECO_SUPERPOSE_MAX_M,
                     hp->vocab_size);
  if (!(c->temperature > 0.0f) || isinf(c->temperature))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: temperature = %g must be finite and > 0", OP,
                     (double)c->temperature);
  if (!(c->alpha >= 0.0f && c->alpha <= 1.0f))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: alpha = %g outside [0, 1]", OP, (double)c->alpha);
  double lambda_sum = 0.0;
  for (int i = 0; i < DECO_NGRAM_N_ORDERS; ++i) {
    if (!(c->lambda[i] >= 0.0f && c->lambda[i] <= 1.0f))
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: lambda[%d] (order %d) = %g outside [0, 1]", OP, i,
                       i + DECO_NGRAM_MIN_ORDER, (double)c->lambda[i]);
    lambda_sum += c->lambda[i];
  }
  /* The n-gram mix must stay a probability, so that scores only fall (the
   * early stop relies on it); 1e-6 lets weights written as floats that
   * should sum to 1 (0.2f five times) pass. */
  if (lambda_sum > 1.0 + 1e-6)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the lambdas sum to %g, more than 1", OP, lambda_sum);
  if (!(c->penalty >= 0.0f) || isinf(c->penalty))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: penalty = %g must be finite and >= 0", OP,
                     (double)c->penalty);
  if (c->steps < 1 || c->steps > hp->seq_len)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: steps = %d outside [1, seq_len = %d]", OP, c->steps,
                     hp->seq_len);
  return DECO_STATUS_SUCCESS;
}

/* With alpha > 0, an n-gram table (and its context copy, when given) that
 * fits the model. */
static deco_status_t check_ngram(deco_ctx_t *ctx, const deco_superpose_config_t *c, const deco_model_hparams_t *hp) {
  if (!(c->alpha > 0.0f)) return DECO_STATUS_SUCCESS;
  if (!c->ngram)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: alpha = %g needs an n-gram table (alpha 0 turns them off)",
                     OP, (double)c->alpha);
  if (c->ngram_device && deco_ngram_device_ctx(c->ngram_device) != ctx)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: ngram_device lives in another context than the model",
                     OP);
  deco_ngram_info_t info;
  DECO_TRY(deco_ngram_table_info(c->ngram, &info));
  if (info.vocab_size != hp->vocab_size)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the n-gram table's vocabulary is %d, the model's %d",
                     OP, info.vocab_size, hp->vocab_size);
  if (c->ngram_device) { /* the lookups read the copy, the checks the table: one table (its shape at least) */
    const deco_ngram_view_t h = deco_ngram_table_host_view(c->ngram), d = deco_ngram_device_view(c->ngram_device);
    if (h.seed != d.seed || h.n_slots != d.n_slots || h.n_followers != d.n_followers)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                       "%s: ngram_device does not match ngram (another seed, slot or follower count)", OP);
  }
  return DECO_STATUS_SUCCESS;
}

/* The session's stop set, copied: none (ignore_eos), the config's, or the
 * model's (at most DECO_SUPERPOSE_MAX_STOP_IDS of them). */
static deco_status_t take_stop_ids(deco_superpose_session_t *s, const deco_model_hparams_t *hp) {
  deco_ctx_t *ctx = s->ctx;
  const deco_superpose_config_t *c = &s->c;
  const int32_t *stop = NULL;
  int n_stop = 0;
  if (c->ignore_eos) {
    n_stop = 0;
  } else if (c->stop_ids) {
    DECO_CHECK_RANGE(ctx, c->n_stop_ids, 1, DECO_SUPERPOSE_MAX_STOP_IDS, OP);
    stop = c->stop_ids;
    n_stop = c->n_stop_ids;
  } else {
    stop = hp->stop_ids;
    n_stop = hp->n_stop_ids < DECO_SUPERPOSE_MAX_STOP_IDS ? hp->n_stop_ids : DECO_SUPERPOSE_MAX_STOP_IDS;
  }
  if (n_stop > 0) memcpy(s->stop_ids, stop, sizeof(int32_t) * (size_t)n_stop);
  s->n_stop = n_stop;
  return DECO_STATUS_SUCCESS;
}

/* The configuration with its defaults, checked against the model. */
static deco_status_t resolve(deco_superpose_session_t *s, const deco_superpose_config_t *in) {
  static const deco_superpose_config_t defaults = DECO_SUPERPOSE_CONFIG_INIT;
  deco_ctx_t *ctx = s->ctx;
  DECO_TRY(deco_sized_read(ctx, &s->c, in, &defaults, sizeof defaults, "deco_superpose: config"));
  deco_superpose_config_t *c = &s->c;
  const deco_model_hparams_t *hp = deco_model_get_hparams(s->m);
  DECO_TRY(check_search(ctx, c, hp));
  if (c->replay_chunk == 0) c->replay_chunk = 8;
  if (c->page_size == 0) c->page_size = 16;
  DECO_CHECK_RANGE(ctx, c->replay_chunk, 1, 1 << 20, OP);
  DECO_CHECK_RANGE(ctx, c->page_size, 1, 1 << 16, OP);
  if (c->graph && deco_ctx_backend(ctx) != DECO_BACKEND_CUDA)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "%s: CUDA graphs need the CUDA backend", OP);
  DECO_TRY(check_ngram(ctx, c, hp));
  DECO_TRY(take_stop_ids(s, hp));
  c->stop_ids = NULL; /* the caller's array is not kept */
  return DECO_STATUS_SUCCESS;
}

static deco_status_t copy_prompts(deco_superpose_session_t *s, const int32_t *const *prompts, const int *n_prompt) {
  deco_ctx_t *ctx = s->ctx;
  const int V = s->V, B = s->B;
  s->prompts = calloc((size_t)B, sizeof *s->prompts);
  s->n_prompt = calloc((size_t)B, sizeof(int));
  s->n_forced = calloc((size_t)B, sizeof(int));
  s->max_steps = calloc((size_t)B, sizeof(int));
  s->seqs = calloc((size_t)B, sizeof(int));
  s->info = calloc((size_t)B, sizeof *s->info);
  if (!s->prompts || !s->n_prompt || !s->n_forced || !s->max_steps || !s->seqs || !s->info)
    return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: host memory", OP);
  s->rows = 1;
  for (int b = 0; b < B; ++b) {
    const int n = n_prompt[b];
    if (!prompts[b]) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: prompts[%d] is NULL", OP, b);
    if (n < 1 || n > (1 << 30))
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: prompt %d has %d ids (at least 1)", OP, b, n);
    const int bad = (int)deco_first_id_outside(prompts[b], (size_t)n, V);
    if (bad < n)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: prompt %d: id %d at %d outside the vocabulary [0, %d)",
                       OP, b, (int)prompts[b][bad], bad, V);
    /* Positions beyond steps are dropped, as deco_generate does. */
    s->n_forced[b] = n - 1 < s->c.steps ? n - 1 : s->c.steps;
    s->n_prompt[b] = s->n_forced[b] + 1;
    s->max_steps[b] = s->c.steps - s->n_forced[b];
    if (s->max_steps[b] > s->rows) s->rows = s->max_steps[b];
    s->prompts[b] = malloc(sizeof(int32_t) * (size_t)s->n_prompt[b]);
    if (!s->prompts[b]) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: host memory", OP);
    memcpy(s->prompts[b], prompts[b], sizeof(int32_t) * (size_t)s->n_prompt[b]);
  }
  return DECO_STATUS_SUCCESS;
}

static deco_topk_rows_args_t topk_args(const deco_superpose_session_t *s) {
  return (deco_topk_rows_args_t){.n_rows = s->B,
                                 .vocab = s->V,
                                 .k = s->mc,
                                 .dtype = DECO_DTYPE_F32,
                                 .logits = s->dev.logits,
                                 .row_count = NULL,
                                 .ids = s->dev.cand_ids,
                                 .values = s->dev.cand_logits};
}

/* A private cache: steps + 1 slots per prompt (a prompt cut to steps
 * positions still runs its one-token forwards, at position steps, while
 * the others go on), every prompt admitted; and the model's token
 * embedding table. */
static deco_status_t open_cache(deco_superpose_session_t *s) {
  const int reserve = s->c.steps + 1, page = s->c.page_size, pages = (reserve + page - 1) / page;
  deco_status_t st = deco_kv_cache_create(s->m, page, pages * s->B, s->B, &s->kc);
  for (int b = 0; st == DECO_STATUS_SUCCESS && b < s->B; ++b) st = deco_kv_cache_admit(s->kc, reserve, &s->seqs[b]);
  if (st == DECO_STATUS_SUCCESS) {
    s->P = deco_kv_cache_max_pages(s->kc);
    st = deco_model_token_embedding(s->m, &s->table, &s->table_dtype);
    if (st != DECO_STATUS_SUCCESS) st = DECO_FAIL(s->ctx, st, "%s: %s", OP, deco_last_error(NULL));
  }
  return st;
}

/* The session's block of context memory (s->dev) and its host image
 * (s->host), laid out alike. */
static deco_status_t alloc_blocks(deco_superpose_session_t *s) {
  deco_arena_t a = DECO_ARENA_SIZING;
  layout(&a, &s->dev, s);
  s->block_bytes = a.bytes;
  s->image = calloc(1, s->block_bytes);
  if (!s->image) return DECO_FAIL(s->ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: host memory", OP);
  DECO_TRY(deco_malloc(s->ctx, &s->mem, s->block_bytes));
  a = deco_arena_at(s->mem);
  layout(&a, &s->dev, s);
  a = deco_arena_at(s->image);
  layout(&a, &s->host, s);
  return DECO_STATUS_SUCCESS;
}

/* The plan: the prefill's forwards (PREFILL_CHUNK ids at most) and the
 * one-token steps of all prompts, with the top-m's workspace. */
static deco_status_t plan_forwards(deco_superpose_session_t *s) {
  long long prefill = 0;
  for (int b = 0; b < s->B; ++b) prefill += s->n_forced[b];
  if (prefill > PREFILL_CHUNK) prefill = PREFILL_CHUNK;
  deco_forward_plan_t fp = DECO_FORWARD_PLAN_INIT;
  fp.max_seqs = s->B;
  fp.max_tokens = prefill > s->B ? (int)prefill : s->B;
  const deco_topk_rows_args_t ta = topk_args(s);
  fp.workspace_bytes = deco_topk_rows_workspace_size(s->ctx, &ta);
  return deco_model_plan(s->m, s->kc, &fp, NULL);
}

deco_status_t deco_superpose_session_create(deco_model_t *m, int n_prompts, const int32_t *const *prompts,
                                            const int *n_prompt, const deco_superpose_config_t *config,
                                            deco_superpose_session_t **out) {
  if (!m) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: model is NULL", OP);
  deco_ctx_t *ctx = deco_model_ctx(m);
  if (!out || !prompts || !n_prompt || !config) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: NULL argument", OP);
  *out = NULL;
  if (n_prompts < 1 || n_prompts > 4096)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: n_prompts = %d outside [1, 4096]", OP, n_prompts);
  deco_superpose_session_t *s = calloc(1, sizeof *s);
  if (!s) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: host memory", OP);
  const deco_model_hparams_t *hp = deco_model_get_hparams(m);
  s->m = m;
  s->ctx = ctx;
  s->B = n_prompts;
  s->V = hp->vocab_size;
  s->dim = hp->dim;
  deco_status_t st = resolve(s, config);
  if (st == DECO_STATUS_SUCCESS) {
    s->k = s->c.k;
    s->mc = s->c.m;
    st = copy_prompts(s, prompts, n_prompt);
  }
  if (st == DECO_STATUS_SUCCESS) st = open_cache(s);
  if (st == DECO_STATUS_SUCCESS && s->c.alpha > 0.0f && !s->c.ngram_device)
    st = deco_ngram_device_create(ctx, s->c.ngram, &s->ngram);
  if (st == DECO_STATUS_SUCCESS) st = alloc_blocks(s);
  if (st == DECO_STATUS_SUCCESS) st = plan_forwards(s);
  if (st != DECO_STATUS_SUCCESS) {
    deco_superpose_session_destroy(s);
    return st;
  }
  s->allocs_at_plan = deco_ctx_alloc_count(ctx);
  *out = s;
  return DECO_STATUS_SUCCESS;
}

/* Every prompt id but the last, in prompt order, in forwards of at most
 * PREFILL_CHUNK ids (a prompt may span two: each forward appends to its
 * sequence). Their logits are not used: the first step forwards each
 * prompt's last id. */
static deco_status_t forward_forced(deco_superpose_session_t *s) {
  deco_ctx_t *ctx = s->ctx;
  const int B = s->B;
  int *seqs = malloc(sizeof(int) * (size_t)B), *n_new = malloc(sizeof(int) * (size_t)B);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)PREFILL_CHUNK);
  deco_status_t st = seqs && n_new && ids ? DECO_STATUS_SUCCESS
                                          : DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: host memory", OP);
  int b = 0, done = 0; /* prompt b's first done ids are in the cache */
  while (st == DECO_STATUS_SUCCESS) {
    int n_seqs = 0, t = 0;
    for (; b < B && t < PREFILL_CHUNK; ++b, done = 0) {
      const int take = s->n_forced[b] - done < PREFILL_CHUNK - t ? s->n_forced[b] - done : PREFILL_CHUNK - t;
      if (take <= 0) continue;
      seqs[n_seqs] = s->seqs[b];
      n_new[n_seqs++] = take;
      memcpy(ids + t, s->prompts[b] + done, sizeof(int32_t) * (size_t)take);
      t += take;
      if (done + take < s->n_forced[b]) { /* the rest in the next forward */
        done += take;
        break;
      }
    }
    if (n_seqs == 0) break;
    const deco_forward_args_t fa = {.n_seqs = n_seqs, .seqs = seqs, .n_new = n_new, .tokens = ids,
                                    .logits_mode = DECO_LOGITS_LAST, .logits = s->dev.logits};
    st = deco_forward(s->m, s->kc, &fa);
  }
  free(seqs);
  free(n_new);
  free(ids);
  return st;
}

/* Draft j of prompt b before the first step, in the host image: slot 0
 * alone (score 0, the prompt's tail as its n-gram context, mixed with
 * weight 1), the others dead. */
static void first_draft(deco_superpose_session_t *s, int b, int j) {
  block_t *h = &s->host;
  const int nf = s->n_forced[b];
  const int32_t last = s->prompts[b][nf];
  const int hist = nf + 1 < DECO_NGRAM_CONTEXT ? nf + 1 : DECO_NGRAM_CONTEXT;
  const size_t r = (size_t)b * s->k + (size_t)j;
  h->d.score[r] = j == 0 ? 0.0 : -(double)INFINITY;
  h->d.token[r] = last;
  h->d.ctx_len[r] = j == 0 ? hist : 0;
  for (int c = 0; c < DECO_NGRAM_CONTEXT; ++c) {
    const int at = nf + 1 - DECO_NGRAM_CONTEXT + c; /* ctx[4] is the prompt's last id */
    h->d.ctx[r * DECO_NGRAM_CONTEXT + c] = j == 0 && at >= 0 ? s->prompts[b][at] : 0;
  }
  h->d.mix_token[r] = last;
  h->d.mix_weight[r] = j == 0 ? 1.0f : 0.0f;
  h->d.fin_score[r] = -(double)INFINITY;
  h->d.fin_len[r] = 0;
  h->d.fin_slot[r] = -1;
}

/* Prompt b's state before the first step in the host image: its drafts,
 * an empty history, and the first forward's position. */
static void first_state(deco_superpose_session_t *s, int b) {
  block_t *h = &s->host;
  const int k = s->k, nf = s->n_forced[b];
  h->d.prompt[b] = (deco_superpose_prompt_t){.step = 0,
                                             .max_steps = s->max_steps[b],
                                             .position = nf,
                                             .done = s->max_steps[b] == 0,
                                             .n_alive = 1,
                                             .n_fin = 0,
                                             .nonfinite = 0,
                                             .reserved = 0};
  for (int j = 0; j < k; ++j) first_draft(s, b, j);
  for (size_t r = 0; r < (size_t)s->rows * k; ++r) {
    h->d.hist_token[(size_t)b * s->rows * k + r] = -1;
    h->d.hist_parent[(size_t)b * s->rows * k + r] = -1;
  }
  h->positions[b] = nf;
  h->kv_lens[b] = nf + 1;
}

/* Whether the session's state is there for what (step, run, poll, result):
 * after a prefill that succeeded. */
static deco_status_t check_prefilled(const deco_superpose_session_t *s, const char *what) {
  if (s->prefilled > 0) return DECO_STATUS_SUCCESS;
  return DECO_FAIL(s->ctx, DECO_STATUS_INVALID_ARGUMENT,
                   s->prefilled < 0 ? "%s: %s after a failed prefill (destroy the session)" : "%s: %s before prefill",
                   OP, what);
}

deco_status_t deco_superpose_session_prefill(deco_superpose_session_t *s) {
  if (!s) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: session is NULL", OP);
  deco_ctx_t *ctx = s->ctx;
  if (s->prefilled < 0) return check_prefilled(s, "prefill");
  if (s->prefilled > 0) return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the session was prefilled already", OP);
  const int B = s->B;
  s->prefilled = -1; /* until every part below is done: a prefill's forwards cannot be taken back */
  DECO_TRY(forward_forced(s));
  /* The drafts before the first step: slot 0 alone, the prompt's last id
   * with weight 1, so the first forward is the plain one. */
  block_t *h = &s->host;
  for (int b = 0; b < B; ++b) first_state(s, b);
  for (int b = 0; b <= B; ++b) h->q_indptr[b] = b;
  if (s->n_stop > 0) memcpy(h->stop_ids, s->stop_ids, sizeof(int32_t) * (size_t)s->n_stop);
  DECO_TRY(deco_memcpy(ctx, s->mem, s->image, s->block_bytes, DECO_COPY_HOST_TO_CTX));
  DECO_TRY(deco_kv_cache_block_table(s->kc, s->seqs, B, s->dev.table));
  s->prefilled = 1;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_superpose_session_step(deco_superpose_session_t *s) {
  if (!s) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: session is NULL", OP);
  deco_ctx_t *ctx = s->ctx;
  DECO_TRY(check_prefilled(s, "step"));
  const block_t *d = &s->dev;
  const deco_superpose_embed_args_t ea = {.n_rows = s->B,
                                          .k = s->k,
                                          .dim = s->dim,
                                          .vocab = s->V,
                                          .dtype = s->table_dtype,
                                          .table = s->table,
                                          .tokens = d->d.mix_token,
                                          .weights = d->d.mix_weight,
                                          .out = d->embeds};
  DECO_TRY(deco_superpose_embed(ctx, &ea));
  deco_forward_device_args_t fa = DECO_FORWARD_DEVICE_ARGS_INIT;
  fa.n_seqs = s->B;
  fa.n_tokens = s->B;
  fa.tokens = NULL;
  fa.positions = d->positions;
  fa.q_indptr = d->q_indptr;
  fa.kv_lens = d->kv_lens;
  fa.block_table = d->table;
  fa.logits = d->logits;
  fa.embeds = d->embeds;
  DECO_TRY(deco_forward_device(s->m, s->kc, &fa));
  const deco_topk_rows_args_t ta = topk_args(s);
  DECO_TRY(deco_topk_rows(ctx, &ta));
  const int use_ngram = s->c.alpha > 0.0f;
  if (use_ngram) {
    deco_ngram_lookup_args_t la = DECO_NGRAM_LOOKUP_ARGS_INIT;
    la.table = deco_ngram_device_view(s->ngram ? s->ngram : s->c.ngram_device);
    la.n_rows = s->B * s->k;
    la.rows_per_group = s->k;
    la.m = s->mc;
    la.ctx = d->d.ctx;
    la.ctx_len = d->d.ctx_len;
    la.cands = d->cand_ids;
    memcpy(la.lambda, s->c.lambda, sizeof la.lambda);
    la.probs = d->probs;
    DECO_TRY(deco_ngram_lookup(ctx, &la));
  }
  const deco_superpose_select_args_t sa = {.n_prompts = s->B,
                                           .k = s->k,
                                           .m = s->mc,
                                           .max_steps = s->rows,
                                           .temperature = s->c.temperature,
                                           .alpha = s->c.alpha,
                                           .penalty = s->c.penalty,
                                           .cand_ids = d->cand_ids,
                                           .cand_logits = d->cand_logits,
                                           .ngram_probs = use_ngram ? d->probs : NULL,
                                           .stop_ids = s->n_stop > 0 ? d->stop_ids : NULL,
                                           .n_stop_ids = s->n_stop,
                                           .drafts = d->d,
                                           .positions = d->positions,
                                           .kv_lens = d->kv_lens};
  return deco_superpose_select(ctx, &sa);
}

deco_status_t deco_superpose_session_poll(deco_superpose_session_t *s, int *done, int *forwards) {
  if (!s || !done) return DECO_FAIL(s ? s->ctx : NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", OP);
  DECO_TRY(check_prefilled(s, "poll"));
  DECO_TRY(deco_memcpy(s->ctx, s->info, s->dev.d.prompt, sizeof *s->info * (size_t)s->B, DECO_COPY_CTX_TO_HOST));
  int all = 1, most = 0;
  for (int b = 0; b < s->B; ++b) {
    all &= s->info[b].done != 0;
    if (s->info[b].step > most) most = s->info[b].step;
  }
  *done = all;
  if (forwards) *forwards = most;
  return DECO_STATUS_SUCCESS;
}

/* Ends a capture of one step: the step's own failure wins over the
 * capture's (deco_graph_capture_end keeps its message). */
static deco_status_t capture(deco_superpose_session_t *s, deco_graph_t **graph) {
  const double t0 = now_seconds();
  deco_status_t st = deco_graph_capture_begin(s->ctx);
  if (st == DECO_STATUS_SUCCESS) {
    const deco_status_t enqueued = deco_superpose_session_step(s);
    st = deco_graph_capture_end(s->ctx, graph);
    if (enqueued != DECO_STATUS_SUCCESS) st = enqueued;
  }
  s->capture_seconds += now_seconds() - t0;
  return st;
}

/* Eager steps until every prompt is done; with graph, one eager step (lazy
 * library initialisation stays outside the capture), then replays of one
 * captured step, reading the state every replay_chunk replays. A replay
 * after a prompt is done changes nothing of its drafts, and every step
 * advances each prompt that is not, so rows steps always suffice. */
deco_status_t deco_superpose_session_run(deco_superpose_session_t *s) {
  if (!s) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: session is NULL", OP);
  DECO_TRY(check_prefilled(s, "run"));
  deco_graph_t *graph = NULL;
  int done = 0, forwards = 0, replays = 0;
  deco_status_t st = deco_superpose_session_poll(s, &done, &forwards);
  while (st == DECO_STATUS_SUCCESS && !done && replays < s->rows) {
    if (s->c.graph && replays > 0) {
      if (!graph && (st = capture(s, &graph)) != DECO_STATUS_SUCCESS) break;
      int todo = s->rows - forwards;
      if (todo > s->c.replay_chunk) todo = s->c.replay_chunk;
      if (todo < 1) todo = 1;
      st = deco_graph_replay(s->ctx, graph, todo);
      replays += todo;
    } else {
      st = deco_superpose_session_step(s);
      replays++;
    }
    if (st == DECO_STATUS_SUCCESS) st = deco_superpose_session_poll(s, &done, &forwards);
  }
  deco_graph_destroy(graph);
  if (st != DECO_STATUS_SUCCESS) return st;
  for (int b = 0; b < s->B; ++b)
    if (s->info[b].nonfinite)
      return DECO_FAIL(s->ctx, DECO_STATUS_NON_FINITE,
                       "%s: the model gave non-finite logits at position %d (prompt %d)", OP, s->info[b].position, b);
  return DECO_STATUS_SUCCESS;
}

void deco_superpose_result_free(deco_superpose_result_t *r) {
  if (!r) return;
  free(r->n_forced);
  free(r->n_drafts);
  free(r->drafts);
  free(r->storage);
  *r = (deco_superpose_result_t)DECO_SUPERPOSE_RESULT_INIT;
}

/* The ids of the path that ends at slot after `len` selections. */
static int walk(const block_t *h, int b, int k, int rows, int len, int slot, int32_t *ids) {
  const int32_t *ht = h->d.hist_token + (size_t)b * rows * k, *hp = h->d.hist_parent + (size_t)b * rows * k;
  for (int t = len - 1; t >= 0; --t) {
    if (slot < 0 || slot >= k) return -1;
    const int32_t id = ht[(size_t)t * k + slot];
    if (id < 0) return -1;
    ids[t] = id;
    slot = hp[(size_t)t * k + slot];
  }
  return 0;
}

/* One prompt's two pools of drafts on the host, both sorted best first:
 * the alive drafts (score, history slot a, length step) and the finished
 * ones (fin_score, fin_slot, fin_len); a and f are the next of each. */
typedef struct draft_pools {
  const double *score, *fin_score;
  const int32_t *fin_len, *fin_slot;
  int n_alive, n_fin, step;
  int a, f;
} draft_pools_t;

static draft_pools_t prompt_pools(const block_t *h, int b, int k) {
  const deco_superpose_prompt_t *in = &h->d.prompt[b];
  return (draft_pools_t){.score = h->d.score + (size_t)b * k,
                         .fin_score = h->d.fin_score + (size_t)b * k,
                         .fin_len = h->d.fin_len + (size_t)b * k,
                         .fin_slot = h->d.fin_slot + (size_t)b * k,
                         .n_alive = in->n_alive < 0 ? 0 : in->n_alive > k ? k : in->n_alive,
                         .n_fin = in->n_fin < 0 ? 0 : in->n_fin > k ? k : in->n_fin,
                         .step = in->step};
}

/* The better of the two pools' heads into dr (finished first on ties),
 * with its length and history slot. */
static void take_best(draft_pools_t *p, deco_superpose_draft_t *dr, int *len, int *slot) {
  if (p->f < p->n_fin && (p->a >= p->n_alive || p->fin_score[p->f] >= p->score[p->a])) {
    dr->logp = p->fin_score[p->f];
    dr->finished = 1;
    *len = p->fin_len[p->f];
    *slot = p->fin_slot[p->f];
    p->f++;
  } else {
    dr->logp = p->score[p->a];
    dr->finished = 0;
    *len = p->step;
    *slot = p->a;
    p->a++;
  }
}

/* Prompt b's drafts into out (at most k, merged from both pools, each with
 * its ids walked back through the history); *tokens grows by their ids. */
static deco_status_t collect_prompt(const deco_superpose_session_t *s, int b, deco_superpose_result_t *out,
                                    int *tokens) {
  const int k = s->k, rows = s->rows;
  draft_pools_t p = prompt_pools(&s->host, b, k);
  int n = 0;
  while (n < k && (p.a < p.n_alive || p.f < p.n_fin)) {
    deco_superpose_draft_t *dr = &out->drafts[(size_t)b * k + n];
    int32_t *ids = out->storage + ((size_t)b * k + n) * (size_t)rows;
    int len, slot;
    take_best(&p, dr, &len, &slot);
    if (len < 0 || len > rows || walk(&s->host, b, k, rows, len, slot, ids) != 0)
      return DECO_FAIL(s->ctx, DECO_STATUS_INTERNAL, "%s: prompt %d: draft %d's history is malformed", OP, b, n);
    dr->n_ids = len;
    dr->ids = ids;
    *tokens += len;
    n++;
  }
  out->n_drafts[b] = n;
  return DECO_STATUS_SUCCESS;
}

/* out's arrays for B prompts of k drafts (each at most rows ids); 0, or -1
 * with out freed. */
static int alloc_result(deco_superpose_result_t *out, int B, int k, int rows) {
  out->n_forced = calloc((size_t)B, sizeof(int));
  out->n_drafts = calloc((size_t)B, sizeof(int));
  out->drafts = calloc((size_t)B * k, sizeof *out->drafts);
  out->storage = malloc(sizeof(int32_t) * (size_t)B * k * (size_t)rows);
  if (out->n_forced && out->n_drafts && out->drafts && out->storage) return 0;
  deco_superpose_result_free(out);
  return -1;
}

deco_status_t deco_superpose_session_result(deco_superpose_session_t *s, deco_superpose_result_t *out) {
  if (!s || !out) return DECO_FAIL(s ? s->ctx : NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", OP);
  deco_ctx_t *ctx = s->ctx;
  *out = (deco_superpose_result_t)DECO_SUPERPOSE_RESULT_INIT;
  DECO_TRY(check_prefilled(s, "result"));
  const int B = s->B;
  DECO_TRY(deco_memcpy(ctx, s->image, s->mem, s->block_bytes, DECO_COPY_CTX_TO_HOST));
  out->n_prompts = B;
  out->k = s->k;
  if (alloc_result(out, B, s->k, s->rows) != 0) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: host memory", OP);
  int forwards = 0, tokens = 0;
  for (int b = 0; b < B; ++b) {
    out->n_forced[b] = s->n_forced[b];
    if (s->host.d.prompt[b].step > forwards) forwards = s->host.d.prompt[b].step;
    const deco_status_t st = collect_prompt(s, b, out, &tokens);
    if (st != DECO_STATUS_SUCCESS) {
      deco_superpose_result_free(out);
      return st;
    }
  }
  out->stats.forwards = forwards;
  out->stats.tokens = tokens;
  out->stats.capture_seconds = s->capture_seconds;
  out->stats.step_allocations = (int)(deco_ctx_alloc_count(ctx) - s->allocs_at_plan);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_superpose_session_buffers(const deco_superpose_session_t *s, deco_superpose_buffers_t *b) {
  if (!s || !b) return DECO_FAIL(s ? s->ctx : NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", OP);
  *b = (deco_superpose_buffers_t){.n_prompts = s->B,
                                  .k = s->k,
                                  .m = s->mc,
                                  .max_steps = s->rows,
                                  .vocab = s->V,
                                  .dim = s->dim,
                                  .drafts = s->dev.d,
                                  .embeds = s->dev.embeds,
                                  .logits = s->dev.logits,
                                  .cand_ids = s->dev.cand_ids,
                                  .cand_logits = s->dev.cand_logits,
                                  .ngram_probs = s->c.alpha > 0.0f ? s->dev.probs : NULL,
                                  .positions = s->dev.positions};
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_superpose_generate(deco_model_t *m, int n_prompts, const int32_t *const *prompts,
                                      const int *n_prompt, const deco_superpose_config_t *config,
                                      deco_superpose_result_t *out) {
  if (out) *out = (deco_superpose_result_t)DECO_SUPERPOSE_RESULT_INIT;
  if (!out) return DECO_FAIL(m ? deco_model_ctx(m) : NULL, DECO_STATUS_NULL_POINTER, "%s: out is NULL", OP);
  deco_superpose_session_t *s = NULL;
  DECO_TRY(deco_superpose_session_create(m, n_prompts, prompts, n_prompt, config, &s));
  deco_status_t st = deco_superpose_session_prefill(s);
  if (st == DECO_STATUS_SUCCESS) st = deco_superpose_session_run(s);
  if (st == DECO_STATUS_SUCCESS) st = deco_superpose_session_result(s, out);
  deco_superpose_session_destroy(s);
  return st;
}
