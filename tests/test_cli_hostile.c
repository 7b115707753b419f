/* tests/test_cli_hostile.c — `deco generate` against hostile or careless
 * input and output (docs/CLI.md): FIFOs named as files, outputs that fail
 * (/dev/full, a closed stdout, a reader that went away), file names that try
 * to forge the stats line, options that mean nothing without --spec recycle,
 * a recycling state that could not be saved, values a float cannot hold.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/testutil.h"

static const char *tmp(const char *name) {
  static char bufs[4][4096];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, sizeof bufs[0], "%s/%s", deco_test_tmpdir(), name);
  return b;
}

#define STATS_RE                                                                                                  \
  "^stats: tokens=[0-9]+ seconds=[0-9]+\\.[0-9]{3} tok_per_s=[0-9]+\\.[0-9]{2} backend=cpu dtype=f32 model=[!-~]+" \
  "( forwards=[0-9]+ mean_accepted=[0-9]+\\.[0-9]{2})?$"

/* open() of a FIFO without a writer blocks; every file option must refuse
 * it at once (the suite's timeout turns a hang into a failure). */
Test(cli_hostile, fifo_is_refused_for_every_file_option, .timeout = 60) {
  const char *fifo = tmp("fifo");
  cr_assert_eq(mkfifo(fifo, 0644), 0);
  const char *model = deco_test_data_file("models/stories260K.bin");
  const char *const cases[][10] = {
      {"generate", "--model", fifo, "--print-ids", NULL},
      {"generate", "--model", model, "--tokenizer", fifo, NULL},
      {"generate", "--tokenizer", fifo, "--prompt", "Hi", NULL},
      {"generate", "--spec", "recycle", "--tree-template", fifo, NULL},
      {"generate", "--tp", "2", "--spec", "recycle", "--tree-template", fifo, NULL},
      {"generate", "--spec", "recycle", "--recycle-state", fifo, NULL},
      {"generate", "--superpose", "2", "--ngram", fifo, NULL},
      {"generate", "--superpose", "2", "--ngram", fifo, "--tokenizer", fifo, "--print-ids", NULL},
      {"eval", "--ids", fifo, NULL},
      {"eval", "--text", fifo, NULL},
      {"eval", "--ref", fifo, "--ids", model, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    deco_test_run_t r;
    cr_assert_eq(deco_test_run_cli(cases[i], &r), 0);
    deco_test_cli_error(&r, 1, "not a regular file");
    cr_assert(strstr(r.err, fifo) != NULL, "case %zu names the file: %s", i, r.err);
    deco_test_run_free(&r);
  }
}

/* A write that fails is an error, unless the reader closed the pipe. */
Test(cli_hostile, failed_writes_exit_1) {
  const char *const ids[] = {"generate", "--print-ids", "--steps", "20", "--backend", "cpu", NULL};
  const char *const text[] = {"generate", "--steps", "20", "--backend", "cpu", NULL};
  const char *const *argvs[2] = {ids, text};
  for (int a = 0; a < 2; ++a) {
    deco_test_run_t r;
    cr_assert_eq(deco_test_run_cli_stdout(argvs[a], DECO_TEST_STDOUT_FULL, &r), 0);
    deco_test_cli_error(&r, 1, "stdout: No space left on device");
    cr_assert(strstr(r.err, "stats:") == NULL, "no stats line after a failed write: %s", r.err);
    deco_test_run_free(&r);
    cr_assert_eq(deco_test_run_cli_stdout(argvs[a], DECO_TEST_STDOUT_CLOSED, &r), 0);
    deco_test_cli_error(&r, 1, "stdout: ");
    deco_test_run_free(&r);
  }
}

/* The usage and version texts obey the same rule as a run's output. */
Test(cli_hostile, failed_writes_of_usage_and_version_exit_1) {
  static const char *const cases[][4] = {{"--help", NULL},          {"--version", NULL},
                                         {"generate", "--help", NULL}, {"tokenize", "--help", NULL},
                                         {"eval", "-h", NULL},         {"compress", "--help", NULL},
                                         {"ngram", "--help", NULL},    {"ngram", "build", "--help", NULL}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    deco_test_run_t r;
    cr_assert_eq(deco_test_run_cli_stdout(cases[i], DECO_TEST_STDOUT_FULL, &r), 0);
    deco_test_cli_error(&r, 1, "stdout: No space left on device");
    deco_test_run_free(&r);
    cr_assert_eq(deco_test_run_cli_stdout(cases[i], DECO_TEST_STDOUT_CLOSED, &r), 0);
    deco_test_cli_error(&r, 1, "stdout: ");
    deco_test_run_free(&r);
    cr_assert_eq(deco_test_run_cli_stdout(cases[i], DECO_TEST_STDOUT_BROKEN_PIPE, &r), 0);
    cr_assert_eq(r.status, 0, "%s %s, a reader that went away: exit %d, %s", cases[i][0], cases[i][1] ? cases[i][1] : "",
                 r.status, r.err);
    cr_assert_str_empty(r.err, "%s", r.err);
    deco_test_run_free(&r);
  }
}

Test(cli_hostile, recycling_state_is_saved_when_stdout_fails) {
  const char *state = tmp("state.bin");
  const char *const argv[] = {"generate", "--spec", "recycle", "--recycle-state", state, "--steps", "40",
                              "--temperature", "0", "--backend", "cpu", NULL};
  deco_test_run_t r;
  cr_assert_eq(deco_test_run_cli_stdout(argv, DECO_TEST_STDOUT_FULL, &r), 0);
  deco_test_cli_error(&r, 1, "stdout: ");
  deco_test_run_free(&r);
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_recycler_t *rec;
  cr_assert_eq(deco_recycler_create(ctx, 512, 8, &rec), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_recycler_load(rec, state), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  /* The table is the one the run left: it learnt something. */
  int32_t *table = malloc(512 * 8 * sizeof(int32_t));
  cr_assert_eq(deco_memcpy(ctx, table, deco_recycler_table(rec), 512 * 8 * sizeof(int32_t), DECO_COPY_CTX_TO_HOST),
               DECO_STATUS_SUCCESS);
  int nonzero = 0;
  for (int i = 0; i < 512 * 8; ++i) nonzero += table[i] != 0;
  cr_assert_gt(nonzero, 0, "the saved table is empty");
  free(table);
  deco_recycler_destroy(rec);
  deco_ctx_destroy(ctx);
}

/* A reader that went away (`deco generate | head -c 10`): no signal, no
 * error line, exit 0 with the stats line (docs/CLI.md). */
Test(cli_hostile, closed_pipe_is_the_end_of_output) {
  const char *const ids[] = {"generate", "--print-ids", "--steps", "30", "--backend", "cpu", NULL};
  const char *const text[] = {"generate", "--steps", "30", "--spec", "lookup", "--backend", "cpu", NULL};
  const char *const *argvs[2] = {ids, text};
  for (int a = 0; a < 2; ++a) {
    deco_test_run_t r;
    cr_assert_eq(deco_test_run_cli_stdout(argvs[a], DECO_TEST_STDOUT_BROKEN_PIPE, &r), 0);
    cr_assert_eq(r.status, 0, "exit %d (141 = SIGPIPE); stderr: %s", r.status, r.err);
    cr_assert(strstr(r.err, "deco: error") == NULL, "%s", r.err);
    cr_assert(deco_test_matches(STATS_RE, deco_test_last_line(r.err)), "stats line: %s", r.err);
    deco_test_run_free(&r);
  }
}

/* stories260K copied under name in the test's folder; its path. */
static const char *stories_as(const char *name) {
  size_t size;
  void *data = deco_test_read_file(deco_test_data_file("models/stories260K.bin"), &size);
  cr_assert_not_null(data);
  const char *path = tmp(name);
  cr_assert_eq(deco_test_write_file(path, data, size), 0);
  free(data);
  return path;
}

/* A file name holding a newline and a forged stats line. */
Test(cli_hostile, stats_line_cannot_be_forged_by_a_file_name) {
  const char *name =
      stories_as("m\nstats: tokens=1 seconds=0.000 tok_per_s=0.00 backend=cpu dtype=f32 model=x\t\x1b[0m.bin");
  const char *const argv[] = {"generate", "--model", name, "--print-ids", "--prompt-ids", "1", "--steps", "4",
                              "--backend", "cpu", NULL};
  deco_test_run_t r;
  cr_assert_eq(deco_test_run_cli(argv, &r), 0);
  cr_assert_eq(r.status, 0, "%s", r.err);
  const char *last = deco_test_last_line(r.err);
  cr_assert(deco_test_matches(STATS_RE, last), "stats line: %s", last);
  cr_assert(strstr(last, "model=m?stats:_tokens=1_seconds=0.000") != NULL, "%s", last);
  cr_assert(strstr(last, "model=x??[0m.bin") != NULL, "%s", last);
  /* stderr holds one line, the real stats line. */
  cr_assert(strchr(r.err, '\n') == r.err + strlen(r.err) - 1, "stderr: %s", r.err);
  deco_test_run_free(&r);
}

/* Errors name the model file as given; only the stats line's model= is
 * made printable and free of blanks. */
Test(cli_hostile, errors_name_the_model_file_as_given) {
  const char *name = stories_as("my model \xc3\xa9.bin");
  char want[3][4400];
  snprintf(want[0], sizeof want[0], "--steps: 600 > seq_len 512 of %s", name);
  snprintf(want[1], sizeof want[1], "--draft-layers: layer 9 outside the 5 layers of %s", name);
  snprintf(want[2], sizeof want[2],
           "printing text needs --tokenizer: %s has no built-in vocabulary (or use --print-ids)", name);
  const char *const argvs[3][10] = {
      {"generate", "--model", name, "--steps", "600", "--print-ids", NULL},
      {"generate", "--model", name, "--spec", "draft", "--draft-layers", "9", "--print-ids", NULL},
      {"generate", "--model", name, "--steps", "8", NULL}};
  for (int i = 0; i < 3; ++i) {
    deco_test_run_t r;
    cr_assert_eq(deco_test_run_cli(argvs[i], &r), 0);
    deco_test_cli_error(&r, 1, want[i]);
    deco_test_run_free(&r);
  }
}

Test(cli_hostile, generate_help_exits_0) {
  /* Help wins wherever it stands, even after a value that would be a usage error. */
  const char *const cases[][4] = {
      {"generate", "--help", NULL}, {"generate", "--steps", "5", "-h"}, {"generate", "--steps", "x", "--help"}};
  for (int i = 0; i < 3; ++i) {
    deco_test_run_t r;
    const char *argv[5] = {cases[i][0], cases[i][1], cases[i][2], cases[i][3], NULL};
    cr_assert_eq(deco_test_run_cli(argv, &r), 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strncmp(r.out, "usage: deco generate", 20) == 0, "stdout: %s", r.out);
    cr_assert_str_eq(r.err, "");
    deco_test_run_free(&r);
  }
}

Test(cli_hostile, recycle_options_need_spec_recycle) {
  const char *const cases[][6] = {
      {"generate", "--tree-template", "t.txt", NULL},
      {"generate", "--recycle-state", "s.bin", NULL},
      {"generate", "--recycle-k", "4", NULL},
      {"generate", "--spec", "lookup", "--recycle-k", "4", NULL},
  };
  const char *opt[] = {"--tree-template", "--recycle-state", "--recycle-k", "--recycle-k"};
  for (int i = 0; i < 4; ++i) {
    deco_test_run_t r;
    cr_assert_eq(deco_test_run_cli(cases[i], &r), 0);
    deco_test_cli_error(&r, 2, "needs --spec recycle");
    cr_assert(strstr(r.err, opt[i]) != NULL, "%s", r.err);
    deco_test_run_free(&r);
  }
}

/* A state that could not be saved is found before generating. */
Test(cli_hostile, unusable_state_location_fails_first) {
  const char *file = tmp("plain-file");
  cr_assert_eq(deco_test_write_file(file, "x", 1), 0);
  char under_file[4200];
  snprintf(under_file, sizeof under_file, "%s/state.bin", file);
  const char *paths[] = {"/nonexistent-deco-dir/state.bin", under_file, deco_test_tmpdir()};
  const char *needles[] = {"cannot create a file in /nonexistent-deco-dir", "cannot create a file in",
                           "is not a regular file"};
  for (int i = 0; i < 3; ++i) {
    const char *const argv[] = {"generate", "--spec", "recycle", "--recycle-state", paths[i], "--backend", "cpu",
                                NULL};
    deco_test_run_t r;
    cr_assert_eq(deco_test_run_cli(argv, &r), 0);
    deco_test_cli_error(&r, 1, needles[i]); /* nothing generated: stdout empty */
    deco_test_run_free(&r);
  }
}

Test(cli_hostile, floats_out_of_range_name_the_rule) {
  DECO_TEST_CLI_ERROR(2, "a nonzero value must be at least 1.17549435e-38", "generate", "--temperature", "1e-38");
  DECO_TEST_CLI_ERROR(2, "not a finite float", "generate", "--temperature", "1e39");
  DECO_TEST_CLI_ERROR(2, "'abc' is not a number", "generate", "--top-p", "abc");
  /* The smallest normal float, as the message prints it, is accepted. */
  deco_test_run_t r;
  const char *const tiny[] = {"generate", "--temperature", "1.17549435e-38", "--steps", "8", "--print-ids", "--backend",
                              "cpu", NULL};
  cr_assert_eq(deco_test_run_cli(tiny, &r), 0);
  cr_assert_eq(r.status, 0, "%s", r.err);
  deco_test_run_free(&r);
}

/* A prompt far longer than the context is encoded quickly and truncated to
 * --steps positions. */
Test(cli_hostile, long_prompt_is_truncated, .timeout = 60) {
  size_t n = 100 * 1024;
  char *text = malloc(n + 1);
  const char *words = "Once upon a time, there was a little dog named Max. He liked to run and play. ";
  size_t wl = strlen(words);
  for (size_t i = 0; i < n; ++i) text[i] = words[i % wl];
  text[n] = '\0';
  const char *const argv[] = {"generate", "--prompt", text, "--print-ids", "--steps", "64", "--backend", "cpu", NULL};
  deco_test_run_t r;
  cr_assert_eq(deco_test_run_cli(argv, &r), 0);
  cr_assert_eq(r.status, 0, "%s", r.err);
  int ids = 0;
  for (const char *p = r.out; *p; ++p) ids += *p == ' ';
  cr_assert_eq(ids + 1, 65, "the first id and one per position: %s", r.out);
  cr_assert(strstr(deco_test_last_line(r.err), "tokens=0 ") != NULL, "every position is a prompt id: %s", r.err);
  free(text);
  deco_test_run_free(&r);
}

/* Finite weights that overflow in the forward: every RMSNorm weight of
 * stories260K set to 3e38 gives non-finite logits from the first forward.
 * Plain decoding and both draft sources, greedy and sampled, must stop
 * with an error naming the position instead of emitting degenerate ids. */
Test(cli_hostile, non_finite_logits_stop_the_run) {
  size_t size;
  void *w = deco_test_stories_overflow(&size);
  const char *path = tmp("overflow.bin");
  cr_assert_eq(deco_test_write_file(path, w, size), 0);
  free(w);
  const char *const specs[] = {"none", "lookup", "recycle"};
  const char *const temps[] = {"0", "0.8"};
  for (int s = 0; s < 3; ++s)
    for (int t = 0; t < 2; ++t) {
      const char *const argv[] = {"generate", "--model", path, "--prompt-ids", "1,403,407", "--print-ids", "--spec",
                                  specs[s], "--temperature", temps[t], "--backend", "cpu", NULL};
      deco_test_run_t r;
      cr_assert_eq(deco_test_run_cli(argv, &r), 0);
      /* The prefill covers positions 0 and 1; the first logits used are
       * position 2's. Not deco_test_cli_error: stdout holds the prompt's
       * ids, printed before the first forward, and no generated id, on a
       * line the failure ends. */
      cr_assert_eq(r.status, 1, "--spec %s T=%s: exit %d; stderr: %s", specs[s], temps[t], r.status, r.err);
      cr_assert(strncmp(deco_test_last_line(r.err), "deco: error: ", 13) == 0, "stderr: %s", r.err);
      cr_assert(strstr(r.err, "non-finite logits at position 2") != NULL, "stderr: %s", r.err);
      cr_assert_str_eq(r.out, "1 403 407\n", "--spec %s T=%s: stdout holds more than the prompt: [%s]", specs[s], temps[t], r.out);
      cr_assert(strstr(r.err, "stats:") == NULL, "--spec %s T=%s: %s", specs[s], temps[t], r.err);
      deco_test_run_free(&r);
    }
}
