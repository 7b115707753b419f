/* deco/model.h — the Llama host layer: model loading (llama2.c checkpoints,
 * GGUF files and seeded synthetic models), the paged KV cache manager, one
 * forward entry point for a ragged batch of sequences, and token sampling.
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

/* The architecture a checkpoint describes (its "hyperparameters"). */
#define DECO_MAX_STOP_IDS 8

typedef struct deco_model_hparams {
  int dim;
  int hidden_dim;
  int n_layers;
  int n_heads;
  int n_kv_heads;
  int head_dim;          /* per head of Q, K and V: dim / n_heads in every checkpoint deco loads (a GGUF
                            key_length / value_length must agree); any even 8..256 for
                            deco_model_create_synthetic_hparams */
  int vocab_size;
  int seq_len;
  float rope_theta;
  float norm_eps;
  deco_rope_style_t rope_style;
  int shared_classifier; /* 1: logits use the token embedding table */
  int builtin_vocab;     /* 1: ids 0-2 special, 3-258 bytes (synthetic tiny) */
  int bos_id;            /* the id a prompt starts with (llama2.c: 1) */
  /* The ids that end a generation (llama2.c checkpoints and the synthetic
   * models: {1 (BOS, the story delimiter), 2 (EOS)}). */
  int n_stop_ids;
  int32_t stop_ids[DECO_MAX_STOP_IDS];
} deco_model_hparams_t;

/* Reads only the 28-byte header of a llama2.c checkpoint and checks it
 * against the file's size; the message names the file and the field. */
DECO_API deco_status_t deco_llama2c_read_hparams(const char *path, deco_model_hparams_t *hparams);
/* The same for a checkpoint held in memory; name (e.g. the file name) starts
 * every message. */
DECO_API deco_status_t deco_llama2c_read_hparams_buffer(const void *data, size_t size, const char *name,
                                                        deco_model_hparams_t *hparams);
/* Shape of a synthetic model without creating it; fails for unknown names. */
DECO_API deco_status_t deco_synthetic_hparams(const char *name, deco_model_hparams_t *hparams);
/* Parses a GGUF file's header, metadata and tensor table (the file is
 * mapped; tensor data is not read) and derives the Llama architecture:
 * general.architecture "llama", the llama.* keys, every tensor's name,
 * shape and type (F32, F16, BF16, Q8_0, Q4_0, Q4_1; others refused by
 * name); RoPE pairs interleaved; BOS = tokenizer.ggml.bos_token_id (-1 when
 * absent); stop ids = eos_token_id, eot_token_id and the id of the token
 * "<|endoftext|>" when present (BOS is not one). Messages name the file and
 * the field. */
DECO_API deco_status_t deco_gguf_read_hparams(const char *path, deco_model_hparams_t *hparams);
DECO_API deco_status_t deco_gguf_read_hparams_buffer(const void *data, size_t size, const char *name,
                                                     deco_model_hparams_t *hparams);
/* Either format, told apart by the file's magic ("GGUF", else a llama2.c
 * checkpoint). */
DECO_API deco_status_t deco_model_read_hparams(const char *path, deco_model_hparams_t *hparams);

/* ---- Model configuration ----------------------------------------------------
 * How a model is instantiated, one struct for every loader. Start from
 * DECO_MODEL_CONFIG_INIT and set fields by name; zero means "default" for
 * every field but size. A NULL config is DECO_MODEL_CONFIG_INIT. */

/* A communicator for tensor parallelism (deco/comm.h). */
typedef struct deco_comm deco_comm_t;

/* Which layers a forward runs, and how. Groups of consecutive layers, in
 * increasing order and not overlapping; layers outside every group are
 * skipped (self-drafting runs a subset; their KV slots are not written).
 * A group of layers i..j entered with the residual stream h runs, with
 * h1 = h:
 *   A_l = Attn_l(RMSNorm_l(h1))          for every l in i..j (one input),
 *   then for l = i..j in order:  h += A_l;  h += MLP_l(RMSNorm'_l(h)).
 * A group of one layer is the ordinary layer; every layer alone (n_groups =
 * 0) is the ordinary forward, bit for bit. Groups of several layers are
 * layer-parallel drafting (EasySpec): their attention sublayers can run at
 * once. The arrays are copied when the schedule is given to a model, read
 * only during the call when given to a forward. */
#define DECO_MAX_LAYER_GROUP 16
typedef struct deco_layer_schedule {
  int n_groups;       /* 0: every layer alone, in order */
  const int *first;   /* [n_groups] the first layer of each group */
  const int *count;   /* [n_groups] its layers, 1..DECO_MAX_LAYER_GROUP */
} deco_layer_schedule_t;
#define DECO_LAYER_SCHEDULE_INIT {.n_groups = 0, .first = NULL, .count = NULL}

typedef struct deco_model_config {
  size_t size;                /* sizeof(deco_model_config_t), for growth: set by the INIT macro */
  deco_dtype_t dtype;         /* weights, activations and KV (f32; the CPU backend takes f32 only) */
  /* KV heads to run with: 0 = the checkpoint's. The loader runs the
   * checkpoint's count only: a count that is not a valid compression (it
   * must divide n_heads and not exceed the checkpoint's) is
   * DECO_STATUS_INVALID_ARGUMENT, a valid one DECO_STATUS_UNSUPPORTED —
   * merging KV heads is done once, offline, by deco_compress_model
   * (deco/compress.h, `deco compress`), whose output is an ordinary
   * checkpoint with fewer KV heads. */
  int n_kv_heads;
  /* Tensor parallelism: this rank of tp_size (0 = 1) over comm (its size
   * and rank must agree; required above 1). The model then holds its
   * slices only (Q/K/V and gate/up by heads and FFN columns, O and down
   * row-parallel with an all-reduce after each; norms, embeddings and the
   * classifier replicated), and every rank's logits are the same bits.
   * TP must divide the query heads, and the KV heads must divide by TP or
   * divide it; synthetic models run at 1 only. */
  deco_comm_t *comm;
  int tp_rank;
  int tp_size;
  /* The layer schedule forwards use unless they name their own. */
  deco_layer_schedule_t schedule;
} deco_model_config_t;
#define DECO_MODEL_CONFIG_INIT                                                                            \
  {                                                                                                       \
    .size = sizeof(deco_model_config_t), .dtype = DECO_DTYPE_F32, .n_kv_heads = 0, .comm = NULL,           \
    .tp_rank = 0, .tp_size = 1, .schedule = DECO_LAYER_SCHEDULE_INIT                                      \
  }

typedef struct deco_model deco_model_t;

/* Loads a llama2.c checkpoint (legacy v0 header of 7 int32, fp32 weights,
 * negative vocab = separate classifier, legacy RoPE tables skipped) into the
 * context in config->dtype. The whole file is validated before anything is
 * used. config may be NULL (DECO_MODEL_CONFIG_INIT). */
DECO_API deco_status_t deco_model_load_llama2c(deco_ctx_t *ctx, const char *path, const deco_model_config_t *config,
                                               deco_model_t **out);
/* The same from a checkpoint held in memory (size bytes at data, 4-byte
 * aligned), e.g. one embedded in a program; name starts every message. The
 * buffer is not kept. */
DECO_API deco_status_t deco_model_load_llama2c_buffer(deco_ctx_t *ctx, const void *data, size_t size,
                                                      const char *name, const deco_model_config_t *config,
                                                      deco_model_t **out);

/* Loads a Llama GGUF file (versions 2 and 3; deco_gguf_read_hparams says
 * what is accepted): the file is mapped, validated whole (every tensor's
 * values or block scales finite), and each tensor is dequantised once
 * (deco_dequant, deco/quant.h) into config->dtype in the context's memory;
 * the forward never sees a quantised weight. A file without output.weight
 * ties the classifier to token_embd. config may be NULL. */
DECO_API deco_status_t deco_model_load_gguf(deco_ctx_t *ctx, const char *path, const deco_model_config_t *config,
                                            deco_model_t **out);
/* The same from a GGUF file held in memory (any alignment); name starts
 * every message. The buffer is not kept. */
DECO_API deco_status_t deco_model_load_gguf_buffer(deco_ctx_t *ctx, const void *data, size_t size, const char *name,
                                                   const deco_model_config_t *config, deco_model_t **out);
/* A llama2.c checkpoint or a GGUF file, told apart by the magic. */
DECO_API deco_status_t deco_model_load(deco_ctx_t *ctx, const char *path, const deco_model_config_t *config,
                                       deco_model_t **out);

/* The seed of the synthetic models the CLI, tests and benches share. */
#define DECO_SYNTHETIC_SEED 0x5EEDu

/* Seeded synthetic model: "tiny", "llama2-7b", "llama3-8b" or "smollm2-135m"
 * (docs/DESIGN.md, docs/CLI.md). Weights are generated where they live.
 * Refused on the CPU backend above 2^28 parameters. */
DECO_API deco_status_t deco_model_create_synthetic(deco_ctx_t *ctx, const char *name, uint64_t seed,
                                                   const deco_model_config_t *config, deco_model_t **out);

/* A seeded synthetic model of explicit shapes, with the weights'
 * distribution of the named ones (norms 1, the rest uniform of standard
 * deviation 0.02): a named shape with fewer layers, a shape the names do
 * not cover, or one rank's shard (deco_shard_hparams) run alone at TP 1,
 * which does a rank's arithmetic without its all-reduces (perf/bench_tp_layer.c
 * times it). The shapes are checked (DECO_STATUS_INVALID_ARGUMENT naming
 * the field): dim 1..65536, hidden_dim 1..2^18, n_layers 1..1024,
 * n_kv_heads dividing n_heads, head_dim even within 8..256 (dim need not
 * be n_heads x head_dim), the ids within the vocabulary, rope_theta and
 * norm_eps positive. name labels messages ("synthetic:name"; NULL allowed).
 * The CPU limit and the TP-1-only rule of deco_model_create_synthetic hold. */
DECO_API deco_status_t deco_model_create_synthetic_hparams(deco_ctx_t *ctx, const deco_model_hparams_t *hparams,
                                                          const char *name, uint64_t seed,
                                                          const deco_model_config_t *config, deco_model_t **out);

/* The shapes one rank holds under tensor parallelism tp (docs/DESIGN.md,
 * "Tensor parallelism"; the same plan the loaders use): n_heads / tp query
 * heads; n_kv_heads / tp KV heads when tp divides them, else 1 (replicated,
 * when they divide tp); hidden_dim padded to ceil(hidden_dim / tp); dim,
 * head_dim, the vocabulary and the layers unchanged. The shapes are the
 * same on every rank. DECO_STATUS_INVALID_ARGUMENT naming the head counts
 * and tp when the heads do not split. */
DECO_API deco_status_t deco_shard_hparams(const deco_model_hparams_t *full, int tp, deco_model_hparams_t *local);

/* A view of base that runs its own layer schedule (e.g. a subset of the
 * layers: layers outside every group are skipped; the first and last
 * norms, the embedding and the classifier are base's), sharing base's
 * weights (never copied: base must outlive the view) with forward scratch
 * of its own. Caches are created on the view (deco_kv_cache_create(view,
 * ...)); they hold every layer's pool, the skipped ones unused. Destroy it
 * with deco_model_destroy (its weights stay). */
DECO_API deco_status_t deco_model_create_view(deco_model_t *base, const deco_layer_schedule_t *schedule,
                                              deco_model_t **out);
/* A view whose groups of several layers run across the ranks of comm
 * (layer-parallel drafting across ranks, docs/DESIGN.md "Layer groups
 * across ranks"); every rank calls it on its own base (TP 1, the same
 * checkpoint) with the same schedule. Rank r computes, in every group, the
 * attention of the group's r-th layer only, and holds that layer's K/V (its
 * cache's other grouped layers stay unwritten); the group input is
 * broadcast from rank 0, the N attention outputs all-gathered (not summed)
 * and added in order around the MLPs, which every rank runs (replicated),
 * as it runs the layers outside groups, the embedding and the classifier:
 * every rank ends with the same logits. comm's size must be at least the
 * largest group; ranks past a group's size idle in its attention. The
 * communicator must outlive the view. */
DECO_API deco_status_t deco_model_create_view_ranks(deco_model_t *base, const deco_layer_schedule_t *schedule,
                                                    deco_comm_t *comm, deco_model_t **out);
DECO_API void deco_model_destroy(deco_model_t *model);
/* The architecture the model runs (n_kv_heads as configured; the
 * checkpoint's shapes, not a rank's shard). */
DECO_API const deco_model_hparams_t *deco_model_get_hparams(const deco_model_t *model);
DECO_API deco_dtype_t deco_model_dtype(const deco_model_t *model);
DECO_API deco_ctx_t *deco_model_ctx(const deco_model_t *model);
/* Bytes of weights held in the context's memory (this rank's shard under
 * tensor parallelism). */
DECO_API size_t deco_model_weight_bytes(const deco_model_t *model);

/* ---- Paged KV cache manager -------------------------------------------- */

typedef struct deco_kv_cache deco_kv_cache_t;

/* Pools of n_pages pages of page_size slots for every layer of the model. */
DECO_API deco_status_t deco_kv_cache_create(deco_model_t *model, int page_size, int n_pages,
                                            int max_seqs, deco_kv_cache_t **out);
DECO_API void deco_kv_cache_destroy(deco_kv_cache_t *cache);
/* The model whose K/V the cache holds. */
DECO_API deco_model_t *deco_kv_cache_model(const deco_kv_cache_t *cache);

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
  DECO_LOGITS_ALL = 1,  /* one row per new token */
  DECO_LOGITS_TAIL = 2  /* n_tail rows per sequence: its last n_tail new tokens, in order
                         * (e.g. a draft tree's deepest level) */
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
  float *logits;            /* context memory: [n_seqs, sum n_new or n_seqs * n_tail][vocab] f32 */
  const deco_layer_schedule_t *schedule; /* NULL: the model's */
  int n_tail;               /* DECO_LOGITS_TAIL: 1 <= n_tail <= every n_new[i]; otherwise ignored */
} deco_forward_args_t;
#define DECO_FORWARD_ARGS_INIT                                                                        \
  {                                                                                                   \
    .n_seqs = 0, .seqs = NULL, .n_new = NULL, .tokens = NULL, .embeds = NULL, .parents = NULL,         \
    .logits_mode = DECO_LOGITS_LAST, .logits = NULL, .schedule = NULL, .n_tail = 0                    \
  }

DECO_API deco_status_t deco_forward(deco_model_t *model, deco_kv_cache_t *cache,
                                    const deco_forward_args_t *args);

/* Marks n more slots of a sequence as committed (after a tree forward and
 * compaction of the accepted path). */
DECO_API deco_status_t deco_kv_cache_commit(deco_kv_cache_t *cache, int seq, int n);
/* Shortens a sequence's committed length to len (0 <= len <= its length):
 * the slots from len on are uncommitted again, their pages stay reserved and
 * the next forward writes over them. For a caller that commits ahead and
 * takes back what was not accepted (the model drafter's chains). */
DECO_API deco_status_t deco_kv_cache_truncate(deco_kv_cache_t *cache, int seq, int len);

/* Row length of the cache's block tables (pages per sequence at most). */
DECO_API int deco_kv_cache_max_pages(const deco_kv_cache_t *cache);
/* Copies the block-table rows of seqs[0..n) into dst (context memory,
 * [n][deco_kv_cache_max_pages]), for forwards described in device memory. */
DECO_API deco_status_t deco_kv_cache_block_table(deco_kv_cache_t *cache, const int *seqs, int n, int32_t *dst);
/* The K and V pools of all layers ([n_layers][n_pages][page_size][n_kv_heads][head_dim]
 * each, context memory) and their size in bytes, e.g. to inspect or copy a cache. */
DECO_API deco_status_t deco_kv_cache_pools(const deco_kv_cache_t *cache, void **k, void **v, size_t *bytes);

/* After acceptance: moves the accepted path of each of n_seqs trees to the
 * slots right after its committed prefix, in every layer (deco_kv_compact
 * over the cache's pools, one launch). Arrays in context memory; enqueued
 * only, so it can be captured. The host-side lengths do not change
 * (deco_kv_cache_commit). */
typedef struct deco_kv_cache_compact_args {
  int n_seqs;
  const int32_t *block_table; /* [n_seqs][deco_kv_cache_max_pages(cache)] */
  const int32_t *prefix_lens; /* [n_seqs] committed slots */
  const int32_t *path;        /* [n_seqs][DECO_TREE_MAX_NODES] acceptance's paths */
  const int32_t *accept_len;  /* [n_seqs] */
} deco_kv_cache_compact_args_t;
#define DECO_KV_CACHE_COMPACT_ARGS_INIT \
  {.n_seqs = 0, .block_table = NULL, .prefix_lens = NULL, .path = NULL, .accept_len = NULL}
DECO_API deco_status_t deco_kv_cache_compact(deco_kv_cache_t *cache, const deco_kv_cache_compact_args_t *args);

/* The forward with its batch described in context memory, so that the whole
 * step can be captured in a CUDA graph: no host work depends on the batch's
 * contents. Tokens are laid out per sequence (q_indptr); token j of
 * sequence s goes to slot kv_lens[s] - n_s + j at RoPE position
 * positions[t]. With parents (tree mode, local indices) each token attends
 * to prefix_lens[s] committed slots, its ancestors and itself; without,
 * causally. The input is token ids, or ready f32 embeddings in context
 * memory (tokens NULL; e.g. superposed decoding's weighted mixes). The
 * host-side lengths of the cache are not changed (commit with
 * deco_kv_cache_commit). Logits of every token: [n_tokens][vocab] f32. */
typedef struct deco_forward_device_args {
  int n_seqs;                 /* S */
  int n_tokens;               /* T: capacity; the real count is q_indptr[S] */
  const int32_t *tokens;      /* [T], or NULL when embeds is given */
  const int32_t *positions;   /* [T] */
  const int32_t *q_indptr;    /* [S + 1] */
  const int32_t *kv_lens;     /* [S] */
  const int32_t *prefix_lens; /* [S], tree mode */
  const int32_t *parents;     /* [T] local parents (tree mode), or NULL (causal) */
  const int32_t *block_table; /* [S][deco_kv_cache_max_pages(cache)] */
  float *logits;              /* [T][vocab] */
  const float *embeds;        /* [T][dim] f32 in context memory, used when tokens is NULL */
  const deco_layer_schedule_t *schedule; /* NULL: the model's */
} deco_forward_device_args_t;
#define DECO_FORWARD_DEVICE_ARGS_INIT                                                                 \
  {                                                                                                   \
    .n_seqs = 0, .n_tokens = 0, .tokens = NULL, .positions = NULL, .q_indptr = NULL, .kv_lens = NULL,  \
    .prefix_lens = NULL, .parents = NULL, .block_table = NULL, .logits = NULL, .embeds = NULL,         \
    .schedule = NULL                                                                                  \
  }
DECO_API deco_status_t deco_forward_device(deco_model_t *model, deco_kv_cache_t *cache,
                                           const deco_forward_device_args_t *args);

/* ---- Planning ----------------------------------------------------------------
 * A forward's buffers (activations, the batch description, the workspace
 * of the attention it calls, lent to the context) grow on demand to the
 * largest batch seen. deco_model_plan sizes them once for the largest batch
 * to come, so that no later forward within the plan allocates: plan before
 * capturing a step in a CUDA graph. The workspace is shared by every op on
 * the context; workspace_bytes reserves room for the caller's own ops (a
 * decoding step's acceptance, top-k, table update). Plans only grow. A
 * forward larger than the plan (more tokens, sequences or pages) grows the
 * buffers, freeing the old ones: a CUDA graph captured around an earlier
 * forward then refers to freed memory and must be captured again
 * (deco_model_hold_plan turns such growth into an error).
 * The model lends its own workspace to the context when the context's is
 * smaller than the plan's (deco_ctx_set_workspace, deco/core.h): size yours
 * to at least sizes->workspace_bytes to keep it; deco_model_destroy gives
 * it back. */
typedef struct deco_forward_plan {
  int max_tokens;         /* T: tokens of the largest forward */
  int max_seqs;           /* S: sequences in it (block tables of the cache's row length) */
  int causal;             /* 1: causal forwards (deco_attention) */
  int tree;               /* 1: tree forwards (deco_tree_attention, <= 256 tokens per sequence) */
  size_t workspace_bytes; /* at least this much shared workspace for the caller's ops */
} deco_forward_plan_t;
#define DECO_FORWARD_PLAN_INIT {.max_tokens = 1, .max_seqs = 1, .causal = 1, .tree = 0, .workspace_bytes = 0}

/* What a plan holds, in bytes of context memory: the scratch as allocated
 * (its token count rounded up, at least every earlier plan's), and the
 * workspace the plan's batches need. */
typedef struct deco_forward_sizes {
  size_t scratch_bytes;   /* activations and the batch description */
  size_t workspace_bytes; /* the shared op workspace */
} deco_forward_sizes_t;
#define DECO_FORWARD_SIZES_INIT {.scratch_bytes = 0, .workspace_bytes = 0}
DECO_API deco_status_t deco_model_plan(deco_model_t *model, deco_kv_cache_t *cache, const deco_forward_plan_t *plan,
                                       deco_forward_sizes_t *sizes);
/* Holds the model's buffers at their present size (hold 1) or lets them
 * grow again (hold 0). While held, a forward, plan or op that would grow
 * them is refused with DECO_STATUS_CAPACITY instead of freeing memory a
 * captured CUDA graph still refers to; a refused forward or plan leaves the
 * cache and its outputs untouched. The workspace is the context's: while
 * any model on the context holds its plan, no model there grows (frees) a
 * workspace it lends. Scratch is per model: hold every model whose forwards
 * a graph captures (a draft view and its base). Hold from the capture until
 * the graph is destroyed. Not held at creation; destroying a held model
 * releases its hold. */
DECO_API deco_status_t deco_model_hold_plan(deco_model_t *model, int hold);

/* ---- Sampling (host, on f32 logits) ---------------------------------------- */

typedef struct deco_sampler_config {
  size_t size;        /* sizeof(deco_sampler_config_t), for growth: set by the INIT macro */
  float temperature;  /* 0 = greedy: argmax, ties -> lowest id */
  int top_k;          /* when temperature > 0: keep the top_k most likely ids (ties -> lower id); 0 = off; <= 2^24 */
  float top_p;        /* nucleus when temperature > 0 (after top-k); >= 1 disables */
  uint64_t seed;      /* Philox key */
} deco_sampler_config_t;
#define DECO_SAMPLER_CONFIG_INIT \
  {.size = sizeof(deco_sampler_config_t), .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 0}

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
/* Index of the largest value, ties -> lowest index (NaN never wins). 0 when
 * every value is NaN, and for n <= 0 (values is not read then, so (NULL, 0)
 * gives 0). */
DECO_API int deco_argmax(const float *values, int n);

#ifdef __cplusplus
}
#endif
#endif /* DECO_MODEL_H */
