/* deco/superpose.h — superposed decoding on the host layer (Shen et al.
 * 2024, "Superposed Decoding: Multiple Generations from a Single
 * Autoregressive Inference Pass"; docs/ALGORITHMS.md): k drafts of each
 * prompt share one sequence and one KV cache; every step feeds one input,
 * the weighted mix of the drafts' last embeddings, runs one one-token
 * forward, and rescores the top m candidates of each draft with n-gram
 * statistics (a table file built from a corpus of ids) to keep the k best.
 * The ops and the device-resident state are in deco/superpose_ops.h.
 */
#ifndef DECO_SUPERPOSE_H
#define DECO_SUPERPOSE_H

#include <stddef.h>
#include <stdint.h>

#include "deco/model.h"
#include "deco/superpose_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- N-gram tables ------------------------------------------------------------
 * Counts of every n-gram of orders 2..6 of a corpus of ids, grouped by
 * context (deco/superpose_ops.h: the hash table the ops read). File format,
 * version 1, little-endian:
 *   offset  size  field
 *        0     8  magic "DECONGRM"
 *        8     4  version (1)
 *       12     4  header_bytes (96)
 *       16     4  vocab_size: ids are < vocab_size
 *       20     4  min_order (2)          24  4  max_order (6)
 *       28     4  n_slots: a power of two, at least twice n_contexts
 *       32     8  seed of the fingerprints
 *       40     8  tokenizer_hash: FNV-1a 64 of the tokenizer's file (0: unknown)
 *       48     4  n_contexts             52  4  n_followers
 *       56     8  corpus_tokens: ids counted
 *       64     8  pruned_contexts: contexts left out to fit the size cap
 *       72    20  contexts_per_order[5] (orders 2..6)
 *       92     4  reserved (0)
 *       96        slots [n_slots] of 24 bytes (deco_ngram_slot_t: u64 fingerprint,
 *                 u32 first, u32 count, u32 total, u32 order; empty slots all 0)
 *                 followers [n_followers] of 8 bytes (u32 token, u32 count),
 *                 each context's run sorted by token, runs back to back
 *      end-8   8  FNV-1a 64 of every preceding byte
 * A file is validated in full before use: every field, every slot (order,
 * follower run inside the array, total = the run's sum, reachable from its
 * home slot, fingerprints distinct), every follower (id < vocab_size,
 * strictly increasing in its run, count >= 1) and the checksum. */
#define DECO_NGRAM_MAGIC "DECONGRM"
#define DECO_NGRAM_VERSION 1
#define DECO_NGRAM_HEADER_BYTES 96
#define DECO_NGRAM_DEFAULT_MAX_BYTES ((size_t)16 << 20) /* the builder's default size cap: 16 MiB */

typedef struct deco_ngram_table deco_ngram_table_t;

typedef struct deco_ngram_info {
  int vocab_size;
  uint64_t tokenizer_hash;
  uint64_t seed;
  uint32_t n_slots;
  uint32_t n_contexts;
  uint32_t n_followers;
  uint64_t corpus_tokens;
  uint64_t pruned_contexts;
  uint32_t contexts_per_order[DECO_NGRAM_N_ORDERS];
  size_t file_bytes;
} deco_ngram_info_t;

/* FNV-1a 64 of bytes (the tokenizer hash of a tokenizer file's contents;
 * never 0 for a non-empty input in practice, and 0 means "unknown"). */
DECO_API uint64_t deco_ngram_hash_bytes(const void *data, size_t size);

/* Loads and validates a table file for a model of vocab_size ids. When
 * tokenizer_hash and the file's are both nonzero they must be equal (the
 * table was counted with another tokenizer otherwise). Messages (on
 * deco_last_error(NULL)) name the file and the field. */
DECO_API deco_status_t deco_ngram_table_load(const char *path, int vocab_size, uint64_t tokenizer_hash,
                                             deco_ngram_table_t **out);
/* The same from a buffer; name starts every message. The buffer is not kept. */
DECO_API deco_status_t deco_ngram_table_load_buffer(const void *data, size_t size, const char *name, int vocab_size,
                                                    uint64_t tokenizer_hash, deco_ngram_table_t **out);
DECO_API void deco_ngram_table_destroy(deco_ngram_table_t *table);
DECO_API deco_status_t deco_ngram_table_info(const deco_ngram_table_t *table, deco_ngram_info_t *info);
/* Writes the file through a temporary file beside path, renamed over it. */
DECO_API deco_status_t deco_ngram_table_save(const deco_ngram_table_t *table, const char *path);
/* The file's bytes (valid while the table lives). */
DECO_API const void *deco_ngram_table_bytes(const deco_ngram_table_t *table, size_t *size);
/* The table in host memory, for deco_ngram_prob and the CPU backend's ops. */
DECO_API deco_ngram_view_t deco_ngram_table_host_view(const deco_ngram_table_t *table);
/* c(ctx, token) and c(ctx) for one order: context holds order - 1 ids,
 * oldest first; both 0 when the context is not in the table. */
DECO_API deco_status_t deco_ngram_table_counts(const deco_ngram_table_t *table, int order, const int32_t *context,
                                               int32_t token, uint32_t *count, uint32_t *total);

/* A copy of a table in a context's memory, for the ops (deco_ngram_lookup). */
typedef struct deco_ngram_device deco_ngram_device_t;
DECO_API deco_status_t deco_ngram_device_create(deco_ctx_t *ctx, const deco_ngram_table_t *table,
                                                deco_ngram_device_t **out);
DECO_API void deco_ngram_device_destroy(deco_ngram_device_t *device);
DECO_API deco_ngram_view_t deco_ngram_device_view(const deco_ngram_device_t *device);
DECO_API deco_ctx_t *deco_ngram_device_ctx(const deco_ngram_device_t *device);

/* Counting: every n-gram (orders 2..6) inside each sequence added (never
 * across two), then the table: contexts ranked by c(ctx) (then by order,
 * then by ids), the rarest left out until the file fits max_bytes. */
typedef struct deco_ngram_builder deco_ngram_builder_t;
DECO_API deco_status_t deco_ngram_builder_create(int vocab_size, deco_ngram_builder_t **out);
DECO_API void deco_ngram_builder_destroy(deco_ngram_builder_t *builder);
/* One sequence of n ids, each in [0, vocab_size). */
DECO_API deco_status_t deco_ngram_builder_add(deco_ngram_builder_t *builder, const int32_t *ids, int n);
/* The table of everything added so far (the builder stays usable). */
DECO_API deco_status_t deco_ngram_builder_finish(deco_ngram_builder_t *builder, size_t max_bytes,
                                                 uint64_t tokenizer_hash, deco_ngram_table_t **out);

/* ---- The runner ------------------------------------------------------------------ */

/* Defaults of the authors' code (params/p15_d3_mixed.json). */
#define DECO_SUPERPOSE_DEFAULT_K 3
#define DECO_SUPERPOSE_DEFAULT_M 9
#define DECO_SUPERPOSE_DEFAULT_TEMPERATURE 0.06f
#define DECO_SUPERPOSE_DEFAULT_ALPHA 0.54f
#define DECO_SUPERPOSE_DEFAULT_PENALTY 200.0f

typedef struct deco_superpose_config {
  size_t size;              /* sizeof(deco_superpose_config_t), for growth: set by the INIT macro */
  int k;                    /* drafts per prompt, 1..DECO_SUPERPOSE_MAX_K */
  int m;                    /* candidates per step, 1..min(DECO_SUPERPOSE_MAX_M, vocab) */
  float temperature;        /* T > 0 of the softmax over the logits */
  float alpha;              /* weight of the n-grams, [0, 1]; 0 leaves them out */
  float lambda[DECO_NGRAM_N_ORDERS]; /* weights of orders 2..6, each in [0, 1], summing to at most 1 */
  float penalty;            /* subtracted from drafts the n-grams know nothing of */
  const deco_ngram_table_t *ngram; /* required when alpha > 0 (its vocabulary the model's); else ignored */
  int steps;                /* forward positions including the prompt, 1..seq_len (as deco_generate) */
  int ignore_eos;           /* 1: no stop ids, every draft runs to steps */
  const int32_t *stop_ids;  /* NULL: the model's */
  int n_stop_ids;           /* with stop_ids: 1..DECO_SUPERPOSE_MAX_STOP_IDS */
  int graph;                /* CUDA: capture one step as a graph and replay it */
  int replay_chunk;         /* replays between two reads of the state (0: 8) */
  int page_size;            /* of the private KV cache (0: 16) */
  /* ngram already in the model's context (deco_ngram_device_create), e.g.
   * to run many prompts without copying the table each time; NULL: the
   * runner copies ngram itself. When given, ngram must be its table (one
   * of another seed, slot or follower count is refused). */
  const deco_ngram_device_t *ngram_device;
} deco_superpose_config_t;
#define DECO_SUPERPOSE_CONFIG_INIT                                                                             \
  {.size = sizeof(deco_superpose_config_t), .k = DECO_SUPERPOSE_DEFAULT_K, .m = DECO_SUPERPOSE_DEFAULT_M,     \
   .temperature = DECO_SUPERPOSE_DEFAULT_TEMPERATURE, .alpha = DECO_SUPERPOSE_DEFAULT_ALPHA,                  \
   .lambda = {0.01f, 0.04f, 0.15f, 0.18f, 0.12f}, .penalty = DECO_SUPERPOSE_DEFAULT_PENALTY, .ngram = NULL,   \
   .steps = 256, .ignore_eos = 0, .stop_ids = NULL, .n_stop_ids = 0, .graph = 0, .replay_chunk = 8,           \
   .page_size = 16, .ngram_device = NULL}

typedef struct deco_superpose_draft {
  double logp;         /* its running log-probability: the sum of its steps' interpolated scores */
  int finished;        /* 1: it ended at a stop id (not among its ids) */
  int n_ids;           /* ids generated after the prompt */
  const int32_t *ids;  /* [n_ids], inside the result */
} deco_superpose_draft_t;

typedef struct deco_superpose_stats {
  int forwards;          /* one-token forwards after the prefill (batched over the prompts) */
  int tokens;            /* ids of every returned draft of every prompt */
  double capture_seconds; /* capturing and instantiating the CUDA graph */
  int step_allocations;  /* context allocations after the plan: 0 */
} deco_superpose_stats_t;

/* What a run returns; release with deco_superpose_result_free. */
typedef struct deco_superpose_result {
  int n_prompts;
  int k;
  int *n_forced;  /* [n_prompts] prompt ids the prefill committed: every draft of prompt b continues
                     prompt[0 .. n_forced[b]], n_forced[b] + 1 ids (a prompt longer than steps is cut) */
  int *n_drafts;  /* [n_prompts] drafts returned (k unless fewer ever existed) */
  deco_superpose_draft_t *drafts; /* [n_prompts][k]: drafts[b * k + i], i < n_drafts[b], best first */
  int32_t *storage;
  deco_superpose_stats_t stats;
} deco_superpose_result_t;
#define DECO_SUPERPOSE_RESULT_INIT                                                            \
  {.n_prompts = 0, .k = 0, .n_forced = NULL, .n_drafts = NULL, .drafts = NULL, .storage = NULL, \
   .stats = {.forwards = 0, .tokens = 0, .capture_seconds = 0.0, .step_allocations = 0}}
DECO_API void deco_superpose_result_free(deco_superpose_result_t *result);

/* Runs superposed decoding for n_prompts prompts (prompts[b], n_prompt[b]
 * ids each) in one batch: a prefill of every prompt id but the last (in
 * forwards of at most 16384 ids), then
 * one batched one-token forward per step, every step's ops on the device
 * (captured once as a CUDA graph with config->graph), until every prompt
 * has run steps positions or is done. Returns each prompt's best k drafts
 * (finished and alive together, by running log-probability, ties to the
 * finished), deco/superpose_ops.h describing the rule. k = 1 with alpha = 0
 * gives greedy decoding's ids. Every buffer is planned before the prefill. */
DECO_API deco_status_t deco_superpose_generate(deco_model_t *model, int n_prompts, const int32_t *const *prompts,
                                               const int *n_prompt, const deco_superpose_config_t *config,
                                               deco_superpose_result_t *out);

/* ---- The session: the runner's steps, one at a time ---------------------------
 * For engines and tests: create (checks, plans and allocates everything,
 * uploads the table), prefill (the prompts' KV and the drafts' first state),
 * then steps (each enqueued on the context's stream, capturable) or run
 * (steps until done, eager or replayed as a graph), then the result. Step,
 * run, poll and result before the prefill are refused (invalid argument). */
typedef struct deco_superpose_session deco_superpose_session_t;
DECO_API deco_status_t deco_superpose_session_create(deco_model_t *model, int n_prompts,
                                                     const int32_t *const *prompts, const int *n_prompt,
                                                     const deco_superpose_config_t *config,
                                                     deco_superpose_session_t **out);
DECO_API void deco_superpose_session_destroy(deco_superpose_session_t *session);
DECO_API deco_status_t deco_superpose_session_prefill(deco_superpose_session_t *session);
/* One step: mix → forward → top-m → [n-gram lookup] → select. */
DECO_API deco_status_t deco_superpose_session_step(deco_superpose_session_t *session);
DECO_API deco_status_t deco_superpose_session_run(deco_superpose_session_t *session);
/* 1 in *done when every prompt is done; *forwards: the most steps any prompt ran. */
DECO_API deco_status_t deco_superpose_session_poll(deco_superpose_session_t *session, int *done, int *forwards);
DECO_API deco_status_t deco_superpose_session_result(deco_superpose_session_t *session,
                                                     deco_superpose_result_t *out);

/* The session's buffers (context memory), to inspect a step. */
typedef struct deco_superpose_buffers {
  int n_prompts, k, m, max_steps, vocab, dim;
  deco_superpose_drafts_t drafts;
  const float *embeds;      /* [B][dim] the last step's input */
  const float *logits;      /* [B][vocab] the last step's logits */
  const int32_t *cand_ids;  /* [B][m] */
  const float *cand_logits; /* [B][m] */
  const double *ngram_probs; /* [B][k][m], NULL when alpha = 0 */
  const int32_t *positions; /* [B] the next forward's positions */
} deco_superpose_buffers_t;
DECO_API deco_status_t deco_superpose_session_buffers(const deco_superpose_session_t *session,
                                                      deco_superpose_buffers_t *buffers);

#ifdef __cplusplus
}
#endif
#endif /* DECO_SUPERPOSE_H */
