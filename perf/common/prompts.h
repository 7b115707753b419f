/* perf/common/prompts.h — what the CPU-side speculative benches (bench_spec,
 * bench_draft) share: the prompt corpus (the .tsv files of perf/prompts: "kind<TAB>text"
 * per line) encoded once, the generation config each prompt runs, per-kind
 * tallies of tokens, forwards and time, and a monotonic clock. Benches print and exit on errors; the library never
 * does.
 */
#ifndef DECO_PERF_PROMPTS_H
#define DECO_PERF_PROMPTS_H

#include <stdint.h>

#include "deco/deco.h"

#define DECO_PERF_MAX_PROMPTS 256
#define DECO_PERF_MAX_KINDS 16
#define DECO_PERF_PROMPT_IDS 512

typedef struct deco_perf_prompt {
  char kind[32];
  int32_t ids[DECO_PERF_PROMPT_IDS];
  int n;
} deco_perf_prompt_t;

typedef struct deco_perf_tally {
  char kind[32];
  int prompts;
  long tokens, forwards;
  double seconds;         /* decoding: each run's time less its prefill (and graph capture) */
  double prefill_seconds; /* the prompts' prefill forwards */
} deco_perf_tally_t;

/* How a prompt's text becomes ids: run.c's rule (BOS, dummy-prefix space)
 * for llama2.c vocabularies, llama.cpp's (the metadata's BOS, special-token
 * text as text) for GGUF ones, or one user turn of the GGUF's chat template
 * with the generation prompt. */
typedef enum deco_perf_encoding {
  DECO_PERF_ENCODE_LLAMA2C,
  DECO_PERF_ENCODE_GGUF,
  DECO_PERF_ENCODE_CHAT
} deco_perf_encoding_t;

/* Reads and encodes the prompts of path (at most max_per_kind of each kind,
 * 0: all); *hash is the FNV-1a 64 of the file's bytes, for the log line.
 * Returns the count; on an error prints "bench: what: why" and exits 1. */
int deco_perf_read_prompts(const char *path, const deco_tokenizer_t *tok, deco_perf_encoding_t enc, int max_per_kind,
                           deco_perf_prompt_t *p, uint64_t *hash);

/* The tally of kind in t[0..*n), appended (zeroed) when absent. */
deco_perf_tally_t *deco_perf_tally_for(deco_perf_tally_t *t, int *n, const char *kind);

/* 1 when path starts with the GGUF magic. */
int deco_perf_is_gguf(const char *path);

/* The generation every prompt runs: steps positions at temperature and
 * top_p from seed, EOS ignored (each prompt decodes all of them); no drafter. */
deco_generate_config_t deco_perf_generate_config(int steps, float temperature, float top_p, uint64_t seed);

double deco_perf_now(void);

/* Prints "bench: what: why" to stderr and exits 1. */
void deco_perf_die(const char *what, const char *why);

#endif
