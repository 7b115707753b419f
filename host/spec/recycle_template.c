/* host/spec/recycle_template.c — Token Recycling's static tree templates
 * (Luo et al. 2024; the authors' tree_template_.py lists its 80-node tree as
 * rank paths): the text format of --tree-template (one path per line,
 * comma-separated ranks, breadth first), parsed and validated line by line,
 * then turned into parent/rank arrays with deco_tree_from_rank_paths.
 * Errors name the file and the line (deco_last_error(NULL)).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "core/internal.h"
#include "deco/recycle.h"

#define TMPL_MAX_PATHS (DECO_TREE_MAX_NODES - 1)
/* Far above any k (<= DECO_RECYCLE_MAX_K), low enough that parsing cannot overflow. */
#define TMPL_MAX_RANK 1000000

/* The official template's text, generated from data/fixtures/token_recycling_template_80.txt. */
extern const char deco_recycle_template_default_text[];
extern const size_t deco_recycle_template_default_len;

static const char *tmpl_name(const char *name) { return name ? name : "(template)"; }

/* A character for a message: itself when printable, else its code. */
static const char *show_char(char c, char buf[8]) {
  unsigned char u = (unsigned char)c;
  if (u >= 0x21 && u < 0x7f)
    snprintf(buf, 8, "'%c'", c);
  else
    snprintf(buf, 8, "0x%02x", u);
  return buf;
}

/* The child of node `from` with rank r among nodes [1, n), or -1. */
static int find_child(const int32_t *parent, const int32_t *rank, int n, int from, int32_t r) {
  for (int j = 1; j < n; ++j)
    if (parent[j] == from && rank[j] == r) return j;
  return -1;
}

/* Parses the ranks of one line [p, end) into path; returns its length, or -1
 * after recording an error. */
static int parse_line(const char *p, const char *end, int line_no, const char *nm, int32_t *path) {
  int len = 0;
  const char *q = p;
  char cbuf[8];
  for (;;) {
    const int col = (int)(q - p) + 1;
    if (q < end && *q == '-') {
      DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: line %d, column %d: negative rank (ranks are >= 0)", nm, line_no,
                col);
      return -1;
    }
    if (q == end || *q < '0' || *q > '9') {
      if (q == end)
        DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: line %d, column %d: expected a rank (decimal digits), found the "
                  "end of the line", nm, line_no, col);
      else
        DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: line %d, column %d: expected a rank (decimal digits), found %s",
                  nm, line_no, col, show_char(*q, cbuf));
      return -1;
    }
    long v = 0;
    while (q < end && *q >= '0' && *q <= '9') {
      v = v * 10 + (*q - '0');
      if (v > TMPL_MAX_RANK) {
        DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: line %d, column %d: rank larger than %d", nm, line_no, col,
                  TMPL_MAX_RANK);
        return -1;
      }
      ++q;
    }
    if (len == TMPL_MAX_PATHS) {
      DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: line %d: path of more than %d ranks", nm, line_no, TMPL_MAX_PATHS);
      return -1;
    }
    path[len++] = (int32_t)v;
    if (q == end) return len;
    if (*q != ',') {
      DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: line %d, column %d: expected ',' or the end of the line, found %s",
                nm, line_no, (int)(q - p) + 1, show_char(*q, cbuf));
      return -1;
    }
    ++q;
  }
}

/* A template being read: its paths so far and the tree they make. */
typedef struct tmpl_build {
  const char *nm;
  /* All paths, for deco_tree_from_rank_paths; a breadth-first tree of at
   * most 255 paths has no path longer than 255. */
  int32_t *ranks; /* [TMPL_MAX_PATHS * TMPL_MAX_PATHS] */
  int32_t offsets[TMPL_MAX_PATHS + 1];
  /* The tree so far (node j = path on line j), to find parents and
   * duplicates line by line. */
  int32_t parent[DECO_TREE_MAX_NODES], rank[DECO_TREE_MAX_NODES];
  int n_paths, prev_len, max_rank, max_depth;
} tmpl_build_t;

/* The node of path[0..plen) in the tree so far: *at receives its parent,
 * which must be there already, as the path itself must not. */
static deco_status_t tmpl_find_parent(const tmpl_build_t *b, const int32_t *path, int plen, int line_no, int *at) {
  /* Walk down from the root: every proper prefix must be a node already. */
  const int n = b->n_paths + 1;
  *at = 0;
  for (int d = 0; d + 1 < plen; ++d) {
    *at = find_child(b->parent, b->rank, n, *at, path[d]);
    if (*at < 0)
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                       "%s: line %d: the prefix of length %d of this path is not listed on an earlier line", b->nm,
                       line_no, d + 1);
  }
  const int dup = find_child(b->parent, b->rank, n, *at, path[plen - 1]);
  if (dup >= 0)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: line %d: repeats the path of line %d", b->nm, line_no, dup);
  return DECO_STATUS_SUCCESS;
}

/* The path on line line_no, text [p, end), as the next node. */
static deco_status_t tmpl_add_line(tmpl_build_t *b, const char *p, const char *end, int line_no) {
  if (end == p) return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: line %d: empty line", b->nm, line_no);
  if (b->n_paths == TMPL_MAX_PATHS)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: line %d: more than %d paths (a tree holds at most %d nodes)",
                     b->nm, line_no, TMPL_MAX_PATHS, DECO_TREE_MAX_NODES);
  int32_t *path = b->ranks + b->offsets[b->n_paths];
  const int plen = parse_line(p, end, line_no, b->nm, path);
  if (plen < 0) return DECO_STATUS_BAD_FORMAT;
  if (plen < b->prev_len)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: line %d: path of length %d after one of length %d (paths must be listed breadth first)",
                     b->nm, line_no, plen, b->prev_len);
  int at;
  DECO_TRY(tmpl_find_parent(b, path, plen, line_no, &at));
  const int n = b->n_paths + 1;
  b->parent[n] = at;
  b->rank[n] = path[plen - 1];
  for (int d = 0; d < plen; ++d)
    if (path[d] > b->max_rank) b->max_rank = path[d];
  if (plen > b->max_depth) b->max_depth = plen;
  b->prev_len = plen;
  b->offsets[b->n_paths + 1] = b->offsets[b->n_paths] + plen;
  ++b->n_paths;
  return DECO_STATUS_SUCCESS;
}

/* The finished template, built again by deco_tree_from_rank_paths, which
 * must agree with the line checks. */
static deco_status_t tmpl_finish(const tmpl_build_t *b, deco_tree_template_t *out) {
  deco_tree_template_t t;
  memset(&t, 0, sizeof t);
  t.n_nodes = b->n_paths + 1;
  t.max_rank = b->max_rank;
  t.max_depth = b->max_depth;
  if (deco_tree_from_rank_paths(b->ranks, b->offsets, b->n_paths, t.parent, t.rank) != DECO_STATUS_SUCCESS)
    return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: %s", b->nm, deco_last_error(NULL));
  if (memcmp(t.parent, b->parent, sizeof(int32_t) * (size_t)t.n_nodes) != 0 ||
      memcmp(t.rank, b->rank, sizeof(int32_t) * (size_t)t.n_nodes) != 0)
    return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: inconsistent tree construction", b->nm);
  *out = t;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_tree_template_parse(const char *text, size_t len, const char *name, deco_tree_template_t *out) {
  static const char op[] = "deco_tree_template_parse";
  DECO_CHECK_PTR(NULL, out, op);
  if (text == NULL && len > 0) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: text is NULL", op);
  const char *nm = tmpl_name(name);
  if (len == 0) return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: empty template (no rank paths)", nm);

  tmpl_build_t b = {.nm = nm, .n_paths = 0, .prev_len = 1, .max_rank = 0, .max_depth = 0};
  b.ranks = malloc(sizeof(int32_t) * TMPL_MAX_PATHS * TMPL_MAX_PATHS);
  if (b.ranks == NULL) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", nm);
  b.parent[0] = -1;
  b.rank[0] = -1;
  b.offsets[0] = 0;
  deco_status_t st = DECO_STATUS_SUCCESS;
  const char *p = text, *stop = text + len;
  for (int line_no = 1; p < stop && st == DECO_STATUS_SUCCESS; ++line_no) {
    const char *nl = memchr(p, '\n', (size_t)(stop - p));
    const char *end = nl ? nl : stop;
    if (end > p && end[-1] == '\r') --end;
    st = tmpl_add_line(&b, p, end, line_no);
    p = nl ? nl + 1 : stop;
  }
  if (st == DECO_STATUS_SUCCESS) st = tmpl_finish(&b, out);
  free(b.ranks);
  return st;
}

deco_status_t deco_tree_template_load(const char *path, deco_tree_template_t *out) {
  static const char op[] = "deco_tree_template_load";
  DECO_CHECK_PTR(NULL, path, op);
  DECO_CHECK_PTR(NULL, out, op);
  int fd = -1;
  size_t size = 0;
  DECO_TRY(deco_file_open_regular(NULL, path, &fd, &size));
  /* 255 lines of 255 ranks of up to 7 digits and a comma, CR LF, bound any
   * valid file; a bigger one is refused before it is read. */
  const size_t max_bytes = (size_t)TMPL_MAX_PATHS * (TMPL_MAX_PATHS * 8 + 2);
  if (size > max_bytes) {
    close(fd);
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: %zu bytes, more than any template of at most %d paths (%zu)",
                     path, size, TMPL_MAX_PATHS, max_bytes);
  }
  void *text;
  DECO_TRY(deco_file_read_fd(NULL, path, fd, size, size, &text));
  deco_status_t s = deco_tree_template_parse(text, size, path, out);
  free(text);
  return s;
}

deco_status_t deco_tree_template_default(deco_tree_template_t *out) {
  return deco_tree_template_parse(deco_recycle_template_default_text, deco_recycle_template_default_len,
                                  "built-in template (data/fixtures/token_recycling_template_80.txt)", out);
}

deco_status_t deco_tree_template_check_k(const deco_tree_template_t *t, int k, const char *name) {
  static const char op[] = "deco_tree_template_check_k";
  DECO_CHECK_PTR(NULL, t, op);
  DECO_CHECK_RANGE(NULL, k, 1, DECO_RECYCLE_MAX_K, op);
  DECO_CHECK_RANGE(NULL, t->n_nodes, 1, DECO_TREE_MAX_NODES, op);
  for (int j = 1; j < t->n_nodes; ++j)
    if (t->rank[j] < 0 || t->rank[j] >= k)
      return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                       "%s: line %d: rank %d needs at least %d candidates per token, the table keeps k = %d",
                       tmpl_name(name), j, (int)t->rank[j], (int)t->rank[j] + 1, k);
  return DECO_STATUS_SUCCESS;
}
