/* deco/model.h — the Llama host layer: model loading (llama2.c checkpoints
 * and seeded synthetic models), the paged KV cache manager, one forward
 * entry point for a ragged batch of sequences, and token sampling.
 *
 * The model lives in the context's address space (device memory on CUDA)
 * in one dtype; the residual stream and the logits are f32.
 */
#ifndef DECO_MODEL_H
#define DECO_MODEL_H

#include "deco/core.h"
#include "deco/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct deco_model_config {
  int dim;
  int hidden_dim;
  int n_layers;
  int n_heads;
  int n_kv_heads;
  int head_dim;          /* dim / n_heads */
  int vocab_size;
  int seq_len;
  float rope_theta;
  float norm_eps;
  deco_rope_style_t rope_style;
  int shared_classifier; /* 1: logits use the token embedding table */
  int builtin_vocab;     /* 1: ids 0-2 special, 3-258 bytes (synthetic tiny) */
} deco_model_config_t;

typedef struct deco_model deco_model_t;

/* Reads only the 28-byte header of a llama2.c checkpoint and checks it
 * against the file's size; the message names the file and the field. */
DECO_API deco_status_t deco_llama2c_read_config(const char *path, deco_model_config_t *config);
/* The same for a checkpoint held in memory; name (e.g. the file name) starts
 * every message. */
DECO_API deco_status_t deco_llama2c_read_config_buffer(const void *data, size_t size, const char *name,
                                                       deco_model_config_t *config);

/* Loads a llama2.c checkpoint (legacy v0 header of 7 int32, fp32 weights,
 * negative vocab = separate classifier, legacy RoPE tables skipped) into the
 * context in dtype. The whole file is validated before anything is used. */
DECO_API deco_status_t deco_model_load_llama2c(deco_ctx_t *ctx, const char *path, deco_dtype_t dtype,
                                               deco_model_t **out);
/* The same from a checkpoint held in memory (size bytes at data, 4-byte
 * aligned), e.g. one embedded in a program; name starts every message. The
 * buffer is not kept. */
DECO_API deco_status_t deco_model_load_llama2c_buffer(deco_ctx_t *ctx, const void *data, size_t size,
                                                      const char *name, deco_dtype_t dtype, deco_model_t **out);

/* The seed of the synthetic models the CLI, tests and benches share. */
#define DECO_SYNTHETIC_SEED 0x5EEDu

/* Seeded synthetic model: "tiny", "llama2-7b" or "llama3-8b" (docs/DESIGN.md,
 * docs/CLI.md). Weights are generated where they live. Refused on the CPU
 * backend above 2^28 parameters. */
DECO_API deco_status_t deco_model_create_synthetic(deco_ctx_t *ctx, const char *name, uint64_t seed,
                                                   deco_dtype_t dtype, deco_model_t **out);
/* Shape of a synthetic model without creating it; fails for unknown names. */
DECO_API deco_status_t deco_synthetic_config(const char *name, deco_model_config_t *config);

DECO_API void deco_model_destroy(deco_model_t *model);
DECO_API const deco_model_config_t *deco_model_get_config(const deco_model_t *model);
DECO_API deco_dtype_t deco_model_dtype(const deco_model_t *model);
DECO_API deco_ctx_t *deco_model_ctx(const deco_model_t *model);
/* Bytes of weights held in the context's memory. */
DECO_API size_t deco_model_weight_bytes(const deco_model_t *model);

/* ---- Paged KV cache manager -------------------------------------------- */

typedef struct deco_kv_cache deco_kv_cache_t;

/* Pools of n_pages pages of page_size slots for every layer of the model. */
DECO_API deco_status_t deco_kv_cache_create(deco_model_t *model, int page_size, int n_pages,
                                            int max_seqs, deco_kv_cache_t **out);
DECO_API void deco_kv_cache_destroy(deco_kv_cache_t *cache);

/* Admits a sequence and reserves pages for reserve_slots slots up front
 * (min(seq_len, steps) + the largest draft tree), so a running sequence
 * never fails for lack of pages. */
DECO_API deco_status_t deco_kv_cache_admit(deco_kv_cache_t *cache, int reserve_slots, int *seq);
DECO_API deco_status_t deco_kv_cache_release(deco_kv_cache_t *cache, int seq);
/* Committed tokens of a sequence (slots 0..len-1 hold valid K/V). */
DECO_API int deco_kv_cache_seq_len(const deco_kv_cache_t *cache, int seq);
/* Slots reserved for a sequence. */
DECO_API int deco_kv_cache_seq_capacity(const deco_kv_cache_t *cache, int seq);
DECO_API int deco_kv_cache_free_pages(const deco_kv_cache_t *cache);

/* ---- Forward -------------------------------------------------------------- */

typedef enum deco_logits_mode {
  DECO_LOGITS_LAST = 0, /* one row per sequence: its last new token */
  DECO_LOGITS_ALL = 1   /* one row per new token */
} deco_logits_mode_t;

/* A batch of new tokens for several sequences (arrays in host memory).
 * Causal (parents == NULL): sequence seqs[i] gets n_new[i] tokens at
 * positions len .. len + n_new[i] - 1, appended to its cache; its length
 * grows by n_new[i].
 * Tree (parents != NULL): the n_new[i] tokens of sequence i are the nodes of
 * a draft tree (parents[] holds local parent indices, -1 at the root, see
 * deco/tree.h); node j's K/V goes to slot len + j and its position is
 * len + depth(j); each node attends to the committed prefix, its ancestors
 * and itself. The length does not change: acceptance, compaction and
 * deco_kv_cache_commit decide what stays. */
typedef struct deco_forward_args {
  int n_seqs;
  const int *seqs;          /* [n_seqs] handles from deco_kv_cache_admit */
  const int *n_new;         /* [n_seqs] >= 1 (<= 256 in tree mode) */
  const int32_t *tokens;    /* [sum n_new] ids, or NULL when embeds is given */
  const float *embeds;      /* [sum n_new][dim] f32 input embeddings (host) */
  const int32_t *parents;   /* [sum n_new] tree mode, or NULL for causal */
  deco_logits_mode_t logits_mode;
  float *logits;            /* context memory: [n_seqs or sum n_new][vocab] f32 */
} deco_forward_args_t;

DECO_API deco_status_t deco_forward(deco_model_t *model, deco_kv_cache_t *cache,
                                    const deco_forward_args_t *args);

/* Marks n more slots of a sequence as committed (after a tree forward and
 * compaction of the accepted path). */
DECO_API deco_status_t deco_kv_cache_commit(deco_kv_cache_t *cache, int seq, int n);

/* Row length of the cache's block tables (pages per sequence at most). */
DECO_API int deco_kv_cache_max_pages(const deco_kv_cache_t *cache);
/* Copies the block-table rows of seqs[0..n) into dst (context memory,
 * [n][deco_kv_cache_max_pages]), for forwards described in device memory. */
DECO_API deco_status_t deco_kv_cache_block_table(deco_kv_cache_t *cache, const int *seqs, int n, int32_t *dst);
/* The K and V pools of all layers ([n_layers][n_pages][page_size][n_kv_heads][head_dim]
 * each, context memory) and their size in bytes, e.g. to inspect or copy a cache. */
DECO_API deco_status_t deco_kv_cache_pools(const deco_kv_cache_t *cache, void **k, void **v, size_t *bytes);

/* The forward with its batch described in context memory, so that the whole
 * step can be captured in a CUDA graph: no host work depends on the batch's
 * contents. Tokens are laid out per sequence (q_indptr); token j of
 * sequence s goes to slot kv_lens[s] - n_s + j at RoPE position
 * positions[t]. With parents (tree mode, local indices) each token attends
 * to prefix_lens[s] committed slots, its ancestors and itself; without,
 * causally. The host-side lengths of the cache are not changed (commit with
 * deco_kv_cache_commit). Logits of every token: [n_tokens][vocab] f32. */
typedef struct deco_forward_device_args {
  int n_seqs;                 /* S */
  int n_tokens;               /* T: capacity; the real count is q_indptr[S] */
  const int32_t *tokens;      /* [T] */
  const int32_t *positions;   /* [T] */
  const int32_t *q_indptr;    /* [S + 1] */
  const int32_t *kv_lens;     /* [S] */
  const int32_t *prefix_lens; /* [S], tree mode */
  const int32_t *parents;     /* [T] local parents (tree mode), or NULL (causal) */
  const int32_t *block_table; /* [S][deco_kv_cache_max_pages(cache)] */
  float *logits;              /* [T][vocab] */
} deco_forward_device_args_t;
DECO_API deco_status_t deco_forward_device(deco_model_t *model, deco_kv_cache_t *cache,
                                           const deco_forward_device_args_t *args);

/* ---- Sampling (host, on f32 logits) ---------------------------------------- */

typedef struct deco_sampler_config {
  float temperature;  /* 0 = greedy: argmax, ties -> lowest id */
  float top_p;        /* nucleus when temperature > 0; >= 1 disables */
  uint64_t seed;      /* Philox key */
} deco_sampler_config_t;

typedef struct deco_sampler deco_sampler_t;

DECO_API deco_status_t deco_sampler_create(int vocab, const deco_sampler_config_t *config,
                                           deco_sampler_t **out);
DECO_API void deco_sampler_destroy(deco_sampler_t *sampler);
/* Draws one token from host logits [vocab]; the uniform comes from Philox
 * counter (offset, request, 0, 0) so a position's draw is reproducible.
 * logits are not modified. Returns -1 when a logit is NaN or infinite (the
 * model's output is unusable; nothing is drawn). */
DECO_API int deco_sampler_sample(deco_sampler_t *sampler, const float *logits, uint32_t offset,
                                 uint32_t request);
/* Index of the largest value, ties -> lowest index (NaN never wins). */
DECO_API int deco_argmax(const float *values, int n);

#ifdef __cplusplus
}
#endif
#endif /* DECO_MODEL_H */
