/* User sequences from IISAN's tab-separated files (data.h): an items file
 * "item_id<TAB>title" and a users file "user_id<TAB>item item ...", with
 * the reference code's filtering (GAIR-Lab/IISAN, Code_Cached/data_utils/
 * preprocess.py, read_behaviors): sequences shorter than min_length
 * dropped, the last max_length items of the others kept, the items of the
 * kept sequences numbered from 1 in the items file's order (0 = padding),
 * the others dropped; leave-one-out split.
 *
 * Reading: the items file's ids and titles go into one text arena (each
 * NUL-terminated) and a hash table from item id to its line's position;
 * each users line is checked whole (printable ASCII, every item known, the
 * user new) and its last max_length items appended, as positions in the
 * items file, when it is long enough. Then the items used get their ids in
 * file order and the sequences are renumbered in place. The user names
 * live in the same arena; a second hash table finds repeated users. */
#include "data_internal.h"
#include "lines.h"
#include "../core/config_sizes.h"

#include <stdio.h>
#include <string.h>

#define MMREC__SEQUENCES_MAGIC 0x6d6d5351u /* "mmSQ" */

struct mmrec_sequences {
    uint32_t magic;
    int64_t num_users, num_items;
    size_t count;
    int64_t *seq_ptr;      /* num_users + 1: user u's items at items[seq_ptr[u] ..] */
    int64_t *items;        /* count item ids, 1 .. num_items (at least 1 entry) */
    int64_t *train_counts; /* num_items + 1 */
    char *text;            /* NUL-terminated item ids, titles and user names */
    size_t *item_text;     /* 2 (num_items + 1): offsets of item i's id and title */
    size_t *user_text;     /* num_users (at least 1): offset of user u's name */
};

/* ---- growable arrays ---- */

/* Grows *array (of `size`-byte elements, *cap of them) to hold `need`;
 * doubles at least. */
static mmrec_status mmrec__seq_reserve(void **array, size_t *cap, size_t need, size_t size,
                                       const char *func) {
    if (need <= *cap) return MMREC_OK;
    size_t cap2 = *cap ? *cap : 256, bytes = 0;
    while (cap2 < need) cap2 = cap2 * 2 > cap2 ? cap2 * 2 : need;
    if (!mmrec__mul_size(cap2, size, &bytes))
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory for %zu entries", need);
    void *grown = mmrec__alloc(bytes);
    if (grown == NULL)
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory for %zu entries", need);
    if (*cap) memcpy(grown, *array, *cap * size);
    mmrec__free(*array);
    *array = grown;
    *cap = cap2;
    return MMREC_OK;
}

/* ---- a hash table of strings of the text arena ---- */

typedef struct mmrec__seq_table {
    size_t *slot; /* cap entries: 1 + index of a key, 0 empty */
    size_t cap, used;
} mmrec__seq_table;

static uint64_t mmrec__seq_hash(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* The reader's state while it reads both files. */
typedef struct mmrec__seq_reader {
    const char *func;
    char *text;
    size_t text_len, text_cap;
    /* items file: per line, the offsets of its id and title, its line */
    size_t *item_text; /* 2 per item */
    unsigned long long *item_line;
    size_t n_before, item_cap, line_cap;
    mmrec__seq_table item_index;
    /* users file */
    size_t *user_text;
    unsigned long long *user_line;
    size_t n_names, name_cap, user_line_cap;
    mmrec__seq_table user_index;
    int64_t *seq_ptr; /* kept users + 1 */
    size_t *kept_name; /* name index of each kept user */
    size_t n_kept, ptr_cap, kept_cap;
    int64_t *items; /* positions (0-based) in the items file, then ids */
    size_t count, items_cap;
    int64_t *line_items; /* the current line's items */
    size_t line_items_cap;
} mmrec__seq_reader;

/* The key at offset `off` of the arena equals s[0, len) (which holds no
 * NUL). strncmp stops at the key's NUL: a key shorter than len is never
 * read past its end, which may be the end of the arena. */
static bool mmrec__seq_key_is(const mmrec__seq_reader *r, size_t off, const char *s, size_t len) {
    return strncmp(r->text + off, s, len) == 0 && r->text[off + len] == '\0';
}

/* Looks s up in table t whose keys are at offsets[stride * k]; returns
 * 1 + its index, or 0 with *slot_out the empty slot where it would go. */
static size_t mmrec__seq_find(const mmrec__seq_reader *r, const mmrec__seq_table *t,
                              const size_t *offsets, size_t stride, const char *s, size_t len,
                              size_t *slot_out) {
    size_t mask = t->cap - 1, k = (size_t)mmrec__seq_hash(s, len) & mask;
    for (;; k = (k + 1) & mask) {
        size_t e = t->slot[k];
        if (e == 0) {
            *slot_out = k;
            return 0;
        }
        if (mmrec__seq_key_is(r, offsets[(e - 1) * stride], s, len)) return e;
    }
}

/* Makes room in t for one more key (load at most 1/2), rehashing. */
static mmrec_status mmrec__seq_table_grow(const mmrec__seq_reader *r, mmrec__seq_table *t,
                                          const size_t *offsets, size_t stride) {
    if (2 * (t->used + 1) <= t->cap) return MMREC_OK;
    size_t cap = t->cap ? 2 * t->cap : 1024;
    size_t *slot = mmrec__calloc(cap, sizeof *slot);
    if (slot == NULL) return mmrec__set_error(MMREC_ENOMEM, r->func, "out of memory");
    for (size_t k = 0; k < t->cap; k++) {
        size_t e = t->slot[k];
        if (e == 0) continue;
        const char *key = r->text + offsets[(e - 1) * stride];
        size_t j = (size_t)mmrec__seq_hash(key, strlen(key)) & (cap - 1);
        while (slot[j] != 0) j = (j + 1) & (cap - 1);
        slot[j] = e;
    }
    mmrec__free(t->slot);
    t->slot = slot;
    t->cap = cap;
    return MMREC_OK;
}

/* Appends s[0, len) and a NUL to the arena; *off gets its offset. */
static mmrec_status mmrec__seq_text_put(mmrec__seq_reader *r, const char *s, size_t len,
                                        size_t *off) {
    void *text = r->text;
    MMREC_FORWARD_IF(mmrec__seq_reserve(&text, &r->text_cap, r->text_len + len + 1, 1, r->func));
    r->text = text;
    memcpy(r->text + r->text_len, s, len);
    r->text[r->text_len + len] = '\0';
    *off = r->text_len;
    r->text_len += len + 1;
    return MMREC_OK;
}

static void mmrec__seq_reader_free(mmrec__seq_reader *r) {
    mmrec__free(r->text);
    mmrec__free(r->item_text);
    mmrec__free(r->item_line);
    mmrec__free(r->item_index.slot);
    mmrec__free(r->user_text);
    mmrec__free(r->user_line);
    mmrec__free(r->user_index.slot);
    mmrec__free(r->seq_ptr);
    mmrec__free(r->kept_name);
    mmrec__free(r->items);
    mmrec__free(r->line_items);
}

/* ---- the items file ---- */

#define MMREC__SEQ_BAD(lines, ...) \
    mmrec__set_error(MMREC_EFORMAT, (lines)->func, __VA_ARGS__)

static mmrec_status mmrec__seq_item_line(mmrec__seq_reader *r, const mmrec__lines *in,
                                         const char *line, size_t len) {
    const char *tab = memchr(line, '\t', len);
    char shown[200];
    if (tab == NULL)
        return MMREC__SEQ_BAD(in, "'%s' line %llu: no tab (expected item_id<TAB>title): '%s'",
                              in->path, in->line_no, mmrec__data_quote(line, len, shown, 200));
    size_t id_len = (size_t)(tab - line), title_len = len - id_len - 1;
    const char *title = tab + 1;
    if (id_len == 0)
        return MMREC__SEQ_BAD(in, "'%s' line %llu: empty item id before the tab", in->path,
                              in->line_no);
    for (size_t k = 0; k < id_len; k++) {
        unsigned char c = (unsigned char)line[k];
        if (c <= 0x20 || c >= 0x7f)
            return MMREC__SEQ_BAD(in, "'%s' line %llu: item id '%s' has byte 0x%02x at column "
                                  "%zu (printable ASCII without spaces expected)",
                                  in->path, in->line_no,
                                  mmrec__data_quote(line, id_len, shown, 200), c, k + 1);
    }
    if (title_len == 0)
        return MMREC__SEQ_BAD(in, "'%s' line %llu: item '%s' has an empty title", in->path,
                              in->line_no, mmrec__data_quote(line, id_len, shown, 200));
    const char *tab2 = memchr(title, '\t', title_len);
    if (tab2 != NULL)
        return MMREC__SEQ_BAD(in, "'%s' line %llu: a second tab at column %zu (expected "
                              "item_id<TAB>title, the title without tabs)",
                              in->path, in->line_no, (size_t)(tab2 - line) + 1);
    MMREC_FORWARD_IF(mmrec__seq_table_grow(r, &r->item_index, r->item_text, 2));
    size_t slot, hit = mmrec__seq_find(r, &r->item_index, r->item_text, 2, line, id_len, &slot);
    if (hit != 0)
        return MMREC__SEQ_BAD(in, "'%s' line %llu: item '%s' appears again (first on line %llu)",
                              in->path, in->line_no, mmrec__data_quote(line, id_len, shown, 200),
                              r->item_line[hit - 1]);
    void *p = r->item_text;
    size_t cap = r->item_cap;
    MMREC_FORWARD_IF(mmrec__seq_reserve(&p, &cap, 2 * (r->n_before + 1), sizeof(size_t), r->func));
    r->item_text = p;
    r->item_cap = cap;
    p = r->item_line;
    MMREC_FORWARD_IF(mmrec__seq_reserve(&p, &r->line_cap, r->n_before + 1,
                                        sizeof(unsigned long long), r->func));
    r->item_line = p;
    size_t id_off, title_off;
    MMREC_FORWARD_IF(mmrec__seq_text_put(r, line, id_len, &id_off));
    MMREC_FORWARD_IF(mmrec__seq_text_put(r, title, title_len, &title_off));
    r->item_text[2 * r->n_before] = id_off;
    r->item_text[2 * r->n_before + 1] = title_off;
    r->item_line[r->n_before] = in->line_no;
    r->item_index.slot[slot] = ++r->n_before;
    r->item_index.used++;
    return MMREC_OK;
}

static mmrec_status mmrec__seq_read_items(mmrec__seq_reader *r, const char *path) {
    mmrec__lines in;
    MMREC_FORWARD_IF(mmrec__lines_open(&in, path, r->func));
    mmrec_status s = MMREC_OK;
    for (;;) {
        const char *line;
        size_t len;
        s = mmrec__lines_next(&in, &line, &len);
        if (s != MMREC_OK || line == NULL) break;
        if (len == 0) continue;
        s = mmrec__seq_item_line(r, &in, line, len);
        if (s != MMREC_OK) break;
    }
    if (s == MMREC_OK && r->n_before == 0)
        s = MMREC__SEQ_BAD(&in, "'%s' holds no item line (item_id<TAB>title expected)", path);
    mmrec__lines_close(&in);
    return s;
}

/* ---- the users file ---- */

static mmrec_status mmrec__seq_user_line(mmrec__seq_reader *r, const mmrec__lines *in,
                                         const char *line, size_t len, const char *items_path,
                                         size_t min_length, size_t max_length) {
    char shown[200], shown_user[200];
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)line[k];
        if ((c < 0x20 && c != '\t') || c >= 0x7f)
            return MMREC__SEQ_BAD(in, "'%s' line %llu: byte 0x%02x at column %zu is not "
                                  "printable ASCII (user and item ids expected)",
                                  in->path, in->line_no, c, k + 1);
    }
    const char *tab = memchr(line, '\t', len);
    if (tab == NULL)
        return MMREC__SEQ_BAD(in, "'%s' line %llu: no tab (expected user_id<TAB>item item ...): "
                              "'%s'",
                              in->path, in->line_no, mmrec__data_quote(line, len, shown, 200));
    size_t name_len = (size_t)(tab - line);
    if (name_len == 0)
        return MMREC__SEQ_BAD(in, "'%s' line %llu: empty user id before the tab", in->path,
                              in->line_no);
    /* the user, once */
    MMREC_FORWARD_IF(mmrec__seq_table_grow(r, &r->user_index, r->user_text, 1));
    size_t slot, hit = mmrec__seq_find(r, &r->user_index, r->user_text, 1, line, name_len, &slot);
    if (hit != 0)
        return MMREC__SEQ_BAD(in, "'%s' line %llu: user '%s' appears again (first on line %llu)",
                              in->path, in->line_no,
                              mmrec__data_quote(line, name_len, shown, 200),
                              r->user_line[hit - 1]);
    /* its items, each known */
    size_t n = 0, k = name_len + 1;
    for (size_t field = 1;; field++) {
        while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == len) break;
        size_t begin = k;
        while (k < len && line[k] != ' ' && line[k] != '\t') k++;
        size_t ignored, e = mmrec__seq_find(r, &r->item_index, r->item_text, 2, line + begin,
                                            k - begin, &ignored);
        if (e == 0)
            return MMREC__SEQ_BAD(in, "'%s' line %llu: item '%s' (item %zu of user '%s') is not "
                                  "in '%s'",
                                  in->path, in->line_no,
                                  mmrec__data_quote(line + begin, k - begin, shown, 200), field,
                                  mmrec__data_quote(line, name_len, shown_user, 200),
                                  items_path);
        void *p = r->line_items;
        MMREC_FORWARD_IF(
            mmrec__seq_reserve(&p, &r->line_items_cap, n + 1, sizeof(int64_t), r->func));
        r->line_items = p;
        r->line_items[n++] = (int64_t)(e - 1);
    }
    /* record the name */
    void *p = r->user_text;
    MMREC_FORWARD_IF(mmrec__seq_reserve(&p, &r->name_cap, r->n_names + 1, sizeof(size_t), r->func));
    r->user_text = p;
    p = r->user_line;
    MMREC_FORWARD_IF(mmrec__seq_reserve(&p, &r->user_line_cap, r->n_names + 1,
                                        sizeof(unsigned long long), r->func));
    r->user_line = p;
    size_t name_off;
    MMREC_FORWARD_IF(mmrec__seq_text_put(r, line, name_len, &name_off));
    r->user_text[r->n_names] = name_off;
    r->user_line[r->n_names] = in->line_no;
    r->user_index.slot[slot] = ++r->n_names;
    r->user_index.used++;
    if (n < min_length) return MMREC_OK;
    /* keep its last max_length items */
    size_t from = max_length && n > max_length ? n - max_length : 0, kept = n - from;
    p = r->items;
    MMREC_FORWARD_IF(
        mmrec__seq_reserve(&p, &r->items_cap, r->count + kept, sizeof(int64_t), r->func));
    r->items = p;
    p = r->seq_ptr;
    MMREC_FORWARD_IF(
        mmrec__seq_reserve(&p, &r->ptr_cap, r->n_kept + 2, sizeof(int64_t), r->func));
    r->seq_ptr = p;
    p = r->kept_name;
    MMREC_FORWARD_IF(
        mmrec__seq_reserve(&p, &r->kept_cap, r->n_kept + 1, sizeof(size_t), r->func));
    r->kept_name = p;
    memcpy(r->items + r->count, r->line_items + from, kept * sizeof(int64_t));
    r->count += kept;
    r->seq_ptr[0] = 0;
    r->kept_name[r->n_kept] = r->n_names - 1;
    r->seq_ptr[++r->n_kept] = (int64_t)r->count;
    return MMREC_OK;
}

static mmrec_status mmrec__seq_read_users(mmrec__seq_reader *r, const char *path,
                                          const char *items_path, size_t min_length,
                                          size_t max_length) {
    mmrec__lines in;
    MMREC_FORWARD_IF(mmrec__lines_open(&in, path, r->func));
    mmrec_status s = MMREC_OK;
    for (;;) {
        const char *line;
        size_t len;
        s = mmrec__lines_next(&in, &line, &len);
        if (s != MMREC_OK || line == NULL) break;
        if (len == 0) continue;
        s = mmrec__seq_user_line(r, &in, line, len, items_path, min_length, max_length);
        if (s != MMREC_OK) break;
    }
    mmrec__lines_close(&in);
    return s;
}

/* ---- building the object ---- */

void mmrec_sequences_destroy(mmrec_sequences *seqs) {
    if (seqs == NULL || seqs->magic != MMREC__SEQUENCES_MAGIC) return;
    seqs->magic = 0;
    mmrec__free(seqs->seq_ptr);
    mmrec__free(seqs->items);
    mmrec__free(seqs->train_counts);
    mmrec__free(seqs->text);
    mmrec__free(seqs->item_text);
    mmrec__free(seqs->user_text);
    mmrec__free(seqs);
}

/* Numbers the items used from 1 in file order, renumbers the sequences,
 * counts the training parts, and moves the arrays into a new object. */
static mmrec_status mmrec__seq_finish(mmrec__seq_reader *r, mmrec_sequences **out) {
    const char *func = r->func;
    size_t nb = r->n_before;
    int64_t *new_id = mmrec__calloc(nb, sizeof *new_id);
    mmrec_sequences *q = mmrec__calloc(1, sizeof *q);
    if (new_id == NULL || q == NULL) {
        mmrec__free(new_id);
        mmrec__free(q);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    }
    for (size_t k = 0; k < r->count; k++) new_id[r->items[k]] = 1;
    int64_t n_items = 0;
    for (size_t b = 0; b < nb; b++)
        if (new_id[b]) new_id[b] = ++n_items;
    size_t users = r->n_kept;
    q->train_counts = mmrec__calloc((size_t)n_items + 1, sizeof *q->train_counts);
    q->item_text = mmrec__alloc(2 * ((size_t)n_items + 1) * sizeof *q->item_text);
    q->user_text = mmrec__alloc((users ? users : 1) * sizeof *q->user_text);
    q->seq_ptr = mmrec__alloc((users + 1) * sizeof *q->seq_ptr);
    if (q->train_counts == NULL || q->item_text == NULL || q->user_text == NULL ||
        q->seq_ptr == NULL) {
        mmrec__free(new_id);
        q->magic = MMREC__SEQUENCES_MAGIC;
        mmrec_sequences_destroy(q);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    }
    q->item_text[0] = q->item_text[1] = r->text_len - 1; /* the padding: a NUL, "" */
    for (size_t b = 0; b < nb; b++)
        if (new_id[b]) {
            q->item_text[2 * new_id[b]] = r->item_text[2 * b];
            q->item_text[2 * new_id[b] + 1] = r->item_text[2 * b + 1];
        }
    for (size_t k = 0; k < r->count; k++) r->items[k] = new_id[r->items[k]];
    mmrec__free(new_id);
    q->seq_ptr[0] = 0;
    for (size_t u = 0; u < users; u++) {
        q->seq_ptr[u + 1] = r->seq_ptr[u + 1];
        q->user_text[u] = r->user_text[r->kept_name[u]];
        for (int64_t k = r->seq_ptr[u]; k < r->seq_ptr[u + 1] - 2; k++)
            q->train_counts[r->items[k]]++;
    }
    q->magic = MMREC__SEQUENCES_MAGIC;
    q->num_users = (int64_t)users;
    q->num_items = n_items;
    q->count = r->count;
    q->items = r->items;
    q->text = r->text;
    r->items = NULL;
    r->text = NULL;
    *out = q;
    return MMREC_OK;
}

static const mmrec_sequences_config mmrec__sequences_defaults = {
    .struct_size = sizeof(mmrec_sequences_config),
    .min_length = 5,
    .max_length = 13,
};

mmrec_status mmrec_sequences_config_init_sized(mmrec_sequences_config *cfg, size_t size) {
    return MMREC__CONFIG_INIT(mmrec_sequences_config, cfg, size, mmrec__sequences_defaults);
}

mmrec_status mmrec_sequences_read_tsv(const char *items_path, const char *users_path,
                                      const mmrec_sequences_config *cfg, mmrec_sequences **out) {
    MMREC_CHECK_NULL(items_path);
    MMREC_CHECK_NULL(users_path);
    MMREC_CHECK_NULL(out);
    mmrec_sequences_config c = mmrec__sequences_defaults;
    if (cfg != NULL) MMREC_FORWARD_IF(MMREC__CONFIG_MERGE(mmrec_sequences_config, &c, cfg));
    MMREC_FAIL_IF(c.min_length < 3, MMREC_EINVAL,
                  "cfg->min_length is %lld, expected >= 3 (a training item, the validation "
                  "target and the test target)",
                  (long long)c.min_length);
    MMREC_FAIL_IF(c.max_length != 0 && c.max_length < 3, MMREC_EINVAL,
                  "cfg->max_length is %lld, expected >= 3, or 0 for whole sequences",
                  (long long)c.max_length);
    size_t min_length = (uint64_t)c.min_length > SIZE_MAX ? SIZE_MAX : (size_t)c.min_length;
    size_t max_length = (uint64_t)c.max_length > SIZE_MAX ? SIZE_MAX : (size_t)c.max_length;
    mmrec__seq_reader r;
    memset(&r, 0, sizeof r);
    r.func = __func__;
    mmrec_status s = mmrec__seq_read_items(&r, items_path);
    if (s == MMREC_OK) s = mmrec__seq_read_users(&r, users_path, items_path, min_length, max_length);
    if (s == MMREC_OK && r.items == NULL) { /* no user kept: one entry, unused */
        void *p = r.items;
        s = mmrec__seq_reserve(&p, &r.items_cap, 1, sizeof(int64_t), __func__);
        r.items = p;
    }
    if (s == MMREC_OK && r.seq_ptr == NULL) {
        void *p = r.seq_ptr;
        s = mmrec__seq_reserve(&p, &r.ptr_cap, 1, sizeof(int64_t), __func__);
        r.seq_ptr = p;
        if (s == MMREC_OK) r.seq_ptr[0] = 0;
    }
    if (s == MMREC_OK) s = mmrec__seq_finish(&r, out);
    mmrec__seq_reader_free(&r);
    return s;
}

/* ---- reading the object ---- */

static mmrec_status mmrec__sequences_check(const mmrec_sequences *seqs, const char *func) {
    if (seqs == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'seqs' is NULL");
    if (seqs->magic != MMREC__SEQUENCES_MAGIC)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "argument 'seqs' is not a sequences object (destroyed?)");
    return MMREC_OK;
}

static mmrec_status mmrec__sequences_user_check(const mmrec_sequences *seqs, int64_t user,
                                                const char *func) {
    MMREC_FORWARD_IF(mmrec__sequences_check(seqs, func));
    if (user < 0 || user >= seqs->num_users)
        return mmrec__set_error(MMREC_ERANGE, func, "user is %lld, outside [0, %lld)",
                                (long long)user, (long long)seqs->num_users);
    return MMREC_OK;
}

mmrec_status mmrec_sequences_info(const mmrec_sequences *seqs, int64_t *num_users,
                                  int64_t *num_items, size_t *count) {
    MMREC_FORWARD_IF(mmrec__sequences_check(seqs, __func__));
    if (num_users) *num_users = seqs->num_users;
    if (num_items) *num_items = seqs->num_items;
    if (count) *count = seqs->count;
    return MMREC_OK;
}

mmrec_status mmrec_sequences_user(const mmrec_sequences *seqs, int64_t user,
                                  const int64_t **items_out, size_t *length_out) {
    MMREC_CHECK_NULL(items_out);
    MMREC_CHECK_NULL(length_out);
    MMREC_FORWARD_IF(mmrec__sequences_user_check(seqs, user, __func__));
    *items_out = seqs->items + seqs->seq_ptr[user];
    *length_out = (size_t)(seqs->seq_ptr[user + 1] - seqs->seq_ptr[user]);
    return MMREC_OK;
}

mmrec_status mmrec_sequences_user_name(const mmrec_sequences *seqs, int64_t user,
                                       const char **name_out) {
    MMREC_CHECK_NULL(name_out);
    MMREC_FORWARD_IF(mmrec__sequences_user_check(seqs, user, __func__));
    *name_out = seqs->text + seqs->user_text[user];
    return MMREC_OK;
}

mmrec_status mmrec_sequences_item(const mmrec_sequences *seqs, int64_t item,
                                  const char **asin_out, const char **title_out) {
    MMREC_FORWARD_IF(mmrec__sequences_check(seqs, __func__));
    MMREC_FAIL_IF(item < 1 || item > seqs->num_items, MMREC_ERANGE,
                  "item is %lld, outside [1, %lld] (0 is the padding id)", (long long)item,
                  (long long)seqs->num_items);
    if (asin_out) *asin_out = seqs->text + seqs->item_text[2 * item];
    if (title_out) *title_out = seqs->text + seqs->item_text[2 * item + 1];
    return MMREC_OK;
}

mmrec_status mmrec_sequences_train_counts(const mmrec_sequences *seqs,
                                          const int64_t **counts_out) {
    MMREC_FORWARD_IF(mmrec__sequences_check(seqs, __func__));
    MMREC_CHECK_NULL(counts_out);
    *counts_out = seqs->train_counts;
    return MMREC_OK;
}

/* Whether position k of a sequence of length len belongs to `parts`. */
static inline bool mmrec__seq_in_parts(size_t k, size_t len, uint32_t parts) {
    uint32_t part = k + 1 == len   ? MMREC_SEQUENCES_TEST
                    : k + 2 == len ? MMREC_SEQUENCES_VALID
                                   : MMREC_SEQUENCES_TRAIN;
    return (parts & part) != 0;
}

mmrec_status mmrec_sequences_interactions(const mmrec_sequences *seqs, uint32_t parts,
                                          mmrec_interactions **out) {
    MMREC_FORWARD_IF(mmrec__sequences_check(seqs, __func__));
    MMREC_CHECK_NULL(out);
    const uint32_t all = MMREC_SEQUENCES_TRAIN | MMREC_SEQUENCES_VALID | MMREC_SEQUENCES_TEST;
    MMREC_FAIL_IF(parts == 0 || (parts & ~all) != 0, MMREC_EINVAL,
                  "parts is 0x%x, expected a non-empty OR of MMREC_SEQUENCES_TRAIN (0x1), "
                  "_VALID (0x2) and _TEST (0x4)",
                  parts);
    size_t n = 0;
    for (int64_t u = 0; u < seqs->num_users; u++) {
        size_t len = (size_t)(seqs->seq_ptr[u + 1] - seqs->seq_ptr[u]);
        for (size_t k = 0; k < len; k++) n += mmrec__seq_in_parts(k, len, parts);
    }
    mmrec_interactions *x = mmrec__calloc(1, sizeof *x);
    if (x != NULL && n > 0) {
        x->users = mmrec__alloc(n * sizeof *x->users);
        x->items = mmrec__alloc(n * sizeof *x->items);
    }
    if (x == NULL || (n > 0 && (x->users == NULL || x->items == NULL))) {
        if (x != NULL) {
            mmrec__free(x->users);
            mmrec__free(x->items);
        }
        mmrec__free(x);
        MMREC_FAIL(MMREC_ENOMEM, "out of memory for %zu pairs", n);
    }
    size_t w = 0;
    int64_t max_user = -1, max_item = -1;
    for (int64_t u = 0; u < seqs->num_users; u++) {
        const int64_t *s = seqs->items + seqs->seq_ptr[u];
        size_t len = (size_t)(seqs->seq_ptr[u + 1] - seqs->seq_ptr[u]);
        for (size_t k = 0; k < len; k++) {
            if (!mmrec__seq_in_parts(k, len, parts)) continue;
            x->users[w] = u;
            x->items[w] = s[k];
            w++;
            max_user = u;
            if (s[k] > max_item) max_item = s[k];
        }
    }
    x->magic = MMREC__INTERACTIONS_MAGIC;
    x->count = n;
    x->num_users = max_user + 1;
    x->num_items = max_item + 1;
    *out = x;
    return MMREC_OK;
}
