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
 * point mass) and everything else compare exactly. Top-w trees (width >
 * 1, bookkeeping only): whole drafter rounds (start, every level, observe)
 * over the device drafter's fixed shapes, W = 2..8 and up to 255 nodes,
 * and its width-1 chain, each level's top-W ids from deco_topk_rows on
 * rows with ties; every byte the op may read or write compared exactly.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tolerances.h"
#include "common/tree_shape.h"
#include "deco/philox.h"
#include "deco/select.h"
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
  case 7: /* four distinct values: ties among the top few ids */
    for (int i = 0; i < V; ++i) row[i] = (float)rnd_in(0, 3);
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

/* ---- Top-w trees (width > 1), driven as the device drafter drives them ---- */

#define TREE_V_MAX 512
#define TREE_POISON(i) (-0x5000000 - (int32_t)(i)) /* no id, position or parent */

/* One tree stage's buffers, in one block per side. The inputs (state,
 * path, shape, topk, the width-1 rows) are set on the host and copied; the
 * op's outputs start poisoned and the whole block is compared. */
typedef struct tree_io {
  deco_spec_state_t state;
  int32_t chain[DECO_TREE_MAX_NODES], prev, path[DECO_TREE_MAX_NODES], accept_len;
  int32_t tokens[DECO_TREE_MAX_NODES], positions[DECO_TREE_MAX_NODES], q_indptr[2], kv_lens, prefix_lens;
  int32_t fparents[DECO_TREE_MAX_NODES], shape[DECO_TREE_MAX_NODES];
  int32_t topk[DECO_TREE_MAX_NODES * DECO_TOPK_MAX_K];
  float logits[2 * TREE_V_MAX]; /* width 1: forward l's rows (the argmax reads the last) */
} tree_io_t;

/* What one drafter run fixes: width, depth K, nodes (W > 1: the shape's n;
 * W = 1: the chain's K + 1), vocabulary, generation steps, the draft
 * cache's slots and the drafter's temperature (a top-w tree ignores it). */
typedef struct tree_run {
  int W, K, nodes, V, steps, slots;
  float T;
} tree_run_t;

/* The arguments the drafter passes (host/draft/model_draft.c chain_args):
 * a tree's n, shape and topk only for W > 1; the width-1 chain reads the
 * rows of logits instead. */
static deco_draft_chain_args_t tree_args(tree_io_t *io, const tree_run_t *r, int stage) {
  const int tree = r->W > 1;
  return (deco_draft_chain_args_t){.stage = stage, .draft_len = r->K, .steps = r->steps, .max_slots = r->slots,
                                   .vocab = r->V, .state = &io->state, .logits = io->logits, .chain = io->chain,
                                   .prev = &io->prev, .path = stage == DECO_DRAFT_CHAIN_OBSERVE ? io->path : NULL,
                                   .accept_len = stage == DECO_DRAFT_CHAIN_OBSERVE ? &io->accept_len : NULL,
                                   .tokens = io->tokens, .positions = io->positions, .q_indptr = io->q_indptr,
                                   .kv_lens = &io->kv_lens, .prefix_lens = &io->prefix_lens, .temperature = r->T,
                                   .seed = 7, .q = NULL, .width = r->W, .n_nodes = tree ? r->nodes : 0,
                                   .shape = tree ? io->shape : NULL, .topk = tree ? io->topk : NULL,
                                   .fparents = io->fparents};
}

/* The field of tree_io_t that holds byte `at`, and the entry's index in it. */
static const char *tree_field(size_t at, size_t *index) {
  static const struct {
    size_t off;
    const char *name;
  } f[] = {{offsetof(tree_io_t, state), "state"},       {offsetof(tree_io_t, chain), "chain"},
           {offsetof(tree_io_t, prev), "prev"},         {offsetof(tree_io_t, path), "path"},
           {offsetof(tree_io_t, accept_len), "accept_len"}, {offsetof(tree_io_t, tokens), "tokens"},
           {offsetof(tree_io_t, positions), "positions"}, {offsetof(tree_io_t, q_indptr), "q_indptr"},
           {offsetof(tree_io_t, kv_lens), "kv_lens"},   {offsetof(tree_io_t, prefix_lens), "prefix_lens"},
           {offsetof(tree_io_t, fparents), "fparents"}, {offsetof(tree_io_t, shape), "shape"},
           {offsetof(tree_io_t, topk), "topk"}};
  size_t i = 0;
  while (i + 1 < sizeof f / sizeof f[0] && at >= f[i + 1].off) ++i;
  *index = (at - f[i].off) / sizeof(int32_t);
  return f[i].name;
}

typedef struct tree_tally {
  int stages, failed, unwritten;
} tree_tally_t;

/* One stage on both sides from the host block `ref` (copied to the device
 * first, so both start from the same bytes), then every byte of the two
 * blocks compared; ref keeps the reference's result. */
static void tree_stage(tree_io_t *ref, tree_io_t *back, tree_io_t *dev, const tree_run_t *r, int stage, int round,
                       tree_tally_t *t) {
  const size_t cmp = offsetof(tree_io_t, logits);
  const size_t bytes = cmp + (r->W > 1 ? 0 : sizeof(float) * 2 * (size_t)r->V);
  cr_assert_eq(deco_memcpy(gpu, dev, ref, bytes, DECO_COPY_HOST_TO_CTX), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(gpu));
  deco_draft_chain_args_t ac = tree_args(ref, r, stage), ag = tree_args(dev, r, stage);
  cr_assert_eq(deco_draft_chain(cpu, &ac), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
  cr_assert_eq(deco_draft_chain(gpu, &ag), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  cr_assert_eq(deco_ctx_synchronize(gpu), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  cr_assert_eq(deco_memcpy(gpu, back, dev, cmp, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(gpu));
  t->stages++;
  if (memcmp(back, ref, cmp) == 0) return;
  size_t at = 0;
  while (((const unsigned char *)back)[at] == ((const unsigned char *)ref)[at]) ++at;
  const size_t word = at / sizeof(int32_t);
  size_t index = 0;
  const char *field = tree_field(at, &index);
  if (t->failed++ < 10)
    fprintf(stderr,
            "tree W %d K %d nodes %d V %d steps %d slots %d, round %d (len %d done %d), stage %d: %s[%zu] = %d, "
            "the reference's %d\n",
            r->W, r->K, r->nodes, r->V, r->steps, r->slots, round, ref->state.len, ref->state.done, stage, field,
            index, ((const int32_t *)back)[word], ((const int32_t *)ref)[word]);
}

/* Depth of every node of the drafted tree (a chain for W = 1). */
static void tree_depths(const tree_io_t *io, const tree_run_t *r, int32_t *depth) {
  for (int j = 0; j < r->nodes; ++j) depth[j] = j == 0 ? 0 : depth[r->W > 1 ? io->shape[j] : j - 1] + 1;
}

/* One draft round of the device drafter: the start, levels 1..K (before
 * each, forward l's rows — count = q_indptr[1], the batch the op wrote —
 * filled with random values, ties, NaN or infinities, and for a tree
 * their top W ids by deco_topk_rows on the CPU context, as the drafter's
 * deco_topk_rows after its forward; the same ids go to both sides), then
 * the observe after an acceptance of a root-to-node path. The outputs are
 * poisoned before the start, and the batch's before each level. Returns
 * the accepted length (the next round's len grows by it). */
static int tree_round(tree_io_t *io, tree_io_t *back, tree_io_t *dev, float *rows, const tree_run_t *r, int round,
                      int len, int done, int32_t prev, tree_tally_t *t) {
  const int tree = r->W > 1, K = r->K, V = r->V;
  int32_t depth[DECO_TREE_MAX_NODES];
  tree_depths(io, r, depth);
  io->state = (deco_spec_state_t)DECO_SPEC_STATE_INIT;
  io->state.len = len;
  io->state.offset = (uint32_t)len;
  io->state.root = rnd_in(0, V - 1);
  io->state.done = done;
  io->prev = prev;
  io->chain[0] = io->state.root; /* the step's tree tokens: the root, then the drafts (not read) */
  for (int j = 1; j < DECO_TREE_MAX_NODES; ++j) io->chain[j] = TREE_POISON(j);
  for (int j = 0; j < DECO_TREE_MAX_NODES; ++j)
    io->tokens[j] = io->positions[j] = io->fparents[j] = io->path[j] = TREE_POISON(j);
  for (int j = 0; j < DECO_TREE_MAX_NODES * DECO_TOPK_MAX_K; ++j) io->topk[j] = TREE_POISON(j);
  io->q_indptr[0] = io->q_indptr[1] = io->kv_lens = io->prefix_lens = io->accept_len = TREE_POISON(0);
  tree_stage(io, back, dev, r, DECO_DRAFT_CHAIN_START, round, t);
  const int h = len >= 1 && prev >= 0;
  int missing = io->q_indptr[0] != 0 || io->kv_lens == TREE_POISON(0);
  for (int j = 0; j < h + r->nodes && tree; ++j) missing |= io->fparents[j] == TREE_POISON(j);
  t->unwritten += missing;
  for (int l = 1; l <= K; ++l) {
    const int count = io->q_indptr[1];
    cr_assert(count >= 0 && count <= (tree ? r->nodes + 1 : 2), "forward %d's batch: %d rows", l, count);
    for (int i = 0; i < count; ++i) fill_row(rows + (size_t)i * V, V, rnd_in(0, 7));
    if (tree) {
      const deco_topk_rows_args_t ta = {.n_rows = r->nodes + 1, .vocab = V, .k = r->W, .dtype = DECO_DTYPE_F32,
                                        .logits = rows, .row_count = io->q_indptr + 1, .ids = io->topk,
                                        .values = NULL};
      cr_assert_eq(deco_topk_rows(cpu, &ta), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
    } else {
      memcpy(io->logits, rows, sizeof(float) * (size_t)count * (size_t)V);
    }
    for (int j = 0; j < DECO_TREE_MAX_NODES; ++j) io->tokens[j] = io->positions[j] = TREE_POISON(j);
    io->q_indptr[0] = io->kv_lens = io->prefix_lens = TREE_POISON(0);
    tree_stage(io, back, dev, r, l, round, t);
    /* The poison is seen: the reference wrote the level's nodes, and the
     * next batch unless this was the last level. */
    missing = l < K && (io->q_indptr[0] != 0 || io->kv_lens == TREE_POISON(0));
    for (int j = 1; j < r->nodes; ++j) missing |= depth[j] == l && io->chain[j] == TREE_POISON(j);
    t->unwritten += missing;
  }
  /* Acceptance took the path from the root to a node x (or, now and then,
   * an accept_len outside 1..K + 1, which changes nothing). */
  const int x = rnd_in(0, r->nodes - 1);
  int acc = depth[x] + 1;
  for (int j = x, d = depth[x]; d >= 0; --d, j = tree ? (j > 0 ? io->shape[j] : -1) : j - 1) io->path[d] = j;
  if (rnd_in(0, 5) == 0) acc = rnd_in(-1, K + 3);
  io->accept_len = acc;
  tree_stage(io, back, dev, r, DECO_DRAFT_CHAIN_OBSERVE, round, t);
  return acc >= 1 && acc <= K + 1 && !done ? acc : 1;
}

Test(draft_chain_cuda, tree_mode_matches_reference) {
  tree_io_t *io = malloc(sizeof *io), *back = malloc(sizeof *back);
  float *rows = malloc(sizeof(float) * DECO_TREE_MAX_NODES * TREE_V_MAX);
  cr_assert(io && back && rows);
  memset(io, 0, sizeof *io);
  void *dev = NULL;
  cr_assert_eq(deco_malloc(gpu, &dev, sizeof(tree_io_t)), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  /* The drafter's grid: widths (1: its chain), depths, draft budgets up to
   * the 254 drafts of a device tree (255 nodes, the op's largest n). */
  const int widths[] = {1, 2, 3, 4, 8}, depths[] = {1, 2, 3, 4, 5, 8, 16, 64};
  const int budgets[] = {8, 16, 32, 64, 128, DECO_TREE_MAX_NODES - 2};
  tree_tally_t t = {0, 0, 0};
  int runs = 0, partial = 0, largest = 0;
  for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; ++wi)
    for (size_t ki = 0; ki < sizeof depths / sizeof depths[0]; ++ki) {
      int32_t last_shape[DECO_TREE_MAX_NODES];
      int last_nodes = -1;
      for (size_t bi = 0; bi < sizeof budgets / sizeof budgets[0]; ++bi) {
        tree_run_t r = {.W = widths[wi]};
        int short_level = 0;
        if (r.W > 1) {
          r.nodes = deco_test_tree_shape(depths[ki], r.W, budgets[bi], io->shape, &r.K);
          /* A level that takes fewer children than its parents have:
           * fewer than W per node somewhere below a full level. */
          int32_t kids[DECO_TREE_MAX_NODES] = {0};
          for (int j = 1; j < r.nodes; ++j) kids[io->shape[j]]++;
          for (int j = 0; j < r.nodes && !short_level; ++j) short_level = kids[j] > 0 && kids[j] < r.W;
        } else {
          r.K = depths[ki] < budgets[bi] ? depths[ki] : budgets[bi];
          r.nodes = r.K + 1;
        }
        /* Past the full tree the budget no longer binds: the same shape. */
        if (r.nodes == last_nodes && (r.W == 1 || !memcmp(last_shape, io->shape, sizeof(int32_t) * (size_t)r.nodes)))
          continue;
        last_nodes = r.nodes;
        memcpy(last_shape, io->shape, sizeof(int32_t) * (size_t)r.nodes);
        partial += short_level;
        largest = r.nodes > largest ? r.nodes : largest;
        const int vocabs[] = {r.W, 37, TREE_V_MAX};
        r.V = vocabs[runs % 3];
        r.T = r.W > 1 && runs % 2 ? 0.7f : 0.0f;
        runs++;
        /* From the first id (len 0, no prev) or after a prompt, then the next round from
         * what the observe left, then near the step limit and (every
         * other run) a reservation that clips the deeper levels, then done. */
        r.steps = 300;
        r.slots = r.steps + r.nodes;
        int len = rnd_in(0, 1) ? 0 : rnd_in(1, 40);
        int32_t prev = len == 0 ? -1 : rnd_in(0, r.V - 1);
        len += tree_round(io, back, dev, rows, &r, 0, len, 0, prev, &t);
        len += tree_round(io, back, dev, rows, &r, 1, len, 0, io->prev, &t);
        r.steps = len + rnd_in(1, r.K + 1);
        if (runs % 2) r.slots = len + rnd_in(0, r.nodes);
        tree_round(io, back, dev, rows, &r, 2, len, 0, io->prev, &t);
        r.steps = 300;
        r.slots = r.steps + r.nodes;
        tree_round(io, back, dev, rows, &r, 3, len, 1, io->prev, &t);
      }
    }
  fprintf(stderr,
          "draft_chain tree mode: %d drafter runs (%d shapes with a level short of W children per node, up to %d "
          "nodes), %d stages, %d differ between CUDA and the reference\n",
          runs, partial, largest, t.stages, t.failed);
  cr_assert_eq(t.unwritten, 0, "%d stages where the reference left a poisoned output", t.unwritten);
  cr_assert_eq(largest, DECO_TREE_MAX_NODES - 1, "the grid reaches the op's largest tree");
  cr_assert_gt(partial, 0);
  cr_assert_eq(t.failed, 0);
  deco_free(gpu, dev);
  free(io);
  free(back);
  free(rows);
}
