/* tests/common/testutil.h — helpers shared by the test suites: the data
 * folder, fixture readers, comparisons with reports, guarded buffers in a
 * context's memory, deterministic random inputs, and running the CLI.
 */
#ifndef DECO_TESTS_TESTUTIL_H
#define DECO_TESTS_TESTUTIL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "deco/deco.h"

/* Data folder: $DECO_DATA_DIR, else the configured default. */
const char *deco_test_data_dir(void);
/* data_dir/rel in a static rotating buffer (valid for 8 calls). Fails the
 * current test, naming the path, when the file does not exist: no test
 * passes on missing data. */
const char *deco_test_data_file(const char *rel);

/* Models too large for git (scripts/install-deps.sh --models fetches the
 * SmolLM2 GGUF, scripts/gguf/make_mini.py writes its 3-layer mini copy):
 * $DECO_MODELS_DIR, else the configured default (models-cache/ of the
 * source tree). */
const char *deco_test_models_dir(void);
/* models_dir/name in a static rotating buffer (valid for 8 calls). Fails the
 * current test, naming the path and how to get the file, when it does not
 * exist: a missing model is a failure, never a skip. */
const char *deco_test_model_file(const char *name);

/* Reads a file of decimal ids separated by spaces, commas or newlines.
 * Returns a malloc'd array and its length in *n, NULL on error. */
int32_t *deco_test_read_ids(const char *path, int *n);
/* Reads a whole file; malloc'd, size in *size; NULL on error. */
void *deco_test_read_file(const char *path, size_t *size);
/* The bytes a string of hex digit pairs spells (the chat fixture's system
 * and prompt fields), malloc'd and NUL-terminated. */
char *deco_test_unhex(const char *hex);
/* Writes a file (for bad-input tests); 0 on success. */
int deco_test_write_file(const char *path, const void *data, size_t size);
/* Asserts that files a and b both read and hold the same bytes; msg is
 * the failure's message. */
void deco_test_expect_same_file(const char *msg, const char *a, const char *b);
/* A fresh temporary directory (mkdtemp) for this process, removed with what it
 * holds when the process exits; the Criterion runner removes those of tests
 * that crashed or timed out. */
const char *deco_test_tmpdir(void);

/* Element-wise |a - r| <= atol + rtol * |r|, NaN-safe. Prints the max error
 * and up to 5 first mismatches with what; returns the number of failures. */
size_t deco_test_compare(const char *what, const float *a, const float *r, size_t n, float atol, float rtol);
/* Exact integer comparison with the same reporting. */
size_t deco_test_compare_i32(const char *what, const int32_t *a, const int32_t *r, size_t n);

/* Deterministic test inputs: uniform in [lo, hi) from Philox(seed, stream). */
void deco_test_fill_uniform(float *x, size_t n, uint64_t seed, uint32_t stream, float lo, float hi);
/* Rounds every element through dtype (f16/bf16) in place; f32 is unchanged. */
void deco_test_round_to(float *x, size_t n, deco_dtype_t dtype);
/* Converts f32 host values to dtype host storage (elements of deco_dtype_size). */
void deco_test_pack(void *dst, const float *src, size_t n, deco_dtype_t dtype);
void deco_test_unpack(float *dst, const void *src, size_t n, deco_dtype_t dtype);

/* A buffer in ctx memory followed by guard words. deco_test_buf_poison fills
 * the payload with 0xFF bytes (NaN in every float dtype) and the guard with a
 * pattern; deco_test_buf_guard_ok checks the guard is intact. */
typedef struct deco_test_buf {
  deco_ctx_t *ctx;
  void *ptr;
  size_t bytes;
} deco_test_buf_t;
deco_test_buf_t deco_test_buf_alloc(deco_ctx_t *ctx, size_t bytes);
void deco_test_buf_free(deco_test_buf_t *b);
void deco_test_buf_upload(deco_test_buf_t *b, const void *host, size_t bytes);
void deco_test_buf_download(const deco_test_buf_t *b, void *host, size_t bytes);
void deco_test_buf_poison(deco_test_buf_t *b);
int deco_test_buf_guard_ok(const deco_test_buf_t *b);

/* Runs the deco CLI ($DECO_CLI, else "deco" beside this test binary) with
 * argv (NULL-terminated, without the program name). Captures stdout and
 * stderr (malloc'd, NUL-terminated) and the exit status (128 + signal if
 * killed). Returns 0 if the program could be run. */
typedef struct deco_test_run {
  char *out;
  char *err;
  int status;
} deco_test_run_t;
int deco_test_run_cli(const char *const *argv, deco_test_run_t *r);
/* The same with stdout sent elsewhere (r->out is then empty): /dev/full,
 * closed, or a pipe whose reader has already gone. */
typedef enum deco_test_stdout {
  DECO_TEST_STDOUT_CAPTURE,
  DECO_TEST_STDOUT_FULL,
  DECO_TEST_STDOUT_CLOSED,
  DECO_TEST_STDOUT_BROKEN_PIPE
} deco_test_stdout_t;
int deco_test_run_cli_stdout(const char *const *argv, deco_test_stdout_t mode, deco_test_run_t *r);
void deco_test_run_free(deco_test_run_t *r);
/* Starts the CLI with argv without waiting for it: stdin and stdout
 * /dev/null, stderr to the file err_path. It dies with the test. Its pid
 * (wait for it with waitpid), or -1 with errno. */
pid_t deco_test_start_cli(const char *const *argv, const char *err_path);
/* Runs the CLI with the given arguments into *r, failing the test if it
 * cannot be started: DECO_TEST_RUN_CLI(&r, "generate", "--steps", "8"). */
#define DECO_TEST_RUN_CLI(r, ...)                                            \
  do {                                                                       \
    const char *deco_argv_[] = {__VA_ARGS__, NULL};                          \
    cr_assert_eq(deco_test_run_cli(deco_argv_, (r)), 0, "cannot run deco: %s", strerror(errno)); \
  } while (0)

/* A CLI run that failed as the CLI fails: exit status status, the last
 * line of stderr beginning "deco: error: ", needle in stderr (unless
 * NULL), nothing on stdout. */
void deco_test_cli_error(const deco_test_run_t *r, int status, const char *needle);

/* A call refused as expected: its status is want and deco_last_error(ctx)
 * is message, word for word (ctx NULL: the thread's last error). */
void deco_test_refused(deco_ctx_t *ctx, deco_status_t got, deco_status_t want, const char *message);
/* The same for a message with variable parts (a path, a size): its status
 * is want, deco_last_error(ctx) begins with prefix (unless NULL) and holds
 * each of parts (NULL-terminated). DECO_TEST_REFUSED_NAMING lists the parts
 * in place: DECO_TEST_REFUSED_NAMING(ctx, st, want, NULL, "TP 3", "4 KV heads"). */
void deco_test_refused_naming(deco_ctx_t *ctx, deco_status_t got, deco_status_t want, const char *prefix,
                              const char *const *parts);
#define DECO_TEST_REFUSED_NAMING(ctx, got, want, prefix, ...) \
  deco_test_refused_naming((ctx), (got), (want), (prefix), (const char *const[]){__VA_ARGS__, NULL})
/* A CLI run refused with exactly the error line "deco: error: msg"
 * (msg a string literal): DECO_TEST_CLI_ERROR_LINE(2, "--steps: ...", "generate", ...). */
#define DECO_TEST_CLI_ERROR_LINE(status, msg, ...) DECO_TEST_CLI_ERROR(status, "deco: error: " msg "\n", __VA_ARGS__)
/* A CLI run (DECO_TEST_RUN_CLI with the arguments after needle) that
 * fails as deco_test_cli_error checks, then freed:
 * DECO_TEST_CLI_ERROR(2, "--steps", "generate", "--steps", "abc"). */
#define DECO_TEST_CLI_ERROR(status, needle, ...)            \
  do {                                                      \
    deco_test_run_t deco_run_;                              \
    DECO_TEST_RUN_CLI(&deco_run_, __VA_ARGS__);             \
    deco_test_cli_error(&deco_run_, (status), (needle));    \
    deco_test_run_free(&deco_run_);                         \
  } while (0)
/* Whether text matches the extended regular expression re (asserts that re
 * compiles). */
int deco_test_matches(const char *re, const char *text);

/* A fixture id file (data-relative path) as the CLI's --print-ids prints
 * it: one line, single spaces, one newline. malloc'd. */
char *deco_test_fixture_line(const char *rel);
/* A CLI run (what names it in a failure) that exited 0 and printed
 * exactly the fixture id line rel (deco_test_fixture_line) on stdout. */
void deco_test_expect_fixture_out(const char *what, const deco_test_run_t *r, const char *rel);

/* Last line of a text (without its newline) in a static buffer. */
const char *deco_test_last_line(const char *text);
/* The number after key (e.g. "mean_accepted=") on the last line of a CLI's
 * stderr (its stats line); NAN when the key is absent. */
double deco_test_stat(const char *err, const char *key);

/* Collects the ids deco_generate emits (its emit callback). */
typedef struct deco_test_capture {
  int32_t ids[1024];
  int n;
} deco_test_capture_t;
void deco_test_capture_id(void *user, int32_t id);
/* deco_generate(m, prompt, n_prompt, &cfg) with its ids captured into cap
 * (emptied first; cfg's emit and user are set here) and its stats into
 * st. Asserts that it succeeds and that the plan sized every buffer (no
 * allocation after it: st->step_allocations == 0). These helpers call the
 * shared library: a run under a library-private test switch (the mutant
 * rules a suite linked with deco_internal sets) must call its own copy. */
void deco_test_generate(deco_model_t *m, const int32_t *prompt, int n_prompt, deco_generate_config_t cfg,
                        deco_test_capture_t *cap, deco_generate_stats_t *st);
/* deco_test_generate of steps greedy positions (EOS ignored) with drafter
 * d (NULL: plain decoding). */
void deco_test_greedy(deco_model_t *m, deco_drafter_t *d, const int32_t *prompt, int n_prompt, int steps,
                      deco_test_capture_t *cap, deco_generate_stats_t *st);
/* Two runs that must agree bit for bit (ids a and stats sa, ids b and
 * stats sb): the same ids, tokens and forwards; what names them in a
 * failure. */
void deco_test_same_run(const char *what, const deco_test_capture_t *a, const deco_generate_stats_t *sa,
                        const deco_test_capture_t *b, const deco_generate_stats_t *sb);

/* A test's draft source and its drafter: NULL for plain decoding, prompt
 * lookup with the CLI's settings (DECO_LOOKUP_CONFIG_INIT), or Token
 * Recycling over rec and tmpl. Asserts that it was created. */
typedef enum deco_test_source { DECO_TEST_PLAIN = 0, DECO_TEST_LOOKUP = 1, DECO_TEST_RECYCLE = 2 } deco_test_source_t;
deco_drafter_t *deco_test_drafter(deco_test_source_t source, deco_recycler_t *rec, const deco_tree_template_t *tmpl);

/* One generation from BOS on stories260K (a 512 x 8 recycling table) with
 * what it leaves behind, for runs that must agree bit for bit: its ids and
 * stats, host copies of its KV pools (poisoned with 0x7f bytes first, so
 * slots nobody wrote compare equal only if equally unwritten) and of the
 * recycler's table (untouched by a plain run). */
typedef struct deco_test_outcome {
  deco_test_capture_t ids;
  deco_generate_stats_t stats;
  void *k, *v, *table; /* host copies, malloc'd */
  size_t kv_bytes;
} deco_test_outcome_t;
/* deco_generate(m, {BOS}, 1, &cfg) with source's drafter (a fresh
 * recycler, the default template) on a fresh cache of 32 pages of 16 (400
 * slots reserved); cfg's drafter, emit, user, cache and seq are set here.
 * Asserts every call. */
void deco_test_outcome_run(deco_model_t *m, deco_test_source_t source, deco_generate_config_t cfg,
                           deco_test_outcome_t *o);
/* Asserts that a and b hold the same ids, K and V pools and table. */
void deco_test_outcome_same(const deco_test_outcome_t *a, const deco_test_outcome_t *b);
void deco_test_outcome_free(deco_test_outcome_t *o);

/* A model drafter's config (DECO_MODEL_DRAFT_CONFIG_INIT but for these):
 * layers[0..n_layers) of the target (NULL, 0: every layer of the draft
 * model), draft_len K, width W, max_nodes, max_len. */
deco_model_draft_config_t deco_test_draft_config(const int *layers, int n_layers, int K, int W, int max_nodes,
                                                 int max_len);
/* deco_drafter_create_model(m, draft, c); asserts that it was created. */
deco_drafter_t *deco_test_model_drafter(deco_model_t *m, deco_model_t *draft, const deco_model_draft_config_t *c);

/* stories260K (DATA/models/stories260K.bin) in dtype on ctx; asserts that it
 * loads. */
deco_model_t *deco_test_load_stories(deco_ctx_t *ctx, deco_dtype_t dtype);
/* deco_model_hold_plan on ctx's backend, with stories260K (f32 on the CPU,
 * bf16 on CUDA): a held plan runs what fits; a forward or plan that would
 * grow the buffers is refused with DECO_STATUS_CAPACITY and its sizes,
 * leaving the cache's length and the logits as they were; released, the
 * same forward runs. */
void deco_test_held_plan(deco_ctx_t *ctx);

/* stories260K's checkpoint bytes (malloc'd, size in *size) with every
 * RMSNorm weight (rms_att, rms_ffn, rms_final) at 3e38: finite weights
 * whose first forward overflows, so every logit is non-finite. Asserts
 * that the file was read. */
void *deco_test_stories_overflow(size_t *size);

/* stories260K's architecture, and its checkpoint's f32 tensors in
 * llama2.c's order after the 7-int header (file: the whole file's bytes),
 * for tests that evaluate the model by hand. */
enum {
  DECO_STORIES_DIM = 64, DECO_STORIES_HIDDEN = 172, DECO_STORIES_LAYERS = 5, DECO_STORIES_HEADS = 8,
  DECO_STORIES_KV_HEADS = 4, DECO_STORIES_HEAD_DIM = 8, DECO_STORIES_VOCAB = 512
};
typedef struct deco_test_stories_weights {
  const float *emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final;
} deco_test_stories_weights_t;
deco_test_stories_weights_t deco_test_stories_weights(const void *file);

/* A model drafter's committed K/V (draft cache kc, its sequence dseq)
 * against a fresh view of m's layers[0..n_layers) fed ids[0..n) in one
 * causal forward (CPU context): how many f32 values of the n slots (every
 * listed layer, K and V) differ bitwise; *elems gets how many were
 * compared. Asserts every step. */
size_t deco_test_draft_kv_diff(deco_model_t *m, const int *layers, int n_layers, deco_kv_cache_t *kc, int dseq,
                               const int32_t *ids, int n, size_t *elems);

/* Contexts for tests; the CUDA one returns NULL if no device. */
deco_ctx_t *deco_test_cpu_ctx(void);
deco_ctx_t *deco_test_cuda_ctx(void);

#endif
