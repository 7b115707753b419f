/* tests/gpu/test_draft_chain_cuda.c — deco_draft_chain (a model's chain
 * drafted inside the device-resident step) on the CUDA context against the
 * same entry point on a CPU context (kernels/spec/draft_chain_ref.c) on
 * identical inputs: every stage (start, each level, observe), states near
 * the step limit and the cache's reservation, done, len 0, vocabularies
 * from 1 id to past the kernel's 512 threads many times over, and rows with
 * ties, ±0, NaN (also whole rows) and infinities placed to test the order
 * of the block's reduction. Every output is compared exactly; the outputs
 * start poisoned on both sides. Sampled chains (temperature > 0): the same
 * inputs with q rows; the kernel sums z and the draw's running sums in
 * another order than the reference, so its q row may differ in the last
 * bits (compared elementwise, f32 tolerance) and its id only where u *
 * total lies on the boundary between two adjacent ids of positive q
 * (checked on the reference's q); non-finite rows and empty forwards (the
 * point mass) and everything else compare exactly.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tolerances.h"
#include "deco/philox.h"
#include "gpu_suite.h"

DECO_GPU_SUITE(draft_chain_cuda, 120);

#define K_MAX 16
#define V_MAX 70000

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}
static int rnd_in(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

/* Everything one call reads or writes, in one block per side. */
typedef struct chain_io {
  deco_spec_state_t state;
  int32_t chain[K_MAX + 1], prev, path[DECO_TREE_MAX_NODES], accept_len;
  int32_t tokens[2], positions[2], q_indptr[2], kv_lens, prefix_lens;
  float logits[2 * V_MAX];
} chain_io_t;

static deco_draft_chain_args_t args_at(chain_io_t *io, int stage, int K, int steps, int slots, int V) {
  return (deco_draft_chain_args_t){.stage = stage, .draft_len = K, .steps = steps, .max_slots = slots, .vocab = V,
                                   .state = &io->state, .logits = io->logits, .chain = io->chain, .prev = &io->prev,
                                   .path = io->path, .accept_len = &io->accept_len, .tokens = io->tokens,
                                   .positions = io->positions, .q_indptr = io->q_indptr, .kv_lens = &io->kv_lens,
                                   .prefix_lens = &io->prefix_lens};
}

/* One row: random values, then ties, ±0, NaN or infinities by kind. */
static void fill_row(float *row, int V, int kind) {
  for (int i = 0; i < V; ++i) row[i] = (float)rnd_in(-1000, 1000) / 64.0f;
  const int a = rnd_in(0, V - 1), b = rnd_in(0, V - 1), c = rnd_in(0, V - 1);
  switch (kind) {
  case 1: /* the maximum twice, far apart (different threads) */
    row[a] = row[b] = 100.0f;
    break;
  case 2: /* -0 and +0 as the maximum */
    for (int i = 0; i < V; ++i) row[i] = -fabsf(row[i]) - 1.0f;
    row[a] = -0.0f;
    row[b] = 0.0f;
    break;
  case 3: /* NaNs, one at id 0 */
    row[0] = NAN;
    row[a] = NAN;
    row[b] = NAN;
    break;
  case 4: /* every value NaN */
    for (int i = 0; i < V; ++i) row[i] = NAN;
    break;
  case 5: /* infinities */
    row[a] = INFINITY;
    row[b] = INFINITY;
    row[c] = -INFINITY;
    break;
  case 6: /* all equal */
    for (int i = 0; i < V; ++i) row[i] = 1.5f;
    break;
  default:
    break;
  }
}

Test(draft_chain_cuda, matches_reference) {
  const size_t bytes = sizeof(chain_io_t);
  chain_io_t *in = malloc(bytes), *host_cpu = malloc(bytes), *back = malloc(bytes);
  cr_assert(in && host_cpu && back);
  void *dev = NULL;
  cr_assert_eq(deco_malloc(gpu, &dev, bytes), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  const int vocabs[] = {1, 2, 7, 511, 512, 513, 1024, 32000, 49152, V_MAX};
  int cases = 0, failed = 0;
  for (int trial = 0; trial < 600; ++trial) {
    const int V = vocabs[trial % 10];
    const int K = rnd_in(1, K_MAX);
    const int stage = rnd_in(DECO_DRAFT_CHAIN_OBSERVE, K);
    const int steps = rnd_in(1, 300);
    memset(in, 0xFF, bytes); /* poison: outputs untouched by a stage stay equal */
    in->state = (deco_spec_state_t)DECO_SPEC_STATE_INIT;
    in->state.len = rnd_in(0, 4) == 0 ? 0 : rnd_in(0, steps);
    in->state.root = rnd_in(0, V - 1);
    in->state.done = rnd_in(0, 7) == 0;
    const int slots = rnd_in(0, 3) == 0 ? rnd_in(0, in->state.len + K + 2) : steps + DECO_TREE_MAX_NODES;
    in->prev = in->state.len == 0 ? -1 : rnd_in(0, V - 1);
    for (int j = 0; j <= K; ++j) in->chain[j] = rnd_in(0, V - 1);
    for (int j = 0; j < DECO_TREE_MAX_NODES; ++j) in->path[j] = j <= K ? j : rnd_in(-3, 300);
    in->accept_len = rnd_in(-1, K + 3);
    in->q_indptr[0] = 0;
    in->q_indptr[1] = rnd_in(0, 2);
    fill_row(in->logits, V, rnd_in(0, 6));
    fill_row(in->logits + V, V, rnd_in(0, 6));
    memcpy(host_cpu, in, bytes);
    cr_assert_eq(deco_memcpy(gpu, dev, in, bytes, DECO_COPY_HOST_TO_CTX), DECO_STATUS_SUCCESS);
    chain_io_t *d = dev;
    deco_draft_chain_args_t ac = args_at(host_cpu, stage, K, steps, slots, V);
    deco_draft_chain_args_t ag = args_at(d, stage, K, steps, slots, V);
    cr_assert_eq(deco_draft_chain(cpu, &ac), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
    cr_assert_eq(deco_draft_chain(gpu, &ag), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    cr_assert_eq(deco_ctx_synchronize(gpu), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    cr_assert_eq(deco_memcpy(gpu, back, dev, bytes, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS);
    cases++;
    if (memcmp(back, host_cpu, offsetof(chain_io_t, logits)) != 0) {
      if (failed++ < 10)
        fprintf(stderr,
                "case %d: stage %d K %d V %d len %d done %d steps %d slots %d: chain[stage] %d vs %d, prev %d vs %d, "
                "q %d vs %d\n",
                trial, stage, K, V, in->state.len, in->state.done, steps, slots,
                stage >= 1 ? back->chain[stage] : -1, stage >= 1 ? host_cpu->chain[stage] : -1, back->prev,
                host_cpu->prev, back->q_indptr[1], host_cpu->q_indptr[1]);
    }
  }
  fprintf(stderr, "draft_chain: %d cases, %d differ between CUDA and the reference\n", cases, failed);
  cr_assert_eq(failed, 0);
  deco_free(gpu, dev);
  free(in);
  free(host_cpu);
  free(back);
}

/* ---- Sampled chains ---- */

typedef struct sample_io {
  chain_io_t c;
  float q[K_MAX * V_MAX];
} sample_io_t;

Test(draft_chain_cuda, sampled_matches_reference_up_to_the_sums_order) {
  const size_t bytes = sizeof(sample_io_t);
  sample_io_t *in = malloc(bytes), *ref = malloc(bytes), *back = malloc(bytes);
  cr_assert(in && ref && back);
  void *dev = NULL;
  cr_assert_eq(deco_malloc(gpu, &dev, bytes), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  const int vocabs[] = {1, 2, 7, 511, 512, 513, 1024, 32000, 49152, V_MAX};
  const float temps[] = {0.05f, 0.7f, 1.0f, 3.0f};
  int cases = 0, failed = 0, boundary = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int V = vocabs[trial % 10];
    const int K = rnd_in(1, K_MAX);
    const int stage = rnd_in(1, K);
    const int steps = rnd_in(1, 300);
    const float T = temps[rnd_in(0, 3)];
    const uint64_t seed = ((uint64_t)rnd() << 32) | rnd();
    memset(in, 0xFF, bytes);
    chain_io_t *c = &in->c;
    c->state = (deco_spec_state_t)DECO_SPEC_STATE_INIT;
    c->state.len = rnd_in(0, steps);
    c->state.root = rnd_in(0, V - 1);
    c->prev = c->state.len == 0 ? -1 : rnd_in(0, V - 1);
    for (int j = 0; j <= K; ++j) c->chain[j] = rnd_in(0, V - 1);
    c->q_indptr[0] = 0;
    c->q_indptr[1] = rnd_in(0, 9) == 0 ? 0 : rnd_in(1, 2);
    const int kind = rnd_in(0, 3) == 0 ? rnd_in(1, 6) : 0;
    fill_row(c->logits, V, kind);
    fill_row(c->logits + V, V, kind);
    memcpy(ref, in, bytes);
    cr_assert_eq(deco_memcpy(gpu, dev, in, bytes, DECO_COPY_HOST_TO_CTX), DECO_STATUS_SUCCESS);
    sample_io_t *d = dev;
    deco_draft_chain_args_t ac = args_at(&ref->c, stage, K, steps, steps + DECO_TREE_MAX_NODES, V);
    deco_draft_chain_args_t ag = args_at(&d->c, stage, K, steps, steps + DECO_TREE_MAX_NODES, V);
    ac.temperature = ag.temperature = T;
    ac.seed = ag.seed = seed;
    ac.q = ref->q;
    ag.q = d->q;
    cr_assert_eq(deco_draft_chain(cpu, &ac), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
    cr_assert_eq(deco_draft_chain(gpu, &ag), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    cr_assert_eq(deco_ctx_synchronize(gpu), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    cr_assert_eq(deco_memcpy(gpu, back, dev, bytes, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS);
    cases++;
    const float *qg = back->q + (size_t)(stage - 1) * V, *qc = ref->q + (size_t)(stage - 1) * V;
    int bad = 0;
    double sum = 0;
    for (int i = 0; i < V; ++i) {
      bad |= !(fabs((double)qg[i] - qc[i]) <= DECO_TOL_F32_ELEMENTWISE * (1.0 + fabs((double)qc[i])));
      sum += qg[i];
    }
    bad |= !(fabs(sum - 1.0) <= 1e-5);
    /* Rows other than the level's stay poisoned on both sides. */
    bad |= memcmp(back->q, ref->q, sizeof(float) * (size_t)(stage - 1) * V) != 0;
    const size_t after = (size_t)stage * V;
    bad |= memcmp(back->q + after, ref->q + after, sizeof(float) * (size_t)(K - stage) * V) != 0;
    const int32_t g = back->c.chain[stage], x = ref->c.chain[stage];
    if (g != x) {
      /* Only at a boundary: adjacent ids of positive q, the running sum of
       * the reference's q up to the lower one at u * total. */
      const int lo = g < x ? g : x, hi = g < x ? x : g;
      double total = 0, cum = 0;
      for (int i = 0; i < V; ++i) total += qc[i];
      for (int i = 0; i <= lo && lo >= 0; ++i) cum += qc[i];
      const double target =
          (double)deco_philox_uniform(seed, (uint32_t)c->state.len, DECO_DRAFT_CHAIN_STREAM, (uint32_t)(stage - 1), 0) *
          total;
      int adjacent = lo >= 0 && hi < V && qc[lo] > 0.0f && qc[hi] > 0.0f;
      for (int i = lo + 1; i < hi && adjacent; ++i) adjacent = qc[i] == 0.0f;
      if (adjacent && fabs(cum - target) <= 1e-5 * total) {
        boundary++;
        ref->c.chain[stage] = g; /* the rest must follow from the id drawn */
        if (stage < K) ref->c.tokens[0] = g;
      } else {
        bad = 1;
      }
    }
    bad |= memcmp(&back->c, &ref->c, offsetof(chain_io_t, logits)) != 0;
    if (bad && failed++ < 10)
      fprintf(stderr, "sampled case %d: stage %d K %d V %d T %g kind %d count %d: id %d vs %d, q sums to %.9g\n",
              trial, stage, K, V, (double)T, kind, c->q_indptr[1], g, x, sum);
  }
  fprintf(stderr, "sampled draft_chain: %d cases, %d differ from the reference, %d ids split at a boundary\n", cases,
          failed, boundary);
  cr_assert_eq(failed, 0);
  deco_free(gpu, dev);
  free(in);
  free(ref);
  free(back);
}
