/* perf/bench_superpose.c — superposed decoding (Shen et al. 2024) on a real
 * model, quality and speed.
 * Quality: an n-gram table counted from the model's own sampled stories
 * (seeds 1..corpus, T = 1, top-p 0.9), prompts cut from other samples
 * (held-out seeds); for each prompt k superposed drafts (with and without
 * n-grams), k nucleus samples (T = 1, p = 0.9) and greedy decoding, each
 * `gen` ids long (stop ids ignored), scored by their perplexity under the
 * model (teacher-forced, T = 1), and how often the k drafts differ.
 * Speed: k sequences of `gen` ids from one prompt by superposed decoding
 * (one forward per position), by k sequential greedy runs, and by one
 * batched run of k sequences (the runner with k prompts of one draft);
 * median of `repeat` runs after a warm-up, CUDA-graph capture and
 * instantiation excluded (the sequential method captures k graphs).
 *   bench_superpose --model stories260K.bin [--backend cpu|cuda] [--dtype f32|bf16]
 *                   [--corpus 1000] [--table FILE] [--prompts 32] [--prompt-len 8]
 *                   [--gen 64] [--k 3] [--repeat 5] [--graph 0|1]
 * --table FILE: load the n-gram table if FILE exists, else count it and save
 * it there. CSV on stdout: section,method,backend,dtype,k,gen,value columns
 * (the header line of each section names them).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deco/deco.h"

#define MAX_PROMPTS 256
#define MAX_K 16
#define MAX_LEN 512

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_superpose: %s: %s\n", what, msg);
  exit(1);
}

#define CHECK(expr, ctx)                                                        \
  do {                                                                          \
    if ((expr) != DECO_STATUS_SUCCESS) die(#expr, deco_last_error(ctx));        \
  } while (0)

typedef struct ids {
  int32_t v[MAX_LEN];
  int n;
} ids_t;

static void collect(void *user, int32_t id) {
  ids_t *s = user;
  if (s->n < MAX_LEN) s->v[s->n++] = id;
}

/* prompt, then n ids by deco_generate (temperature 0: greedy). */
/* Returns the seconds spent capturing and instantiating its CUDA graph. */
static double generate(deco_model_t *m, const int32_t *prompt, int n_prompt, int steps, float temperature,
                       float top_p, uint64_t seed, int ignore_eos, int device, ids_t *out) {
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = steps;
  c.temperature = temperature;
  c.top_p = top_p;
  c.seed = seed;
  c.ignore_eos = ignore_eos;
  c.device_resident = device;
  c.graph = device;
  c.emit = collect;
  c.user = out;
  out->n = 0;
  deco_generate_stats_t st;
  CHECK(deco_generate(m, prompt, n_prompt, &c, &st), deco_model_ctx(m));
  return st.capture_seconds;
}

/* Sum of log p(ids[t] | ids[< t]) for t in [from, n), teacher-forced, T = 1. */
static double logprob(deco_model_t *m, const int32_t *ids, int n, int from) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  const int V = deco_model_get_hparams(m)->vocab_size, T = n - 1;
  if (T < 1 || from >= n) return 0.0;
  deco_kv_cache_t *kc;
  int seq;
  CHECK(deco_kv_cache_create(m, 16, (n + 15) / 16, 1, &kc), ctx);
  CHECK(deco_kv_cache_admit(kc, n, &seq), ctx);
  float *d_logits, *logits = malloc(sizeof(float) * (size_t)T * V);
  CHECK(deco_malloc(ctx, (void **)&d_logits, sizeof(float) * (size_t)T * V), ctx);
  deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
  fa.n_seqs = 1;
  fa.seqs = &seq;
  fa.n_new = &T;
  fa.tokens = ids;
  fa.logits_mode = DECO_LOGITS_ALL;
  fa.logits = d_logits;
  CHECK(deco_forward(m, kc, &fa), ctx);
  CHECK(deco_memcpy(ctx, logits, d_logits, sizeof(float) * (size_t)T * V, DECO_COPY_CTX_TO_HOST), ctx);
  double sum = 0.0;
  for (int t = from; t < n; ++t) {
    const float *row = logits + (size_t)(t - 1) * V;
    double mx = row[0], z = 0.0;
    for (int i = 1; i < V; ++i) mx = row[i] > mx ? row[i] : mx;
    for (int i = 0; i < V; ++i) z += exp((double)row[i] - mx);
    sum += (double)row[ids[t]] - mx - log(z);
  }
  deco_free(ctx, d_logits);
  free(logits);
  deco_kv_cache_destroy(kc);
  return sum;
}

static double ppl(deco_model_t *m, const int32_t *prompt, int n_prompt, const int32_t *gen, int n_gen) {
  int32_t all[MAX_LEN];
  memcpy(all, prompt, sizeof(int32_t) * (size_t)n_prompt);
  memcpy(all + n_prompt, gen, sizeof(int32_t) * (size_t)n_gen);
  return exp(-logprob(m, all, n_prompt + n_gen, n_prompt) / n_gen);
}

/* How k sequences of n ids differ: distinct sequences, pairwise fraction of
 * positions that differ, first differing position (n if equal) per pair. */
typedef struct diversity {
  double distinct, all_distinct, diff_fraction, first_diff;
  int count;
} diversity_t;

static void add_diversity(diversity_t *d, const int32_t *const *seqs, int k, int n) {
  int distinct = 0;
  double frac = 0.0, first = 0.0;
  int pairs = 0;
  for (int i = 0; i < k; ++i) {
    int dup = 0;
    for (int j = 0; j < i && !dup; ++j) dup = memcmp(seqs[i], seqs[j], sizeof(int32_t) * (size_t)n) == 0;
    distinct += !dup;
    for (int j = 0; j < i; ++j) {
      int diff = 0, f = n;
      for (int t = 0; t < n; ++t)
        if (seqs[i][t] != seqs[j][t]) {
          diff++;
          if (f == n) f = t;
        }
      frac += (double)diff / n;
      first += f;
      pairs++;
    }
  }
  d->distinct += distinct;
  d->all_distinct += distinct == k;
  d->diff_fraction += pairs ? frac / pairs : 0.0;
  d->first_diff += pairs ? first / pairs : 0.0;
  d->count++;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct quality {
  const char *name;
  double *ppl;
  int n;
  diversity_t div;
} quality_t;

static void report_quality(const quality_t *q, const char *backend, const char *dtype, int k, int gen) {
  double *v = malloc(sizeof(double) * (size_t)(q->n ? q->n : 1)), mean = 0.0;
  for (int i = 0; i < q->n; ++i) {
    v[i] = q->ppl[i];
    mean += v[i];
  }
  const double med = q->n ? median(v, q->n) : 0.0;
  const diversity_t *d = &q->div;
  const int c = d->count ? d->count : 1;
  printf("quality,%s,%s,%s,%d,%d,%d,%.3f,%.3f,%.2f,%.3f,%.3f,%.1f\n", q->name, backend, dtype, k, gen, q->n,
         q->n ? mean / q->n : 0.0, med, d->distinct / c, d->all_distinct / c, d->diff_fraction / c, d->first_diff / c);
  free(v);
}

int main(int argc, char **argv) {
  const char *model_path = NULL, *backend_s = "cpu", *dtype_s = NULL, *table_path = NULL;
  int corpus = 1000, n_prompts = 32, prompt_len = 8, gen = 64, k = 3, repeat = 5, graph = -1;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) die(argv[i], "needs a value");
    if (!strcmp(argv[i], "--model")) model_path = argv[i + 1];
    else if (!strcmp(argv[i], "--backend")) backend_s = argv[i + 1];
    else if (!strcmp(argv[i], "--dtype")) dtype_s = argv[i + 1];
    else if (!strcmp(argv[i], "--table")) table_path = argv[i + 1];
    else if (!strcmp(argv[i], "--corpus")) corpus = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--prompts")) n_prompts = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--prompt-len")) prompt_len = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--gen")) gen = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--k")) k = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--graph")) graph = atoi(argv[i + 1]);
    else die(argv[i], "unknown option");
  }
  if (!model_path) die("usage", "--model FILE is required");
  if (k < 1 || k > MAX_K || n_prompts < 1 || n_prompts > MAX_PROMPTS || prompt_len < 1 || gen < 1 || repeat < 1 ||
      corpus < 1 || prompt_len + gen + 1 > MAX_LEN)
    die("usage", "a value is out of range");
  const int cuda = !strcmp(backend_s, "cuda");
  if (graph < 0) graph = cuda;
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.backend = cuda ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU;
  deco_ctx_t *ctx;
  CHECK(deco_ctx_create(&cc, &ctx), NULL);
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.dtype = dtype_s && !strcmp(dtype_s, "bf16") ? DECO_DTYPE_BF16 : DECO_DTYPE_F32;
  const char *dtype = deco_dtype_name(mc.dtype);
  deco_model_t *m;
  CHECK(deco_model_load_llama2c(ctx, model_path, &mc, &m), ctx);
  const deco_model_hparams_t *hp = deco_model_get_hparams(m);
  if (prompt_len + gen > hp->seq_len) die("usage", "prompt-len + gen exceeds the model's seq_len");

  /* ---- The n-gram table: the model's own stories ---- */
  deco_ngram_table_t *table = NULL;
  double t0 = now_seconds();
  if (table_path && access(table_path, R_OK) == 0) {
    CHECK(deco_ngram_table_load(table_path, hp->vocab_size, 0, &table), NULL);
  } else {
    deco_ngram_builder_t *b;
    CHECK(deco_ngram_builder_create(hp->vocab_size, &b), NULL);
    static ids_t s;
    for (int i = 0; i < corpus; ++i) {
      const int32_t bos = hp->bos_id;
      generate(m, &bos, 1, hp->seq_len, 1.0f, 0.9f, 1 + (uint64_t)i, 0, 0, &s);
      CHECK(deco_ngram_builder_add(b, s.v, s.n), NULL);
    }
    CHECK(deco_ngram_builder_finish(b, DECO_NGRAM_DEFAULT_MAX_BYTES, 0, &table), NULL);
    deco_ngram_builder_destroy(b);
    if (table_path) CHECK(deco_ngram_table_save(table, table_path), NULL);
  }
  deco_ngram_info_t info;
  deco_ngram_table_info(table, &info);
  deco_ngram_device_t *table_dev; /* copied once, not per run */
  CHECK(deco_ngram_device_create(ctx, table, &table_dev), ctx);
  printf("table,corpus_tokens,contexts,followers,pruned_contexts,bytes,seconds\n");
  printf("table,%llu,%u,%u,%llu,%zu,%.1f\n", (unsigned long long)info.corpus_tokens, (unsigned)info.n_contexts,
         (unsigned)info.n_followers, (unsigned long long)info.pruned_contexts, info.file_bytes, now_seconds() - t0);

  /* ---- Prompts: the first prompt_len ids of held-out samples ---- */
  static ids_t prompts[MAX_PROMPTS];
  for (int p = 0; p < n_prompts; ++p) {
    const int32_t bos = hp->bos_id;
    generate(m, &bos, 1, prompt_len, 1.0f, 0.9f, 1000000 + (uint64_t)p, 1, 0, &prompts[p]);
    prompts[p].n = prompt_len;
  }

  /* ---- Quality ---- */
  const int steps = prompt_len - 1 + gen; /* positions: the prompt, then gen generated ids */
  quality_t q[4] = {{.name = "superposed"}, {.name = "superposed_no_ngram"}, {.name = "nucleus_p0.9"},
                    {.name = "greedy"}};
  for (int i = 0; i < 4; ++i) q[i].ppl = calloc((size_t)n_prompts * k, sizeof(double));
  double rank_ppl[MAX_K] = {0};
  for (int p = 0; p < n_prompts; ++p) {
    const ids_t *pr = &prompts[p];
    const int32_t *pp = pr->v;
    for (int variant = 0; variant < 2; ++variant) {
      deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
      c.k = k;
      c.ngram = table;
      c.ngram_device = table_dev;
      c.alpha = variant == 0 ? DECO_SUPERPOSE_DEFAULT_ALPHA : 0.0f;
      c.steps = steps;
      c.ignore_eos = 1;
      c.graph = graph;
      deco_superpose_result_t r;
      CHECK(deco_superpose_generate(m, 1, &pp, &pr->n, &c, &r), ctx);
      const int32_t *seqs[MAX_K];
      for (int i = 0; i < r.n_drafts[0]; ++i) {
        const deco_superpose_draft_t *d = &r.drafts[i];
        const double x = ppl(m, pr->v, pr->n, d->ids, d->n_ids);
        q[variant].ppl[q[variant].n++] = x;
        if (variant == 0) rank_ppl[i] += x / n_prompts;
        seqs[i] = d->ids;
      }
      if (r.n_drafts[0] == k) add_diversity(&q[variant].div, seqs, k, gen);
      deco_superpose_result_free(&r);
    }
    static ids_t samples[MAX_K];
    const int32_t *seqs[MAX_K];
    for (int i = 0; i < k; ++i) {
      generate(m, pr->v, pr->n, steps, 1.0f, 0.9f, 7000 + 100 * (uint64_t)p + (uint64_t)i, 1, cuda, &samples[i]);
      q[2].ppl[q[2].n++] = ppl(m, pr->v, pr->n, samples[i].v + pr->n, gen);
      seqs[i] = samples[i].v + pr->n;
    }
    add_diversity(&q[2].div, seqs, k, gen);
    static ids_t g;
    generate(m, pr->v, pr->n, steps, 0.0f, 1.0f, 0, 1, cuda, &g);
    q[3].ppl[q[3].n++] = ppl(m, pr->v, pr->n, g.v + pr->n, gen);
  }
  printf("quality,method,backend,dtype,k,gen,sequences,ppl_mean,ppl_median,distinct_mean,all_distinct_fraction,"
         "pair_diff_fraction,first_diff_mean\n");
  for (int i = 0; i < 4; ++i) report_quality(&q[i], backend_s, dtype, i == 3 ? 1 : k, gen);
  printf("rank,draft,ppl_mean\n");
  for (int i = 0; i < k; ++i) printf("rank,%d,%.3f\n", i, rank_ppl[i]);

  /* ---- Speed: k sequences of gen ids from the first prompt ---- */
  printf("speed,method,backend,dtype,k,gen,forwards,median_ms,tok_per_s\n");
  const ids_t *pr = &prompts[0];
  const int32_t *pp = pr->v;
  double *times = malloc(sizeof(double) * (size_t)repeat);
  for (int method = 0; method < 3; ++method) {
    int forwards = 0;
    for (int rep = -1; rep < repeat; ++rep) { /* rep -1: the warm-up */
      const double t = now_seconds();
      /* Graph capture and instantiation are set-up, not decoding: the
       * sequential method captures k graphs, the others one. */
      double capture = 0.0;
      if (method == 0) {
        deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
        c.k = k;
        c.ngram = table;
        c.ngram_device = table_dev;
        c.steps = steps;
        c.ignore_eos = 1;
        c.graph = graph;
        deco_superpose_result_t r;
        CHECK(deco_superpose_generate(m, 1, &pp, &pr->n, &c, &r), ctx);
        forwards = r.stats.forwards;
        capture = r.stats.capture_seconds;
        deco_superpose_result_free(&r);
      } else if (method == 1) {
        static ids_t s;
        for (int i = 0; i < k; ++i) capture += generate(m, pr->v, pr->n, steps, 0.0f, 1.0f, 0, 1, cuda, &s);
        forwards = k * gen;
      } else {
        const int32_t *ps[MAX_K];
        int ns[MAX_K];
        for (int i = 0; i < k; ++i) {
          ps[i] = pr->v;
          ns[i] = pr->n;
        }
        deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
        c.k = 1;
        c.alpha = 0.0f;
        c.steps = steps;
        c.ignore_eos = 1;
        c.graph = graph;
        deco_superpose_result_t r;
        CHECK(deco_superpose_generate(m, k, ps, ns, &c, &r), ctx);
        forwards = r.stats.forwards;
        capture = r.stats.capture_seconds;
        deco_superpose_result_free(&r);
      }
      if (rep >= 0) times[rep] = now_seconds() - t - capture;
    }
    const double med = median(times, repeat);
    static const char *names[3] = {"superposed", "sequential", "batched"};
    printf("speed,%s,%s,%s,%d,%d,%d,%.3f,%.1f\n", names[method], backend_s, dtype, k, gen, forwards, 1e3 * med,
           k * gen / med);
  }
  free(times);
  for (int i = 0; i < 4; ++i) free(q[i].ppl);
  deco_ngram_device_destroy(table_dev);
  deco_ngram_table_destroy(table);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
  return 0;
}
