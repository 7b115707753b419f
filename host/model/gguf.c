/* host/model/gguf.c — validation of a GGUF file (ggml's format, versions 2
 * and 3) held in memory: a cursor reads the header, the metadata and the
 * tensor table field by field, checking every length against the limits
 * and the bytes left before reading; tensor sizes come from the ggml block
 * table in 64-bit arithmetic; then the Llama configuration is derived and
 * every tensor's shape and type checked against it (gguf.h).
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/gguf.h"
#include "quant/quant_block.h"

static const char *gg_nm(const char *name) { return name ? name : "(buffer)"; }

/* ---- ggml types ---------------------------------------------------------- */

typedef struct gg_type_info {
  uint32_t id;
  const char *name;
  uint32_t block_elems, block_bytes;
} gg_type_info_t;

/* Block sizes from ggml (ggml.c, type_traits) as the gguf package lists them
 * (constants.py, GGML_QUANT_SIZES), and Q2_0 (42: 64 weights, an f16 scale
 * and 2 bits each), which ggml has and that list not yet; ids 4, 5, 31-33
 * and 36-38 are retired. */
static const gg_type_info_t gg_types[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},      {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 40},
    {10, "Q2_K", 256, 84},    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},   {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
    {40, "NVFP4", 64, 36},    {41, "Q1_0", 128, 18},    {42, "Q2_0", 64, 18},
};

static const gg_type_info_t *gg_type(uint32_t id) {
  for (size_t i = 0; i < sizeof gg_types / sizeof gg_types[0]; ++i)
    if (gg_types[i].id == id) return &gg_types[i];
  return NULL;
}

const char *deco_gguf_type_name(uint32_t type) {
  const gg_type_info_t *t = gg_type(type);
  return t ? t->name : NULL;
}

int deco_gguf_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes) {
  const gg_type_info_t *t = gg_type(type);
  if (!t) return 0;
  if (block_elems) *block_elems = t->block_elems;
  if (block_bytes) *block_bytes = t->block_bytes;
  return 1;
}

int deco_gguf_type_supported(uint32_t type) {
  return type == DECO_GGUF_F32 || type == DECO_GGUF_F16 || type == DECO_GGUF_BF16 || type == DECO_GGUF_Q8_0 ||
         type == DECO_GGUF_Q4_0 || type == DECO_GGUF_Q4_1;
}

static const char *const gg_value_names[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32", "float32",
                                             "bool",  "string", "array",  "uint64", "int64",  "float64"};

const char *deco_gguf_value_type_name(uint32_t type) {
  return type < sizeof gg_value_names / sizeof gg_value_names[0] ? gg_value_names[type] : "?";
}

/* Bytes of a scalar value type; 0 for string, array and unknown ids. */
static uint32_t gg_scalar_bytes(uint32_t type) {
  switch (type) {
    case DECO_GGUF_VAL_UINT8: case DECO_GGUF_VAL_INT8: case DECO_GGUF_VAL_BOOL: return 1;
    case DECO_GGUF_VAL_UINT16: case DECO_GGUF_VAL_INT16: return 2;
    case DECO_GGUF_VAL_UINT32: case DECO_GGUF_VAL_INT32: case DECO_GGUF_VAL_FLOAT32: return 4;
    case DECO_GGUF_VAL_UINT64: case DECO_GGUF_VAL_INT64: case DECO_GGUF_VAL_FLOAT64: return 8;
    default: return 0;
  }
}

static int gg_is_int_type(uint32_t t) {
  return t <= DECO_GGUF_VAL_INT32 || t == DECO_GGUF_VAL_UINT64 || t == DECO_GGUF_VAL_INT64;
}

/* ---- little-endian reads (the library runs on little-endian hosts) ------- */

static uint32_t rd_u32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static uint64_t rd_u64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static uint16_t rd_u16(const unsigned char *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

/* ---- where a field is, for the messages ---------------------------------- */

enum { W_HEADER, W_KV, W_TENSOR };

typedef struct gg_where {
  int kind;
  uint64_t index;
  const unsigned char *id; /* key or tensor name once read and checked printable */
  size_t id_len;
  const char *field;
  int has_elem;
  uint64_t elem; /* array element or dims index */
} gg_where_t;

static void gg_where_str(const gg_where_t *w, char *buf, size_t cap) {
  char elem[32] = "";
  if (w->has_elem) snprintf(elem, sizeof elem, " %llu", (unsigned long long)w->elem);
  if (w->kind == W_HEADER) {
    snprintf(buf, cap, "header field %s", w->field);
  } else {
    const char *what = w->kind == W_KV ? "metadata entry" : "tensor";
    int n = w->id_len > 80 ? 80 : (int)w->id_len;
    if (w->id)
      snprintf(buf, cap, "%s %llu ('%.*s%s') %s%s", what, (unsigned long long)w->index, n, (const char *)w->id,
               w->id_len > 80 ? "..." : "", w->field, elem);
    else
      snprintf(buf, cap, "%s %llu %s%s", what, (unsigned long long)w->index, w->field, elem);
  }
}

/* ---- the cursor ------------------------------------------------------------ */

typedef struct gg_rd {
  const unsigned char *p;
  size_t size;
  uint64_t pos;
  const char *nm;
  gg_where_t w;
} gg_rd_t;

/* n bytes must remain at the cursor for the current field. */
static deco_status_t rd_need(gg_rd_t *r, uint64_t n) {
  if (n <= (uint64_t)r->size - r->pos) return DECO_STATUS_SUCCESS;
  char where[256];
  gg_where_str(&r->w, where, sizeof where);
  return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                   "%s: truncated file: %s needs %llu bytes at offset %llu but the file ends at %zu", r->nm, where,
                   (unsigned long long)n, (unsigned long long)r->pos, r->size);
}

static deco_status_t rd_take32(gg_rd_t *r, const char *field, uint32_t *v) {
  r->w.field = field;
  DECO_TRY(rd_need(r, 4));
  *v = rd_u32(r->p + r->pos);
  r->pos += 4;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t rd_take64(gg_rd_t *r, const char *field, uint64_t *v) {
  r->w.field = field;
  DECO_TRY(rd_need(r, 8));
  *v = rd_u64(r->p + r->pos);
  r->pos += 8;
  return DECO_STATUS_SUCCESS;
}

/* A formatted failure at the current field. */
static deco_status_t rd_fail(gg_rd_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static deco_status_t rd_fail(gg_rd_t *r, const char *fmt, ...) {
  char where[256], what[512];
  gg_where_str(&r->w, where, sizeof where);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: %s: %s", r->nm, where, what);
}

static int gg_printable(const unsigned char *s, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    if (s[i] < 0x20 || s[i] > 0x7e) return 0;
  return 1;
}

/* A length-prefixed string of at most limit bytes; *s points into the buffer. */
static deco_status_t rd_string(gg_rd_t *r, const char *len_field, const char *bytes_field, uint64_t limit,
                               const unsigned char **s, uint64_t *len) {
  uint64_t n;
  DECO_TRY(rd_take64(r, len_field, &n));
  if (n > limit)
    return rd_fail(r, "length %llu exceeds the limit %llu", (unsigned long long)n, (unsigned long long)limit);
  r->w.field = bytes_field;
  DECO_TRY(rd_need(r, n));
  *s = r->p + r->pos;
  *len = n;
  r->pos += n;
  return DECO_STATUS_SUCCESS;
}

/* ---- metadata values ---------------------------------------------------- */

/* Checks and skips one value of a non-array type t (scalars, strings). */
static deco_status_t rd_value(gg_rd_t *r, uint32_t t, const char *field) {
  if (t == DECO_GGUF_VAL_STRING) {
    const unsigned char *s;
    uint64_t n;
    return rd_string(r, field, field, DECO_GGUF_MAX_STRING, &s, &n);
  }
  uint32_t b = gg_scalar_bytes(t);
  r->w.field = field;
  DECO_TRY(rd_need(r, b));
  if (t == DECO_GGUF_VAL_BOOL && r->p[r->pos] > 1) return rd_fail(r, "bool value %u is not 0 or 1", r->p[r->pos]);
  r->pos += b;
  return DECO_STATUS_SUCCESS;
}

/* An entry's key: non-empty printable ASCII, named in later messages. */
static deco_status_t rd_key(gg_rd_t *r, deco_gguf_kv_t *kv) {
  const unsigned char *key = NULL;
  uint64_t key_len = 0;
  DECO_TRY(rd_string(r, "key length", "key", DECO_GGUF_MAX_KEY, &key, &key_len));
  if (key_len == 0) return rd_fail(r, "the key is empty");
  if (!gg_printable(key, key_len)) return rd_fail(r, "the key holds a byte outside printable ASCII");
  r->w.id = key;
  r->w.id_len = (size_t)key_len;
  kv->key = (const char *)key;
  kv->key_len = (uint32_t)key_len;
  return DECO_STATUS_SUCCESS;
}

/* A value type id (0..12), for a value or an array's elements. */
static deco_status_t rd_value_type(gg_rd_t *r, const char *field, uint32_t *t) {
  DECO_TRY(rd_take32(r, field, t));
  if (*t > DECO_GGUF_VAL_FLOAT64) return rd_fail(r, "%u is not a GGUF value type (0..12)", *t);
  return DECO_STATUS_SUCCESS;
}

/* An array value after its type id: element type, length, then the
 * elements; strings and bools are walked one by one, fixed-size scalars
 * skipped at once. */
static deco_status_t rd_array(gg_rd_t *r, deco_gguf_kv_t *kv) {
  uint32_t et;
  uint64_t n;
  DECO_TRY(rd_value_type(r, "array element type", &et));
  if (et == DECO_GGUF_VAL_ARRAY) return rd_fail(r, "arrays of arrays are not supported");
  DECO_TRY(rd_take64(r, "array length", &n));
  if (n > DECO_GGUF_MAX_ARRAY)
    return rd_fail(r, "%llu exceeds the limit %u", (unsigned long long)n, DECO_GGUF_MAX_ARRAY);
  /* Every element takes at least its scalar size (8 for a string's length):
   * refuse a length the file cannot hold before walking it. */
  uint64_t min_bytes = n * (et == DECO_GGUF_VAL_STRING ? 8 : gg_scalar_bytes(et));
  if (min_bytes > (uint64_t)r->size - r->pos)
    return rd_fail(r, "%llu elements of %s need at least %llu bytes but %llu remain", (unsigned long long)n,
                    deco_gguf_value_type_name(et), (unsigned long long)min_bytes,
                    (unsigned long long)((uint64_t)r->size - r->pos));
  kv->elem_type = et;
  kv->count = n;
  kv->value = r->p + r->pos;
  if (et != DECO_GGUF_VAL_STRING && et != DECO_GGUF_VAL_BOOL) {
    r->pos += min_bytes; /* checked above */
    return DECO_STATUS_SUCCESS;
  }
  r->w.has_elem = 1;
  for (uint64_t j = 0; j < n; ++j) {
    r->w.elem = j;
    DECO_TRY(rd_value(r, et, "array element"));
  }
  r->w.has_elem = 0;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t rd_kv(gg_rd_t *r, uint64_t i, deco_gguf_kv_t *kv) {
  r->w = (gg_where_t){W_KV, i, NULL, 0, "key length", 0, 0};
  DECO_TRY(rd_key(r, kv));
  uint32_t t;
  DECO_TRY(rd_value_type(r, "value type", &t));
  kv->type = t;
  kv->elem_type = t;
  kv->count = 1;
  kv->value = r->p + r->pos;
  if (t == DECO_GGUF_VAL_ARRAY) DECO_TRY(rd_array(r, kv));
  else DECO_TRY(rd_value(r, t, "value"));
  kv->value_bytes = (uint64_t)(r->p + r->pos - kv->value);
  return DECO_STATUS_SUCCESS;
}

/* ---- tensors -------------------------------------------------------------- */

/* The tensor's name: non-empty printable ASCII, copied into t and named in
 * later messages. */
static deco_status_t rd_tensor_name(gg_rd_t *r, deco_gguf_tensor_t *t) {
  const unsigned char *name = NULL;
  uint64_t len = 0;
  DECO_TRY(rd_string(r, "name length", "name", DECO_GGUF_MAX_NAME - 1, &name, &len));
  if (len == 0) return rd_fail(r, "the name is empty");
  if (!gg_printable(name, len)) return rd_fail(r, "the name holds a byte outside printable ASCII");
  memcpy(t->name, name, (size_t)len);
  t->name[len] = '\0';
  r->w.id = name;
  r->w.id_len = (size_t)len;
  return DECO_STATUS_SUCCESS;
}

/* n_dims (1..4) and the dims, none 0, whose product stays within
 * DECO_GGUF_MAX_ELEMENTS; dims past n_dims are 1. */
static deco_status_t rd_tensor_dims(gg_rd_t *r, deco_gguf_tensor_t *t) {
  uint32_t nd;
  DECO_TRY(rd_take32(r, "n_dims", &nd));
  if (nd < 1 || nd > DECO_GGUF_MAX_DIMS) return rd_fail(r, "%u is outside 1..%d", nd, DECO_GGUF_MAX_DIMS);
  t->n_dims = nd;
  uint64_t elems = 1;
  static const char *const dim_field[DECO_GGUF_MAX_DIMS] = {"dims[0]", "dims[1]", "dims[2]", "dims[3]"};
  for (uint32_t d = 0; d < DECO_GGUF_MAX_DIMS; ++d) t->dims[d] = 1;
  for (uint32_t d = 0; d < nd; ++d) {
    uint64_t v;
    DECO_TRY(rd_take64(r, dim_field[d], &v));
    if (v == 0) return rd_fail(r, "a dimension is 0");
    /* elems * v <= 2^48, tested by division so the product cannot wrap. */
    if (v > DECO_GGUF_MAX_ELEMENTS / elems)
      return rd_fail(r, "%llu makes the tensor larger than %llu elements", (unsigned long long)v,
                     (unsigned long long)DECO_GGUF_MAX_ELEMENTS);
    elems *= v;
    t->dims[d] = v;
  }
  t->n_elements = elems;
  return DECO_STATUS_SUCCESS;
}

/* The ggml type, whose blocks must tile dims[0]; it sets the byte size. */
static deco_status_t rd_tensor_type(gg_rd_t *r, deco_gguf_tensor_t *t) {
  uint32_t type;
  DECO_TRY(rd_take32(r, "type", &type));
  const gg_type_info_t *ti = gg_type(type);
  if (!ti) return rd_fail(r, "%u is not a ggml tensor type", type);
  if (t->dims[0] % ti->block_elems != 0)
    return rd_fail(r, "%s packs blocks of %u elements but dims[0] = %llu is not a multiple", ti->name,
                   ti->block_elems, (unsigned long long)t->dims[0]);
  t->type = type;
  t->n_bytes = t->n_elements / ti->block_elems * ti->block_bytes; /* <= 2^48 * 292 / 256 */
  return DECO_STATUS_SUCCESS;
}

/* Tensor info i: name, dims, type, then the offset into the data section. */
static deco_status_t rd_tensor(gg_rd_t *r, uint64_t i, deco_gguf_tensor_t *t) {
  r->w = (gg_where_t){W_TENSOR, i, NULL, 0, "name length", 0, 0};
  DECO_TRY(rd_tensor_name(r, t));
  DECO_TRY(rd_tensor_dims(r, t));
  DECO_TRY(rd_tensor_type(r, t));
  return rd_take64(r, "offset", &t->offset);
}

/* ---- sorting for duplicates and lookups ------------------------------------ */

static int gg_cmp_bytes(const char *a, size_t an, const char *b, size_t bn) {
  int c = memcmp(a, b, an < bn ? an : bn);
  if (c) return c;
  return an < bn ? -1 : an > bn;
}

/* Sorts idx[0..n) by key (kv != NULL) or by tensor name; a plain heapsort,
 * so no comparison context needs to be global. */
typedef struct gg_sort {
  const deco_gguf_kv_t *kv;
  const deco_gguf_tensor_t *t;
} gg_sort_t;

static int gg_cmp_idx(const gg_sort_t *s, uint32_t a, uint32_t b) {
  if (s->kv) return gg_cmp_bytes(s->kv[a].key, s->kv[a].key_len, s->kv[b].key, s->kv[b].key_len);
  int c = strcmp(s->t[a].name, s->t[b].name);
  return c ? c : (a < b ? -1 : a > b);
}

static void gg_sift(const gg_sort_t *s, uint32_t *idx, uint64_t root, uint64_t n) {
  for (;;) {
    uint64_t c = 2 * root + 1;
    if (c >= n) return;
    if (c + 1 < n && gg_cmp_idx(s, idx[c], idx[c + 1]) < 0) c++;
    if (gg_cmp_idx(s, idx[root], idx[c]) >= 0) return;
    uint32_t tmp = idx[root];
    idx[root] = idx[c];
    idx[c] = tmp;
    root = c;
  }
}

static void gg_sort_idx(const gg_sort_t *s, uint32_t *idx, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) idx[i] = (uint32_t)i;
  for (uint64_t i = n / 2; i-- > 0;) gg_sift(s, idx, i, n);
  for (uint64_t end = n; end > 1; --end) {
    uint32_t tmp = idx[0];
    idx[0] = idx[end - 1];
    idx[end - 1] = tmp;
    gg_sift(s, idx, 0, end - 1);
  }
}

/* ---- the parse ------------------------------------------------------------- */

void deco_gguf_free(deco_gguf_t *g) {
  if (!g) return;
  free(g->name);
  free(g->kv);
  free(g->tensors);
  free(g->kv_sorted);
  free(g->tensor_sorted);
  memset(g, 0, sizeof *g);
}

/* The magic "GGUF", shown with odd bytes as dots when it is not. */
static deco_status_t rd_magic(gg_rd_t *r) {
  r->w = (gg_where_t){W_HEADER, 0, NULL, 0, "magic", 0, 0};
  DECO_TRY(rd_need(r, 4));
  if (memcmp(r->p, "GGUF", 4) != 0) {
    char shown[8];
    for (int i = 0; i < 4; ++i) shown[i] = (r->p[i] >= 0x20 && r->p[i] <= 0x7e) ? (char)r->p[i] : '.';
    shown[4] = '\0';
    return rd_fail(r, "'%s' (0x%08x) is not 'GGUF': not a GGUF file", shown, rd_u32(r->p));
  }
  r->pos = 4;
  return DECO_STATUS_SUCCESS;
}

/* Versions 2 and 3; a byte-swapped 2 or 3 is a big-endian file. */
static deco_status_t rd_version(gg_rd_t *r, uint32_t *version) {
  DECO_TRY(rd_take32(r, "version", version));
  uint32_t v = *version;
  if (v == 2 || v == 3) return DECO_STATUS_SUCCESS;
  uint32_t swapped = (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
  if (swapped == 2 || swapped == 3) return rd_fail(r, "%u: a big-endian GGUF file, which deco does not read", v);
  return rd_fail(r, "%u is not supported (GGUF versions 2 and 3 are)", v);
}

/* The header: magic, version and both counts; then the tables for the
 * counts are allocated. */
static deco_status_t gg_read_header(gg_rd_t *r, deco_gguf_t *g) {
  const char *nm = r->nm;
  uint32_t version;
  DECO_TRY(rd_magic(r));
  DECO_TRY(rd_version(r, &version));
  uint64_t n_tensors, n_kv;
  DECO_TRY(rd_take64(r, "tensor_count", &n_tensors));
  if (n_tensors > DECO_GGUF_MAX_TENSORS)
    return rd_fail(r, "%llu exceeds the limit %u", (unsigned long long)n_tensors, DECO_GGUF_MAX_TENSORS);
  DECO_TRY(rd_take64(r, "metadata_kv_count", &n_kv));
  if (n_kv > DECO_GGUF_MAX_KV)
    return rd_fail(r, "%llu exceeds the limit %u", (unsigned long long)n_kv, DECO_GGUF_MAX_KV);
  /* A metadata entry takes at least 14 bytes (key length, a 1-byte key,
   * value type, a 1-byte value), a tensor entry 33 (name length, a 1-byte
   * name, n_dims, one dim, type, offset): counts the file cannot hold are
   * refused before anything is allocated for them. */
  uint64_t min_bytes = n_kv * 14 + n_tensors * 33, left = (uint64_t)r->size - r->pos;
  if (min_bytes > left)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: header fields tensor_count=%llu and metadata_kv_count=%llu need at least %llu bytes but "
                     "the file has %llu after the header",
                     nm, (unsigned long long)n_tensors, (unsigned long long)n_kv, (unsigned long long)min_bytes,
                     (unsigned long long)left);
  g->version = version;
  g->n_kv = n_kv;
  g->n_tensors = n_tensors;
  g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
  g->kv_sorted = calloc(n_kv ? n_kv : 1, sizeof *g->kv_sorted);
  g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
  g->tensor_sorted = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensor_sorted);
  if (!g->kv || !g->kv_sorted || !g->tensors || !g->tensor_sorted)
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: no memory for %llu metadata entries and %llu tensors", nm,
                     (unsigned long long)n_kv, (unsigned long long)n_tensors);
  return DECO_STATUS_SUCCESS;
}

/* Every metadata entry, then the sorted index, which must hold each key
 * once. */
static deco_status_t gg_read_metadata(gg_rd_t *r, deco_gguf_t *g) {
  for (uint64_t i = 0; i < g->n_kv; ++i) DECO_TRY(rd_kv(r, i, &g->kv[i]));
  gg_sort_t sk = {g->kv, NULL};
  gg_sort_idx(&sk, g->kv_sorted, g->n_kv);
  for (uint64_t i = 1; i < g->n_kv; ++i) {
    const deco_gguf_kv_t *a = &g->kv[g->kv_sorted[i - 1]], *b = &g->kv[g->kv_sorted[i]];
    if (gg_cmp_bytes(a->key, a->key_len, b->key, b->key_len) == 0)
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata key '%.*s' appears twice (entries %u and %u)",
                       r->nm, (int)a->key_len, a->key, g->kv_sorted[i - 1], g->kv_sorted[i]);
  }
  return DECO_STATUS_SUCCESS;
}

/* general.alignment when present (a uint32 power of two in 8..max), else
 * the default. */
static deco_status_t gg_read_alignment(const char *nm, deco_gguf_t *g) {
  g->alignment = DECO_GGUF_DEFAULT_ALIGNMENT;
  const deco_gguf_kv_t *al = deco_gguf_find_kv(g, "general.alignment");
  if (!al) return DECO_STATUS_SUCCESS;
  if (al->type != DECO_GGUF_VAL_UINT32)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata general.alignment has type %s, expected uint32", nm,
                     deco_gguf_value_type_name(al->type));
  uint32_t a = rd_u32(al->value);
  if (a < 8 || a > DECO_GGUF_MAX_ALIGNMENT || (a & (a - 1)) != 0)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata general.alignment = %u is not a power of two in 8..%u",
                     nm, a, DECO_GGUF_MAX_ALIGNMENT);
  g->alignment = a;
  return DECO_STATUS_SUCCESS;
}

/* Every tensor entry, then the sorted index, which must hold each name
 * once. */
static deco_status_t gg_read_tensor_table(gg_rd_t *r, deco_gguf_t *g) {
  for (uint64_t i = 0; i < g->n_tensors; ++i) DECO_TRY(rd_tensor(r, i, &g->tensors[i]));
  gg_sort_t st = {NULL, g->tensors};
  gg_sort_idx(&st, g->tensor_sorted, g->n_tensors);
  for (uint64_t i = 1; i < g->n_tensors; ++i) {
    const deco_gguf_tensor_t *a = &g->tensors[g->tensor_sorted[i - 1]], *b = &g->tensors[g->tensor_sorted[i]];
    if (strcmp(a->name, b->name) == 0)
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: tensor name '%s' appears twice (tensors %u and %u)", r->nm,
                       a->name, g->tensor_sorted[i - 1], g->tensor_sorted[i]);
  }
  return DECO_STATUS_SUCCESS;
}

/* Tensor i's data: aligned, after the previous tensor's end, and inside
 * the file; t->data then points at it. */
static deco_status_t gg_place_tensor(const gg_rd_t *r, deco_gguf_t *g, uint64_t i) {
  const char *nm = r->nm;
  deco_gguf_tensor_t *t = &g->tensors[i];
  uint64_t data = g->data_offset;
  const uint64_t prev_end = i > 0 ? g->tensors[i - 1].offset + g->tensors[i - 1].n_bytes : 0;
  if (t->offset % g->alignment != 0)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: tensor %llu ('%s') offset %llu is not a multiple of the alignment %u (misaligned data)", nm,
                     (unsigned long long)i, t->name, (unsigned long long)t->offset, g->alignment);
  if (i > 0 && t->offset < prev_end)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: tensor %llu ('%s') offset %llu overlaps tensor %llu ('%s'), which ends at %llu "
                     "(tensors must follow each other in the data section)",
                     nm, (unsigned long long)i, t->name, (unsigned long long)t->offset, (unsigned long long)(i - 1),
                     g->tensors[i - 1].name, (unsigned long long)prev_end);
  uint64_t avail = data <= (uint64_t)r->size ? (uint64_t)r->size - data : 0;
  if (t->offset > avail || t->n_bytes > avail - t->offset) {
    /* data + offset + n_bytes, saturated for the message. */
    uint64_t end = t->offset > UINT64_MAX - data ? UINT64_MAX : data + t->offset;
    end = t->n_bytes > UINT64_MAX - end ? UINT64_MAX : end + t->n_bytes;
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: tensor %llu ('%s') data: %llu bytes of %s at offset %llu (file offset %llu) end at %llu, "
                     "past the end of the file (%zu bytes)",
                     nm, (unsigned long long)i, t->name, (unsigned long long)t->n_bytes, deco_gguf_type_name(t->type),
                     (unsigned long long)t->offset, (unsigned long long)(end - t->n_bytes), (unsigned long long)end,
                     r->size);
  }
  t->data = r->p + data + t->offset;
  return DECO_STATUS_SUCCESS;
}

/* The data section starts at the next multiple of the alignment after the
 * tensor table; the tensors follow each other inside it. */
static deco_status_t gg_place_data(const gg_rd_t *r, deco_gguf_t *g) {
  g->data_offset = (r->pos + g->alignment - 1) / g->alignment * g->alignment;
  for (uint64_t i = 0; i < g->n_tensors; ++i) DECO_TRY(gg_place_tensor(r, g, i));
  return DECO_STATUS_SUCCESS;
}

static deco_status_t gg_parse(gg_rd_t *r, deco_gguf_t *g) {
  DECO_TRY(gg_read_header(r, g));
  DECO_TRY(gg_read_metadata(r, g));
  DECO_TRY(gg_read_alignment(r->nm, g));
  DECO_TRY(gg_read_tensor_table(r, g));
  return gg_place_data(r, g);
}

deco_status_t deco_gguf_parse(const void *data, size_t size, const char *name, deco_gguf_t *out) {
  if (!out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_gguf_parse: out is NULL");
  memset(out, 0, sizeof *out);
  if (!data && size > 0) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_gguf_parse: data is NULL");
  const char *nm = gg_nm(name);
  deco_gguf_t g;
  memset(&g, 0, sizeof g);
  g.name = malloc(strlen(nm) + 1);
  if (!g.name) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: no memory", nm);
  strcpy(g.name, nm);
  g.base = data;
  g.size = size;
  gg_rd_t r = {data, size, 0, nm, {W_HEADER, 0, NULL, 0, "magic", 0, 0}};
  deco_status_t s = gg_parse(&r, &g);
  if (s != DECO_STATUS_SUCCESS) {
    deco_gguf_free(&g);
    return s;
  }
  *out = g;
  return DECO_STATUS_SUCCESS;
}

/* ---- lookups and getters ------------------------------------------------- */

const deco_gguf_kv_t *deco_gguf_find_kv(const deco_gguf_t *g, const char *key) {
  if (!g || !key || !g->kv_sorted) return NULL;
  size_t kl = strlen(key);
  uint64_t lo = 0, hi = g->n_kv;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    const deco_gguf_kv_t *kv = &g->kv[g->kv_sorted[mid]];
    int c = gg_cmp_bytes(kv->key, kv->key_len, key, kl);
    if (c == 0) return kv;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

const deco_gguf_tensor_t *deco_gguf_find_tensor(const deco_gguf_t *g, const char *name) {
  if (!g || !name || !g->tensor_sorted) return NULL;
  uint64_t lo = 0, hi = g->n_tensors;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    const deco_gguf_tensor_t *t = &g->tensors[g->tensor_sorted[mid]];
    int c = strcmp(t->name, name);
    if (c == 0) return t;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

static deco_status_t gg_lookup(const deco_gguf_t *g, const char *key, const deco_gguf_kv_t **kv) {
  if (!g || !key) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_gguf_get: g or key is NULL");
  *kv = deco_gguf_find_kv(g, key);
  if (!*kv) return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s is missing", g->name, key);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t gg_wrong_type(const deco_gguf_t *g, const deco_gguf_kv_t *kv, const char *expected) {
  if (kv->type == DECO_GGUF_VAL_ARRAY)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %.*s is an array of %s, expected %s", g->name,
                     (int)kv->key_len, kv->key, deco_gguf_value_type_name(kv->elem_type), expected);
  return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %.*s has type %s, expected %s", g->name,
                   (int)kv->key_len, kv->key, deco_gguf_value_type_name(kv->type), expected);
}

/* An integer element of type t at p, as a signed value with an overflow flag
 * for uint64 values above INT64_MAX. */
static int64_t gg_int_at(uint32_t t, const unsigned char *p, int *too_big) {
  *too_big = 0;
  switch (t) {
    case DECO_GGUF_VAL_UINT8: return p[0];
    case DECO_GGUF_VAL_INT8: return (int8_t)p[0];
    case DECO_GGUF_VAL_UINT16: return rd_u16(p);
    case DECO_GGUF_VAL_INT16: return (int16_t)rd_u16(p);
    case DECO_GGUF_VAL_UINT32: return rd_u32(p);
    case DECO_GGUF_VAL_INT32: return (int32_t)rd_u32(p);
    case DECO_GGUF_VAL_INT64: return (int64_t)rd_u64(p);
    default: { /* UINT64 */
      uint64_t v = rd_u64(p);
      if (v > (uint64_t)INT64_MAX) {
        *too_big = 1;
        return INT64_MAX;
      }
      return (int64_t)v;
    }
  }
}

static deco_status_t gg_get_int(const deco_gguf_t *g, const char *key, int64_t lo, int64_t hi, const char *what,
                                int64_t *out) {
  const deco_gguf_kv_t *kv = NULL;
  DECO_TRY(gg_lookup(g, key, &kv));
  if (kv->type == DECO_GGUF_VAL_ARRAY || !gg_is_int_type(kv->type)) return gg_wrong_type(g, kv, "an integer");
  int too_big;
  int64_t v = gg_int_at(kv->type, kv->value, &too_big);
  if (too_big || v < lo || v > hi)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s = %s%lld (%s) does not fit %s", g->name, key,
                     too_big ? ">" : "", (long long)v, deco_gguf_value_type_name(kv->type), what);
  *out = v;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_gguf_get_u32(const deco_gguf_t *g, const char *key, uint32_t *out) {
  int64_t v = 0;
  DECO_TRY(gg_get_int(g, key, 0, UINT32_MAX, "uint32", &v));
  *out = (uint32_t)v;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_gguf_get_i32(const deco_gguf_t *g, const char *key, int32_t *out) {
  int64_t v = 0;
  DECO_TRY(gg_get_int(g, key, INT32_MIN, INT32_MAX, "int32", &v));
  *out = (int32_t)v;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_gguf_get_i64(const deco_gguf_t *g, const char *key, int64_t *out) {
  return gg_get_int(g, key, INT64_MIN, INT64_MAX, "int64", out);
}

static double gg_float_at(uint32_t t, const unsigned char *p) {
  if (t == DECO_GGUF_VAL_FLOAT32) {
    float f;
    memcpy(&f, p, 4);
    return f;
  }
  double d;
  memcpy(&d, p, 8);
  return d;
}

deco_status_t deco_gguf_get_f32(const deco_gguf_t *g, const char *key, float *out) {
  const deco_gguf_kv_t *kv = NULL;
  DECO_TRY(gg_lookup(g, key, &kv));
  if (kv->type != DECO_GGUF_VAL_FLOAT32 && kv->type != DECO_GGUF_VAL_FLOAT64) return gg_wrong_type(g, kv, "a float");
  double d = gg_float_at(kv->type, kv->value);
  if (isfinite(d) && fabs(d) > 3.4028234663852886e38)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s = %g (float64) does not fit float32", g->name, key,
                     d);
  *out = (float)d;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_gguf_get_bool(const deco_gguf_t *g, const char *key, int *out) {
  const deco_gguf_kv_t *kv = NULL;
  DECO_TRY(gg_lookup(g, key, &kv));
  if (kv->type != DECO_GGUF_VAL_BOOL) return gg_wrong_type(g, kv, "bool");
  *out = kv->value[0];
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_gguf_get_string(const deco_gguf_t *g, const char *key, deco_gguf_str_t *out) {
  const deco_gguf_kv_t *kv = NULL;
  DECO_TRY(gg_lookup(g, key, &kv));
  if (kv->type != DECO_GGUF_VAL_STRING) return gg_wrong_type(g, kv, "string");
  out->len = rd_u64(kv->value);
  out->s = (const char *)kv->value + 8;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_gguf_get_array(const deco_gguf_t *g, const char *key, uint32_t *elem_type, uint64_t *count) {
  const deco_gguf_kv_t *kv = NULL;
  DECO_TRY(gg_lookup(g, key, &kv));
  if (kv->type != DECO_GGUF_VAL_ARRAY) return gg_wrong_type(g, kv, "an array");
  if (elem_type) *elem_type = kv->elem_type;
  if (count) *count = kv->count;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t gg_array(const deco_gguf_t *g, const char *key, uint64_t cap, const char *expected,
                              int (*accept)(uint32_t), const deco_gguf_kv_t **kv) {
  DECO_TRY(gg_lookup(g, key, kv));
  if ((*kv)->type != DECO_GGUF_VAL_ARRAY || !accept((*kv)->elem_type)) return gg_wrong_type(g, *kv, expected);
  if ((*kv)->count > cap)
    return DECO_FAIL(NULL, DECO_STATUS_CAPACITY, "%s: metadata %s has %llu elements, more than the %llu expected",
                     g->name, key, (unsigned long long)(*kv)->count, (unsigned long long)cap);
  return DECO_STATUS_SUCCESS;
}

static int gg_accept_string(uint32_t t) { return t == DECO_GGUF_VAL_STRING; }
static int gg_accept_float(uint32_t t) { return t == DECO_GGUF_VAL_FLOAT32 || t == DECO_GGUF_VAL_FLOAT64; }

deco_status_t deco_gguf_get_strings(const deco_gguf_t *g, const char *key, deco_gguf_str_t *out, uint64_t cap,
                                    uint64_t *count) {
  const deco_gguf_kv_t *kv = NULL;
  DECO_TRY(gg_array(g, key, cap, "an array of strings", gg_accept_string, &kv));
  const unsigned char *p = kv->value; /* lengths were checked by the parse */
  for (uint64_t i = 0; i < kv->count; ++i) {
    uint64_t n = rd_u64(p);
    out[i].s = (const char *)p + 8;
    out[i].len = n;
    p += 8 + n;
  }
  if (count) *count = kv->count;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_gguf_get_ints(const deco_gguf_t *g, const char *key, int64_t *out, uint64_t cap,
                                 uint64_t *count) {
  const deco_gguf_kv_t *kv = NULL;
  DECO_TRY(gg_array(g, key, cap, "an array of integers", gg_is_int_type, &kv));
  uint32_t b = gg_scalar_bytes(kv->elem_type);
  for (uint64_t i = 0; i < kv->count; ++i) {
    int too_big;
    out[i] = gg_int_at(kv->elem_type, kv->value + i * b, &too_big);
    if (too_big)
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s element %llu does not fit int64", g->name, key,
                       (unsigned long long)i);
  }
  if (count) *count = kv->count;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_gguf_get_floats(const deco_gguf_t *g, const char *key, float *out, uint64_t cap,
                                   uint64_t *count) {
  const deco_gguf_kv_t *kv = NULL;
  DECO_TRY(gg_array(g, key, cap, "an array of floats", gg_accept_float, &kv));
  uint32_t b = gg_scalar_bytes(kv->elem_type);
  for (uint64_t i = 0; i < kv->count; ++i) out[i] = (float)gg_float_at(kv->elem_type, kv->value + i * b);
  if (count) *count = kv->count;
  return DECO_STATUS_SUCCESS;
}

/* ---- the Llama configuration --------------------------------------------- */

/* Upper bounds as for llama2.c checkpoints (llama2c.c), the head dims the
 * kernels run, and contexts up to 2^24 tokens. */
#define GG_MAX_DIM (1 << 16)
#define GG_MAX_HIDDEN (1 << 18)
#define GG_MAX_LAYERS 1024
#define GG_MAX_HEADS 1024
#define GG_MAX_VOCAB (1 << 20)
#define GG_MAX_CONTEXT (1 << 24)
#define GG_MIN_HEAD_DIM 8
#define GG_MAX_HEAD_DIM 256

static const char *const gg_role_name[DECO_GGUF_N_ROLES] = {
    "token_embd",  "output_norm", "output",   "attn_norm", "attn_q", "attn_k",
    "attn_v",      "attn_output", "ffn_norm", "ffn_gate",  "ffn_up", "ffn_down",
};

static int gg_role_per_layer(int role) { return role >= DECO_GGUF_ATTN_NORM; }

const deco_gguf_tensor_t *deco_gguf_llama_tensor(const deco_gguf_t *g, deco_gguf_role_t role, int layer) {
  if (!g || (int)role < 0 || role >= DECO_GGUF_N_ROLES) return NULL;
  char name[DECO_GGUF_MAX_NAME];
  if (gg_role_per_layer(role)) {
    if (layer < 0) return NULL;
    snprintf(name, sizeof name, "blk.%d.%s.weight", layer, gg_role_name[role]);
  } else {
    snprintf(name, sizeof name, "%s.weight", gg_role_name[role]);
  }
  return deco_gguf_find_tensor(g, name);
}

/* Parses a Llama tensor name: role and layer (-1 for global roles);
 * returns 0 for a name that is not one. Layers are decimal without leading
 * zeros, as llama.cpp writes them. */
static int gg_parse_role(const char *name, int *role, long *layer) {
  *layer = -1;
  const char *rest = name;
  if (strncmp(name, "blk.", 4) == 0) {
    const char *p = name + 4;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9')) return 0;
    long l = 0;
    while (*p >= '0' && *p <= '9') {
      l = l * 10 + (*p - '0');
      if (l > GG_MAX_LAYERS * 16L) return 0;
      ++p;
    }
    if (*p != '.') return 0;
    *layer = l;
    rest = p + 1;
  }
  for (int r = 0; r < DECO_GGUF_N_ROLES; ++r) {
    if ((*layer >= 0) != gg_role_per_layer(r)) continue;
    size_t n = strlen(gg_role_name[r]);
    if (strncmp(rest, gg_role_name[r], n) == 0 && strcmp(rest + n, ".weight") == 0) {
      *role = r;
      return 1;
    }
  }
  return 0;
}

/* An optional integer key within lo..hi (default when absent). */
static deco_status_t gg_int_field(const deco_gguf_t *g, const char *key, int required, int64_t dflt, int64_t lo,
                                  int64_t hi, int64_t *out) {
  const deco_gguf_kv_t *kv = deco_gguf_find_kv(g, key);
  if (!kv) {
    if (required) return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s is missing", g->name, key);
    *out = dflt;
    return DECO_STATUS_SUCCESS;
  }
  if (kv->type == DECO_GGUF_VAL_ARRAY)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: metadata %s is an array (a value per layer), which deco does not support; expected one "
                     "integer",
                     g->name, key);
  int64_t v = 0;
  DECO_TRY(deco_gguf_get_i64(g, key, &v));
  if (v < lo || v > hi)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s = %lld is outside %lld..%lld", g->name, key,
                     (long long)v, (long long)lo, (long long)hi);
  *out = v;
  return DECO_STATUS_SUCCESS;
}

/* Prints an architecture name from the file with odd bytes escaped. */
static void gg_escape(const char *s, uint64_t n, char *buf, size_t cap) {
  size_t o = 0;
  for (uint64_t i = 0; i < n && o + 8 < cap; ++i) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c <= 0x7e && c != '\'' && c != '\\') buf[o++] = (char)c;
    else o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
  }
  if (n > 0 && o + 8 >= cap) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o] = '\0';
}

static void gg_shape_str(const uint64_t *dims, int n, char *buf, size_t cap) {
  size_t o = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < n && o < cap; ++i)
    o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
  if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* What the Llama check derives from the metadata, step by step. */
typedef struct gg_llama {
  int64_t dim, hidden, layers, heads, kv_heads, context, head_dim, vocab;
  float theta, eps;
  const deco_gguf_tensor_t *emb; /* token_embd.weight */
  const deco_gguf_kv_t *tokens;  /* tokenizer.ggml.tokens, or NULL */
} gg_llama_t;

static deco_status_t gg_check_arch(const deco_gguf_t *g) {
  deco_gguf_str_t arch = {NULL, 0};
  DECO_TRY(deco_gguf_get_string(g, "general.architecture", &arch));
  if (arch.len == 5 && memcmp(arch.s, "llama", 5) == 0) return DECO_STATUS_SUCCESS;
  char shown[96];
  gg_escape(arch.s, arch.len, shown, sizeof shown);
  return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                   "%s: metadata general.architecture is '%s'; deco reads the 'llama' architecture only", g->name,
                   shown);
}

/* The sizes llama.* names directly; a mixture of experts is refused. */
static deco_status_t gg_read_sizes(const deco_gguf_t *g, gg_llama_t *m) {
  int64_t experts;
  DECO_TRY(gg_int_field(g, "llama.embedding_length", 1, 0, 1, GG_MAX_DIM, &m->dim));
  DECO_TRY(gg_int_field(g, "llama.feed_forward_length", 1, 0, 1, GG_MAX_HIDDEN, &m->hidden));
  DECO_TRY(gg_int_field(g, "llama.block_count", 1, 0, 1, GG_MAX_LAYERS, &m->layers));
  DECO_TRY(gg_int_field(g, "llama.attention.head_count", 1, 0, 1, GG_MAX_HEADS, &m->heads));
  DECO_TRY(gg_int_field(g, "llama.attention.head_count_kv", 0, m->heads, 1, m->heads, &m->kv_heads));
  DECO_TRY(gg_int_field(g, "llama.context_length", 1, 0, 1, GG_MAX_CONTEXT, &m->context));
  DECO_TRY(gg_int_field(g, "llama.expert_count", 0, 0, 0, INT32_MAX, &experts));
  if (experts > 0)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: metadata llama.expert_count = %lld: a mixture of experts, which deco does not run", g->name,
                     (long long)experts);
  return DECO_STATUS_SUCCESS;
}

/* The head dim: embedding_length / head_count, even and within the
 * kernels' range, and what rope.dimension_count, key_length and
 * value_length say about it when present. */
static deco_status_t gg_check_heads(const deco_gguf_t *g, gg_llama_t *m) {
  const char *nm = g->name;
  if (m->dim % m->heads != 0)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: metadata llama.embedding_length = %lld is not a multiple of llama.attention.head_count = "
                     "%lld",
                     nm, (long long)m->dim, (long long)m->heads);
  if (m->heads % m->kv_heads != 0)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: metadata llama.attention.head_count = %lld is not a multiple of "
                     "llama.attention.head_count_kv = %lld",
                     nm, (long long)m->heads, (long long)m->kv_heads);
  int64_t head_dim = m->dim / m->heads;
  if (head_dim % 2 != 0 || head_dim < GG_MIN_HEAD_DIM || head_dim > GG_MAX_HEAD_DIM)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: head dim = llama.embedding_length / llama.attention.head_count = %lld / %lld = %lld must "
                     "be even and within %d..%d",
                     nm, (long long)m->dim, (long long)m->heads, (long long)head_dim, GG_MIN_HEAD_DIM,
                     GG_MAX_HEAD_DIM);
  m->head_dim = head_dim;
  int64_t rope_dims, key_len, value_len;
  DECO_TRY(gg_int_field(g, "llama.rope.dimension_count", 0, head_dim, 0, INT32_MAX, &rope_dims));
  if (rope_dims != head_dim)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: metadata llama.rope.dimension_count = %lld differs from the head dim %lld (partial rotary "
                     "embeddings are not supported)",
                     nm, (long long)rope_dims, (long long)head_dim);
  DECO_TRY(gg_int_field(g, "llama.attention.key_length", 0, head_dim, 0, INT32_MAX, &key_len));
  DECO_TRY(gg_int_field(g, "llama.attention.value_length", 0, head_dim, 0, INT32_MAX, &value_len));
  if (key_len != head_dim || value_len != head_dim)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: metadata llama.attention.key_length = %lld / value_length = %lld differ from the head dim "
                     "%lld = llama.embedding_length / llama.attention.head_count",
                     nm, (long long)key_len, (long long)value_len, (long long)head_dim);
  return DECO_STATUS_SUCCESS;
}

/* RoPE's base (default 10000) and the RMSNorm epsilon; scaled RoPE and
 * per-frequency factors are refused. As llama.cpp reads the keys, a file
 * that names no scaling type scales linearly by llama.rope.scaling.factor
 * (else the older llama.rope.scale_linear) when it gives one other than 0
 * or 1, and the type "none" scales nothing whatever the factor. */
static deco_status_t gg_read_rope_norm(const deco_gguf_t *g, gg_llama_t *m) {
  const char *nm = g->name;
  float theta = 10000.0f, eps;
  if (deco_gguf_find_kv(g, "llama.rope.freq_base")) DECO_TRY(deco_gguf_get_f32(g, "llama.rope.freq_base", &theta));
  if (!(theta > 1.0f) || !isfinite(theta))
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata llama.rope.freq_base = %g is not a finite value > 1",
                     nm, (double)theta);
  DECO_TRY(deco_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps));
  if (!(eps > 0.0f) || !(eps < 1.0f))
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: metadata llama.attention.layer_norm_rms_epsilon = %g is not within (0, 1)", nm, (double)eps);
  if (deco_gguf_find_kv(g, "llama.rope.scaling.type")) {
    deco_gguf_str_t st = {NULL, 0};
    DECO_TRY(deco_gguf_get_string(g, "llama.rope.scaling.type", &st));
    if (!(st.len == 4 && memcmp(st.s, "none", 4) == 0)) {
      char shown[64];
      gg_escape(st.s, st.len, shown, sizeof shown);
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                       "%s: metadata llama.rope.scaling.type is '%s'; deco runs unscaled RoPE only", nm, shown);
    }
  } else {
    const char *key = deco_gguf_find_kv(g, "llama.rope.scaling.factor") ? "llama.rope.scaling.factor"
                      : deco_gguf_find_kv(g, "llama.rope.scale_linear") ? "llama.rope.scale_linear"
                                                                        : NULL;
    float factor = 0.0f;
    if (key) DECO_TRY(deco_gguf_get_f32(g, key, &factor));
    if (factor != 0.0f && factor != 1.0f)
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                       "%s: metadata %s = %g scales RoPE linearly (no llama.rope.scaling.type); deco runs unscaled "
                       "RoPE only",
                       nm, key, (double)factor);
  }
  if (deco_gguf_find_tensor(g, "rope_freqs.weight"))
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: tensor rope_freqs.weight (Llama 3.1 RoPE frequency factors) is not supported", nm);
  m->theta = theta;
  m->eps = eps;
  return DECO_STATUS_SUCCESS;
}

/* Every tensor must be one of a Llama's, each at most once (names are
 * unique after the parse), and within block_count; token_embd is needed. */
static deco_status_t gg_check_tensor_names(const deco_gguf_t *g, gg_llama_t *m) {
  const char *nm = g->name;
  m->emb = deco_gguf_find_tensor(g, "token_embd.weight");
  if (!m->emb) return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: tensor token_embd.weight is missing", nm);
  for (uint64_t i = 0; i < g->n_tensors; ++i) {
    const deco_gguf_tensor_t *t = &g->tensors[i];
    int role;
    long layer;
    if (!gg_parse_role(t->name, &role, &layer))
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: tensor %llu ('%s') is not a tensor of a llama model", nm,
                       (unsigned long long)i, t->name);
    if (layer >= m->layers)
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                       "%s: tensor %llu ('%s') belongs to layer %ld but llama.block_count = %lld", nm,
                       (unsigned long long)i, t->name, layer, (long long)m->layers);
  }
  return DECO_STATUS_SUCCESS;
}

/* The vocabulary: llama.vocab_size when present, else token_embd's rows;
 * a tokenizer's token list must have the same length. */
static deco_status_t gg_read_vocab(const deco_gguf_t *g, gg_llama_t *m) {
  const char *nm = g->name;
  const deco_gguf_tensor_t *emb = m->emb;
  int64_t vocab = (int64_t)(emb->dims[1] <= GG_MAX_VOCAB ? emb->dims[1] : GG_MAX_VOCAB + 1);
  if (deco_gguf_find_kv(g, "llama.vocab_size"))
    DECO_TRY(gg_int_field(g, "llama.vocab_size", 1, 0, 1, GG_MAX_VOCAB, &vocab));
  if (vocab < 1 || vocab > GG_MAX_VOCAB)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: tensor token_embd.weight has %llu rows, outside 1..%d", nm,
                     (unsigned long long)emb->dims[1], GG_MAX_VOCAB);
  const deco_gguf_kv_t *tokens = deco_gguf_find_kv(g, "tokenizer.ggml.tokens");
  if (tokens) {
    if (tokens->type != DECO_GGUF_VAL_ARRAY || tokens->elem_type != DECO_GGUF_VAL_STRING)
      return gg_wrong_type(g, tokens, "an array of strings");
    if (tokens->count != (uint64_t)vocab)
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                       "%s: metadata tokenizer.ggml.tokens has %llu tokens but the vocabulary is %lld", nm,
                       (unsigned long long)tokens->count, (long long)vocab);
  }
  m->vocab = vocab;
  m->tokens = tokens;
  return DECO_STATUS_SUCCESS;
}

/* The shape the metadata implies for a role's tensor (nd dims) and the
 * keys that imply it, for the message. */
typedef struct gg_shape {
  uint64_t want[2];
  int nd;
  const char *why;
} gg_shape_t;

static gg_shape_t gg_role_shape(int role, const gg_llama_t *m) {
  uint64_t D = (uint64_t)m->dim, H = (uint64_t)m->hidden, Q = (uint64_t)(m->heads * m->head_dim),
           KV = (uint64_t)(m->kv_heads * m->head_dim), V = (uint64_t)m->vocab;
  switch (role) {
    case DECO_GGUF_TOKEN_EMBD: case DECO_GGUF_OUTPUT: return (gg_shape_t){{D, V}, 2, "embedding_length, vocabulary"};
    case DECO_GGUF_OUTPUT_NORM: case DECO_GGUF_ATTN_NORM: case DECO_GGUF_FFN_NORM:
      return (gg_shape_t){{D, 0}, 1, "embedding_length"};
    case DECO_GGUF_ATTN_Q: return (gg_shape_t){{D, Q}, 2, "embedding_length, head_count x head dim"};
    case DECO_GGUF_ATTN_K: case DECO_GGUF_ATTN_V:
      return (gg_shape_t){{D, KV}, 2, "embedding_length, head_count_kv x head dim"};
    case DECO_GGUF_ATTN_OUTPUT: return (gg_shape_t){{Q, D}, 2, "head_count x head dim, embedding_length"};
    case DECO_GGUF_FFN_GATE: case DECO_GGUF_FFN_UP:
      return (gg_shape_t){{D, H}, 2, "embedding_length, feed_forward_length"};
    default: /* DECO_GGUF_FFN_DOWN */ return (gg_shape_t){{H, D}, 2, "feed_forward_length, embedding_length"};
  }
}

/* The tensor of a role in layer l: present (output.weight may be absent,
 * tied to token_embd), of the implied shape and of a type deco reads. */
static deco_status_t gg_check_role_tensor(const deco_gguf_t *g, const gg_llama_t *m, int role, int l,
                                          const gg_shape_t *shape) {
  const char *nm = g->name;
  const deco_gguf_tensor_t *t = deco_gguf_llama_tensor(g, (deco_gguf_role_t)role, l);
  char tname[DECO_GGUF_MAX_NAME];
  if (gg_role_per_layer(role)) snprintf(tname, sizeof tname, "blk.%d.%s.weight", l, gg_role_name[role]);
  else snprintf(tname, sizeof tname, "%s.weight", gg_role_name[role]);
  if (!t) {
    if (role == DECO_GGUF_OUTPUT) return DECO_STATUS_SUCCESS; /* tied to token_embd */
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: tensor %s is missing", nm, tname);
  }
  const uint64_t *want = shape->want;
  uint64_t got[DECO_GGUF_MAX_DIMS] = {t->dims[0], t->dims[1], t->dims[2], t->dims[3]};
  int ok = got[0] == want[0] && (shape->nd == 1 ? got[1] == 1 : got[1] == want[1]) && got[2] == 1 && got[3] == 1;
  if (!ok) {
    char gs[128], ws[64];
    gg_shape_str(got, (int)t->n_dims, gs, sizeof gs);
    gg_shape_str(want, shape->nd, ws, sizeof ws);
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: tensor %s has shape %s but the metadata implies %s (%s; head dim %lld)", nm, tname, gs, ws,
                     shape->why, (long long)m->head_dim);
  }
  if (!deco_gguf_type_supported(t->type))
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: tensor %s has type %s, which deco does not read (F32, F16, BF16, Q8_0, Q4_0, Q4_1)", nm,
                     tname, deco_gguf_type_name(t->type));
  return DECO_STATUS_SUCCESS;
}

/* Every role's tensor in every layer, role by role. */
static deco_status_t gg_check_tensor_shapes(const deco_gguf_t *g, const gg_llama_t *m) {
  for (int role = 0; role < DECO_GGUF_N_ROLES; ++role) {
    gg_shape_t shape = gg_role_shape(role, m);
    int n_layers = gg_role_per_layer(role) ? (int)m->layers : 1;
    for (int l = 0; l < n_layers; ++l) DECO_TRY(gg_check_role_tensor(g, m, role, l, &shape));
  }
  return DECO_STATUS_SUCCESS;
}

/* Special ids (the tokenizer of issue 14 decides how a prompt starts):
 * BOS when the file names one, else -1; stop at EOS and at EOT when
 * named. Each must lie inside the vocabulary. */
static deco_status_t gg_read_special_ids(const deco_gguf_t *g, const gg_llama_t *m, int64_t ids[3]) {
  static const char *const id_keys[3] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                         "tokenizer.ggml.eot_token_id"};
  for (int k = 0; k < 3; ++k) DECO_TRY(gg_int_field(g, id_keys[k], 0, -1, 0, m->vocab - 1, &ids[k]));
  return DECO_STATUS_SUCCESS;
}

/* The id of the token "<|endoftext|>" in the token list, else -1. */
static int64_t gg_endoftext_id(const deco_gguf_kv_t *tokens) {
  static const char eot_text[] = "<|endoftext|>";
  if (!tokens) return -1;
  const unsigned char *p = tokens->value; /* lengths were checked by the parse */
  for (uint64_t i = 0; i < tokens->count; ++i) {
    uint64_t len = rd_u64(p);
    if (len == sizeof eot_text - 1 && memcmp(p + 8, eot_text, len) == 0) return (int64_t)i;
    p += 8 + len;
  }
  return -1;
}

/* Appends the stop ids that are set (>= 0), each once, in order. */
static void gg_add_stop_ids(deco_model_hparams_t *c, const int64_t stops[3]) {
  for (int k = 0; k < 3; ++k) {
    int dup = stops[k] < 0;
    for (int j = 0; j < c->n_stop_ids && !dup; ++j) dup = c->stop_ids[j] == stops[k];
    if (!dup) c->stop_ids[c->n_stop_ids++] = (int32_t)stops[k];
  }
}

/* The checks in the order their messages take precedence. */
static deco_status_t gg_llama_derive(const deco_gguf_t *g, gg_llama_t *m, int64_t ids[3]) {
  memset(m, 0, sizeof *m);
  DECO_TRY(gg_check_arch(g));
  DECO_TRY(gg_read_sizes(g, m));
  DECO_TRY(gg_check_heads(g, m));
  DECO_TRY(gg_read_rope_norm(g, m));
  DECO_TRY(gg_check_tensor_names(g, m));
  DECO_TRY(gg_read_vocab(g, m));
  DECO_TRY(gg_check_tensor_shapes(g, m));
  return gg_read_special_ids(g, m, ids);
}

deco_status_t deco_gguf_llama_hparams(const deco_gguf_t *g, deco_model_hparams_t *hparams) {
  if (!g || !hparams)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_gguf_llama_hparams: g or hparams is NULL");
  gg_llama_t m;
  int64_t ids[3];
  DECO_TRY(gg_llama_derive(g, &m, ids));

  deco_model_hparams_t c;
  memset(&c, 0, sizeof c);
  c.dim = (int)m.dim;
  c.hidden_dim = (int)m.hidden;
  c.n_layers = (int)m.layers;
  c.n_heads = (int)m.heads;
  c.n_kv_heads = (int)m.kv_heads;
  c.head_dim = (int)m.head_dim;
  c.vocab_size = (int)m.vocab;
  c.seq_len = (int)m.context;
  c.rope_theta = m.theta;
  c.norm_eps = m.eps;
  c.rope_style = DECO_ROPE_INTERLEAVED;
  c.shared_classifier = deco_gguf_find_tensor(g, "output.weight") == NULL;
  c.builtin_vocab = 0;
  c.bos_id = (int)ids[0];
  /* <|endoftext|> ends a document in GPT-2 style vocabularies (SmolLM2's id
   * 0, while its eos_token_id is <|im_end|>): a model that emits it is done
   * whatever its chat tokens say. BOS stops nothing. */
  const int64_t stops[3] = {ids[1], ids[2], gg_endoftext_id(m.tokens)};
  gg_add_stop_ids(&c, stops);
  *hparams = c;
  return DECO_STATUS_SUCCESS;
}

/* ---- dequantisation ------------------------------------------------------ */

/* The block formats and their arithmetic are defined once, in
 * kernels/quant/quant_block.h, for this reader and the deco_dequant op. */
static float gg_f16(const unsigned char *p) { return deco_qb_f16(deco_qb_u16(p)); }
_Static_assert(DECO_GGUF_QK == DECO_QUANT_BLOCK && DECO_GGUF_Q4_0_BYTES == DECO_QB_Q4_0_BYTES &&
                   DECO_GGUF_Q4_1_BYTES == DECO_QB_Q4_1_BYTES && DECO_GGUF_Q8_0_BYTES == DECO_QB_Q8_0_BYTES,
               "gguf.h's block sizes are quant_block.h's");
_Static_assert((int)DECO_GGUF_F32 == (int)DECO_QUANT_F32 && (int)DECO_GGUF_F16 == (int)DECO_QUANT_F16 &&
                   (int)DECO_GGUF_BF16 == (int)DECO_QUANT_BF16 && (int)DECO_GGUF_Q8_0 == (int)DECO_QUANT_Q8_0 &&
                   (int)DECO_GGUF_Q4_0 == (int)DECO_QUANT_Q4_0 && (int)DECO_GGUF_Q4_1 == (int)DECO_QUANT_Q4_1,
               "GGUF's tensor type ids are deco_quant_type_t's");

void deco_gguf_dequant_q4_0(const unsigned char block[DECO_GGUF_Q4_0_BYTES], float out[DECO_GGUF_QK]) {
  for (int j = 0; j < DECO_GGUF_QK; ++j) out[j] = deco_qb_q4_0(block, j);
}

void deco_gguf_dequant_q4_1(const unsigned char block[DECO_GGUF_Q4_1_BYTES], float out[DECO_GGUF_QK]) {
  for (int j = 0; j < DECO_GGUF_QK; ++j) out[j] = deco_qb_q4_1(block, j);
}

void deco_gguf_dequant_q8_0(const unsigned char block[DECO_GGUF_Q8_0_BYTES], float out[DECO_GGUF_QK]) {
  for (int j = 0; j < DECO_GGUF_QK; ++j) out[j] = deco_qb_q8_0(block, j);
}

int deco_gguf_dequant(uint32_t type, const void *src, uint64_t n, float *out) {
  uint32_t elems, bytes;
  if (!deco_gguf_type_supported(type) || !deco_qb_block((int)type, &elems, &bytes) || n % elems != 0) return -1;
  for (uint64_t i = 0; i < n; ++i) out[i] = deco_qb_element((int)type, src, (size_t)i);
  return 0;
}

/* Element i of an F32, F16 or BF16 tensor's data, as f32. */
static float gg_element_f32(uint32_t type, const unsigned char *p, uint64_t i) {
  float v;
  if (type == DECO_GGUF_F32) memcpy(&v, p + 4 * i, 4);
  else if (type == DECO_GGUF_F16) v = gg_f16(p + 2 * i);
  else v = deco_qb_bf16(deco_qb_u16(p + 2 * i));
  return v;
}

/* F32, F16, BF16: every element; the first non-finite one is named. */
static deco_status_t gg_check_finite_elements(const deco_gguf_t *g, const deco_gguf_tensor_t *t) {
  for (uint64_t i = 0; i < t->n_elements; ++i) {
    const float v = gg_element_f32(t->type, t->data, i);
    if (!isfinite(v))
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: tensor %s, element %llu (of %llu) is %s", g->name,
                       t->name, (unsigned long long)i, (unsigned long long)t->n_elements, isnan(v) ? "nan" : "inf");
  }
  return DECO_STATUS_SUCCESS;
}

/* Q4_0, Q4_1, Q8_0 (blocks of block_bytes): each block's f16 scales, d and
 * Q4_1's m; the quants are integers. The first bad scale is named, d
 * before m. */
static deco_status_t gg_check_finite_scales(const deco_gguf_t *g, const deco_gguf_tensor_t *t, uint32_t block_bytes) {
  const uint64_t blocks = t->n_elements / DECO_GGUF_QK;
  for (uint64_t b = 0; b < blocks; ++b) {
    const unsigned char *blk = t->data + b * block_bytes;
    const float d = gg_f16(blk), m = t->type == DECO_GGUF_Q4_1 ? gg_f16(blk + 2) : 0.0f;
    if (isfinite(d) && isfinite(m)) continue;
    const int bad_d = !isfinite(d);
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: tensor %s, block %llu (of %llu) has a %s scale %s = %s",
                     g->name, t->name, (unsigned long long)b, (unsigned long long)blocks,
                     deco_gguf_type_name(t->type), bad_d ? "d" : "m", isnan(bad_d ? d : m) ? "nan" : "inf");
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_gguf_check_finite(const deco_gguf_t *g, const deco_gguf_tensor_t *t) {
  if (!g || !t) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_gguf_check_finite: g or t is NULL");
  if (!deco_gguf_type_supported(t->type))
    return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED, "%s: tensor %s has type %s, which deco does not read", g->name,
                     t->name, deco_gguf_type_name(t->type) ? deco_gguf_type_name(t->type) : "?");
  /* The types read are F32, F16 and BF16 (blocks of one element) and the
   * scaled blocks Q4_0, Q4_1 and Q8_0. */
  const gg_type_info_t *ti = gg_type(t->type);
  if (ti->block_elems == 1) return gg_check_finite_elements(g, t);
  return gg_check_finite_scales(g, t, ti->block_bytes);
}
