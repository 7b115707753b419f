/* tests/test_bpe_cli.c — `deco tokenize` (docs/CLI.md): ids in the
 * --print-ids format equal to llama.cpp's (the stress fixture) and to the
 * built-in tok512's prompt rule, --file's exact bytes, --special, --decode
 * back to the text, and the usage and input errors (exit 2 and 1, a FIFO
 * refused at once, --tokenizer with a GGUF model).
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/testutil.h"
#include "deco/deco.h"

#define SMOL "SmolLM2-135M-Instruct.Q4_1.gguf"

Test(tokenize_cli, smollm2_ids_and_decode) {
  const char *m = deco_test_model_file(SMOL);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--text", "Hello world, I'm 12345");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, "19556 905 28 339 5248 216 33 34 35 36 37\n");
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--decode", "19556 905 28 339 5248 216 33 34 35 36 37");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, "Hello world, I'm 12345\n");
  deco_test_run_free(&r);
  /* Special-token text: text by default, the token with --special. */
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--text", "<|im_end|>", "--special");
  cr_assert_str_eq(r.out, "2\n");
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--text", "<|im_end|>");
  cr_assert_str_eq(r.out, "44 108 306 79 486 108 46\n");
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--decode", "1 19556 2", "--special");
  cr_assert_str_eq(r.out, "<|im_start|>Hello<|im_end|>\n");
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--decode", "1 19556 2");
  cr_assert_str_eq(r.out, "Hello\n");
  deco_test_run_free(&r);
  /* No ids: an empty line. */
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--text", "");
  cr_assert(r.status == 0 && strcmp(r.out, "\n") == 0);
  deco_test_run_free(&r);
}

/* --file: the bytes exactly (NUL, ill-formed UTF-8, no final newline), and
 * the same ids as the library's prompt rule. */
Test(tokenize_cli, file_bytes) {
  const char *m = deco_test_model_file(SMOL);
  char path[4096];
  snprintf(path, sizeof path, "%s/text.bin", deco_test_tmpdir());
  static const char bytes[] = "a\xff" "b\0c \xf0\x9f\xa6\x99\n\n";
  cr_assert_eq(deco_test_write_file(path, bytes, sizeof bytes - 1), 0);
  deco_tokenizer_t *t;
  cr_assert_eq(deco_tokenizer_load_gguf(m, &t), DECO_STATUS_SUCCESS);
  int32_t ids[64];
  int n;
  cr_assert_eq(deco_tokenizer_tokenize(t, bytes, sizeof bytes - 1, DECO_TOKENIZE_ADD_SPECIAL, ids, 64, &n),
               DECO_STATUS_SUCCESS);
  char want[1024];
  size_t k = 0;
  for (int i = 0; i < n; ++i) k += (size_t)snprintf(want + k, sizeof want - k, i ? " %d" : "%d", ids[i]);
  snprintf(want + k, sizeof want - k, "\n");
  deco_tokenizer_destroy(t);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--file", path);
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, want);
  deco_test_run_free(&r);
}

/* The built-in tok512: the ids `deco generate --prompt` starts from. */
Test(tokenize_cli, llama2c_default) {
  char *line = deco_test_fixture_line("fixtures/stories260K/prompt_dog.ids");
  for (char *c = line; *c; ++c)
    if (*c == ',') *c = ' '; /* the fixture is comma-separated */
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "tokenize", "--text", "Once upon a time, there was a little dog named Max.");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, line);
  deco_test_run_free(&r);
  line[strlen(line) - 1] = '\0';
  DECO_TEST_RUN_CLI(&r, "tokenize", "--decode", line);
  cr_assert_str_eq(r.out, "Once upon a time, there was a little dog named Max.\n");
  deco_test_run_free(&r);
  free(line);
  /* A checkpoint needs its tokenizer. */
  const char *model = deco_test_data_file("models/stories260K.bin");
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", model, "--tokenizer", deco_test_data_file("models/tok512.bin"),
                    "--text", "hi");
  cr_assert_eq(r.status, 0, "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", model, "--text", "hi");
  cr_assert_eq(r.status, 1);
  cr_assert(strstr(r.err, "--tokenizer"), "%s", r.err);
  deco_test_run_free(&r);
}

Test(tokenize_cli, errors) {
  const char *m = deco_test_model_file(SMOL);
  deco_test_run_t r;
  static const char *const usage[][6] = {
      {"tokenize", NULL},
      {"tokenize", "--text", "a", "--decode", "1", NULL},
      {"tokenize", "--bogus", NULL},
      {"tokenize", "--text", NULL},
      {"tokenize", "--decode", "1,2", NULL},
      {"tokenize", "--decode", "1  2", NULL},
  };
  for (size_t i = 0; i < sizeof usage / sizeof usage[0]; ++i) {
    cr_assert_eq(deco_test_run_cli(usage[i], &r), 0);
    cr_assert_eq(r.status, 2, "case %zu: exit %d (%s)", i, r.status, r.err);
    cr_assert(strncmp(r.err, "deco: error: ", 13) == 0, "%s", r.err);
    deco_test_run_free(&r);
  }
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--tokenizer", deco_test_data_file("models/tok512.bin"), "--text",
                    "x");
  cr_assert_eq(r.status, 1);
  cr_assert(strstr(r.err, "GGUF file"), "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--decode", "49152");
  cr_assert_eq(r.status, 1);
  cr_assert(strstr(r.err, "--decode: id 49152 >= vocab 49152"), "%s", r.err);
  deco_test_run_free(&r);
  /* An id of any length is an id, named as typed. */
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--decode", "1 99999999999999999999");
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strstr(r.err, "--decode: id 99999999999999999999 >= vocab 49152"), "%s", r.err);
  deco_test_run_free(&r);
  char fifo[4096];
  snprintf(fifo, sizeof fifo, "%s/fifo", deco_test_tmpdir());
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", fifo, "--text", "x");
  cr_assert(r.status == 1 && strstr(r.err, "not a regular file"), "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", m, "--file", fifo);
  cr_assert(r.status == 1 && strstr(r.err, "not a regular file"), "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--help");
  cr_assert(r.status == 0 && strncmp(r.out, "usage: deco tokenize", 20) == 0);
  deco_test_run_free(&r);
}

/* The option parser's refusals as whole error lines (the built-in
 * tokenizer: no model file needed), and options taking effect in any
 * order, a repeated one keeping its last value. */
Test(tokenize_cli, parse_errors_pinned) {
#define TOK_ERROR(msg, ...) DECO_TEST_CLI_ERROR_LINE(2, msg, "tokenize", __VA_ARGS__)
  DECO_TEST_CLI_ERROR(2, "deco: error: tokenize: give exactly one of --text, --file, --decode\n", "tokenize");
  TOK_ERROR("tokenize: give exactly one of --text, --file, --decode", "--special");
  TOK_ERROR("tokenize: give exactly one of --text, --file, --decode", "--text", "a", "--file", "f");
  TOK_ERROR("tokenize: give exactly one of --text, --file, --decode", "--decode", "1", "--text", "a", "--file", "f");
  TOK_ERROR("tokenize: unknown option '--bogus' (see deco tokenize --help)", "--text", "a", "--bogus");
  TOK_ERROR("tokenize: unknown option 'a' (see deco tokenize --help)", "--special", "a");
  TOK_ERROR("--model needs a value", "--text", "a", "--model");
  TOK_ERROR("--tokenizer needs a value", "--tokenizer");
  TOK_ERROR("--decode needs a value", "--decode");
  TOK_ERROR("--file needs a value", "--text", "a", "--file");
  /* The unknown option is reported before the missing input. */
  TOK_ERROR("tokenize: unknown option '--texts' (see deco tokenize --help)", "--texts", "a");
#undef TOK_ERROR
  deco_test_run_t r, s;
  DECO_TEST_RUN_CLI(&r, "tokenize", "--special", "--text", "b", "--text", "Once upon a time");
  DECO_TEST_RUN_CLI(&s, "tokenize", "--text", "Once upon a time", "--special");
  cr_assert(r.status == 0 && s.status == 0, "%s%s", r.err, s.err);
  cr_assert_str_eq(r.out, s.out);
  cr_assert_str_eq(r.out, "1 403 407 261 378\n");
  deco_test_run_free(&r);
  deco_test_run_free(&s);
}
