/* host/draft/model_draft_mutant.h — a test-only switch that makes the model
 * drafter, at temperature > 0, take the top-w tokens of its draft but
 * report them as drawn from q (a chain, or siblings without replacement),
 * so that verification runs the rule for sampled drafts with q on
 * deterministic drafts: a wrong rule an end-to-end sampling test must
 * reject (docs/TESTING.md, lossless sampling tests). (The converse, the
 * rule for deterministic drafts on sampled ones, is lossless: it holds for
 * any draft drawn independently of the verifier's uniforms.) Library-private and hidden, reachable only by suites
 * linking the static archive deco_internal; 0, the default, is correct and
 * the library never sets it.
 */
#ifndef DECO_HOST_DRAFT_MODEL_DRAFT_MUTANT_H
#define DECO_HOST_DRAFT_MODEL_DRAFT_MUTANT_H

enum deco_model_draft_mutant_rule {
  DECO_MODEL_DRAFT_CORRECT = 0,
  /* Top-w chains and trees verified as samples from q. */
  DECO_MODEL_DRAFT_MUTANT_TOP_AS_SAMPLED = 1
};

extern __attribute__((visibility("hidden"))) int deco_model_draft_mutant;

#endif
