/* tests/test_compress_cli.c — `deco compress` (docs/CLI.md): a compressed
 * stories260K written, reported and usable by `deco generate`; the bad
 * inputs the CLI names (KV-head count, too few calibration tokens, an
 * existing --out without --force left untouched, an --out that is not a
 * regular file even with --force, --tokenizer for a GGUF model, a text
 * without a tokenizer, --solver cusolver on the CPU backend, activations
 * that overflow) and its usage errors;
 * no temporary file left behind, also when a signal ends the run; --solver
 * lapack equal to auto on the CPU.
 */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/testutil.h"

static const char *path_in_tmp(const char *name) {
  static char buf[8][512]; /* a test holds up to eight paths at once */
  static int k;
  char *p = buf[k++ & 7];
  snprintf(p, 512, "%s/%s", deco_test_tmpdir(), name);
  return p;
}

/* n pseudo-random ids in 3..511 on lines of 200 (the --print-ids format). */
static const char *write_ids(const char *name, int n, unsigned seed) {
  const char *p = path_in_tmp(name);
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  unsigned s = seed;
  for (int i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    fprintf(f, "%s%u", i % 200 == 0 ? (i ? "\n" : "") : " ", 3 + (s >> 8) % 509);
  }
  fputc('\n', f);
  fclose(f);
  return p;
}

static int count_lines_with(const char *text, const char *what) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what)) n++;
  return n;
}

static int tmp_leftovers(void) {
  DIR *d = opendir(deco_test_tmpdir());
  cr_assert_not_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (strstr(e->d_name, ".tmp.")) n++;
  closedir(d);
  return n;
}

Test(compress_cli, compresses_reports_and_generates) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  const char *ids = write_ids("calib.ids", 2000, 7);
  const char *out = path_in_tmp("s2.bin");
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "svd", "--calib-ids", ids, "--out",
                    out);
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_eq(r.out[0], '\0', "stdout stays empty");
  cr_assert_eq(count_lines_with(r.err, "compress: layer="), 5, "%s", r.err);
  struct stat st;
  const mode_t mask = umask(0);
  umask(mask);
  cr_assert_eq(stat(out, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0666 & ~mask, "mode %o: an ordinary new file's", (unsigned)(st.st_mode & 0777));
  cr_assert(strstr(deco_test_last_line(r.err), "method=svd kv_heads=4->2 calib_tokens=2000") != NULL, "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "generate", "--model", out, "--tokenizer", deco_test_data_file("models/tok512.bin"), "--steps",
                    "40", "--temperature", "0", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_gt(strlen(r.out), 20, "%s", r.out);
  deco_test_run_free(&r);
  /* --calib text with tok512, --calib-tokens, method keep, --force over OUT. */
  const char *text = path_in_tmp("calib.txt");
  FILE *f = fopen(text, "w");
  for (int i = 0; i < 60; ++i) fprintf(f, "Once upon a time, there was a little dog named Sam. He liked to play. ");
  fclose(f);
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "1", "--method", "keep", "--calib", text,
                    "--tokenizer", deco_test_data_file("models/tok512.bin"), "--calib-tokens", "300", "--out", out,
                    "--force");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strstr(deco_test_last_line(r.err), "method=keep kv_heads=4->1 calib_tokens=300") != NULL, "%s", r.err);
  deco_test_run_free(&r);
  deco_model_hparams_t hp;
  cr_assert_eq(deco_model_read_hparams(out, &hp), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(hp.n_kv_heads, 1);
  cr_assert_eq(tmp_leftovers(), 0);
}

Test(compress_cli, bad_input_exit_1) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  const char *ids = write_ids("calib2.ids", 1000, 9);
  const char *out = path_in_tmp("exists.bin");
  cr_assert_eq(deco_test_write_file(out, "keep me", 7), 0);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "svd", "--calib-ids", ids, "--out",
                    out);
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strstr(r.err, "exists (give --force") != NULL, "%s", r.err);
  deco_test_run_free(&r);
  size_t n = 0;
  char *kept = deco_test_read_file(out, &n);
  cr_assert(kept && n == 7 && memcmp(kept, "keep me", 7) == 0, "OUT untouched");
  free(kept);
  const char *fresh = path_in_tmp("fresh.bin");
  const char *cases[][3] = {{"3", "1000", "--kv-heads 3 must divide the model's 4 KV heads"},
                            {"4", "1000", "--kv-heads 4 must divide the model's 4 KV heads and be smaller"},
                            {"2", "100", "100 calibration tokens are too few"}};
  for (int i = 0; i < 3; ++i) {
    DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", cases[i][0], "--method", "mean", "--calib-ids",
                      ids, "--calib-tokens", cases[i][1], "--out", fresh);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, cases[i][2]) != NULL, "case %d: %s", i, r.err);
    deco_test_run_free(&r);
  }
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "mean", "--calib-ids", ids,
                    "--calib-tokens", "100", "--out", fresh);
  cr_assert(strstr(r.err, "needs at least 256") != NULL, "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "svd", "--calib", ids, "--out",
                    fresh);
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strstr(r.err, "--calib needs --tokenizer") != NULL, "%s", r.err);
  deco_test_run_free(&r);
  /* cuSOLVER on the CPU backend: refused (not a CUDA context, or no CUDA in this build). */
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "svd", "--calib-ids", ids,
                    "--out", fresh, "--backend", "cpu", "--solver", "cusolver");
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strstr(r.err, "compress: solver cusolver") != NULL, "%s", r.err);
  deco_test_run_free(&r);
  FILE *f = fopen(fresh, "rb");
  cr_assert_null(f, "no output after a failure");
  cr_assert_eq(tmp_leftovers(), 0);
}

/* --force replaces a regular file only: a FIFO or a folder as OUT is exit 1
 * before anything is calibrated, and stays as it was. A GGUF model refuses
 * --tokenizer with --calib-ids as with --calib. */
Test(compress_cli, out_must_be_a_regular_file_and_gguf_takes_no_tokenizer) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  const char *ids = write_ids("calib4.ids", 1000, 17), *fifo = path_in_tmp("out.fifo"), *dir = path_in_tmp("out.dir");
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  cr_assert_eq(mkdir(dir, 0700), 0);
  const char *outs[2] = {fifo, dir};
  for (int i = 0; i < 2; ++i) {
    char want[600];
    snprintf(want, sizeof want, "deco: error: cannot write %s: not a regular file\n", outs[i]);
    deco_test_run_t r;
    DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "mean", "--calib-ids", ids,
                      "--out", outs[i], "--force", "--backend", "cpu");
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_str_eq(r.err, want);
    deco_test_run_free(&r);
  }
  struct stat st;
  cr_assert(stat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO is left as it was");
  cr_assert(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "the folder is left as it was");
  cr_assert_eq(tmp_leftovers(), 0);
  const char *mini = deco_test_model_file("SmolLM2-135M-mini.gguf");
  char want[600];
  snprintf(want, sizeof want, "deco: error: --tokenizer: %s is a GGUF file and carries its own vocabulary\n", mini);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "compress", "--model", mini, "--kv-heads", "1", "--method", "keep", "--calib-ids", ids,
                    "--tokenizer", deco_test_data_file("models/tok512.bin"), "--out", path_in_tmp("mini1.gguf"),
                    "--backend", "cpu");
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert_str_eq(r.err, want);
  deco_test_run_free(&r);
}

/* Activations that overflow (stories260K's weights scaled by 1e18) give
 * Grams with infinities: named with the layer, not as the eigensolver's
 * error code. */
Test(compress_cli, overflowing_activations_are_named) {
  size_t n = 0;
  unsigned char *bytes = deco_test_read_file(deco_test_data_file("models/stories260K.bin"), &n);
  cr_assert(bytes && n > 28);
  for (size_t off = 28; off + 4 <= n; off += 4) { /* the weights after the 7-int header */
    float w;
    memcpy(&w, bytes + off, 4);
    w *= 1e18f;
    memcpy(bytes + off, &w, 4);
  }
  const char *big = path_in_tmp("big.bin"), *ids = write_ids("calib5.ids", 1000, 19);
  cr_assert_eq(deco_test_write_file(big, bytes, n), 0);
  free(bytes);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "compress", "--model", big, "--kv-heads", "2", "--method", "svd", "--calib-ids", ids, "--out",
                    path_in_tmp("big2.bin"), "--backend", "cpu");
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strstr(r.err, "calibration K/V second moments are not finite"), "%s", r.err);
  deco_test_run_free(&r);
  cr_assert_eq(tmp_leftovers(), 0);
}

/* A run ended by a signal while it calibrates removes its temporary file,
 * writes no OUT and dies of the signal (128 + 15 to a shell). */
Test(compress_cli, a_signal_leaves_no_temporary_file, .timeout = 120) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  const char *ids = write_ids("calib_sig.ids", 20000, 13);
  const char *out = path_in_tmp("sig.bin"), *err = path_in_tmp("sig.err");
  const char *argv[] = {"compress", "--model", model, "--kv-heads", "2", "--method", "svd", "--calib-ids", ids,
                        "--out", out, "--backend", "cpu", "--threads", "1", NULL};
  const pid_t pid = deco_test_start_cli(argv, err);
  cr_assert(pid > 0, "cannot run deco: %s", strerror(errno));
  /* The first progress line comes after the temporary file is made. */
  int calibrating = 0, exited = 0, wstatus = 0;
  for (int tries = 0; tries < 20000 && !calibrating && !exited; ++tries) {
    size_t size;
    char *text = deco_test_read_file(err, &size);
    calibrating = text && strstr(text, "compress: calibrated") != NULL;
    free(text);
    exited = waitpid(pid, &wstatus, WNOHANG) == pid;
    if (!calibrating && !exited) usleep(5000);
  }
  cr_assert(calibrating && !exited, "deco compress ended (status %d) or never calibrated", wstatus);
  cr_assert_eq(tmp_leftovers(), 1, "the run has no temporary file to remove");
  cr_assert_eq(kill(pid, SIGTERM), 0);
  cr_assert_eq(waitpid(pid, &wstatus, 0), pid);
  cr_assert(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGTERM, "wait status %d", wstatus);
  cr_assert_eq(tmp_leftovers(), 0, "a temporary file was left behind");
  struct stat st;
  cr_assert_neq(stat(out, &st), 0, "%s was written", out);
}

#if DECO_TEST_HAVE_LAPACKE
/* --solver lapack on the CPU backend is what auto chooses there: the same
 * file, byte for byte, and the same report. */
Test(compress_cli, solver_lapack_is_auto_on_cpu) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  const char *ids = write_ids("calib3.ids", 600, 11);
  const char *a = path_in_tmp("auto.bin"), *b = path_in_tmp("lapack.bin");
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "svd", "--calib-ids", ids,
                    "--out", a, "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  char *err_auto = strdup(r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "svd", "--calib-ids", ids,
                    "--out", b, "--backend", "cpu", "--solver", "lapack");
  cr_assert_eq(r.status, 0, "%s", r.err);
  /* the reports differ only in out= */
  cr_assert_eq(strncmp(err_auto, r.err, (size_t)(strstr(err_auto, "out=") - err_auto)), 0, "%s\nvs\n%s", err_auto,
               r.err);
  deco_test_run_free(&r);
  free(err_auto);
  deco_test_expect_same_file("--solver lapack and auto differ on the CPU", a, b);
}
#endif

Test(compress_cli, usage_errors_exit_2) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "compress", "--help");
  cr_assert_eq(r.status, 0);
  cr_assert(strstr(r.out, "usage: deco compress") != NULL, "%s", r.out);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "svd", "--out", "x.bin");
  cr_assert_eq(r.status, 2, "%s", r.err);
  cr_assert(strstr(r.err, "exactly one of --calib FILE and --calib-ids FILE") != NULL, "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "pca", "--calib-ids", "a",
                    "--out", "x.bin");
  cr_assert_eq(r.status, 2, "%s", r.err);
  cr_assert(strstr(r.err, "--method: 'pca' is not svd, mean or keep") != NULL, "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "0", "--method", "svd", "--calib-ids", "a", "--out",
                    "x.bin");
  cr_assert_eq(r.status, 2, "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "svd", "--calib-ids", "a",
                    "--out", "x.bin", "--solver", "magma");
  cr_assert_eq(r.status, 2, "%s", r.err);
  cr_assert(strstr(r.err, "--solver: 'magma' is not auto, lapack or cusolver") != NULL, "%s", r.err);
  deco_test_run_free(&r);
}

/* Every option that takes a setting: a bad value, a missing value, and an
 * unknown option or one spelled with '=', each refused with exit 2 and its
 * message. */
Test(compress_cli, every_setting_refuses_a_bad_value) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  static const char *const cases[][3] = {
      {"--kv-heads", "x", "deco: error: --kv-heads: 'x' is not an integer in [1, 4096]"},
      {"--method", "pca", "deco: error: --method: 'pca' is not svd, mean or keep"},
      {"--calib-tokens", "0", "deco: error: --calib-tokens: '0' is not an integer in [1, 1099511627776]"},
      {"--backend", "gpu", "deco: error: --backend: 'gpu' is not cpu or cuda"},
      {"--threads", "1025", "deco: error: --threads: '1025' is not an integer in [1, 1024]"},
      {"--solver", "magma", "deco: error: --solver: 'magma' is not auto, lapack or cusolver"},
      {"--kv-heads", NULL, "deco: error: --kv-heads needs a value"},
      {"--method", NULL, "deco: error: --method needs a value"},
      {"--calib-tokens", NULL, "deco: error: --calib-tokens needs a value"},
      {"--backend", NULL, "deco: error: --backend needs a value"},
      {"--threads", NULL, "deco: error: --threads needs a value"},
      {"--solver", NULL, "deco: error: --solver needs a value"},
      {"--out", NULL, "deco: error: --out needs a value"},
      {"--bogus", "1", "deco: error: compress: unknown option '--bogus' (see deco compress --help)"},
      {"--threads=2", NULL, "deco: error: compress: unknown option '--threads=2' (see deco compress --help)"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    deco_test_run_t r;
    /* A case without a value ends the list at cases[i][1] (NULL). */
    const char *argv[] = {"compress", "--model", model, "--kv-heads", "2",         "--method",  "svd",
                          "--calib-ids", "a",     "--out", "x.bin",    cases[i][0], cases[i][1], NULL};
    cr_assert_eq(deco_test_run_cli(argv, &r), 0, "cannot run deco");
    cr_assert_eq(r.status, 2, "%s: %s", cases[i][0], r.err);
    cr_assert_str_eq(r.out, "", "%s", cases[i][0]);
    char want[160];
    snprintf(want, sizeof want, "%s\n", cases[i][2]);
    cr_assert_str_eq(r.err, want, "%s", cases[i][0]);
    deco_test_run_free(&r);
  }
}

/* The refusals around the compression itself: an unreadable model, an
 * unreadable calibration file, an OUT whose directory is missing (the
 * temporary file next to it cannot be made). Each exits 1 with its
 * message and leaves nothing behind. */
Test(compress_cli, unreadable_inputs_and_unwritable_out_exit_1) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  const char *ids = write_ids("calib3.ids", 1000, 11), *none = path_in_tmp("none.bin"),
             *none_ids = path_in_tmp("none.ids"), *nodir = path_in_tmp("no-such-dir/out.bin"),
             *o1 = path_in_tmp("o1.bin"), *o2 = path_in_tmp("o2.bin");
  char want[3][600];
  snprintf(want[0], sizeof want[0], "deco: error: cannot open %s: No such file or directory\n", none);
  snprintf(want[1], sizeof want[1], "deco: error: cannot open %s: No such file or directory\n", none_ids);
  snprintf(want[2], sizeof want[2], "deco: error: cannot write %s: No such file or directory\n", nodir);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "compress", "--model", none, "--kv-heads", "2", "--method", "mean", "--calib-ids", ids, "--out",
                    o1);
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert_str_eq(r.err, want[0]);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "mean", "--calib-ids", none_ids,
                    "--out", o2);
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert_str_eq(r.err, want[1]);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "compress", "--model", model, "--kv-heads", "2", "--method", "mean", "--calib-ids", ids,
                    "--out", nodir, "--backend", "cpu");
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert_str_eq(r.err, want[2]);
  deco_test_run_free(&r);
  cr_assert_eq(tmp_leftovers(), 0);
}
