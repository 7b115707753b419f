/* host/cli/generation.h — the decoding loops of `deco generate`: plain
 * autoregressive decoding and speculative decoding with tree verification.
 */
#ifndef DECO_CLI_GENERATION_H
#define DECO_CLI_GENERATION_H

#include "cli/cli.h"

typedef struct deco_generation_config {
  const deco_cli_options_t *o;
  const int32_t *prompt;
  int n_prompt;
  deco_emit_fn emit; /* called for the first prompt id, then once per position */
  void *user;
} deco_generation_config_t;

typedef struct deco_generation {
  int tokens;     /* ids generated after the prompt (stop id excluded) */
  int forwards;   /* target forwards after the prefill */
  double seconds; /* wall time of the run (with --compare-ar: the median of 3 speculative runs) */
  double capture_seconds; /* of which capturing the CUDA graph */
  double speedup; /* --compare-ar: speculative tok/s over plain tok/s (medians of 3), else 0 */
} deco_generation_t;

/* Runs the generation (and, with --compare-ar, the timing runs, which print
 * nothing); prints a `deco: error:` line and returns nonzero on failure. */
int deco_cli_run_generation(deco_model_t *model, const deco_generation_config_t *gc, deco_generation_t *out);

#endif
