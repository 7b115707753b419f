/* tests/test_cli.c — the `deco generate` contract of docs/CLI.md: output formats,
 * the stats line, stopping, exit codes and error lines, and the greedy
 * stories260K runs reproducing llama2.c's ids and text.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/testutil.h"

static const char *model_path(void) { return deco_test_data_file("models/stories260K.bin"); }
static const char *tok_path(void) { return deco_test_data_file("models/tok512.bin"); }

Test(cli, default_model_is_stories260K) {
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--prompt", "Once upon a time", "--temperature", "0", "--steps", "24", "--backend",
                    "cpu");
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  const char *stats = deco_test_last_line(r.err);
  cr_assert(deco_test_matches("^stats: tokens=[0-9]+ seconds=[0-9]+\\.[0-9]{3} tok_per_s=[0-9]+\\.[0-9]{2} backend=cpu "
                              "dtype=f32 model=stories260K\\.bin$",
                              stats),
            "stats line: %s", stats);
  const char *story = "Once upon a time, there was a little girl named Lily.";
  cr_assert(strncmp(r.out, story, strlen(story)) == 0, "stdout: %s", r.out);
  deco_test_run_free(&r);
}

/* The built-in model with every option at its default but greedy: llama2.c's
 * ids (the default stops at BOS/EOS, which this run does not reach). */
Test(cli, default_greedy_ids_match_llama2c) {
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--temperature", "0", "--print-ids", "--backend", "cpu");
  deco_test_expect_fixture_out("the built-in model", &r, "fixtures/stories260K/greedy_bos_256.ids");
  cr_assert(strstr(deco_test_last_line(r.err), " model=stories260K.bin") != NULL, "%s", r.err);
  deco_test_run_free(&r);
}

/* A copy of the binary in another folder, run from a third one, needs no
 * data folder and no library beside it. */
Test(cli, copied_binary_runs_the_builtin_model) {
  const char *cli = getenv("DECO_CLI");
  cr_assert(cli && *cli, "DECO_CLI is not set");
  size_t size;
  void *exe = deco_test_read_file(cli, &size);
  cr_assert_not_null(exe, "cannot read %s", cli);
  char dir[4096], copy[4200], elsewhere[4200];
  snprintf(dir, sizeof dir, "%s/copy", deco_test_tmpdir());
  snprintf(copy, sizeof copy, "%s/deco", dir);
  snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", deco_test_tmpdir());
  cr_assert_eq(mkdir(dir, 0755), 0);
  cr_assert_eq(mkdir(elsewhere, 0755), 0);
  cr_assert_eq(deco_test_write_file(copy, exe, size), 0);
  free(exe);
  cr_assert_eq(chmod(copy, 0755), 0);
  char *expect = deco_test_fixture_line("fixtures/stories260K/greedy_bos_256.ids");
  cr_assert_eq(chdir(elsewhere), 0);
  setenv("DECO_CLI", copy, 1);
  unsetenv("DECO_DATA_DIR");
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--temperature", "0", "--print-ids", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, expect);
  free(expect);
  deco_test_run_free(&r);
}

Test(cli, synthetic_tiny_by_name) {
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--synthetic", "tiny", "--prompt", "Hello", "--steps", "24", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  const char *stats = deco_test_last_line(r.err);
  cr_assert(deco_test_matches("^stats: tokens=[0-9]+ seconds=[0-9]+\\.[0-9]{3} tok_per_s=[0-9]+\\.[0-9]{2} backend=cpu "
                              "dtype=f32 model=synthetic:tiny$",
                              stats),
            "stats line: %s", stats);
  cr_assert(r.out[0] != '\0' && r.out[strlen(r.out) - 1] == '\n', "stdout: '%s'", r.out);
  deco_test_run_free(&r);
}

Test(cli, print_ids_format_and_count) {
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--print-ids", "--ignore-eos", "--steps", "20", "--prompt-ids", "1,72,101", "--seed", "7",
      "--backend", "cpu");
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  cr_assert(deco_test_matches("^1 72 101( [0-9]+){18}\n$", r.out), "stdout: '%s'", r.out);
  cr_assert(deco_test_matches("tokens=18 ", deco_test_last_line(r.err)), "%s", r.err);
  deco_test_run_free(&r);
}

Test(cli, same_seed_same_output) {
  deco_test_run_t a, b, c;
  DECO_TEST_RUN_CLI(&a, "generate", "--print-ids", "--ignore-eos", "--steps", "40", "--seed", "5", "--backend", "cpu");
  DECO_TEST_RUN_CLI(&b, "generate", "--print-ids", "--ignore-eos", "--steps", "40", "--seed", "5", "--backend", "cpu");
  DECO_TEST_RUN_CLI(&c, "generate", "--print-ids", "--ignore-eos", "--steps", "40", "--seed", "6", "--backend", "cpu");
  cr_assert_eq(a.status, 0);
  cr_assert_str_eq(a.out, b.out);
  cr_assert_str_neq(a.out, c.out, "another seed should give another sample");
  deco_test_run_free(&a);
  deco_test_run_free(&b);
  deco_test_run_free(&c);
}

Test(cli, usage_errors_exit_2) {
  DECO_TEST_CLI_ERROR(2, "--no-such-option", "generate", "--no-such-option");
  DECO_TEST_CLI_ERROR(2, "--steps", "generate", "--steps", "abc");
  DECO_TEST_CLI_ERROR(2, "--steps", "generate", "--steps");
  DECO_TEST_CLI_ERROR(2, "--temperature", "generate", "--temperature", "-1");
  DECO_TEST_CLI_ERROR(2, "--top-p", "generate", "--top-p", "1.5");
  DECO_TEST_CLI_ERROR(2, "--prompt-ids", "generate", "--prompt-ids", "1,,2");
  DECO_TEST_CLI_ERROR(2, NULL, "generate", "--prompt", "a", "--prompt-ids", "1");
  DECO_TEST_CLI_ERROR(2, "--backend", "generate", "--backend", "tpu");
  DECO_TEST_CLI_ERROR(2, "bf16", "generate", "--backend", "cpu", "--dtype", "bf16");
  DECO_TEST_CLI_ERROR(2, "gpt5", "generate", "--synthetic", "gpt5");
  DECO_TEST_CLI_ERROR(2, "frobnicate", "frobnicate");
  /* A repeated option whose second value is bad is still a usage error. */
  DECO_TEST_CLI_ERROR(2, "--prompt-ids", "generate", "--prompt-ids", "1,2", "--prompt-ids", "x");
}

/* The whole error line of each refused combination and value of generate,
 * compress and eval, as docs/CLI.md's parsers print it. */
#define PINNED DECO_TEST_CLI_ERROR_LINE

Test(cli, usage_messages_pinned) {
  PINNED(2, "--model and --synthetic exclude each other", "generate", "--model", "m", "--synthetic", "tiny");
  PINNED(2, "--prompt and --prompt-ids exclude each other", "generate", "--prompt", "a", "--prompt-ids", "1");
  PINNED(2, "--tree-template needs --spec recycle", "generate", "--tree-template", "t", "--recycle-k", "4");
  PINNED(2, "--recycle-k needs --spec recycle", "generate", "--recycle-k", "4");
  PINNED(2, "--superpose-m needs --superpose", "generate", "--superpose-m", "3", "--ngram-alpha", "0");
  PINNED(2, "--superpose and --spec lookup exclude each other", "generate", "--superpose", "2", "--spec", "lookup",
         "--ngram-alpha", "0");
  PINNED(2, "--superpose and --compare-ar exclude each other", "generate", "--superpose", "2", "--ngram-alpha", "0",
         "--compare-ar");
  PINNED(2, "--superpose needs --ngram TABLE (or --ngram-alpha 0)", "generate", "--superpose", "2");
  PINNED(2, "--chat-template needs --chat", "generate", "--chat-template", "chatml");
  PINNED(2, "--chat and --prompt-ids exclude each other (the template makes the prompt's ids)", "generate", "--chat",
         "--prompt-ids", "1");
  PINNED(2, "--system: --chat-template none has no system message", "generate", "--chat", "--system", "s",
         "--chat-template", "none");
  PINNED(2, "--draft-width needs --spec draft", "generate", "--draft-width", "2", "--layer-parallel", "2");
  PINNED(2, "--no-calibrate needs --layer-parallel N with N >= 2", "generate", "--no-calibrate");
  PINNED(2, "--spec draft needs --draft-model FILE or --draft-layers LIST", "generate", "--spec", "draft");
  PINNED(2, "--spec draft needs --draft-model or --draft-layers, not both", "generate", "--spec", "draft",
         "--draft-model", "d", "--draft-layers", "0");
  PINNED(2, "--dtype: bf16 is not supported by the cpu backend (use f32)", "generate", "--backend", "cpu", "--dtype",
         "bf16");
  PINNED(2, "--temperature: -1 must be >= 0", "generate", "--temperature", "-1");
  PINNED(2, "--top-p: 0 must be in (0, 1]", "generate", "--top-p", "0");
  PINNED(2, "--temperature: ' 1' is not a number", "generate", "--temperature", " 1"); /* as typed, like integers */
  PINNED(2, "--superpose-temp: 0 must be > 0", "generate", "--superpose-temp", "0");
  PINNED(2, "--ngram-alpha: 1.5 must be in [0, 1]", "generate", "--ngram-alpha", "1.5");
  PINNED(2, "--top-p: '1e-40' is too small for a float: a nonzero value must be at least 1.17549435e-38",
         "generate", "--top-p", "1e-40");
  PINNED(2, "--temperature: '1e-40' is too small for a float: a nonzero value must be at least 1.17549435e-38 (use 0)",
         "generate", "--temperature", "1e-40");
  PINNED(2, "--seed: ' 1' is not a non-negative integer", "generate", "--seed", " 1");
  PINNED(2, "--seed: '+1' is not a non-negative integer", "generate", "--seed", "+1");
  PINNED(2, "--steps: ' 5' is not an integer", "generate", "--steps", " 5");
  PINNED(2, "--steps: '+5' is not an integer", "generate", "--steps", "+5");
  PINNED(2, "--threads: ' 2' is not an integer in [1, 1024]", "eval", "--threads", " 2");
  PINNED(2, "--chat-template: 'x' is not auto, chatml, llama3 or none", "generate", "--chat-template", "x");
  PINNED(2, "--draft-len: 256 outside [1, 255]", "generate", "--draft-len", "256");
  PINNED(2, "--comm: 'x' is not threads, mpi or nccl", "generate", "--comm", "x");
  PINNED(2, "--spec: 'x' is not none, lookup, recycle or draft", "generate", "--spec", "x");
  PINNED(2, "--seed: '-1' is not a non-negative integer", "generate", "--seed", "-1");
  PINNED(2, "--draft-layers: '0-2,1' names layer 1 twice (overlapping ranges)", "generate", "--draft-layers", "0-2,1");

  PINNED(2, "compress: unknown option '--bogus' (see deco compress --help)", "compress", "--bogus");
  PINNED(2, "--kv-heads: '0' is not an integer in [1, 4096]", "compress", "--kv-heads", "0");
  PINNED(2, "--calib-tokens: '1099511627777' is not an integer in [1, 1099511627776]", "compress", "--calib-tokens",
         "1099511627777");
  PINNED(2, "--method: 'x' is not svd, mean or keep", "compress", "--method", "x");
  PINNED(2, "--solver: 'x' is not auto, lapack or cusolver", "compress", "--solver", "x");
  PINNED(2, "--out needs a value", "compress", "--out");
  PINNED(2, "compress needs --model IN, --kv-heads N, --method svd|mean|keep and --out OUT", "compress", "--model",
         "a", "--out", "b", "--force");
  PINNED(2, "compress needs exactly one of --calib FILE and --calib-ids FILE", "compress", "--model", "a", "--out",
         "b", "--kv-heads", "1", "--method", "keep");

  PINNED(2, "eval: unknown option '--bogus' (see deco eval --help)", "eval", "--bogus");
  PINNED(2, "--threads: '0' is not an integer in [1, 1024]", "eval", "--threads", "0", "--ids", "x");
  PINNED(2, "--dtype: 'x' is not f32 or bf16", "eval", "--dtype", "x");
  PINNED(2, "eval needs exactly one of --text FILE and --ids FILE", "eval", "--text", "a", "--ids", "b");
  PINNED(2, "--dtype: bf16 is not supported by the cpu backend (use f32)", "eval", "--ids", "x", "--backend", "cpu",
         "--dtype", "bf16");
}

/* deco eval --ids: each refusal of the id-line format names the file, the
 * line and the column. */
Test(cli, id_line_messages_pinned) {
  static const struct {
    const char *text, *msg;
  } bad[] = {
      {"1 2 3\n\n4  5\n", ":3: expected one space then an id at column 2"},
      {"1 2x\n", ":1: expected one space then an id at column 4"},
      {"7\n-1\n", ":2: expected a decimal id at column 1"},
      {"1 512\n", ":1: id 512 >= vocab 512"},
      {"3 99999999999999999999999999999\n", ":1: id 999999999999999999999999 >= vocab 512"},
  };
  char path[4096], msg[4200];
  snprintf(path, sizeof path, "%s/pinned.ids", deco_test_tmpdir());
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; ++k) {
    cr_assert_eq(deco_test_write_file(path, bad[k].text, strlen(bad[k].text)), 0);
    snprintf(msg, sizeof msg, "deco: error: %s%s\n", path, bad[k].msg);
    DECO_TEST_CLI_ERROR(1, msg, "eval", "--ids", path, "--backend", "cpu");
  }
  unlink(path);
}

Test(cli, nucleus_smaller_than_any_token) {
  /* Near-flat probabilities (T = 1000) and top-p 0.001: no token alone
   * reaches the nucleus threshold; sampling must still succeed. */
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--backend", "cpu", "--temperature", "1000", "--top-p", "0.001", "--steps", "30",
                    "--print-ids", "--ignore-eos");
  cr_assert_eq(r.status, 0, "%s", r.err);
  deco_test_run_free(&r);
}

Test(cli, model_conflicts_exit_1) {
  DECO_TEST_CLI_ERROR(1, "--prompt-ids: id 300 >= vocab 259", "generate", "--prompt-ids", "1,300", "--print-ids",
                      "--backend", "cpu", "--synthetic", "tiny");
  DECO_TEST_CLI_ERROR(1, "--prompt-ids: id 512 >= vocab 512", "generate", "--prompt-ids", "1,512", "--print-ids",
                      "--backend", "cpu");
  DECO_TEST_CLI_ERROR(1, "--steps", "generate", "--steps", "513", "--backend", "cpu");
  /* A model with a context of 128: a given --steps 256 conflicts with it,
   * the default is cut to it (seq_len positions: 129 ids). */
  const char *tiny = deco_test_data_file("fixtures/gguf/tiny_f32.gguf");
  DECO_TEST_CLI_ERROR(1, "--steps: 256 > seq_len 128", "generate", "--model", tiny, "--steps", "256", "--print-ids",
                      "--backend", "cpu");
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", tiny, "--print-ids", "--ignore-eos", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  int n_ids = 1;
  for (const char *p = r.out; *p; ++p) n_ids += *p == ' ';
  cr_assert_eq(n_ids, 129, "%s", r.out);
  deco_test_run_free(&r);
  DECO_TEST_CLI_ERROR(1, "/nonexistent/model.bin", "generate", "--model", "/nonexistent/model.bin");
  DECO_TEST_CLI_ERROR(1, "CPU", "generate", "--synthetic", "llama2-7b", "--print-ids", "--prompt-ids", "1", "--backend",
                      "cpu");
  DECO_TEST_CLI_ERROR(1, "--tokenizer", "generate", "--synthetic", "llama2-7b", "--prompt", "Hi", "--backend", "cpu");
  if (deco_cuda_device_count() == 0) {
    DECO_TEST_CLI_ERROR(1, "cuda", "generate", "--backend", "cuda");
  }
}

Test(cli, bad_model_files_exit_1) {
  size_t size;
  char *data = deco_test_read_file(model_path(), &size);
  char path[4096];
  snprintf(path, sizeof path, "%s/truncated.bin", deco_test_tmpdir());
  cr_assert_eq(deco_test_write_file(path, data, 300000), 0);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", path, "--tokenizer", tok_path());
  deco_test_cli_error(&r, 1, "truncated.bin");
  cr_assert(strstr(r.err, "300000") != NULL, "%s", r.err);
  deco_test_run_free(&r);
  snprintf(path, sizeof path, "%s/zeros.bin", deco_test_tmpdir());
  memset(data, 0, size);
  cr_assert_eq(deco_test_write_file(path, data, size), 0);
  DECO_TEST_CLI_ERROR(1, "zeros.bin", "generate", "--model", path, "--tokenizer", tok_path());
  free(data);
  /* A tokenizer that does not fit the model. */
  DECO_TEST_CLI_ERROR(1, "stories260K.bin", "generate", "--model", model_path(), "--tokenizer", model_path());
  /* Text needs a tokenizer for a checkpoint. */
  DECO_TEST_CLI_ERROR(1, "--tokenizer", "generate", "--model", model_path(), "--prompt", "Once");
}

Test(cli, greedy_ids_match_llama2c) {
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model_path(), "--temperature", "0", "--ignore-eos", "--print-ids", "--backend", "cpu");
  deco_test_expect_fixture_out("from BOS", &r, "fixtures/stories260K/greedy_bos_256.ids");
  cr_assert(strstr(r.err, "tokens=256 ") != NULL, "%s", r.err);
  cr_assert(strstr(r.err, "model=stories260K.bin") != NULL, "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model_path(), "--tokenizer", tok_path(), "--prompt",
      "Once upon a time, there was a little dog named Max.", "--temperature", "0", "--ignore-eos", "--print-ids",
      "--steps", "200", "--backend", "cpu");
  deco_test_expect_fixture_out("the dog prompt", &r, "fixtures/stories260K/greedy_dog_200.ids");
  deco_test_run_free(&r);
}

Test(cli, stops_at_bos_and_eos_unless_ignored) {
  /* Greedy from BOS reaches a story delimiter within 512 positions. */
  deco_test_run_t all, r;
  DECO_TEST_RUN_CLI(&all, "generate", "--model", model_path(), "--temperature", "0", "--print-ids", "--ignore-eos", "--steps",
      "512", "--backend", "cpu");
  cr_assert_eq(all.status, 0, "%s", all.err);
  int n = 0;
  int32_t ids[600];
  for (char *p = all.out, *end; n < 600; p = end) {
    long v = strtol(p, &end, 10);
    if (end == p) break;
    ids[n++] = (int32_t)v;
  }
  cr_assert_eq(n, 513);
  int stop = -1;
  for (int i = 1; i < n; ++i)
    if (ids[i] == 1 || ids[i] == 2) {
      stop = i;
      break;
    }
  cr_assert(stop > 0, "greedy stories260K emits a delimiter within 512 positions");
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model_path(), "--temperature", "0", "--print-ids", "--steps", "512", "--backend",
      "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  /* Everything before the stop id, nothing after. */
  char expect[8192] = "";
  for (int i = 0; i < stop; ++i) {
    char buf[16];
    snprintf(buf, sizeof buf, i ? " %d" : "%d", ids[i]);
    strcat(expect, buf);
  }
  strcat(expect, "\n");
  cr_assert_str_eq(r.out, expect);
  char tokens[32];
  snprintf(tokens, sizeof tokens, "tokens=%d ", stop - 1);
  cr_assert(strstr(deco_test_last_line(r.err), tokens) != NULL, "%s", r.err);
  deco_test_run_free(&all);
  deco_test_run_free(&r);
}

Test(cli, greedy_text_is_the_story) {
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model_path(), "--tokenizer", tok_path(), "--prompt", "Once upon a time",
      "--temperature", "0", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strncmp(r.out, "Once upon a time, there was a little girl named Lily.", 53) == 0, "stdout: %s", r.out);
  deco_test_run_free(&r);
  /* From BOS the text is the decoded fixture. */
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model_path(), "--tokenizer", tok_path(), "--temperature", "0", "--ignore-eos",
      "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  deco_tokenizer_t *tok;
  cr_assert_eq(deco_tokenizer_load(tok_path(), 512, &tok), DECO_STATUS_SUCCESS);
  int n;
  int32_t *ids = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/greedy_bos_256.ids"), &n);
  char *text = calloc(1, 65536);
  for (int i = 1; i < n; ++i) {
    size_t len;
    const char *piece = deco_tokenizer_decode(tok, ids[i - 1], ids[i], &len);
    strncat(text, piece, len);
  }
  strcat(text, "\n");
  cr_assert_str_eq(r.out, text);
  free(text);
  free(ids);
  deco_tokenizer_destroy(tok);
  deco_test_run_free(&r);
}

/* --draft-layers: each refusal of the list's syntax and values, whole
 * error lines. */
Test(cli, draft_layers_refusals_pinned) {
  const char *syntax = "is not a comma-separated list of layers and ranges (e.g. 0-2,4)";
  static const char *const malformed[] = {"", "x", "1,,2", "1,", "1-", "1-x", "-1", "1;2", "1-2-3", " 1"};
  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; ++i) {
    char msg[160];
    snprintf(msg, sizeof msg, "deco: error: --draft-layers: '%s' %s\n", malformed[i], syntax);
    DECO_TEST_CLI_ERROR(2, msg, "generate", "--draft-layers", malformed[i]);
  }
  PINNED(2, "--draft-layers: '65536': a layer is too large", "generate", "--draft-layers", "65536");
  PINNED(2, "--draft-layers: '0-65536': a layer is too large", "generate", "--draft-layers", "0-65536");
  PINNED(2, "--draft-layers: '1,99999999999999999999': a layer is too large", "generate", "--draft-layers",
         "1,99999999999999999999");
  PINNED(2, "--draft-layers: '3-1': the range 3-1 is empty", "generate", "--draft-layers", "3-1");
  PINNED(2, "--draft-layers: '0,5-4,x': the range 5-4 is empty", "generate", "--draft-layers", "0,5-4,x");
  PINNED(2, "--draft-layers: '0,0' names layer 0 twice (overlapping ranges)", "generate", "--draft-layers", "0,0");
  PINNED(2, "--draft-layers: '7-9,1-2,0-1' names layer 1 twice (overlapping ranges)", "generate", "--draft-layers",
         "7-9,1-2,0-1");
  /* A good list is accepted whatever its order (the next refusal is another option's). */
  PINNED(2, "--seed: 'x' is not a non-negative integer", "generate", "--draft-layers", "9,0-3,65535,5-5", "--seed",
         "x");
}
