/* tests/test_cli_superpose.c — `deco generate --superpose K` (docs/CLI.md):
 * one draft without n-grams prints exactly what greedy decoding prints
 * (stories260K and SmolLM2's mini GGUF), K drafts with a table counted
 * from the model's own samples (the text and --print-ids formats, best
 * first, each draft's text as plain decoding prints its ids, the stats
 * line's forwards= and drafts=), and the usage and table errors.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

#define MINI "SmolLM2-135M-mini.gguf"

/* The stats line without seconds= and tok_per_s= (they vary). */
static void stats_core(const char *err, char *out, size_t cap) {
  const char *line = deco_test_last_line(err);
  const char *a = strstr(line, " seconds="), *b = strstr(line, " backend=");
  cr_assert(a && b, "%s", line);
  snprintf(out, cap, "%.*s%s", (int)(a - line), line, b);
}

/* A table counted from eight samples of the built-in model (the model's own
 * text; none of them is a prompt below). Returns its path. */
static const char *own_text_table(void) {
  static char table[4096];
  char corpus[4096], seed[16];
  snprintf(corpus, sizeof corpus, "%s/corpus.ids", deco_test_tmpdir());
  snprintf(table, sizeof table, "%s/own.ngram", deco_test_tmpdir());
  FILE *f = fopen(corpus, "w");
  cr_assert_not_null(f);
  for (int s = 1; s <= 8; ++s) {
    snprintf(seed, sizeof seed, "%d", s);
    deco_test_run_t r;
    DECO_TEST_RUN_CLI(&r, "generate", "--print-ids", "--temperature", "1", "--seed", seed, "--backend", "cpu");
    cr_assert_eq(r.status, 0, "%s", r.err);
    fputs(r.out, f);
    deco_test_run_free(&r);
  }
  fclose(f);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--ids", corpus, "--out", table);
  cr_assert_eq(r.status, 0, "%s", r.err);
  deco_test_run_free(&r);
  return table;
}

/* --superpose 1 --ngram-alpha 0 --print-ids prints what greedy prints, and
 * its stats line is greedy's plus forwards= (the positions generated) and
 * drafts=1. */
Test(cli_superpose, one_draft_without_ngrams_is_greedy) {
  const char *mini = deco_test_model_file(MINI);
  struct {
    const char *model, *prompt, *steps, *ignore;
  } cases[] = {
      {NULL, NULL, "256", NULL},                       /* BOS alone, the whole context */
      {NULL, "Once upon a time", "80", NULL},          /* stories260K's prompt rule */
      {NULL, "The little dog was sad because", "200", "--ignore-eos"},
      {mini, "The capital of France is", "24", NULL},  /* a GGUF prompt */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
    const char *base[16] = {"generate", "--print-ids", "--backend", "cpu", "--steps", cases[c].steps};
    int n = 6;
    if (cases[c].model) base[n++] = "--model", base[n++] = cases[c].model;
    if (cases[c].prompt) base[n++] = "--prompt", base[n++] = cases[c].prompt;
    if (cases[c].ignore) base[n++] = cases[c].ignore;
    const char *greedy[20], *sup[20];
    memcpy(greedy, base, sizeof(char *) * (size_t)n);
    memcpy(sup, base, sizeof(char *) * (size_t)n);
    greedy[n] = "--temperature", greedy[n + 1] = "0", greedy[n + 2] = NULL;
    sup[n] = "--superpose", sup[n + 1] = "1", sup[n + 2] = "--ngram-alpha", sup[n + 3] = "0", sup[n + 4] = NULL;
    deco_test_run_t g, s;
    cr_assert_eq(deco_test_run_cli(greedy, &g), 0);
    cr_assert_eq(deco_test_run_cli(sup, &s), 0);
    cr_assert_eq(g.status, 0, "%s", g.err);
    cr_assert_eq(s.status, 0, "%s", s.err);
    cr_assert_str_eq(s.out, g.out, "case %zu", c);
    char gs[512], ss[512], want[600];
    stats_core(g.err, gs, sizeof gs);
    stats_core(s.err, ss, sizeof ss);
    const int tokens = (int)deco_test_stat(g.err, "tokens=");
    /* One forward per generated position: the tokens, and the stop id's
     * forward when the run ended at one. */
    const int forwards = (int)deco_test_stat(s.err, "forwards=");
    cr_assert(forwards == tokens || forwards == tokens + 1, "%s", s.err);
    snprintf(want, sizeof want, "%s forwards=%d drafts=1", gs, forwards);
    cr_assert_str_eq(ss, want);
    deco_test_run_free(&g);
    deco_test_run_free(&s);
  }
}

/* K drafts with the table: best first, each in the --print-ids format
 * (the prompt's ids, then the draft's) or as `[i] logp=` and the text plain
 * decoding prints for those ids. */
Test(cli_superpose, drafts_with_ngrams) {
  const char *table = own_text_table();
  deco_test_run_t ids, text;
  DECO_TEST_RUN_CLI(&ids, "generate", "--superpose", "3", "--ngram", table, "--prompt", "Tom and Sue went",
                    "--steps", "48", "--ignore-eos", "--print-ids", "--backend", "cpu");
  DECO_TEST_RUN_CLI(&text, "generate", "--superpose", "3", "--ngram", table, "--prompt", "Tom and Sue went",
                    "--steps", "48", "--ignore-eos", "--backend", "cpu");
  cr_assert(ids.status == 0 && text.status == 0, "%s %s", ids.err, text.err);
  deco_test_run_t tok;
  DECO_TEST_RUN_CLI(&tok, "tokenize", "--text", "Tom and Sue went");
  const size_t lead = strlen(tok.out) - 1;
  int n_prompt = 1;
  for (size_t i = 0; i < lead; ++i) n_prompt += tok.out[i] == ' ';
  /* Three id lines of --steps + 1 ids each, every one starting with the prompt. */
  char *save = NULL, *lines[4] = {0};
  int n_lines = 0;
  for (char *l = strtok_r(ids.out, "\n", &save); l && n_lines < 4; l = strtok_r(NULL, "\n", &save)) lines[n_lines++] = l;
  cr_assert_eq(n_lines, 3);
  for (int i = 0; i < 3; ++i) {
    cr_assert(strncmp(lines[i], tok.out, lead) == 0 && lines[i][lead] == ' ', "%s", lines[i]);
    cr_assert(deco_test_matches("^[0-9]+( [0-9]+){48}$", lines[i]), "%s", lines[i]);
  }
  cr_assert(strcmp(lines[0], lines[1]) != 0 && strcmp(lines[1], lines[2]) != 0 && strcmp(lines[0], lines[2]) != 0);
  /* The text: [i] logp=, best first, then run.c's text of the same ids. */
  cr_assert(deco_test_matches("^(\\[[0-2]\\] logp=-?[0-9]+\\.[0-9]{3}\n[^\n]*\n){3}$", text.out), "%s", text.out);
  double prev = INFINITY;
  char *p = text.out;
  for (int i = 0; i < 3; ++i) {
    int idx;
    double logp;
    cr_assert_eq(sscanf(p, "[%d] logp=%lf", &idx, &logp), 2);
    cr_assert_eq(idx, i);
    cr_assert(logp <= prev && logp < 0, "logp %f after %f", logp, prev);
    prev = logp;
    char *body = strchr(p, '\n') + 1, *end = strchr(body, '\n');
    deco_test_run_t d;
    DECO_TEST_RUN_CLI(&d, "tokenize", "--decode", lines[i]);
    cr_assert_eq(d.status, 0, "%s", d.err);
    cr_assert(strlen(d.out) == (size_t)(end - body) + 1 && strncmp(d.out, body, (size_t)(end - body)) == 0,
              "draft %d: '%.*s' vs '%s'", i, (int)(end - body), body, d.out);
    deco_test_run_free(&d);
    p = end + 1;
  }
  /* Stats: every printed id after the prompts, forwards = positions generated. */
  char want[128];
  snprintf(want, sizeof want, " forwards=%d drafts=3", 48 - n_prompt + 1);
  const char *last = deco_test_last_line(ids.err);
  cr_assert(strlen(last) > strlen(want) && strcmp(last + strlen(last) - strlen(want), want) == 0, "%s", last);
  cr_assert_eq((int)deco_test_stat(ids.err, "tokens="), 3 * (48 - n_prompt + 1), "%s", last);
  deco_test_run_free(&tok);
  deco_test_run_free(&ids);
  deco_test_run_free(&text);
}

Test(cli_superpose, errors) {
  const char *table = own_text_table();
  const char *mini = deco_test_model_file(MINI);
  deco_test_run_t r;
  struct {
    const char *a[8];
    const char *needle;
  } usage[] = {
      {{"--superpose", "0", "--ngram-alpha", "0"}, "--superpose: 0 outside [1, 16]"},
      {{"--superpose", "17", "--ngram-alpha", "0"}, "--superpose: 17 outside [1, 16]"},
      {{"--superpose", "2", "--ngram-alpha", "0", "--superpose-m", "17"}, "--superpose-m: 17 outside [1, 16]"},
      {{"--superpose", "2", "--ngram-alpha", "0", "--superpose-m", "0"}, "--superpose-m: 0 outside"},
      {{"--superpose", "2", "--ngram-alpha", "0", "--superpose-temp", "0"}, "--superpose-temp: 0 must be > 0"},
      {{"--superpose", "2", "--ngram-alpha", "0", "--superpose-temp", "-1"}, "--superpose-temp: -1 must be > 0"},
      {{"--superpose", "2", "--ngram-alpha", "0", "--superpose-temp", "nan"}, "--superpose-temp: 'nan'"},
      {{"--superpose", "2", "--ngram", "t", "--ngram-alpha", "1.5"}, "--ngram-alpha: 1.5 must be in [0, 1]"},
      {{"--superpose", "2", "--ngram", "t", "--ngram-alpha", "-0.1"}, "--ngram-alpha: -0.1 must be in [0, 1]"},
      {{"--superpose", "2"}, "--superpose needs --ngram TABLE (or --ngram-alpha 0)"},
      {{"--ngram", "t"}, "--ngram needs --superpose"},
      {{"--ngram-alpha", "0"}, "--ngram-alpha needs --superpose"},
      {{"--superpose-m", "3"}, "--superpose-m needs --superpose"},
      {{"--superpose-temp", "1"}, "--superpose-temp needs --superpose"},
      {{"--superpose", "2", "--ngram-alpha", "0", "--spec", "lookup"}, "--superpose and --spec lookup exclude"},
      {{"--superpose", "2", "--ngram-alpha", "0", "--compare-ar"}, "--superpose and --compare-ar exclude"},
  };
  for (size_t u = 0; u < sizeof usage / sizeof usage[0]; ++u) {
    const char *argv[16] = {"generate", "--backend", "cpu"};
    int n = 3;
    for (int k = 0; usage[u].a[k]; ++k) argv[n++] = usage[u].a[k];
    argv[n] = NULL;
    cr_assert_eq(deco_test_run_cli(argv, &r), 0);
    deco_test_cli_error(&r, 2, usage[u].needle);
    deco_test_run_free(&r);
  }
  /* Tables: missing, of another vocabulary, of another tokenizer, corrupt. */
  DECO_TEST_CLI_ERROR(1, "/nonexistent/t.ngram", "generate", "--superpose", "2", "--ngram", "/nonexistent/t.ngram",
                      "--backend", "cpu");
  DECO_TEST_CLI_ERROR(1, "vocab_size", "generate", "--model", mini, "--superpose", "2", "--ngram", table, "--prompt",
                      "Hi", "--backend", "cpu");
  size_t size;
  char *tok = deco_test_read_file(deco_test_data_file("models/tok512.bin"), &size);
  cr_assert_not_null(tok);
  tok[size - 1] ^= 1; /* the last piece's last byte: another tokenizer file */
  char other[4096];
  snprintf(other, sizeof other, "%s/other.bin", deco_test_tmpdir());
  cr_assert_eq(deco_test_write_file(other, tok, size), 0);
  free(tok);
  DECO_TEST_CLI_ERROR(1, "tokenizer", "generate", "--superpose", "2", "--ngram", table, "--tokenizer", other,
                      "--backend", "cpu");
  char *bytes = deco_test_read_file(table, &size);
  char cut[4096];
  snprintf(cut, sizeof cut, "%s/cut.ngram", deco_test_tmpdir());
  cr_assert_eq(deco_test_write_file(cut, bytes, size / 2), 0);
  free(bytes);
  DECO_TEST_CLI_ERROR(1, "cut.ngram", "generate", "--superpose", "2", "--ngram", cut, "--backend", "cpu");
  /* --ngram-alpha 0 ignores the table: not even read. */
  DECO_TEST_RUN_CLI(&r, "generate", "--superpose", "2", "--ngram", cut, "--ngram-alpha", "0", "--steps", "8",
                    "--print-ids", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(deco_test_matches("^(1( [0-9]+){8}\n){2}$", r.out), "%s", r.out);
  deco_test_run_free(&r);
}

/* A GGUF model carries its tokenizer: the table's tokenizer hash is checked
 * against the hash of the GGUF's token list, so a table counted with
 * another tokenizer of the same vocabulary size is refused. */
Test(cli_superpose, a_gguf_model_checks_the_tables_tokenizer_hash) {
  const char *mini = deco_test_model_file(MINI);
  deco_model_hparams_t hp;
  cr_assert_eq(deco_model_read_hparams(mini, &hp), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  deco_ngram_builder_t *b = NULL;
  cr_assert_eq(deco_ngram_builder_create(hp.vocab_size, &b), DECO_STATUS_SUCCESS);
  const int32_t ids[] = {1, 9690, 198, 2683, 359, 253, 5356, 5646};
  cr_assert_eq(deco_ngram_builder_add(b, ids, 8), DECO_STATUS_SUCCESS);
  char path[4096];
  snprintf(path, sizeof path, "%s/other_tokenizer.ngram", deco_test_tmpdir());
  deco_ngram_table_t *t = NULL;
  cr_assert_eq(deco_ngram_builder_finish(b, (size_t)1 << 20, 0x0123456789abcdefull, &t), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  cr_assert_eq(deco_ngram_table_save(t, path), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  deco_ngram_table_destroy(t);
  deco_ngram_builder_destroy(b);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", mini, "--superpose", "2", "--ngram", path, "--steps", "2",
                    "--print-ids", "--backend", "cpu");
  deco_test_cli_error(&r, 1, "tokenizer_hash");
  cr_assert(strstr(r.err, "0123456789abcdef"), "%s", r.err);
  deco_test_run_free(&r);
}

/* deco ngram build on a GGUF model: its text lines encoded by the file's own
 * tokenizer, the table tied to the hash of its token list, which generate
 * --superpose on that model then accepts; --tokenizer with a GGUF model is
 * a conflict (exit 1). */
Test(cli_superpose, ngram_build_on_a_gguf_model) {
  const char *mini = deco_test_model_file(MINI);
  char corpus[4096], table[4096];
  snprintf(corpus, sizeof corpus, "%s/gguf_corpus.txt", deco_test_tmpdir());
  snprintf(table, sizeof table, "%s/gguf.ngram", deco_test_tmpdir());
  const char text[] = "The capital of France is Paris.\nThe capital of Italy is Rome.\n\nParis is in France.\n";
  cr_assert_eq(deco_test_write_file(corpus, text, sizeof text - 1), 0);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--model", mini, "--text", corpus, "--out", table);
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(deco_test_matches("^ngram: corpus_tokens=[1-9][0-9]* .* vocab=49152 tokenizer_hash=0x[0-9a-f]{16}$",
                              deco_test_last_line(r.err)),
            "%s", r.err);
  cr_assert_eq(strstr(deco_test_last_line(r.err), "tokenizer_hash=0x0000000000000000"), NULL, "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "generate", "--model", mini, "--superpose", "2", "--ngram", table, "--prompt",
                    "The capital of", "--steps", "8", "--print-ids", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strstr(deco_test_last_line(r.err), " drafts=2"), "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_CLI_ERROR(1, "carries its own vocabulary", "ngram", "build", "--model", mini, "--tokenizer", corpus,
                      "--text", corpus, "--out", table);
}
