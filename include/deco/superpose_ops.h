/* deco/superpose_ops.h — the ops of superposed decoding (Shen et al. 2024,
 * "Superposed Decoding: Multiple Generations from a Single Autoregressive
 * Inference Pass"; code RAIVNLab/SuperposedDecoding): the mixed input
 * embedding, the n-gram table lookup and the k·m → k selection, the state
 * they keep in context memory, and the n-gram table's layout and hash.
 * Kernel-level: no model or host-layer type appears here; deco/superpose.h
 * has the tables' files, the runner and its session. Every args struct has
 * a DECO_<NAME>_ARGS_INIT macro (pointers NULL, sizes 0, to be set).
 */
#ifndef DECO_SUPERPOSE_OPS_H
#define DECO_SUPERPOSE_OPS_H

#include <stdint.h>

#include "deco/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DECO_SUPERPOSE_MAX_K 16        /* drafts per prompt, 1..16 */
#define DECO_SUPERPOSE_MAX_M 16        /* candidates per step (deco_topk_rows' largest k), 1..16 */
#define DECO_SUPERPOSE_MAX_STOP_IDS 64 /* stop ids a selection compares each candidate with */
#define DECO_NGRAM_MIN_ORDER 2
#define DECO_NGRAM_MAX_ORDER 6
#define DECO_NGRAM_N_ORDERS 5 /* orders 2..6 */
#define DECO_NGRAM_CONTEXT 5  /* ids of the longest context (order 6) */

#if defined(__CUDACC__)
#define DECO_NGRAM_HD __host__ __device__ __forceinline__
#else
#define DECO_NGRAM_HD static inline
#endif

/* ---- The n-gram table (deco/superpose.h reads and writes its file) ----------
 * One open-addressing hash table (linear probing, a power of two of slots,
 * at most half full) over the contexts of every order: a context of order n
 * is the n - 1 ids before a token. A slot holds the context's 64-bit
 * fingerprint (0: an empty slot), which a probe compares in full, so two
 * contexts that share a home slot are never confused; the table's builder
 * guarantees that no two stored contexts share a fingerprint (it changes the
 * seed otherwise). The context's followers, (id, count) sorted by id, sit at
 * followers[first .. first + count). P_n(x | ctx) = c(ctx, x) / c(ctx), with
 * c(ctx) = total, the sum of the followers' counts. */
typedef struct deco_ngram_slot {
  uint64_t fingerprint; /* deco_ngram_fingerprint(seed, order, context); 0 = empty */
  uint32_t first;       /* index of its first follower */
  uint32_t count;       /* followers, >= 1 */
  uint32_t total;       /* c(ctx) */
  uint32_t order;       /* 2..6 */
} deco_ngram_slot_t;

typedef struct deco_ngram_follower {
  uint32_t token;
  uint32_t count; /* c(ctx, token) >= 1 */
} deco_ngram_follower_t;

/* A table where ops read it (context memory for the ops; host memory for
 * deco_ngram_prob on the host). */
typedef struct deco_ngram_view {
  uint64_t seed;
  uint32_t n_slots; /* a power of two */
  uint32_t n_followers;
  const deco_ngram_slot_t *slots;         /* [n_slots] */
  const deco_ngram_follower_t *followers; /* [n_followers] */
} deco_ngram_view_t;

/* splitmix64's finaliser: every input bit moves every output bit. */
DECO_NGRAM_HD uint64_t deco_ngram_mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* The fingerprint of the context ctx[0 .. order - 1) (oldest first) of an
 * n-gram of the given order; never 0. Its low bits pick the home slot. */
DECO_NGRAM_HD uint64_t deco_ngram_fingerprint(uint64_t seed, int order, const int32_t *ctx) {
  uint64_t h = deco_ngram_mix(seed ^ (uint64_t)(uint32_t)order);
  for (int i = 0; i + 1 < order; ++i) h = deco_ngram_mix(h ^ (uint64_t)(uint32_t)ctx[i]);
  return h ? h : 1u;
}

/* The slot holding fingerprint fp, or -1. A probe stops at an empty slot
 * (the table is at most half full) and after n_slots slots in any case. */
DECO_NGRAM_HD int64_t deco_ngram_find(const deco_ngram_view_t *t, uint64_t fp) {
  const uint32_t mask = t->n_slots - 1u;
  uint32_t s = (uint32_t)fp & mask;
  for (uint32_t probes = 0; probes < t->n_slots; ++probes, s = (s + 1u) & mask) {
    const uint64_t f = t->slots[s].fingerprint;
    if (f == fp) return (int64_t)s;
    if (f == 0) return -1;
  }
  return -1;
}

/* c(ctx, token) for the context in slot s (binary search of its followers). */
DECO_NGRAM_HD uint32_t deco_ngram_follower_count(const deco_ngram_view_t *t, const deco_ngram_slot_t *s,
                                                 uint32_t token) {
  uint32_t lo = 0, hi = s->count;
  const deco_ngram_follower_t *f = t->followers + s->first;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2u;
    const uint32_t id = f[mid].token;
    if (id == token) return f[mid].count;
    if (id < token) lo = mid + 1u;
    else hi = mid;
  }
  return 0u;
}

/* Superposed decoding's n-gram probability (the authors' interpolation):
 * P_ng(token | ctx) = sum over orders n = 2..6 of lambda[n - 2] *
 * c(ctx_n, token) / c(ctx_n), where ctx_n is the last n - 1 ids of the
 * history; an order whose context is longer than the history (ctx_len) is
 * skipped and an unseen context adds 0. The weights are used as given
 * (their sum is not renormalised, as in the code). ctx[0..5) holds the
 * history's last ids, most recent at ctx[4]; ctx_len (0..5) of them are
 * valid. Summed in double in order of increasing n, each operation rounded
 * on its own (no fused multiply-add), so the C reference and the CUDA
 * kernel compute the same value. */
DECO_NGRAM_HD double deco_ngram_prob(const deco_ngram_view_t *t, const int32_t *ctx, int ctx_len, int32_t token,
                                     const float *lambda) {
  double p = 0.0;
  for (int order = DECO_NGRAM_MIN_ORDER; order <= DECO_NGRAM_MAX_ORDER; ++order) {
    const int c = order - 1;
    if (c > ctx_len || lambda[order - DECO_NGRAM_MIN_ORDER] == 0.0f) continue;
    const int64_t s = deco_ngram_find(t, deco_ngram_fingerprint(t->seed, order, ctx + DECO_NGRAM_CONTEXT - c));
    if (s < 0) continue;
    const deco_ngram_slot_t *slot = t->slots + s;
    const uint32_t n = deco_ngram_follower_count(t, slot, (uint32_t)token);
    if (n == 0 || slot->total == 0) continue;
#if defined(__CUDA_ARCH__)
    const double q = __ddiv_rn((double)n, (double)slot->total);
    p = __dadd_rn(p, __dmul_rn((double)lambda[order - DECO_NGRAM_MIN_ORDER], q));
#else
    const double q = (double)n / (double)slot->total;
    const double w = (double)lambda[order - DECO_NGRAM_MIN_ORDER] * q;
    p = p + w;
#endif
  }
  return p;
}

/* ---- deco_ngram_lookup ---------------------------------------------------------
 * probs[r][j] = deco_ngram_prob(table, ctx[r], ctx_len[r], cands[r / group][j],
 * lambda) for every draft r and each of the m candidates of its group (the
 * drafts of one prompt share the prompt's candidates). */
typedef struct deco_ngram_lookup_args {
  deco_ngram_view_t table;  /* in context memory */
  int n_rows;               /* drafts, a multiple of rows_per_group */
  int rows_per_group;       /* drafts sharing one candidate list (k) */
  int m;                    /* candidates per list, 1..DECO_SUPERPOSE_MAX_M */
  const int32_t *ctx;       /* [n_rows][DECO_NGRAM_CONTEXT] most recent id last */
  const int32_t *ctx_len;   /* [n_rows] valid ids of each, 0..DECO_NGRAM_CONTEXT (clamped) */
  const int32_t *cands;     /* [n_rows / rows_per_group][m] */
  float lambda[DECO_NGRAM_N_ORDERS]; /* orders 2..6, each in [0, 1] */
  double *probs;            /* [n_rows][m] out */
} deco_ngram_lookup_args_t;
#define DECO_NGRAM_LOOKUP_ARGS_INIT                                                                         \
  {.table = {.seed = 0, .n_slots = 0, .n_followers = 0, .slots = NULL, .followers = NULL}, .n_rows = 0,   \
   .rows_per_group = 1, .m = 0, .ctx = NULL, .ctx_len = NULL, .cands = NULL, .lambda = {0, 0, 0, 0, 0},    \
   .probs = NULL}
DECO_API deco_status_t deco_ngram_lookup(deco_ctx_t *ctx, const deco_ngram_lookup_args_t *args);

/* ---- deco_superpose_embed -----------------------------------------------------
 * out[r] = sum over i with weights[r][i] != 0 of weights[r][i] *
 * f32(table[tokens[r][i]]), added in slot order starting from the first
 * such term (one weight of 1 gives the table row exactly); a row with no
 * nonzero weight is 0, a weighted id outside [0, vocab) gives a row of NaN.
 * Every product and sum is rounded on its own (no fused multiply-add), so
 * both implementations agree bit for bit. */
typedef struct deco_superpose_embed_args {
  int n_rows;            /* one mixed embedding per row (prompt) */
  int k;                 /* ids per row, 1..DECO_SUPERPOSE_MAX_K */
  int dim;
  int vocab;             /* rows of table */
  deco_dtype_t dtype;    /* of table: f32, f16 or bf16 (f32 on the CPU) */
  const void *table;     /* [vocab][dim] */
  const int32_t *tokens; /* [n_rows][k] */
  const float *weights;  /* [n_rows][k] */
  float *out;            /* [n_rows][dim] f32 */
} deco_superpose_embed_args_t;
#define DECO_SUPERPOSE_EMBED_ARGS_INIT                                                                      \
  {.n_rows = 0, .k = 0, .dim = 0, .vocab = 0, .dtype = DECO_DTYPE_F32, .table = NULL, .tokens = NULL,      \
   .weights = NULL, .out = NULL}
DECO_API deco_status_t deco_superpose_embed(deco_ctx_t *ctx, const deco_superpose_embed_args_t *args);

/* ---- The drafts' state (context memory) ----------------------------------------
 * k draft slots per prompt share one sequence: each step mixes their last
 * ids into one input, and deco_superpose_select turns the step's top-m
 * candidates into the next k drafts. Alive drafts fill slots 0..n_alive-1,
 * best first; an empty slot has score -inf and weight 0. Before the first
 * step slot 0 alone is alive (score 0, the prompt's last id, weight 1), so
 * the first selection takes the k best tokens of the prompt's own
 * distribution, as the authors' first step does. The history records every
 * selection: after step s (0-based), hist_token[s][j] is slot j's new id
 * and hist_parent[s][j] the slot it extended (-1: empty). A draft that
 * drew a stop id joins the finished pool (at most k, best first) with the
 * ids it had before the stop: fin_len of them, the path of slot fin_slot
 * after step fin_len - 1. */
typedef struct deco_superpose_prompt {
  int32_t step;      /* selections made = forwards after the prefill that ran */
  int32_t max_steps; /* selections allowed (<= the history's rows) */
  int32_t position;  /* the next forward's position (its KV slot) */
  int32_t done;      /* 1: no more selections (max_steps, no alive draft, or nothing alive can enter the best k) */
  int32_t n_alive;
  int32_t n_fin;
  int32_t nonfinite; /* 1: the logits of the last forward were not finite (done, nothing selected) */
  int32_t reserved;
} deco_superpose_prompt_t;

typedef struct deco_superpose_drafts {
  deco_superpose_prompt_t *prompt; /* [B] */
  double *score;        /* [B][k] running log-probabilities (interpolated scores), -inf when empty */
  int32_t *token;       /* [B][k] each draft's last id */
  int32_t *ctx;         /* [B][k][DECO_NGRAM_CONTEXT] each draft's last ids, prompt included, most recent last */
  int32_t *ctx_len;     /* [B][k] valid ids in ctx (0..DECO_NGRAM_CONTEXT) */
  int32_t *mix_token;   /* [B][k] the next input's distinct ids */
  float *mix_weight;    /* [B][k] their weights (duplicates merged; 0 = unused) */
  int32_t *hist_token;  /* [B][max_steps][k] */
  int32_t *hist_parent; /* [B][max_steps][k] */
  double *fin_score;    /* [B][k] the finished pool, best first */
  int32_t *fin_len;     /* [B][k] */
  int32_t *fin_slot;    /* [B][k] */
} deco_superpose_drafts_t;

/* ---- deco_superpose_select ----------------------------------------------------
 * One step for every prompt that is not done. From the forward's top-m
 * logits l_0 >= ... >= l_{m-1} (deco_topk_rows' order: ties by lower id):
 * log p(x_j) = (l_j - l_0)/T - log sum_i exp((l_i - l_0)/T), i.e.
 * softmax(logits / T) renormalised over the top m. Each alive draft d and
 * candidate j score
 *   s = score[d] + (1 - alpha) log p(x_j) + alpha log P_ng(x_j | draft d)
 * (log 0 = -inf excludes the pair; a draft whose every candidate is -inf
 * scores (1 - alpha) log p(x_j) - penalty instead; alpha = 0 leaves the
 * n-gram term out and ngram_probs may be NULL). The pairs are ranked by s,
 * ties by lower draft index, then lower id (then lower candidate index,
 * should the ids repeat), and the first 2k are drawn (as
 * the authors' code does): walking them in order, a stop id among the
 * first k joins the finished pool, any other id becomes the next alive
 * draft until k are alive; stop ids ranked k..2k-1 are passed over, so
 * that k = 1 is exactly greedy decoding (docs/ALGORITHMS.md). The new
 * drafts' weights are the softmax of their scores, duplicate ids merged.
 * A prompt is done after max_steps selections, when no draft is alive, or
 * when the finished pool is full and no alive draft scores above its worst
 * (scores only fall). Top-m logits that are not finite mark the prompt
 * nonfinite and done. Computed in double; when positions / kv_lens are
 * given, they receive the next forward's position and length (unchanged
 * once done, so a replay after the end rewrites one slot). */
typedef struct deco_superpose_select_args {
  int n_prompts;              /* B */
  int k;                      /* 1..DECO_SUPERPOSE_MAX_K */
  int m;                      /* 1..DECO_SUPERPOSE_MAX_M */
  int max_steps;              /* rows of the history per prompt, >= every prompt's max_steps */
  float temperature;          /* T > 0 */
  float alpha;                /* in [0, 1] */
  float penalty;              /* >= 0, finite (the code: 200) */
  const int32_t *cand_ids;    /* [B][m] */
  const float *cand_logits;   /* [B][m] */
  const double *ngram_probs;  /* [B][k][m] (deco_ngram_lookup), or NULL when alpha = 0 */
  const int32_t *stop_ids;    /* [n_stop_ids] context memory, or NULL */
  int n_stop_ids;             /* 0..DECO_SUPERPOSE_MAX_STOP_IDS */
  deco_superpose_drafts_t drafts;
  int32_t *positions;         /* [B] out, or NULL */
  int32_t *kv_lens;           /* [B] out, or NULL */
} deco_superpose_select_args_t;
#define DECO_SUPERPOSE_SELECT_ARGS_INIT                                                                     \
  {.n_prompts = 0, .k = 0, .m = 0, .max_steps = 0, .temperature = 0.06f, .alpha = 0.54f, .penalty = 200.0f, \
   .cand_ids = NULL, .cand_logits = NULL, .ngram_probs = NULL, .stop_ids = NULL, .n_stop_ids = 0,          \
   .drafts = {.prompt = NULL, .score = NULL, .token = NULL, .ctx = NULL, .ctx_len = NULL,                \
              .mix_token = NULL, .mix_weight = NULL, .hist_token = NULL, .hist_parent = NULL,             \
              .fin_score = NULL, .fin_len = NULL, .fin_slot = NULL},                                      \
   .positions = NULL, .kv_lens = NULL}
DECO_API deco_status_t deco_superpose_select(deco_ctx_t *ctx, const deco_superpose_select_args_t *args);

#ifdef __cplusplus
}
#endif
#endif /* DECO_SUPERPOSE_OPS_H */
