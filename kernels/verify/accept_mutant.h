/* kernels/verify/accept_mutant.h — a test-only switch that makes the CPU
 * reference of stochastic acceptance (tree_accept_sample_ref.c) run a
 * deliberately broken rule, so that an end-to-end sampling test can show it
 * rejects one (docs/TESTING.md, lossless sampling tests). Library-private:
 * hidden, reachable only by suites linking the static archive deco_internal.
 * 0, the default, is the correct rule; the library never sets it, and the
 * CUDA kernel does not read it.
 */
#ifndef DECO_VERIFY_ACCEPT_MUTANT_H
#define DECO_VERIFY_ACCEPT_MUTANT_H

enum deco_accept_mutant_rule {
  DECO_ACCEPT_CORRECT = 0,
  /* DETERMINISTIC drafts: a rejected child's token is not removed from p, so
   * the next sibling and the bonus are drawn from the unchanged target. */
  DECO_ACCEPT_MUTANT_NO_RESIDUAL = 1,
  /* Every kind: when no child of the last accepted node v != 0 is accepted,
   * the bonus is drawn from the root's target (whole support, nothing
   * removed) instead of v's. */
  DECO_ACCEPT_MUTANT_BONUS_ROOT = 2
};

/* One of deco_accept_mutant_rule; read on every tree the reference walks.
 * A suite sets it in its own process (Criterion runs each test in one). */
extern __attribute__((visibility("hidden"))) int deco_accept_mutant;

#endif /* DECO_VERIFY_ACCEPT_MUTANT_H */
