/* host/cli/runs.h — the runs behind `deco generate`: the drafter the
 * options ask for, the printed run, and the timing runs of --compare-ar.
 */
#ifndef DECO_CLI_RUNS_H
#define DECO_CLI_RUNS_H

#include "cli/cli.h"

typedef struct deco_cli_run_input {
  const deco_cli_options_t *o;
  const int32_t *prompt;
  int n_prompt;
  deco_emit_fn emit; /* called for the first prompt id, then once per position */
  void *user;
  const int32_t *stop_ids; /* the ids that end the run, or NULL: the model's */
  int n_stop_ids;
} deco_cli_run_input_t;

typedef struct deco_cli_run_result {
  int tokens;     /* ids generated after the prompt (stop id excluded) */
  int forwards;   /* target forwards after the prefill */
  double seconds; /* wall time of the run (with --compare-ar: the median of 3 speculative runs) */
  double capture_seconds; /* of which capturing the CUDA graph */
  double speedup; /* --compare-ar: speculative tok/s over plain tok/s (medians of 3), else 0 */
  int drafts;     /* --superpose: drafts printed */
} deco_cli_run_result_t;

/* Monotonic seconds, for the stats line's timings. */
double deco_cli_now_seconds(void);

/* Runs the generation (and, with --compare-ar, the timing runs, which print
 * nothing); prints a `deco: error:` line and returns nonzero on failure. */
int deco_cli_run(deco_model_t *model, const deco_cli_run_input_t *in, deco_cli_run_result_t *out);

#endif
