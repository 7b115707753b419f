/* perf/bench_accept.c — tree acceptance on the GPU: greedy, temperature-only
 * and top-p (0.9) sampling, chains of K = 5 and 8 drafts (CHAIN, with draft
 * probabilities) and 64-node trees (DETERMINISTIC drafts), B = 1, 32, 64,
 * V = 32000 and 128256, f32 and bf16 logits, L2 flushed before each run.
 * Those chains accept every draft (q = 1/V is far below the planted token's
 * p), so they never run the residual pass; a fourth shape, "chain K=5
 * reject@D" (temperature and top-p only), does: its draft at depth D
 * (--reject-depth, default 3) is an unplanted token on which the draft row
 * of its parent puts REJECT_Q of its mass, so it is refused and the walk
 * samples the bonus from norm(max(0, p - q)) over the whole vocabulary.
 * Floor = bytes of the rows the decisions needed, counted from the outputs
 * (logits of the accepted path; draft rows of the path nodes that had
 * children, i.e. where a child was rejected, for CHAIN) / measured copy
 * bandwidth. Checks the B = 1 case of every configuration against the C
 * reference before timing; reject@D without a rejection (the GPU at any B,
 * or the reference at B = 1) fails the run, and GPU outputs without one are
 * not timed.
 * Run: build/bin/bench_accept [--reps N] [--reject-depth D (1..5)]
 *      (CSV on stdout, summary on stderr)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bench.h"
#include "deco/deco.h"

#define CHECK(expr)                                                               \
  do {                                                                            \
    if ((expr) != DECO_STATUS_SUCCESS) {                                          \
      fprintf(stderr, "bench_accept: %s failed: %s\n", #expr, deco_last_error(g_ctx)); \
      exit(1);                                                                    \
    }                                                                             \
  } while (0)

static deco_ctx_t *g_ctx;

enum mode { GREEDY, TEMPERATURE, TOP_P };
static const char *mode_name[3] = {"greedy", "temperature", "top-p 0.9"};

typedef struct state {
  enum mode mode;
  deco_tree_accept_greedy_args_t g;
  deco_tree_accept_sample_args_t s;
} state_t;

static int run_fn(void *u) {
  state_t *st = u;
  deco_status_t r = st->mode == GREEDY ? deco_tree_accept_greedy(g_ctx, &st->g) : deco_tree_accept_sample(g_ctx, &st->s);
  return r != DECO_STATUS_SUCCESS;
}

/* The planted top token of flat row r (its logit is raised so drafts can match). */
static int planted(int r, int V) { return (int)(((uint64_t)r * 2654435761u + 12345u) % (uint64_t)V); }

/* A token of flat row r other than the planted one (its logit is the [-2, 2)
 * noise): the tree's later siblings and the refused draft of reject@D, for
 * node i below row r. */
static int unplanted(int r, int i, int V) { return (planted(r, V) + 1 + i) % V; }

/* The rejection case: a chain of REJECT_K drafts whose draft at depth
 * reject_depth is refused. Its parent's draft row puts REJECT_Q on it and
 * spreads the rest evenly; the target gives it p(x) <= e^2 / sum(e^l) < 4e-5
 * (at most 1.1x that under top-p 0.9, or 0 outside the nucleus), so it is
 * accepted only when u < p(x) / REJECT_Q, about 5e-5. The even rest keeps the
 * residual max(0, p - q) positive wherever p(y) > (1 - REJECT_Q) / (V - 1):
 * logits above about -0.4 (V = 32000) or -1.2 (V = 128256), 60-80% of the
 * vocabulary at temperature 1, the nucleus under top-p. */
#define REJECT_K 5
#define REJECT_Q 0.9f

/* Tree shapes: chain of K drafts, or a 64-node 4-ary heap; the first child of
 * every node carries the node's planted token, the others a different token. */
static int make_shape(int chain_k, int32_t *parent, int32_t *first_child_of) {
  int n = chain_k ? chain_k + 1 : 64;
  for (int i = 0; i < n; ++i) {
    parent[i] = i == 0 ? -1 : (chain_k ? i - 1 : (i - 1) / 4);
    first_child_of[i] = chain_k ? (i > 0) : (i > 0 && (i - 1) % 4 == 0);
  }
  return n;
}

int main(int argc, char **argv) {
  int reps = 50, reject_depth = 3;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 < argc && !strcmp(argv[i], "--reps") && atoi(argv[i + 1]) >= 1) {
      reps = atoi(argv[i + 1]);
    } else if (i + 1 < argc && !strcmp(argv[i], "--reject-depth") && atoi(argv[i + 1]) >= 1 &&
               atoi(argv[i + 1]) <= REJECT_K) {
      reject_depth = atoi(argv[i + 1]);
    } else {
      fprintf(stderr, "usage: %s [--reps N (>= 1)] [--reject-depth D (1..%d)]\n", argv[0], REJECT_K);
      return 2;
    }
  }
  deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT;
  cfg.backend = DECO_BACKEND_CUDA;
  if (deco_ctx_create(&cfg, &g_ctx) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "bench_accept: no CUDA context: %s\n", deco_last_error(NULL));
    return 77;
  }
  deco_ctx_t *cpu;
  deco_ctx_config_t ccfg = DECO_CTX_CONFIG_INIT;
  ccfg.backend = DECO_BACKEND_CPU;
  CHECK(deco_ctx_create(&ccfg, &cpu));
  deco_bench_t b;
  if (deco_bench_init(&b, g_ctx) || deco_bench_measure_ceilings(&b)) return 1;
  fprintf(stderr, "device %s, copy %.0f GB/s\n", b.device_name, b.copy_gbps);

  /* shapes: chains of 5 and 8 accepted drafts, the 64-node tree, the chain with a rejection (Ks[3]) */
  const int Bs[3] = {1, 32, 64}, Vs[2] = {32000, 128256}, Ks[4] = {5, 8, 0, REJECT_K};
  const int rej_n = REJECT_K + 1; /* nodes per tree of the rejection case */
  const int max_rows = 64 * 64;
  const size_t max_elems = (size_t)max_rows * 128256;
  void *logits32, *logits16, *q, *q_rej;
  void *d_indptr, *d_parent, *d_tokens, *d_path, *d_len, *d_bonus, *d_seed, *d_offset;
  CHECK(deco_malloc(g_ctx, &logits32, max_elems * 4));
  CHECK(deco_malloc(g_ctx, &logits16, max_elems * 2));
  CHECK(deco_malloc(g_ctx, &q, (size_t)64 * 9 * 128256 * 4));
  CHECK(deco_malloc(g_ctx, &q_rej, (size_t)64 * rej_n * 128256 * 4));
  CHECK(deco_malloc(g_ctx, &d_indptr, 65 * 4));
  CHECK(deco_malloc(g_ctx, &d_parent, max_rows * 4));
  CHECK(deco_malloc(g_ctx, &d_tokens, max_rows * 4));
  CHECK(deco_malloc(g_ctx, &d_path, 64 * DECO_TREE_MAX_NODES * 4));
  CHECK(deco_malloc(g_ctx, &d_len, 64 * 4));
  CHECK(deco_malloc(g_ctx, &d_bonus, 64 * 4));
  CHECK(deco_malloc(g_ctx, &d_seed, 8));
  CHECK(deco_malloc(g_ctx, &d_offset, 4));
  uint64_t seed = 2026;
  uint32_t offset = 0;
  CHECK(deco_memcpy(g_ctx, d_seed, &seed, 8, DECO_COPY_HOST_TO_CTX));
  CHECK(deco_memcpy(g_ctx, d_offset, &offset, 4, DECO_COPY_HOST_TO_CTX));
  /* q: uniform-ish positive rows (normalisation does not change the cost) */
  deco_fill_random_args_t fq = {.dtype = DECO_DTYPE_F32, .n = (size_t)64 * 9 * 128256, .seed = 7, .tensor = 1,
                                .scale = 0.0f, .constant = 1.0f / 128256.0f, .out = q};
  CHECK(deco_fill_random(g_ctx, &fq));

  deco_bench_csv_header(stdout);
  int bad = 0;
  for (int vi = 0; vi < 2; ++vi) {
    const int V = Vs[vi];
    /* logits [4096][V]: uniform in [-2, 2) with the planted token of each row at +12 */
    deco_fill_random_args_t fl = {.dtype = DECO_DTYPE_F32, .n = (size_t)max_rows * V, .seed = 11, .tensor = 2,
                                  .scale = 2.0f, .constant = 0.0f, .out = logits32};
    CHECK(deco_fill_random(g_ctx, &fl));
    float hi = 12.0f;
    for (int r = 0; r < max_rows; ++r)
      CHECK(deco_memcpy(g_ctx, (float *)logits32 + (size_t)r * V + planted(r, V), &hi, 4, DECO_COPY_HOST_TO_CTX));
    deco_convert_args_t cv = {.in_dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_BF16, .n = (size_t)max_rows * V,
                              .in = logits32, .out = logits16};
    CHECK(deco_convert(g_ctx, &cv));
    /* q of the rejection case, [64 trees][rej_n][V]: 1/V as in q (the planted
     * drafts above the refused one are accepted), except the row of the
     * refused draft's parent: REJECT_Q on it, the rest spread evenly (a
     * distribution, so the residual is what a real draft would leave) */
    deco_fill_random_args_t fr = fq;
    fr.n = (size_t)64 * rej_n * V;
    fr.constant = 1.0f / (float)V;
    fr.out = q_rej;
    CHECK(deco_fill_random(g_ctx, &fr));
    float *qrow = malloc((size_t)V * 4);
    const float q_rest = (1.0f - REJECT_Q) / (float)(V - 1);
    for (int y = 0; y < V; ++y) qrow[y] = q_rest;
    for (int t = 0; t < 64; ++t) {
      const int pr = t * rej_n + reject_depth - 1, x = unplanted(pr, reject_depth, V);
      qrow[x] = REJECT_Q;
      CHECK(deco_memcpy(g_ctx, (float *)q_rej + (size_t)pr * V, qrow, (size_t)V * 4, DECO_COPY_HOST_TO_CTX));
      qrow[x] = q_rest;
    }
    free(qrow);
    for (int ki = 0; ki < 4; ++ki) {
      const int rej = ki == 3 ? reject_depth : 0; /* depth of the refused draft; 0: none planned */
      int32_t par1[64], fc[64];
      const int n = make_shape(Ks[ki], par1, fc);
      char shape_name[40];
      if (rej) snprintf(shape_name, sizeof shape_name, "chain K=%d reject@%d", Ks[ki], rej);
      else if (Ks[ki]) snprintf(shape_name, sizeof shape_name, "chain K=%d", Ks[ki]);
      else snprintf(shape_name, sizeof shape_name, "tree n=64");
      for (int bi = 0; bi < 3; ++bi) {
        const int B = Bs[bi];
        int32_t indptr[65], *parent = malloc(B * n * 4), *tokens = malloc(B * n * 4);
        for (int t = 0; t <= B; ++t) indptr[t] = t * n;
        for (int t = 0; t < B; ++t)
          for (int i = 0; i < n; ++i) {
            parent[t * n + i] = par1[i];
            int pr = t * n + (i ? par1[i] : 0);
            tokens[t * n + i] = i == 0 ? 0 : (fc[i] && i != rej ? planted(pr, V) : unplanted(pr, i, V));
          }
        CHECK(deco_memcpy(g_ctx, d_indptr, indptr, (B + 1) * 4, DECO_COPY_HOST_TO_CTX));
        CHECK(deco_memcpy(g_ctx, d_parent, parent, B * n * 4, DECO_COPY_HOST_TO_CTX));
        CHECK(deco_memcpy(g_ctx, d_tokens, tokens, B * n * 4, DECO_COPY_HOST_TO_CTX));
        for (int dti = 0; dti < 2; ++dti) {
          const deco_dtype_t dt = dti ? DECO_DTYPE_BF16 : DECO_DTYPE_F32;
          const size_t es = dti ? 2 : 4;
          /* greedy reads no q: on reject@D it would only time the K = 5 chain cut short */
          for (int mi = rej ? TEMPERATURE : GREEDY; mi < 3; ++mi) {
            state_t st;
            memset(&st, 0, sizeof st);
            st.mode = (enum mode)mi;
            deco_tree_batch_t tb = {.n_trees = B, .n_nodes = B * n, .tree_indptr = d_indptr, .parent = d_parent};
            deco_tree_verify_out_t out = {.path = d_path, .accept_len = d_len, .bonus = d_bonus};
            st.g = (deco_tree_accept_greedy_args_t){.tree = tb, .tokens = d_tokens, .logits_dtype = dt,
                                                    .logits = dti ? logits16 : logits32, .vocab = V, .out = out};
            st.s = (deco_tree_accept_sample_args_t){.tree = tb, .tokens = d_tokens, .logits_dtype = dt,
                                                    .logits = dti ? logits16 : logits32, .vocab = V,
                                                    .temperature = 1.0f, .top_k = 0, .top_p = mi == TOP_P ? 0.9f : 1.0f,
                                                    .draft_kind = Ks[ki] ? DECO_DRAFT_CHAIN : DECO_DRAFT_DETERMINISTIC,
                                                    .draft_probs = Ks[ki] ? (rej ? q_rej : q) : NULL, .seed = d_seed,
                                                    .offset = d_offset, .out = out};
            if (run_fn(&st)) CHECK(DECO_STATUS_INTERNAL);
            int32_t *len = malloc(B * 4), *bonus = malloc(B * 4), *path = malloc((size_t)B * DECO_TREE_MAX_NODES * 4);
            CHECK(deco_memcpy(g_ctx, len, d_len, B * 4, DECO_COPY_CTX_TO_HOST));
            CHECK(deco_memcpy(g_ctx, bonus, d_bonus, B * 4, DECO_COPY_CTX_TO_HOST));
            CHECK(deco_memcpy(g_ctx, path, d_path, (size_t)B * DECO_TREE_MAX_NODES * 4, DECO_COPY_CTX_TO_HOST));
            if (B == 1) { /* the reference on the first tree, fed the same (rounded) logits */
              float *hl = malloc((size_t)n * V * 4), *hq = NULL;
              void *raw = malloc((size_t)n * V * es);
              CHECK(deco_memcpy(g_ctx, raw, dti ? logits16 : logits32, (size_t)n * V * es, DECO_COPY_CTX_TO_HOST));
              for (size_t i = 0; i < (size_t)n * V; ++i)
                hl[i] = dti ? deco_bf16_to_f32(((uint16_t *)raw)[i]) : ((float *)raw)[i];
              if (Ks[ki]) {
                hq = malloc((size_t)n * V * 4);
                CHECK(deco_memcpy(g_ctx, hq, st.s.draft_probs, (size_t)n * V * 4, DECO_COPY_CTX_TO_HOST));
              }
              int32_t rlen, rbonus, rpath[DECO_TREE_MAX_NODES], ind1[2] = {0, n};
              deco_tree_batch_t ht = {.n_trees = 1, .n_nodes = n, .tree_indptr = ind1, .parent = par1};
              deco_tree_verify_out_t ho = {.path = rpath, .accept_len = &rlen, .bonus = &rbonus};
              deco_status_t rs;
              if (mi == GREEDY) {
                deco_tree_accept_greedy_args_t ra = {.tree = ht, .tokens = tokens, .logits_dtype = DECO_DTYPE_F32,
                                                     .logits = hl, .vocab = V, .out = ho};
                rs = deco_tree_accept_greedy(cpu, &ra);
              } else {
                deco_tree_accept_sample_args_t ra = st.s;
                ra.tree = ht;
                ra.tokens = tokens;
                ra.logits_dtype = DECO_DTYPE_F32;
                ra.logits = hl;
                ra.draft_probs = hq;
                ra.seed = &seed;
                ra.offset = &offset;
                ra.out = ho;
                rs = deco_tree_accept_sample(cpu, &ra);
              }
              if (rs != DECO_STATUS_SUCCESS) {
                fprintf(stderr, "reference failed: %s\n", deco_last_error(cpu));
                return 1;
              }
              int same = rlen == len[0] && rbonus == bonus[0] && !memcmp(rpath, path, DECO_TREE_MAX_NODES * 4);
              if (!same) {
                fprintf(stderr, "%s: %s V=%d n=%d %s: GPU len %d bonus %d, reference len %d bonus %d\n",
                        mi == GREEDY ? "MISMATCH" : "differs (sampling: near-threshold cases are allowed)",
                        mode_name[mi], V, n, deco_dtype_name(dt), len[0], bonus[0], rlen, rbonus);
                if (mi == GREEDY) bad = 1;
              }
              /* a chain's walk that ends before its leaf refused a draft there */
              if (rej && rlen == n) {
                fprintf(stderr, "FAIL: %s V=%d %s %s: the reference accepted every draft (no residual pass)\n",
                        shape_name, V, deco_dtype_name(dt), mode_name[mi]);
                bad = 1;
              }
              free(hl), free(hq), free(raw);
            }
            /* floor: the rows the decisions needed: the target row of every
             * accepted node; of the draft, one value per accepted token (not
             * counted: 4 bytes against rows), and the whole row only of the
             * node whose child was rejected (the residual), none when the path
             * ends at a leaf. That node is the path's last, so its target row,
             * which the residual and the bonus read again, is already one of
             * the len rows: per rejecting tree len * V * es + V * 4 bytes. */
            double bytes = 0.0, mean_len = 0.0;
            int rejected = 0; /* trees whose path ends at a node with a child: its draft was refused */
            for (int t = 0; t < B; ++t) {
              int last = path[(size_t)t * DECO_TREE_MAX_NODES + len[t] - 1];
              int leaf = 1;
              for (int i = last + 1; i < n; ++i) leaf = leaf && par1[i] != last;
              bytes += (double)len[t] * V * es;
              if (mi != GREEDY && Ks[ki] && !leaf) bytes += (double)V * 4;
              rejected += !leaf;
              mean_len += len[t];
            }
            mean_len /= B;
            char shape[160], rejected_of[40] = "";
            if (rej) snprintf(rejected_of, sizeof rejected_of, " rejected=%d/%d", rejected, B);
            snprintf(shape, sizeof shape, "B=%d %s V=%d %s %s mean_accept_len=%.2f%s", B, shape_name, V,
                     deco_dtype_name(dt), mode_name[mi], mean_len, rejected_of);
            /* reject@D exists to time the residual: a run without one would
             * time the all-accepted chain under its name */
            if (rej && !rejected) {
              fprintf(stderr, "FAIL: %s: no draft rejected (no residual pass), not timed\n", shape);
              bad = 1;
              free(len), free(bonus), free(path);
              continue;
            }
            deco_bench_stats_t s;
            if (deco_bench_time(&b, run_fn, &st, 5, reps, DECO_BENCH_FLUSH, &s)) return 1;
            deco_bench_csv_row(stdout, &b, "tree_accept", shape, mi == GREEDY ? "greedy" : "sample", &s, bytes, 0.0,
                               deco_bench_command(argc, argv));
            fprintf(stderr, "%-70s %8.1f us  floor %6.1f us  ratio %.2f\n", shape, s.median_us,
                    deco_bench_floor_us(&b, bytes, 0.0), s.median_us / deco_bench_floor_us(&b, bytes, 0.0));
            free(len), free(bonus), free(path);
          }
        }
        free(parent), free(tokens);
      }
    }
  }
  deco_bench_destroy(&b);
  deco_ctx_destroy(cpu);
  deco_ctx_destroy(g_ctx);
  return bad;
}
