/* tests/gpu/test_spec_step_cuda.c — the device-resident step's bookkeeping
 * ops, deco_spec_prepare and deco_spec_commit, on the CUDA context against
 * the same entry points on a CPU context (the reference,
 * kernels/spec/spec_step_ref.c) on identical inputs: many states (len, done,
 * the step limit), trees (root only, the default template, a 256-node
 * chain, random breadth-first depths), accept paths of several lengths up to
 * the whole tree, malformed paths, stop ids 1 and 2 with and without
 * ignore_eos, acceptance's non-finite flag absent, clear and set, and
 * output capacities at their edges. Every output and the state are compared
 * exactly; outputs are poisoned (0xFF) before each call and guard words
 * behind every buffer must survive, on both sides.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_suite.h"

DECO_GPU_SUITE(spec_step_cuda, 120);

#define NN DECO_TREE_MAX_NODES

/* xorshift64*: deterministic case generation. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}
static int rnd_in(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); } /* [lo, hi] */

static void print_state(const char *side, const deco_spec_state_t *s) {
  fprintf(stderr, "  %s state: len %d root %d done %d error %d n_out %d tokens %d forwards %d offset %u\n", side,
          s->len, s->root, s->done, s->error, s->n_out, s->tokens, s->forwards, s->offset);
}

/* Exact comparison of two states: every named field, then every byte (the
 * struct may grow; both sides start from the same bytes). */
static int states_equal(const deco_spec_state_t *a, const deco_spec_state_t *b) {
  return a->len == b->len && a->root == b->root && a->done == b->done && a->error == b->error &&
         a->n_out == b->n_out && a->tokens == b->tokens && a->forwards == b->forwards && a->offset == b->offset &&
         memcmp(a, b, sizeof *a) == 0;
}

/* Failing cases printed in full (the rest are only counted). */
static int reports_left = 10;

/* Number of differing ints; printed (deco_test_compare_i32) only when
 * verbose. */
static size_t diff_i32(const char *what, const int32_t *a, const int32_t *r, size_t n, int verbose) {
  if (verbose) return deco_test_compare_i32(what, a, r, n);
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += a[i] != r[i];
  return bad;
}

/* Guarded buffers reused from case to case: each is allocated once at its
 * largest size, and a case sizes it to exactly the bytes it uses and poisons
 * it again, so the guard words sit right behind those bytes
 * (deco_test_buf_poison writes them at ptr + bytes, within the allocation). */
enum { B_STATE, B_DEPTH, B_TOKENS, B_POSITIONS, B_Q_INDPTR, B_KV_LENS, B_PREFIX, B_TREE_INDPTR, B_ROW_COUNT,
       B_PATH, B_ACCEPT_LEN, B_BONUS, B_OUT, B_NONFINITE, B_COUNT };
#define OUT_MAX 512 /* largest out capacity of a case */

typedef struct side {
  deco_ctx_t *ctx;
  deco_test_buf_t buf[B_COUNT];
  size_t cap[B_COUNT];
} side_t;

static void side_init(side_t *sd, deco_ctx_t *ctx) {
  const size_t i4 = sizeof(int32_t);
  const size_t caps[B_COUNT] = {
      [B_STATE] = sizeof(deco_spec_state_t), [B_DEPTH] = NN * i4, [B_TOKENS] = NN * i4, [B_POSITIONS] = NN * i4,
      [B_Q_INDPTR] = 2 * i4, [B_KV_LENS] = i4, [B_PREFIX] = i4, [B_TREE_INDPTR] = 2 * i4, [B_ROW_COUNT] = i4,
      [B_PATH] = NN * i4, [B_ACCEPT_LEN] = i4, [B_BONUS] = i4, [B_OUT] = OUT_MAX * i4, [B_NONFINITE] = i4,
  };
  sd->ctx = ctx;
  for (int i = 0; i < B_COUNT; ++i) {
    sd->cap[i] = caps[i];
    sd->buf[i] = deco_test_buf_alloc(ctx, caps[i]);
  }
}

static void side_free(side_t *sd) {
  for (int i = 0; i < B_COUNT; ++i) deco_test_buf_free(&sd->buf[i]);
}

/* Buffer i sized to bytes, poisoned (0xFF), its guard right behind. */
static deco_test_buf_t *use(side_t *sd, int i, size_t bytes) {
  cr_assert_leq(bytes, sd->cap[i]);
  sd->buf[i].bytes = bytes;
  deco_test_buf_poison(&sd->buf[i]);
  return &sd->buf[i];
}

/* ---- deco_spec_prepare ---------------------------------------------------- */

typedef struct prepare_case {
  deco_spec_state_t state;
  int n_nodes, steps;
  int32_t depth[NN], tokens[NN]; /* tokens: the input (draft tokens) */
} prepare_case_t;

typedef struct prepare_out {
  deco_spec_state_t state;
  int32_t tokens[NN], positions[NN], q_indptr[2], kv_lens[1], prefix_lens[1], tree_indptr[2], row_count[1];
} prepare_out_t;

/* Runs deco_spec_prepare on one side with every buffer guarded; inputs
 * uploaded, outputs poisoned. Returns the number of broken guards (plus 1 if
 * the input depth[] was written). */
static int run_prepare(side_t *sd, const prepare_case_t *pc, prepare_out_t *o) {
  deco_ctx_t *ctx = sd->ctx;
  const int n = pc->n_nodes;
  const size_t nb = sizeof(int32_t) * (size_t)n;
  deco_test_buf_t *state = use(sd, B_STATE, sizeof(deco_spec_state_t)), *depth = use(sd, B_DEPTH, nb);
  deco_test_buf_t *tokens = use(sd, B_TOKENS, nb), *positions = use(sd, B_POSITIONS, nb);
  deco_test_buf_t *q_indptr = use(sd, B_Q_INDPTR, 2 * sizeof(int32_t)), *kv_lens = use(sd, B_KV_LENS, sizeof(int32_t));
  deco_test_buf_t *prefix = use(sd, B_PREFIX, sizeof(int32_t));
  deco_test_buf_t *tree_indptr = use(sd, B_TREE_INDPTR, 2 * sizeof(int32_t));
  deco_test_buf_t *row_count = use(sd, B_ROW_COUNT, sizeof(int32_t));
  deco_test_buf_upload(state, &pc->state, sizeof pc->state);
  deco_test_buf_upload(depth, pc->depth, nb);
  deco_test_buf_upload(tokens, pc->tokens, nb);
  deco_spec_prepare_args_t a = {
      .state = state->ptr,
      .n_nodes = n,
      .depth = depth->ptr,
      .steps = pc->steps,
      .tokens = tokens->ptr,
      .positions = positions->ptr,
      .q_indptr = q_indptr->ptr,
      .kv_lens = kv_lens->ptr,
      .prefix_lens = prefix->ptr,
      .tree_indptr = tree_indptr->ptr,
      .row_count = row_count->ptr,
  };
  cr_assert_eq(deco_spec_prepare(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_test_buf_download(state, &o->state, sizeof o->state);
  deco_test_buf_download(tokens, o->tokens, nb);
  deco_test_buf_download(positions, o->positions, nb);
  deco_test_buf_download(q_indptr, o->q_indptr, sizeof o->q_indptr);
  deco_test_buf_download(kv_lens, o->kv_lens, sizeof o->kv_lens);
  deco_test_buf_download(prefix, o->prefix_lens, sizeof o->prefix_lens);
  deco_test_buf_download(tree_indptr, o->tree_indptr, sizeof o->tree_indptr);
  deco_test_buf_download(row_count, o->row_count, sizeof o->row_count);
  int32_t depth_after[NN];
  deco_test_buf_download(depth, depth_after, nb);
  int broken = memcmp(depth_after, pc->depth, nb) != 0; /* an input written */
  const deco_test_buf_t *all[] = {state, depth, tokens, positions, q_indptr, kv_lens, prefix, tree_indptr, row_count};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) broken += !deco_test_buf_guard_ok(all[i]);
  return broken;
}

/* Differing outputs of one prepare case (printed when verbose). */
static size_t prepare_diffs(const prepare_out_t *og, const prepare_out_t *oc, int n, int id, int verbose) {
  char what[64];
  size_t bad = 0;
#define CMP(field, count)                                                          \
  do {                                                                             \
    snprintf(what, sizeof what, "prepare case %d " #field, id);                   \
    bad += diff_i32(what, og->field, oc->field, (size_t)(count), verbose);         \
  } while (0)
  CMP(tokens, n);
  CMP(positions, n);
  CMP(q_indptr, 2);
  CMP(kv_lens, 1);
  CMP(prefix_lens, 1);
  CMP(tree_indptr, 2);
  CMP(row_count, 1);
#undef CMP
  return bad;
}

/* Compares the CUDA and CPU results of one case; 1 if they agree. */
static int prepare_agrees(side_t *g, side_t *c, const prepare_case_t *pc, int id) {
  static prepare_out_t og, oc;
  const int n = pc->n_nodes;
  int broken = run_prepare(g, pc, &og);
  broken += run_prepare(c, pc, &oc);
  const size_t bad = prepare_diffs(&og, &oc, n, id, 0);
  const int same_state = states_equal(&og.state, &oc.state);
  /* Every output written: no poison (-1) left, on either side (len >= 0
   * makes every output non-negative). */
  int poisoned = 0;
  const prepare_out_t *sides[2] = {&og, &oc};
  for (int k = 0; k < 2; ++k) {
    const prepare_out_t *o = sides[k];
    for (int j = 0; j < n; ++j) poisoned += o->positions[j] == -1;
    poisoned += (o->q_indptr[0] == -1) + (o->q_indptr[1] == -1) + (o->kv_lens[0] == -1) + (o->prefix_lens[0] == -1) +
                (o->tree_indptr[0] == -1) + (o->tree_indptr[1] == -1) + (o->row_count[0] == -1);
  }
  if (!bad && same_state && !broken && !poisoned) return 1;
  if (reports_left-- > 0) {
    prepare_diffs(&og, &oc, n, id, 1);
    fprintf(stderr,
            "prepare case %d: n_nodes %d steps %d (%zu outputs differ, state %s, %d guards broken or depth[] written, "
            "%d outputs unwritten)\n",
            id, n, pc->steps, bad, same_state ? "equal" : "DIFFERS", broken, poisoned);
    print_state("input", &pc->state);
    print_state("cuda", &og.state);
    print_state("cpu", &oc.state);
  }
  return 0;
}

/* Depth arrays: 0 root only, 1 the default template, 2 a 256-node chain,
 * 3 random breadth-first depths. */
static int make_depths(int kind, int32_t *depth) {
  switch (kind) {
  case 0: depth[0] = 0; return 1;
  case 1: {
    deco_tree_template_t t;
    cr_assert_eq(deco_tree_template_default(&t), DECO_STATUS_SUCCESS);
    cr_assert_eq(deco_tree_depths(t.parent, t.n_nodes, depth), DECO_STATUS_SUCCESS);
    return t.n_nodes;
  }
  case 2:
    for (int j = 0; j < NN; ++j) depth[j] = j;
    return NN;
  default: {
    int n = rnd_in(2, NN);
    depth[0] = 0;
    for (int j = 1; j < n; ++j) depth[j] = depth[j - 1] + (j == 1 || rnd() % 4 == 0 ? 1 : 0);
    return n;
  }
  }
}

Test(spec_step_cuda, prepare_matches_reference) {
  static prepare_case_t pc;
  side_t sg, sc;
  side_init(&sg, gpu);
  side_init(&sc, cpu);
  int cases = 0, failed = 0;
  const int steps_list[] = {1, 2, 3, 7, 64, 255, 256, 257, 512, 1 << 30};
  for (int kind = 0; kind < 6; ++kind) {
    memset(&pc, 0, sizeof pc);
    pc.n_nodes = make_depths(kind < 3 ? kind : 3, pc.depth);
    const int max_depth = pc.depth[pc.n_nodes - 1];
    for (size_t si = 0; si < sizeof steps_list / sizeof steps_list[0]; ++si) {
      pc.steps = steps_list[si];
      /* len around every clipping edge: nothing, part of the tree, all of it. */
      int lens[12] = {0, 1, 5, pc.steps - max_depth - 2, pc.steps - max_depth - 1, pc.steps - max_depth,
                      pc.steps - 3, pc.steps - 2, pc.steps - 1, pc.steps, pc.steps + 1, rnd_in(0, 600)};
      for (int li = 0; li < 12; ++li) {
        if (lens[li] < 0) continue;
        for (int done = 0; done < 2; ++done) {
          pc.state = (deco_spec_state_t){
              .len = lens[li],
              .root = rnd_in(0, 511),
              .done = done,
              .error = 0,
              .n_out = rnd_in(0, 300),
              .tokens = rnd_in(0, 300),
              .forwards = rnd_in(0, 300),
              .offset = (uint32_t)lens[li],
          };
          for (int j = 0; j < pc.n_nodes; ++j) pc.tokens[j] = rnd_in(0, 511);
          cases++;
          if (!prepare_agrees(&sg, &sc, &pc, cases)) failed++;
        }
      }
    }
  }
  side_free(&sg);
  side_free(&sc);
  fprintf(stderr, "spec_prepare: %d cases, %d differ between CUDA and the reference\n", cases, failed);
  cr_assert_eq(failed, 0, "%d of %d prepare cases differ", failed, cases);
}

/* ---- deco_spec_commit ----------------------------------------------------- */

typedef struct commit_case {
  deco_spec_state_t state;
  int n_nodes, steps, ignore_eos, out_capacity, null_out;
  int32_t tokens[NN], path[NN], accept_len, bonus;
  int has_nonfinite;  /* 0: no flag (NULL); 1: acceptance's flag, the value below */
  int32_t nonfinite;  /* 0, or 1 + the node whose logits were not finite */
} commit_case_t;

typedef struct commit_out {
  deco_spec_state_t state;
  int32_t *out; /* [out_capacity] */
} commit_out_t;

/* Runs deco_spec_commit on one side, every buffer guarded, out poisoned.
 * Returns the number of broken guards (plus 1 if an input was written). */
static int run_commit(side_t *sd, const commit_case_t *cc, commit_out_t *o) {
  deco_ctx_t *ctx = sd->ctx;
  const size_t nb = sizeof(int32_t) * (size_t)cc->n_nodes, ob = sizeof(int32_t) * (size_t)cc->out_capacity;
  deco_test_buf_t *state = use(sd, B_STATE, sizeof(deco_spec_state_t)), *tokens = use(sd, B_TOKENS, nb);
  deco_test_buf_t *path = use(sd, B_PATH, sizeof cc->path), *acc = use(sd, B_ACCEPT_LEN, sizeof(int32_t));
  deco_test_buf_t *bonus = use(sd, B_BONUS, sizeof(int32_t)), *out = use(sd, B_OUT, ob);
  deco_test_buf_t *nonfinite = use(sd, B_NONFINITE, sizeof(int32_t));
  deco_test_buf_upload(state, &cc->state, sizeof cc->state);
  deco_test_buf_upload(tokens, cc->tokens, nb);
  deco_test_buf_upload(path, cc->path, sizeof cc->path);
  deco_test_buf_upload(acc, &cc->accept_len, sizeof(int32_t));
  deco_test_buf_upload(bonus, &cc->bonus, sizeof(int32_t));
  deco_test_buf_upload(nonfinite, &cc->nonfinite, sizeof(int32_t));
  /* ignore_eos: no stop ids; else llama2.c's, {1, 2}. */
  static const int32_t llama2c_stops[2] = {1, 2};
  deco_test_buf_t stops = deco_test_buf_alloc(ctx, sizeof llama2c_stops);
  deco_test_buf_upload(&stops, llama2c_stops, sizeof llama2c_stops);
  deco_spec_commit_args_t a = {
      .state = state->ptr,
      .tokens = tokens->ptr,
      .n_nodes = cc->n_nodes,
      .path = path->ptr,
      .accept_len = acc->ptr,
      .bonus = bonus->ptr,
      .steps = cc->steps,
      .stop_ids = cc->ignore_eos ? NULL : stops.ptr,
      .n_stop_ids = cc->ignore_eos ? 0 : 2,
      .out = cc->null_out ? NULL : out->ptr,
      .out_capacity = cc->out_capacity,
      .nonfinite = cc->has_nonfinite ? nonfinite->ptr : NULL,
  };
  cr_assert_eq(deco_spec_commit(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_test_buf_free(&stops);
  deco_test_buf_download(state, &o->state, sizeof o->state);
  deco_test_buf_download(out, o->out, ob);
  /* Inputs are never written: compare them with what was uploaded. */
  int32_t tokens_after[NN], path_after[NN], acc_after, bonus_after, nonfinite_after;
  deco_test_buf_download(tokens, tokens_after, nb);
  deco_test_buf_download(path, path_after, sizeof path_after);
  deco_test_buf_download(acc, &acc_after, sizeof acc_after);
  deco_test_buf_download(bonus, &bonus_after, sizeof bonus_after);
  deco_test_buf_download(nonfinite, &nonfinite_after, sizeof nonfinite_after);
  int broken = memcmp(tokens_after, cc->tokens, nb) != 0 || memcmp(path_after, cc->path, sizeof path_after) != 0 ||
               acc_after != cc->accept_len || bonus_after != cc->bonus || nonfinite_after != cc->nonfinite;
  const deco_test_buf_t *all[] = {state, tokens, path, acc, bonus, out, nonfinite};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) broken += !deco_test_buf_guard_ok(all[i]);
  return broken;
}

static int commit_agrees(side_t *g, side_t *c, const commit_case_t *cc, int id, int *emitted) {
  commit_out_t og, oc;
  const size_t cap = (size_t)cc->out_capacity;
  og.out = malloc(sizeof(int32_t) * (cap ? cap : 1));
  oc.out = malloc(sizeof(int32_t) * (cap ? cap : 1));
  int broken = run_commit(g, cc, &og);
  broken += run_commit(c, cc, &oc);
  char what[64];
  snprintf(what, sizeof what, "commit case %d out", id);
  /* The whole buffer: the ids written, and the poison where none was. */
  size_t bad = diff_i32(what, og.out, oc.out, cap, 0);
  int same_state = states_equal(&og.state, &oc.state);
  /* The reference's own bookkeeping: exactly the ids it counted were written. */
  int written = oc.state.n_out - cc->state.n_out, unwritten_ok = 1;
  for (size_t i = 0; i < cap; ++i) {
    int in_new = (int)i >= cc->state.n_out && (int)i < oc.state.n_out;
    if (!in_new && oc.out[i] != -1) unwritten_ok = 0;
  }
  *emitted += written > 0 ? written : 0;
  int ok = !bad && same_state && !broken && unwritten_ok;
  if (!ok && reports_left-- > 0) {
    diff_i32(what, og.out, oc.out, cap, 1);
    fprintf(stderr,
            "commit case %d: n_nodes %d accept_len %d bonus %d steps %d ignore_eos %d nonfinite %s%d out_capacity %d%s "
            "(%zu out ids differ, state %s, %d guards broken or inputs written%s)\n",
            id, cc->n_nodes, cc->accept_len, cc->bonus, cc->steps, cc->ignore_eos, cc->has_nonfinite ? "" : "(NULL) ",
            cc->nonfinite, cc->out_capacity,
            cc->null_out ? " (out NULL)" : "", bad, same_state ? "equal" : "DIFFERS", broken,
            unwritten_ok ? "" : ", the reference wrote outside [n_out, new n_out)");
    fprintf(stderr, "  path:");
    for (int i = 0; i < cc->accept_len && i < 16; ++i) {
      const int node = cc->path[i];
      fprintf(stderr, " %d(token %d)", node, node >= 0 && node < cc->n_nodes ? cc->tokens[node] : -1);
    }
    fprintf(stderr, "\n");
    print_state("input", &cc->state);
    print_state("cuda", &og.state);
    print_state("cpu", &oc.state);
  }
  free(og.out);
  free(oc.out);
  return ok;
}

/* A path of acc nodes from the root: node indices increasing in [1, n). */
static void make_path(int32_t *path, int n, int acc, int whole_chain) {
  path[0] = 0;
  int prev = 0;
  for (int i = 1; i < acc; ++i) {
    int room = (n - 1) - (acc - 1 - i); /* leave room for the rest */
    path[i] = whole_chain ? i : rnd_in(prev + 1, room);
    prev = path[i];
  }
  for (int i = acc; i < NN; ++i) path[i] = (int32_t)rnd(); /* never read */
}

Test(spec_step_cuda, commit_matches_reference) {
  static commit_case_t cc;
  side_t sg, sc;
  side_init(&sg, gpu);
  side_init(&sc, cpu);
  int cases = 0, failed = 0, emitted = 0;
  const int sizes[] = {1, 2, 5, 81, NN};
  for (size_t ni = 0; ni < sizeof sizes / sizeof sizes[0]; ++ni) {
    const int n = sizes[ni];
    for (int rep = 0; rep < 48; ++rep) {
      memset(&cc, 0, sizeof cc);
      cc.n_nodes = n;
      /* Tree tokens with stop ids scattered in some trees. */
      const int stops = (int)(rnd() % 3);
      for (int j = 0; j < n; ++j) cc.tokens[j] = rnd_in(3, 511);
      for (int k = 0; k < stops * 2 && n > 1; ++k) cc.tokens[rnd_in(1, n - 1)] = rnd_in(1, 2);
      /* Accept lengths: 1, 2, a few, half, the whole tree (a chain). */
      const int choice = rep % 6;
      int acc = choice == 0 ? 1 : choice == 1 ? 2 : choice == 2 ? rnd_in(1, n) : choice == 3 ? (n + 1) / 2 : n;
      if (acc > n) acc = n;
      make_path(cc.path, n, acc, choice >= 4);
      if (choice == 5 && n > 1) cc.tokens[rnd_in(1, n - 1)] = 1 + rep % 2; /* a stop id on the whole path */
      cc.accept_len = acc;
      cc.bonus = rep % 5 == 0 ? 2 : rep % 7 == 0 ? 1 : rnd_in(0, 511);
      /* Acceptance's non-finite flag: absent, clear, or set (nothing commits). */
      const int nf = (int)(rnd() % 4);
      cc.has_nonfinite = nf >= 2;
      cc.nonfinite = nf == 3 ? rnd_in(1, n) : 0;
      const int len = rnd_in(0, 400);
      /* steps: far, reached exactly by this step, passed by it, already passed. */
      const int steps_kind = (rep / 6) % 4; /* with choice = rep % 6: every pair, twice */
      cc.steps = steps_kind == 0 ? len + acc + rnd_in(1, 100)
                 : steps_kind == 1 ? len + acc
                 : steps_kind == 2 ? (len + acc > 1 ? rnd_in(1, len + acc - 1) : 1)
                                   : 1 + len;
      const int n_out = rnd_in(0, 40);
      cc.state = (deco_spec_state_t){
          .len = len,
          .root = rnd_in(0, 511),
          .done = rep % 10 == 9,
          .error = 0,
          .n_out = n_out,
          .tokens = rnd_in(0, 300),
          .forwards = rnd_in(0, 300),
          .offset = (uint32_t)len,
      };
      for (int ignore = 0; ignore < 2; ++ignore) {
        cc.ignore_eos = ignore;
        /* Capacities: none (NULL and a real empty buffer), full already,
         * room for one, one short of the step, exactly the step, plenty. */
        const int caps[7] = {0, 0, n_out, n_out + 1, n_out + acc - 1, n_out + acc, n_out + acc + 17};
        for (int ci = 0; ci < 7; ++ci) {
          if (caps[ci] < 0) continue;
          cc.out_capacity = caps[ci];
          cc.null_out = ci == 0;
          cases++;
          if (!commit_agrees(&sg, &sc, &cc, cases, &emitted)) failed++;
        }
      }
    }
  }
  side_free(&sg);
  side_free(&sc);
  fprintf(stderr, "spec_commit: %d cases (%d ids emitted by the reference), %d differ between CUDA and the reference\n",
          cases, emitted, failed);
  cr_assert_gt(emitted, 1000, "the cases emit too little to test anything");
  cr_assert_eq(failed, 0, "%d of %d commit cases differ", failed, cases);
}

Test(spec_step_cuda, commit_malformed_matches_reference) {
  static commit_case_t cc;
  side_t sg, sc;
  side_init(&sg, gpu);
  side_init(&sc, cpu);
  int cases = 0, failed = 0, emitted = 0;
  const int n = 9;
  /* accept_len outside [1, n], and paths that leave the tree at each place. */
  const int bad_acc[] = {0, -1, n + 1, 1 << 20};
  const int bad_node[] = {-1, 0, n, n + 5, -100};
  for (int k = 0; k < (int)(sizeof bad_acc / sizeof bad_acc[0]) + (int)(sizeof bad_node / sizeof bad_node[0]) * 3;
       ++k) {
    memset(&cc, 0, sizeof cc);
    cc.n_nodes = n;
    for (int j = 0; j < n; ++j) cc.tokens[j] = rnd_in(3, 511);
    make_path(cc.path, n, 4, 0);
    cc.accept_len = 4;
    if (k < (int)(sizeof bad_acc / sizeof bad_acc[0])) {
      cc.accept_len = bad_acc[k];
    } else {
      int b = k - (int)(sizeof bad_acc / sizeof bad_acc[0]);
      cc.path[1 + b % 3] = bad_node[b / 3]; /* the first, a middle and the last drafted node */
    }
    cc.bonus = 77;
    cc.steps = 200;
    cc.state = (deco_spec_state_t){.len = 20, .root = 5, .n_out = 3, .tokens = 3, .forwards = 2, .offset = 20};
    for (int ignore = 0; ignore < 2; ++ignore) {
      cc.ignore_eos = ignore;
      cc.out_capacity = 40;
      cases++;
      if (!commit_agrees(&sg, &sc, &cc, cases, &emitted)) failed++;
    }
  }
  side_free(&sg);
  side_free(&sc);
  fprintf(stderr, "spec_commit malformed: %d cases, %d differ\n", cases, failed);
  cr_assert_eq(emitted, 0, "a malformed verification output emitted ids");
  cr_assert_eq(failed, 0, "%d of %d malformed commit cases differ", failed, cases);
}
