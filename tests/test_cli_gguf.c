/* tests/test_cli_gguf.c — `deco generate` on GGUF text (docs/CLI.md, "Text
 * for GGUF models"), on SmolLM2's 3-layer mini copy (the full file's
 * tokenizer and template): --prompt by the llama.cpp rule (the ids of
 * `deco tokenize`, special-token text kept as text), text out equal to
 * decoding the generated ids, --chat's ids equal to the jinja2 + llama.cpp
 * fixtures of tests/test_chat.c, the reply alone as text, forced and
 * unrecognised templates, and the errors (a draft whose tokenizer fails
 * among them).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/testutil.h"

#define MINI "SmolLM2-135M-mini.gguf"

static int count_ids(const char *line) {
  int n = *line && *line != '\n';
  for (const char *p = line; *p; ++p) n += *p == ' ';
  return n;
}

/* The ids of a line after its first `skip`, as a line (malloc'd, no newline). */
static char *ids_after(const char *line, int skip) {
  const char *p = line;
  for (int k = 0; k < skip && p; ++k) {
    p = strchr(p, ' ');
    if (p) ++p;
  }
  char *s = strdup(p ? p : "");
  size_t n = strlen(s);
  if (n && s[n - 1] == '\n') s[n - 1] = '\0';
  return s;
}

/* The text `deco tokenize --decode` gives for a line of ids (malloc'd). */
static char *decode(const char *model, const char *ids) {
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "tokenize", "--model", model, "--decode", ids);
  cr_assert_eq(r.status, 0, "%s", r.err);
  free(r.err);
  return r.out;
}

/* text (a run's stdout) is what `deco tokenize --decode` gives for the ids
 * of ids_line after its first skip; what names the runs in a failure. */
static void expect_decoded(const char *what, const char *model, const char *ids_line, int skip, const char *text) {
  char *ids = ids_after(ids_line, skip);
  char *want = decode(model, ids);
  cr_assert_str_eq(text, want, "%s: the text is not the decoded ids", what);
  free(want);
  free(ids);
}

Test(cli_gguf, prompt_by_the_gguf_rule) {
  const char *m = deco_test_model_file(MINI);
  deco_test_run_t r;
  /* SmolLM2 adds no BOS; "<|im_end|>" typed in the prompt stays text. */
  DECO_TEST_RUN_CLI(&r, "generate", "--model", m, "--prompt", "Hello world, I'm 12345<|im_end|>", "--print-ids",
                    "--steps", "22", "--temperature", "0", "--ignore-eos", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  const char *want = "19556 905 28 339 5248 216 33 34 35 36 37 44 108 306 79 486 108 46 ";
  cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
  /* --steps positions, then the last one's id: 18 prompt ids and 5 more. */
  cr_assert_eq(count_ids(r.out), 23, "%s", r.out);
  cr_assert(strstr(deco_test_last_line(r.err), "tokens=5 ") != NULL, "%s", r.err);
  deco_test_run_free(&r);
}

/* The run of argv (ending "--print-ids", NULL at argv[last], argv[last + 1])
 * with --print-ids, then the same run as text; both must succeed. */
static void run_ids_then_text(const char **argv, int last, deco_test_run_t *ids, deco_test_run_t *text) {
  cr_assert_str_eq(argv[last], "--print-ids");
  cr_assert_eq(deco_test_run_cli(argv, ids), 0);
  cr_assert_eq(ids->status, 0, "%s", ids->err);
  argv[last] = NULL;
  cr_assert_eq(deco_test_run_cli(argv, text), 0);
  cr_assert_eq(text->status, 0, "%s", text->err);
  argv[last] = "--print-ids";
}

/* Text out: the generated ids' text (not the prompt's), streamed, equal to
 * decoding them at once. */
Test(cli_gguf, text_is_the_generated_ids_decoded) {
  const char *m = deco_test_model_file(MINI);
  const char *argv_ids[] = {"generate", "--model", m, "--prompt", "Zürich und Kraków — 東京", "--steps", "40",
                            "--temperature", "0.8", "--seed", "3", "--ignore-eos", "--backend", "cpu",
                            "--print-ids", NULL};
  deco_test_run_t ids, text;
  run_ids_then_text(argv_ids, 14, &ids, &text);
  deco_test_run_t tok;
  DECO_TEST_RUN_CLI(&tok, "tokenize", "--model", m, "--text", "Zürich und Kraków — 東京");
  const int n_prompt = count_ids(tok.out);
  cr_assert(n_prompt > 5 && n_prompt < 40);
  cr_assert(strncmp(ids.out, tok.out, strlen(tok.out) - 1) == 0, "%s vs %s", ids.out, tok.out);
  expect_decoded("generated ids and text", m, ids.out, n_prompt, text.out);
  deco_test_run_free(&tok);
  deco_test_run_free(&ids);
  deco_test_run_free(&text);
}

/* A prompt that --steps cuts prints no text but the newline: the text
 * starts after the whole prompt, and --steps positions hold steps + 1 ids. */
Test(cli_gguf, a_cut_prompt_prints_no_prompt_text) {
  const char *m = deco_test_model_file(MINI);
  static const char *const steps[] = {"5", "16", "17", "18", "19"};
  for (size_t k = 0; k < sizeof steps / sizeof steps[0]; ++k) {
    const char *argv[] = {"generate", "--model", m, "--prompt", "Hello world, I'm 12345<|im_end|>", "--steps",
                          steps[k], "--temperature", "0", "--ignore-eos", "--backend", "cpu", "--print-ids", NULL};
    deco_test_run_t ids, text;
    run_ids_then_text(argv, 12, &ids, &text);
    const int n_ids = count_ids(ids.out), n_prompt = 18;
    cr_assert_eq(n_ids, atoi(steps[k]) + 1, "--steps %s: %s", steps[k], ids.out);
    if (n_ids <= n_prompt) {
      cr_assert_str_eq(text.out, "\n", "--steps %s: the text of a cut prompt", steps[k]);
      cr_assert(strstr(deco_test_last_line(text.err), "tokens=0 ") != NULL, "%s", text.err);
    } else {
      expect_decoded(steps[k], m, ids.out, n_prompt, text.out);
    }
    deco_test_run_free(&ids);
    deco_test_run_free(&text);
  }
}

/* --chat's prompt ids equal the fixture of each SmolLM2 case of
 * data/fixtures/tokenizer/chat.txt (jinja2's rendering of the GGUF's own
 * template, tokenized by llama.cpp): no system message (the template's
 * default), --system, an empty prompt, special-token text typed by the user. */
Test(cli_gguf, chat_ids_equal_the_fixtures) {
  const char *m = deco_test_model_file(MINI);
  size_t size;
  char *data = deco_test_read_file(deco_test_data_file("fixtures/tokenizer/chat.txt"), &size);
  cr_assert_not_null(data);
  char *save = NULL, name[128] = "", *system = NULL, *prompt = NULL, *ids = NULL;
  int smollm2 = 0, checked = 0;
  for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (strncmp(line, "case ", 5) == 0) snprintf(name, sizeof name, "%s", line + 5);
    else if (strncmp(line, "vocab ", 6) == 0) smollm2 = strcmp(line + 6, "models:SmolLM2-135M-Instruct.Q4_1.gguf") == 0;
    else if (strncmp(line, "system", 6) == 0) system = strcmp(line + 7, "-") == 0 ? NULL : deco_test_unhex(line + 7);
    else if (strncmp(line, "prompt", 6) == 0) prompt = deco_test_unhex(line[6] ? line + 7 : "");
    else if (strncmp(line, "ids ", 4) == 0) ids = line + 4;
    else if (strcmp(line, "end") == 0) {
      if (smollm2) {
        char steps[16];
        snprintf(steps, sizeof steps, "%d", count_ids(ids) + 3);
        const char *argv[] = {"generate", "--model", m, "--chat", "--prompt", prompt, "--print-ids", "--steps", steps,
                              "--temperature", "0", "--ignore-eos", "--backend", "cpu",
                              system ? "--system" : NULL, system, NULL};
        deco_test_run_t r;
        cr_assert_eq(deco_test_run_cli(argv, &r), 0);
        cr_assert_eq(r.status, 0, "%s: %s", name, r.err);
        cr_assert(strncmp(r.out, ids, strlen(ids)) == 0 && r.out[strlen(ids)] == ' ', "%s:\n%s\nexpected\n%s", name,
                  r.out, ids);
        cr_assert_eq(count_ids(r.out), count_ids(ids) + 4, "%s", name);
        deco_test_run_free(&r);
        checked++;
      }
      free(system);
      free(prompt);
      system = prompt = NULL;
    }
  }
  cr_assert_eq(checked, 4, "SmolLM2 cases: %d", checked);
  free(data);
}

/* The reply alone as text; --chat-template chatml drops the default system
 * message, none is the prompt alone. */
Test(cli_gguf, chat_text_and_forced_templates) {
  const char *m = deco_test_model_file(MINI);
  deco_test_run_t ids, text;
  DECO_TEST_RUN_CLI(&ids, "generate", "--model", m, "--chat", "--prompt", "Hi!", "--print-ids", "--steps", "60",
                    "--temperature", "0", "--ignore-eos", "--backend", "cpu");
  DECO_TEST_RUN_CLI(&text, "generate", "--model", m, "--chat", "--prompt", "Hi!", "--steps", "60", "--temperature",
                    "0", "--ignore-eos", "--backend", "cpu");
  cr_assert(ids.status == 0 && text.status == 0, "%s %s", ids.err, text.err);
  /* The rendering ends with "<|im_start|>assistant\n": 1 520 9531 198. */
  const char *gp = strstr(ids.out, " 1 520 9531 198 ");
  cr_assert_not_null(gp, "%s", ids.out);
  const int n_prompt = count_ids(ids.out) - count_ids(gp + 16);
  expect_decoded("the chat reply's ids and text", m, ids.out, n_prompt, text.out);
  deco_test_run_free(&ids);
  deco_test_run_free(&text);

  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", m, "--chat", "--chat-template", "chatml", "--prompt", "Hi!",
                    "--print-ids", "--steps", "12", "--temperature", "0", "--ignore-eos", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  /* <|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n, then the reply */
  deco_test_run_t t;
  DECO_TEST_RUN_CLI(&t, "tokenize", "--model", m, "--special", "--text",
                    "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
  const size_t n = strlen(t.out) - 1;
  cr_assert(n > 0 && strncmp(r.out, t.out, n) == 0 && r.out[n] == ' ', "%s vs %s", r.out, t.out);
  cr_assert_eq(count_ids(r.out), 13);
  deco_test_run_free(&t);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "generate", "--model", m, "--chat", "--chat-template", "none", "--prompt", "Hi there",
                    "--print-ids", "--steps", "4", "--temperature", "0", "--ignore-eos", "--backend", "cpu");
  DECO_TEST_RUN_CLI(&t, "tokenize", "--model", m, "--text", "Hi there");
  cr_assert_eq(r.status, 0, "%s", r.err);
  const size_t k = strlen(t.out) - 1;
  cr_assert(k > 0 && strncmp(r.out, t.out, k) == 0 && r.out[k] == ' ', "%s vs %s", r.out, t.out);
  deco_test_run_free(&t);
  deco_test_run_free(&r);
}

/* A template deco does not recognise: exit 1 quoting its first line (the
 * mini file with the template's first 29 bytes rewritten in place). */
Test(cli_gguf, unrecognised_template_is_named) {
  size_t size;
  char *gguf = deco_test_read_file(deco_test_model_file(MINI), &size);
  cr_assert_not_null(gguf);
  static const char key[] = "tokenizer.chat_template", head[] = "{% for message in messages %}",
                    other[] = "{{ bos_token }} custom-form!\n";
  cr_assert_eq(sizeof head, sizeof other);
  char *k = memmem(gguf, size, key, sizeof key - 1);
  cr_assert_not_null(k);
  char *h = memmem(k, size - (size_t)(k - gguf), head, sizeof head - 1);
  cr_assert(h && h - k < 64);
  memcpy(h, other, sizeof other - 1);
  char path[4096];
  snprintf(path, sizeof path, "%s/custom.gguf", deco_test_tmpdir());
  cr_assert_eq(deco_test_write_file(path, gguf, size), 0);
  free(gguf);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", path, "--chat", "--prompt", "Hi", "--backend", "cpu");
  deco_test_cli_error(&r, 1, "custom.gguf: tokenizer.chat_template is not a template deco renders (ChatML, Llama 3); "
                             "its first line: '{{ bos_token }} custom-form!'");
  deco_test_run_free(&r);
  /* Forcing a template still works. */
  DECO_TEST_RUN_CLI(&r, "generate", "--model", path, "--chat", "--chat-template", "chatml", "--prompt", "Hi",
                    "--print-ids", "--steps", "8", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strncmp(r.out, "1 4093 198 ", 11) == 0, "%s", r.out);
  deco_test_run_free(&r);
}

Test(cli_gguf, errors) {
  const char *m = deco_test_model_file(MINI);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", m, "--tokenizer", deco_test_data_file("models/tok512.bin"),
                    "--prompt-ids", "1,2", "--print-ids", "--backend", "cpu");
  deco_test_cli_error(&r, 1, "--tokenizer: ");
  cr_assert(strstr(r.err, "is a GGUF file, which carries its own vocabulary"), "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "generate", "--model", m, "--prompt", "", "--backend", "cpu");
  deco_test_cli_error(&r, 1, "--prompt: empty, and ");
  cr_assert(strstr(r.err, "adds no BOS: nothing to start from"), "%s", r.err);
  deco_test_run_free(&r);
  /* Usage: chat options without --chat, a bad template name, --prompt-ids. */
  DECO_TEST_CLI_ERROR(2, "--system needs --chat", "generate", "--model", m, "--system", "x", "--prompt", "y");
  DECO_TEST_CLI_ERROR(2, "--chat-template needs --chat", "generate", "--model", m, "--chat-template", "chatml",
                      "--prompt", "y");
  DECO_TEST_CLI_ERROR(2, "--chat-template: 'jinja' is not", "generate", "--model", m, "--chat", "--chat-template",
                      "jinja", "--prompt", "y");
  DECO_TEST_CLI_ERROR(2, "--chat and --prompt-ids exclude each other", "generate", "--model", m, "--chat",
                      "--prompt-ids", "1,2");
  DECO_TEST_CLI_ERROR(2, "--system: --chat-template none", "generate", "--model", m, "--chat", "--chat-template",
                      "none", "--system", "s", "--prompt", "y");
  /* The built-in llama2.c vocabulary has no template. */
  DECO_TEST_CLI_ERROR(1, "a llama2.c tokenizer has no chat template", "generate", "--chat", "--prompt", "y",
                      "--backend", "cpu");
}

/* A GGUF --draft-model whose tokenizer does not load is named with the
 * loader's reason, not taken for a file of another kind (the mini copy
 * with the token "Hello" renamed: the merge "H ello" names no token). */
Test(cli_gguf, a_draft_whose_tokenizer_fails_names_why) {
  const char *m = deco_test_model_file(MINI);
  size_t n = 0;
  char *bytes = deco_test_read_file(m, &n);
  cr_assert_not_null(bytes, "%s", m);
  static const char hello[] = "\x05\0\0\0\0\0\0\0Hello"; /* a GGUF string: u64 length, then the text */
  char *at = memmem(bytes, n, hello, sizeof hello - 1);
  cr_assert_not_null(at, "the token \"Hello\" in %s", m);
  at[sizeof hello - 2] = 'p';
  char draft[512];
  snprintf(draft, sizeof draft, "%s/mini_hellp.gguf", deco_test_tmpdir());
  cr_assert_eq(deco_test_write_file(draft, bytes, n), 0);
  free(bytes);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", m, "--spec", "draft", "--draft-model", draft, "--prompt-ids", "1,2",
                    "--steps", "4", "--print-ids", "--backend", "cpu");
  deco_test_cli_error(&r, 1, "--draft-model: ");
  cr_assert(strstr(r.err, draft) && strstr(r.err, "merges") && !strstr(r.err, "one is a GGUF file"), "%s", r.err);
  deco_test_run_free(&r);
  unlink(draft);
}
