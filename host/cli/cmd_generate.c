/* host/cli/cmd_generate.c — the `deco generate` command: resolve the
 * backend, check the model file, the tokenizer and the values that depend
 * on the model (in docs/CLI.md's order), then decode (cli/runs.c) — plain
 * or speculative — printing ids or run.c's text and the stats line.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/default_model.h"
#include "cli/runs.h"

/* Prints ids or text as they are produced. The first failed write is
 * remembered (errno) and nothing more is written: EPIPE means the reader
 * went away, anything else is an error the run reports (docs/CLI.md). */
typedef struct printer {
  const deco_cli_options_t *o;
  const deco_tokenizer_t *tok;
  int32_t prev;
  int count;
  int write_errno; /* 0 while every write succeeded */
} printer_t;

static void put(printer_t *p, const char *buf, size_t len, int flush) {
  if (p->write_errno) return;
  errno = 0;
  if ((len && fwrite(buf, 1, len, stdout) != len) || (flush && fflush(stdout) != 0))
    p->write_errno = errno ? errno : EIO;
}

static void print_id(void *user, int32_t id) {
  printer_t *p = user;
  if (p->o->print_ids) {
    char buf[16];
    int n = snprintf(buf, sizeof buf, p->count ? " %d" : "%d", id);
    put(p, buf, (size_t)n, 0);
  } else if (p->count) {
    size_t len;
    const char *piece = deco_tokenizer_decode(p->tok, p->prev, id, &len);
    put(p, piece, len, 1);
  }
  p->prev = id;
  p->count++;
}

/* The final newline, flushed: a write error that only shows there (a full
 * disk, a closed descriptor) is still caught. main() closes stdout. */
static void finish_output(printer_t *p) { put(p, "\n", 1, 1); }

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* A value of the stats line: spaces become '_', and every byte outside
 * printable ASCII '?', so a file name cannot break or forge the line. */
static void stats_value(char *s) {
  for (; *s; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == ' ') *s = '_';
    else if (c < 0x21 || c > 0x7e) *s = '?';
  }
}

/* --recycle-state is saved at the end (a temporary file beside it, then a
 * rename): refuse a location that cannot take it before generating. */
static int check_state_path(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    deco_cli_error("--recycle-state: %s is not a regular file", path);
    return -1;
  }
  char *copy = strdup(path);
  if (!copy) {
    deco_cli_error("out of memory");
    return -1;
  }
  const char *dir = dirname(copy);
  int ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && access(dir, W_OK | X_OK) == 0;
  if (!ok) deco_cli_error("--recycle-state: cannot create a file in %s: %s", dir, strerror(errno ? errno : ENOTDIR));
  free(copy);
  return ok ? 0 : -1;
}

static void print_stats(const deco_cli_options_t *o, const deco_cli_run_result_t *gen, deco_backend_t backend,
                        deco_dtype_t dtype, const char *model_label, int tp) {
  double tok_per_s = gen->seconds > 0.0 ? gen->tokens / gen->seconds : 0.0;
  fprintf(stderr, "stats: tokens=%d seconds=%.3f tok_per_s=%.2f backend=%s dtype=%s model=%s", gen->tokens,
          gen->seconds, tok_per_s, deco_backend_name(backend), deco_dtype_name(dtype), model_label);
  if (o->spec != DECO_CLI_SPEC_NONE)
    fprintf(stderr, " forwards=%d mean_accepted=%.2f", gen->forwards,
            gen->forwards ? (double)gen->tokens / gen->forwards : 0.0);
  if (o->compare_ar) fprintf(stderr, " speedup=%.2f", gen->speedup);
  if (tp > 0) fprintf(stderr, " tp=%d", tp);
  fputc('\n', stderr);
}

/* The model the options name: the built-in stories260K, a checkpoint (a
 * llama2.c file or a GGUF file), or a synthetic shape — its header read
 * (checked against the file), its label for the stats line. Returns an
 * exit status (0 to go on). */
typedef struct model_source {
  int builtin;
  const void *builtin_data;
  size_t builtin_bytes;
  deco_model_hparams_t hp;
  char label[512];
} model_source_t;

static int read_model_header(const deco_cli_options_t *o, model_source_t *ms) {
  ms->builtin = !o->model_path && !o->synthetic;
  if (ms->builtin) {
    ms->builtin_data = deco_default_model(&ms->builtin_bytes);
    if (deco_llama2c_read_hparams_buffer(ms->builtin_data, ms->builtin_bytes, DECO_DEFAULT_MODEL_NAME, &ms->hp) !=
        DECO_STATUS_SUCCESS) {
      deco_cli_error("%s", deco_last_error(NULL));
      return DECO_EXIT_BAD_INPUT;
    }
    snprintf(ms->label, sizeof ms->label, "%s", DECO_DEFAULT_MODEL_NAME);
  } else if (o->model_path) {
    /* A llama2.c checkpoint or a GGUF file, told apart by the magic. */
    if (deco_model_read_hparams(o->model_path, &ms->hp) != DECO_STATUS_SUCCESS) {
      deco_cli_error("%s", deco_last_error(NULL));
      return DECO_EXIT_BAD_INPUT;
    }
    snprintf(ms->label, sizeof ms->label, "%s", base_name(o->model_path));
  } else {
    if (deco_synthetic_hparams(o->synthetic, &ms->hp) != DECO_STATUS_SUCCESS) {
      deco_cli_error("--synthetic: %s", deco_last_error(NULL));
      return DECO_EXIT_USAGE;
    }
    snprintf(ms->label, sizeof ms->label, "synthetic:%s", o->synthetic);
  }
  stats_value(ms->label);
  return DECO_EXIT_OK;
}

/* The tokenizer file, when text goes in or out and one is given or built
 * in; 0 or an exit status. */
static int load_tokenizer(const deco_cli_options_t *o, const model_source_t *ms, int need, deco_tokenizer_t **tok) {
  *tok = NULL;
  if (!need) return DECO_EXIT_OK;
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (o->tokenizer_path) {
    st = deco_tokenizer_load(o->tokenizer_path, ms->hp.vocab_size, tok);
  } else if (ms->builtin) {
    size_t n;
    const void *data = deco_default_tokenizer(&n);
    st = deco_tokenizer_load_buffer(data, n, DECO_DEFAULT_TOKENIZER_NAME, ms->hp.vocab_size, tok);
  }
  if (st != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  return DECO_EXIT_OK;
}

/* Values that conflict with the model: ids >= vocab, steps > seq_len, text
 * with no tokenizer and no built-in vocabulary (then the byte vocabulary
 * of the synthetic models); 0 or -1. */
static int check_against_model(const deco_cli_options_t *o, const model_source_t *ms, int need_tokenizer,
                               deco_tokenizer_t **tok) {
  for (int i = 0; o->prompt_ids && i < o->n_prompt_ids; ++i)
    if (o->prompt_ids[i] >= ms->hp.vocab_size) {
      deco_cli_error("--prompt-ids: id %d >= vocab %d", o->prompt_ids[i], ms->hp.vocab_size);
      return -1;
    }
  if (o->steps > ms->hp.seq_len) {
    deco_cli_error("--steps: %d > seq_len %d of %s", o->steps, ms->hp.seq_len, ms->label);
    return -1;
  }
  if (need_tokenizer && !*tok) {
    if (!ms->hp.builtin_vocab) {
      deco_cli_error("%s needs --tokenizer: %s has no built-in vocabulary (or use --print-ids with --prompt-ids)",
                     o->prompt ? "--prompt" : "printing text", ms->label);
      return -1;
    }
    if (deco_tokenizer_create_bytes(tok) != DECO_STATUS_SUCCESS) {
      deco_cli_error("%s", deco_last_error(NULL));
      return -1;
    }
  }
  return 0;
}

/* The prompt's ids: --prompt-ids as given, --prompt encoded, or the
 * model's BOS alone (malloc'd); 0 or -1 (also for a model without BOS and
 * no prompt). */
static int build_prompt(const deco_cli_options_t *o, const model_source_t *ms, const deco_tokenizer_t *tok,
                        int32_t **prompt, int *n_prompt) {
  int cap = o->prompt_ids ? o->n_prompt_ids : o->prompt ? (int)strlen(o->prompt) + 3 : 1;
  *prompt = malloc(sizeof(int32_t) * (size_t)cap);
  if (!*prompt) {
    deco_cli_error("out of memory");
    return -1;
  }
  if (o->prompt_ids) {
    *n_prompt = o->n_prompt_ids;
    memcpy(*prompt, o->prompt_ids, sizeof(int32_t) * (size_t)*n_prompt);
  } else if (o->prompt) {
    if (deco_tokenizer_encode(tok, o->prompt, 1, 0, *prompt, cap, n_prompt) != DECO_STATUS_SUCCESS) {
      deco_cli_error("--prompt: %s", deco_last_error(NULL));
      return -1;
    }
  } else {
    /* No prompt: the model's BOS alone. A GGUF file may name none (then
     * there is nothing to start from). */
    if (ms->hp.bos_id < 0) {
      deco_cli_error("no prompt: %s names no BOS id (tokenizer.ggml.bos_token_id) to start from; give --prompt-ids",
                     ms->label);
      return -1;
    }
    *n_prompt = 1;
    (*prompt)[0] = ms->hp.bos_id;
  }
  return 0;
}

/* The context and the full model load; 0 or -1. */
static int load_model(const deco_cli_options_t *o, const model_source_t *ms, deco_backend_t backend,
                      deco_dtype_t dtype, deco_comm_t *comm, int device, deco_ctx_t **ctx, deco_model_t **model) {
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.backend = backend;
  cc.device = device; /* NCCL ranks: each its own GPU */
  /* Ranks that share the cores run one thread per op unless told. */
  if (comm && deco_comm_backend(comm) == DECO_COMM_THREADS && deco_comm_size(comm) > 1)
    cc.n_threads = o->threads ? o->threads : 1;
  if (deco_ctx_create(&cc, ctx) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--backend %s: %s", deco_backend_name(backend), deco_last_error(NULL));
    return -1;
  }
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.dtype = dtype;
  mc.comm = comm;
  mc.tp_rank = deco_comm_rank(comm);
  mc.tp_size = deco_comm_size(comm);
  deco_status_t st =
      ms->builtin ? deco_model_load_llama2c_buffer(*ctx, ms->builtin_data, ms->builtin_bytes, DECO_DEFAULT_MODEL_NAME,
                                                   &mc, model)
      : o->model_path ? deco_model_load(*ctx, o->model_path, &mc, model)
                      : deco_model_create_synthetic(*ctx, o->synthetic, DECO_SYNTHETIC_SEED, &mc, model);
  if (st != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(*ctx));
    return -1;
  }
  return 0;
}

/* Decodes, prints, and ends the output; 0 or -1. */
static int generate_and_print(const deco_cli_options_t *o, deco_model_t *model, const deco_tokenizer_t *tok,
                              const int32_t *prompt, int n_prompt, deco_backend_t backend, deco_dtype_t dtype,
                              const char *label, deco_comm_t *comm) {
  printer_t pr = {.o = o, .tok = tok, .prev = 0, .count = 0, .write_errno = 0};
  if (deco_comm_rank(comm) != 0) {
    /* Every rank reaches the same ids; rank 0 prints them. */
    deco_cli_run_result_t gen = {0};
    deco_cli_run_input_t in = {.o = o, .prompt = prompt, .n_prompt = n_prompt, .emit = NULL, .user = NULL};
    return deco_cli_run(model, &in, &gen) != 0 ? -1 : 0;
  }
  deco_cli_run_result_t gen = {0};
  deco_cli_run_input_t in = {.o = o, .prompt = prompt, .n_prompt = n_prompt, .emit = print_id, .user = &pr};
  if (deco_cli_run(model, &in, &gen) != 0) return -1;
  finish_output(&pr);
  if (pr.write_errno && pr.write_errno != EPIPE) {
    deco_cli_error("stdout: %s", strerror(pr.write_errno));
    return -1;
  }
  print_stats(o, &gen, backend, dtype, label, comm ? deco_comm_size(comm) : 0);
  return 0;
}

/* Every rank must run the same model with the same options: a 64-bit hash
 * of the architecture, the file's size and every option that changes the
 * ids, all-gathered before anything is loaded (deco_comm_check_same). */
static uint64_t config_hash(const deco_cli_options_t *o, const model_source_t *ms, deco_backend_t backend,
                            deco_dtype_t dtype, const int32_t *prompt, int n_prompt) {
  uint64_t h = DECO_COMM_HASH_INIT;
  const deco_model_hparams_t *hp = &ms->hp;
  const int arch[] = {hp->dim, hp->hidden_dim, hp->n_layers, hp->n_heads, hp->n_kv_heads, hp->head_dim,
                      hp->vocab_size, hp->seq_len, hp->shared_classifier, (int)hp->rope_style};
  h = deco_comm_hash(h, arch, sizeof arch);
  struct stat sb;
  const long long file_bytes = o->model_path && stat(o->model_path, &sb) == 0 ? (long long)sb.st_size
                               : ms->builtin                                 ? (long long)ms->builtin_bytes
                                                                             : -1;
  h = deco_comm_hash(h, &file_bytes, sizeof file_bytes);
  const int opts[] = {o->steps, o->ignore_eos, (int)o->spec, o->draft_len, o->tree_nodes, o->recycle_k,
                      (int)backend, (int)dtype, n_prompt};
  h = deco_comm_hash(h, opts, sizeof opts);
  const float fl[] = {o->temperature, o->top_p};
  h = deco_comm_hash(h, fl, sizeof fl);
  h = deco_comm_hash(h, &o->seed, sizeof o->seed);
  return deco_comm_hash(h, prompt, sizeof(int32_t) * (size_t)n_prompt);
}

/* One rank's run (comm NULL: the ordinary single-process run). */
static int generate_rank(const deco_cli_options_t *o, deco_backend_t backend, deco_dtype_t dtype, deco_comm_t *comm,
                         int device) {
  /* 1. The model file (or the synthetic name, or the built-in model). */
  model_source_t ms;
  int rc = read_model_header(o, &ms);
  if (rc != DECO_EXIT_OK) return rc;
  /* 2. The tokenizer file, when text goes in or out. */
  const int need_tokenizer = o->prompt != NULL || !o->print_ids;
  deco_tokenizer_t *tok = NULL;
  rc = load_tokenizer(o, &ms, need_tokenizer, &tok);
  if (rc != DECO_EXIT_OK) return rc;
  /* 3. Where the recycling state will be saved; then values that conflict
   * with the model; (tensor parallelism: every rank agrees on all of it);
   * 4. load; 5. generate. */
  rc = DECO_EXIT_BAD_INPUT;
  int32_t *prompt = NULL;
  int n_prompt = 0;
  deco_ctx_t *ctx = NULL;
  deco_model_t *model = NULL;
  if ((!o->recycle_state || check_state_path(o->recycle_state) == 0) &&
      check_against_model(o, &ms, need_tokenizer, &tok) == 0 && build_prompt(o, &ms, tok, &prompt, &n_prompt) == 0) {
    deco_status_t st = comm ? deco_comm_check_same(comm, NULL, config_hash(o, &ms, backend, dtype, prompt, n_prompt),
                                                   "configuration hash (model, file size, options)")
                            : DECO_STATUS_SUCCESS;
    if (st != DECO_STATUS_SUCCESS) deco_cli_error("%s", deco_last_error(NULL));
    else if (load_model(o, &ms, backend, dtype, comm, device, &ctx, &model) == 0 &&
             generate_and_print(o, model, tok, prompt, n_prompt, backend, dtype, ms.label, comm) == 0)
      rc = DECO_EXIT_OK;
  }
  deco_model_destroy(model);
  deco_ctx_destroy(ctx);
  deco_tokenizer_destroy(tok);
  free(prompt);
  return rc;
}

/* ---- Tensor parallelism: --tp N, --comm threads|mpi ---- */

typedef struct rank_job {
  const deco_cli_options_t *o;
  deco_backend_t backend;
  deco_dtype_t dtype;
  deco_comm_t *comm;
  int device;
  int rc;
  char msg[1024];
} rank_job_t;

/* A failure caused by another rank's abort, not this rank's own. */
static int is_abort_echo(const char *msg) { return strstr(msg, "communicator was aborted") != NULL; }

/* One rank of the threads communicator: quiet; a failure aborts the others. */
static void *rank_thread(void *p) {
  rank_job_t *j = p;
  deco_cli_quiet = 1;
  deco_cli_last_error[0] = '\0';
  j->rc = generate_rank(j->o, j->backend, j->dtype, j->comm, j->device);
  snprintf(j->msg, sizeof j->msg, "%s", deco_cli_last_error);
  if (j->rc != DECO_EXIT_OK) deco_comm_abort(j->comm);
  return NULL;
}

/* tp ranks as threads of this process: over the threads communicator on
 * the CPU, or over NCCL with GPU r for rank r (ncclCommInitAll). The exit
 * status and the one message printed are those of the lowest rank that
 * failed on its own (the others only saw its abort). */
static int generate_threads(const deco_cli_options_t *o, deco_backend_t backend, deco_dtype_t dtype, int tp,
                            deco_comm_backend_t kind) {
  deco_comm_t *comms[DECO_COMM_MAX_RANKS];
  const deco_status_t cst = kind == DECO_COMM_NCCL ? deco_comm_nccl_create_all(tp, NULL, comms)
                                                   : deco_comm_threads_create(tp, comms);
  if (cst != DECO_STATUS_SUCCESS) {
    deco_cli_error("--tp %d --comm %s: %s", tp, deco_comm_backend_name(kind), deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  rank_job_t *jobs = calloc((size_t)tp, sizeof *jobs);
  pthread_t th[DECO_COMM_MAX_RANKS];
  int started = 0;
  for (int r = 0; jobs && r < tp; ++r) {
    jobs[r] = (rank_job_t){.o = o, .backend = backend, .dtype = dtype, .comm = comms[r],
                           .device = kind == DECO_COMM_NCCL ? r : 0, .rc = DECO_EXIT_BAD_INPUT};
    if (pthread_create(&th[r], NULL, rank_thread, &jobs[r]) != 0) {
      deco_comm_abort(comms[0]);
      break;
    }
    ++started;
  }
  for (int r = 0; r < started; ++r) pthread_join(th[r], NULL);
  int rc = DECO_EXIT_OK, chosen = -1;
  for (int r = 0; jobs && r < started && rc == DECO_EXIT_OK; ++r)
    if (jobs[r].rc != DECO_EXIT_OK && !is_abort_echo(jobs[r].msg)) chosen = r, rc = jobs[r].rc;
  for (int r = 0; jobs && r < started && rc == DECO_EXIT_OK; ++r)
    if (jobs[r].rc != DECO_EXIT_OK) chosen = r, rc = jobs[r].rc;
  if (!jobs || started < tp) {
    deco_cli_error("--tp %d: cannot start the rank threads", tp);
    rc = DECO_EXIT_BAD_INPUT;
  } else if (chosen == 0) {
    deco_cli_error("%s", jobs[0].msg);
  } else if (chosen > 0) {
    deco_cli_error("rank %d: %s", chosen, jobs[chosen].msg);
  }
  for (int r = 0; r < tp; ++r) deco_comm_destroy(comms[r]);
  free(jobs);
  return rc;
}

/* One rank per process under a launcher (mpirun, srun): the communicator
 * from the environment (MPI on the CPU; NCCL on the GPU of the launcher's
 * local rank); rank 0 prints, the others print only failures of their own,
 * naming their rank. */
static int generate_launched(const deco_cli_options_t *o, deco_backend_t backend, deco_dtype_t dtype,
                             deco_comm_backend_t kind, int device) {
  deco_comm_t *comm = NULL;
  const deco_status_t cst = kind == DECO_COMM_NCCL ? deco_comm_nccl_create(NULL, &comm) : deco_comm_mpi_create(&comm);
  if (cst != DECO_STATUS_SUCCESS) {
    deco_cli_error("--comm %s: %s", deco_comm_backend_name(kind), deco_last_error(NULL));
    return kind == DECO_COMM_NCCL ? DECO_EXIT_BAD_INPUT : DECO_EXIT_USAGE;
  }
  const int rank = deco_comm_rank(comm), size = deco_comm_size(comm);
  if (o->tp && o->tp != size) {
    deco_cli_error("--tp %d: the launcher started %d ranks", o->tp, size);
    deco_comm_destroy(comm);
    return DECO_EXIT_USAGE;
  }
  deco_cli_quiet = rank != 0;
  int rc = generate_rank(o, backend, dtype, comm, device);
  deco_cli_quiet = 0;
  if (rc != DECO_EXIT_OK && rank != 0 && !is_abort_echo(deco_cli_last_error))
    fprintf(stderr, "deco: error: rank %d: %s\n", rank, deco_cli_last_error);
  /* A failing rank must not leave the others in a collective. */
  if (rc != DECO_EXIT_OK) deco_comm_abort(comm);
  deco_comm_destroy(comm);
  return rc;
}

int deco_cli_generate(const deco_cli_options_t *o) {
  deco_comm_env_t env;
  const int launched = deco_comm_env_read(&env) > 0 && env.size > 1;
  /* Under a launcher the communicator is MPI's unless told; otherwise
   * --tp N runs N threads. */
  const deco_comm_backend_t comm = o->comm_set ? o->comm : launched ? DECO_COMM_MPI : DECO_COMM_THREADS;
  const int tp_run = o->tp > 0 || o->comm_set || launched;
  if (tp_run && comm == DECO_COMM_MPI && !launched) {
    deco_cli_error("--comm mpi needs a launcher (mpirun, srun): none of OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE, "
                   "SLURM_PROCID/NTASKS or RANK/WORLD_SIZE describes more than one rank");
    return DECO_EXIT_USAGE;
  }
  if (launched && comm == DECO_COMM_THREADS) {
    deco_cli_error("--comm threads: under a launcher every process is a rank (use --comm mpi or nccl)");
    return DECO_EXIT_USAGE;
  }
  if (tp_run && comm == DECO_COMM_NCCL && !deco_comm_backend_available(DECO_COMM_NCCL)) {
    deco_cli_error("--comm nccl: this deco was built without NCCL (a CUDA build finds it beside the toolkit)");
    return DECO_EXIT_USAGE;
  }
  if (tp_run && o->recycle_state) {
    deco_cli_error("--recycle-state: not with tensor parallelism (every rank holds the same table)");
    return DECO_EXIT_USAGE;
  }
  /* The host communicators carry host buffers: their ranks run on the CPU;
   * NCCL's run on GPUs. */
  const deco_backend_t tp_backend = comm == DECO_COMM_NCCL ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU;
  deco_backend_t backend = o->backend_set ? o->backend
                           : tp_run       ? tp_backend
                                          : (deco_cuda_device_count() > 0 ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU);
  if (tp_run && backend != tp_backend) {
    deco_cli_error("--comm %s: its ranks run on the %s backend (use --backend %s)", deco_comm_backend_name(comm),
                   deco_backend_name(tp_backend), deco_backend_name(tp_backend));
    return DECO_EXIT_USAGE;
  }
  deco_dtype_t dtype = o->dtype_set ? o->dtype : (backend == DECO_BACKEND_CUDA ? DECO_DTYPE_BF16 : DECO_DTYPE_F32);
  if (backend == DECO_BACKEND_CPU && dtype != DECO_DTYPE_F32) {
    deco_cli_error("--dtype: %s is not supported by the cpu backend (use f32)", deco_dtype_name(dtype));
    return DECO_EXIT_USAGE;
  }
  if (!tp_run) return generate_rank(o, backend, dtype, NULL, 0);
  if (launched) return generate_launched(o, backend, dtype, comm, env.local_rank);
  return generate_threads(o, backend, dtype, o->tp > 0 ? o->tp : 1, comm);
}
