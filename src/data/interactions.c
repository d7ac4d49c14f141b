/* Interaction data (user-item pairs) from caller memory, from LightGCN /
 * NGCF text files ("user item item ...") and from MMRec toolbox .inter files
 * (tab-separated, with a header naming userID, itemID and x_label).
 *
 * Files go through the line reader of lines.h, so lines of any length are
 * read without holding the file. Integers are
 * parsed by hand (no locale, overflow checked) and the pairs go into two
 * arrays grown by doubling. Every error names the file and the 1-based line
 * number. */
#include "data_internal.h"
#include "lines.h"

#include <string.h>

/* Pairs held by the first pair arrays. */
#define MMREC__DATA_FIRST_PAIRS ((size_t)1024)

/* ---- the object ---- */

static mmrec_status mmrec__interactions_check(const mmrec_interactions *x, const char *func) {
    if (x == NULL) return mmrec__set_error(MMREC_EINVAL, func, "argument 'x' is NULL");
    if (x->magic != MMREC__INTERACTIONS_MAGIC)
        return mmrec__set_error(MMREC_EINVAL, func,
                                "argument 'x' is not an interactions object (destroyed?)");
    return MMREC_OK;
}

mmrec_status mmrec_interactions_info(const mmrec_interactions *x, int64_t *num_users,
                                     int64_t *num_items, size_t *count) {
    MMREC_FORWARD_IF(mmrec__interactions_check(x, __func__));
    if (num_users) *num_users = x->num_users;
    if (num_items) *num_items = x->num_items;
    if (count) *count = x->count;
    return MMREC_OK;
}

mmrec_status mmrec_interactions_pairs(const mmrec_interactions *x, const int64_t **users,
                                      const int64_t **items) {
    MMREC_FORWARD_IF(mmrec__interactions_check(x, __func__));
    MMREC_CHECK_NULL(users);
    MMREC_CHECK_NULL(items);
    *users = x->users;
    *items = x->items;
    return MMREC_OK;
}

void mmrec_interactions_destroy(mmrec_interactions *x) {
    if (x == NULL) return;
    x->magic = 0;
    mmrec__free(x->users);
    mmrec__free(x->items);
    mmrec__free(x);
}

/* The first index k < n with ids[k] outside 0 .. MMREC__DATA_MAX_ID, or n. */
static size_t mmrec__data_first_bad(const int64_t *ids, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (ids[k] < 0 || ids[k] > MMREC__DATA_MAX_ID) return k;
    return n;
}

mmrec_status mmrec_interactions_create(const int64_t *users, const int64_t *items, size_t n,
                                       mmrec_interactions **out) {
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(n > 0 && users == NULL, MMREC_EINVAL, "argument 'users' is NULL (n is %zu)", n);
    MMREC_FAIL_IF(n > 0 && items == NULL, MMREC_EINVAL, "argument 'items' is NULL (n is %zu)", n);
    size_t bad = mmrec__data_first_bad(users, n);
    MMREC_FAIL_IF(bad < n, MMREC_EINVAL, "users[%zu] is %lld, expected 0 .. INT64_MAX - 1", bad,
                  (long long)users[bad]);
    bad = mmrec__data_first_bad(items, n);
    MMREC_FAIL_IF(bad < n, MMREC_EINVAL, "items[%zu] is %lld, expected 0 .. INT64_MAX - 1", bad,
                  (long long)items[bad]);
    size_t bytes = 0;
    MMREC_FAIL_IF(!mmrec__mul_size(n, sizeof(int64_t), &bytes), MMREC_ENOMEM,
                  "out of memory for %zu pairs", n);
    mmrec_interactions *x = mmrec__calloc(1, sizeof *x);
    if (x != NULL && n > 0) {
        x->users = mmrec__alloc(bytes);
        x->items = mmrec__alloc(bytes);
    }
    if (x == NULL || (n > 0 && (x->users == NULL || x->items == NULL))) {
        mmrec_interactions_destroy(x);
        MMREC_FAIL(MMREC_ENOMEM, "out of memory for %zu pairs", n);
    }
    int64_t max_user = -1, max_item = -1;
    for (size_t k = 0; k < n; k++) {
        x->users[k] = users[k];
        x->items[k] = items[k];
        if (users[k] > max_user) max_user = users[k];
        if (items[k] > max_item) max_item = items[k];
    }
    x->magic = MMREC__INTERACTIONS_MAGIC;
    x->count = n;
    x->num_users = max_user + 1;
    x->num_items = max_item + 1;
    *out = x;
    return MMREC_OK;
}

/* ---- pair arrays grown geometrically ---- */

/* Each growth at least doubles the arrays; when they are read from a file,
 * a growth goes straight to the count projected for the whole file from
 * the bytes consumed so far (plus 1/8), so a large file is usually read with
 * one or two growths instead of copying (and touching fresh pages for) every
 * power of two. */
typedef struct mmrec__pairs {
    int64_t *users, *items;
    size_t count, cap;
    int64_t max_user, max_item; /* -1: none yet */
    const mmrec__lines *source; /* the file being read, or NULL */
} mmrec__pairs;

static void mmrec__pairs_init(mmrec__pairs *p, const mmrec__lines *source) {
    memset(p, 0, sizeof *p);
    p->max_user = -1;
    p->max_item = -1;
    p->source = source;
}

/* The pair count projected for the whole source file, or 0. A pair takes
 * at least 2 bytes ("0 "), which bounds the projection. */
static size_t mmrec__pairs_projected(const mmrec__pairs *p) {
    if (p->source == NULL) return 0;
    uint64_t done = mmrec__lines_consumed(p->source), size = p->source->size;
    if (done == 0 || size <= done) return 0;
    double projected = (double)p->count * ((double)size / (double)done) * 1.125;
    double bound = (double)(size / 2 + 1);
    if (projected > bound) projected = bound;
    return projected < (double)(SIZE_MAX / 16) ? (size_t)projected : 0;
}

static void mmrec__pairs_free(mmrec__pairs *p) {
    mmrec__free(p->users);
    mmrec__free(p->items);
    p->users = p->items = NULL;
}

static mmrec_status mmrec__pairs_grow(mmrec__pairs *p, const char *func) {
    size_t cap = p->cap ? p->cap * 2 : MMREC__DATA_FIRST_PAIRS, bytes = 0;
    size_t projected = p->cap ? mmrec__pairs_projected(p) : 0;
    if (cap > p->cap && projected > cap) cap = projected;
    if (cap < p->cap || !mmrec__mul_size(cap, sizeof(int64_t), &bytes))
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory for %zu pairs", cap);
    int64_t *users = mmrec__alloc(bytes), *items = mmrec__alloc(bytes);
    if (users == NULL || items == NULL) {
        mmrec__free(users);
        mmrec__free(items);
        return mmrec__set_error(MMREC_ENOMEM, func, "out of memory for %zu pairs", cap);
    }
    if (p->count > 0) {
        memcpy(users, p->users, p->count * sizeof(int64_t));
        memcpy(items, p->items, p->count * sizeof(int64_t));
    }
    mmrec__pairs_free(p);
    p->users = users;
    p->items = items;
    p->cap = cap;
    return MMREC_OK;
}

static inline mmrec_status mmrec__pairs_push(mmrec__pairs *p, int64_t user, int64_t item,
                                             const char *func) {
    if (MMREC__UNLIKELY(p->count == p->cap)) MMREC_FORWARD_IF(mmrec__pairs_grow(p, func));
    p->users[p->count] = user;
    p->items[p->count] = item;
    p->count++;
    if (user > p->max_user) p->max_user = user;
    if (item > p->max_item) p->max_item = item;
    return MMREC_OK;
}

/* Moves the pairs into a new object (p keeps nothing). */
static mmrec_status mmrec__pairs_finish(mmrec__pairs *p, mmrec_interactions **out,
                                        const char *func) {
    mmrec_interactions *x = mmrec__calloc(1, sizeof *x);
    if (x == NULL) return mmrec__set_error(MMREC_ENOMEM, func, "out of memory");
    x->magic = MMREC__INTERACTIONS_MAGIC;
    x->count = p->count;
    if (p->count > 0) {
        x->users = p->users;
        x->items = p->items;
        p->users = p->items = NULL;
    }
    x->num_users = p->max_user + 1;
    x->num_items = p->max_item + 1;
    *out = x;
    return MMREC_OK;
}

/* ---- fields ---- */

/* Parses field s[0, len) of the current line as an id, 0 ..
 * MMREC__DATA_MAX_ID. `what` names it in messages ("id", "userID"). */
static mmrec_status mmrec__data_parse_id(const mmrec__lines *r, const char *what, const char *s,
                                         size_t len, int64_t *out) {
    uint64_t value = 0;
    bool digits = len > 0, big = false;
    for (size_t k = 0; k < len; k++) {
        unsigned d = (unsigned)(unsigned char)s[k] - '0';
        if (d > 9) {
            digits = false;
            break;
        }
        if (value > ((uint64_t)INT64_MAX - d) / 10) big = true;
        else value = value * 10 + d;
    }
    if (MMREC__UNLIKELY(!digits || big || value > (uint64_t)MMREC__DATA_MAX_ID)) {
        char shown[200];
        mmrec__data_quote(s, len, shown, sizeof shown);
        if (!digits)
            return mmrec__set_error(MMREC_EFORMAT, r->func,
                                    "'%s' line %llu: %s '%s' is not a non-negative integer",
                                    r->path, r->line_no, what, shown);
        if (big)
            return mmrec__set_error(MMREC_EFORMAT, r->func,
                                    "'%s' line %llu: %s %s does not fit int64", r->path,
                                    r->line_no, what, shown);
        return mmrec__set_error(MMREC_EFORMAT, r->func,
                                "'%s' line %llu: %s %s is too large (at most INT64_MAX - 1)",
                                r->path, r->line_no, what, shown);
    }
    *out = (int64_t)value;
    return MMREC_OK;
}

static inline bool mmrec__data_is_blank(char c) { return c == ' ' || c == '\t'; }

/* ---- LightGCN / NGCF: "user item item ..." ---- */

static mmrec_status mmrec__lightgcn_parse(mmrec__lines *r, mmrec__pairs *p) {
    for (;;) {
        const char *line;
        size_t len;
        MMREC_FORWARD_IF(mmrec__lines_next(r, &line, &len));
        if (line == NULL) return MMREC_OK;
        bool have_user = false;
        int64_t user = 0;
        size_t k = 0;
        for (;;) {
            while (k < len && mmrec__data_is_blank(line[k])) k++;
            if (k == len) break;
            size_t begin = k;
            while (k < len && !mmrec__data_is_blank(line[k])) k++;
            int64_t id;
            MMREC_FORWARD_IF(mmrec__data_parse_id(r, "id", line + begin, k - begin, &id));
            if (have_user) {
                MMREC_FORWARD_IF(mmrec__pairs_push(p, user, id, r->func));
            } else {
                user = id;
                have_user = true;
                if (user > p->max_user) p->max_user = user;
            }
        }
    }
}

mmrec_status mmrec_interactions_read_lightgcn(const char *path, mmrec_interactions **out) {
    MMREC_CHECK_NULL(path);
    MMREC_CHECK_NULL(out);
    mmrec__lines r;
    MMREC_FORWARD_IF(mmrec__lines_open(&r, path, __func__));
    mmrec__pairs p;
    mmrec__pairs_init(&p, &r);
    mmrec_status s = mmrec__lightgcn_parse(&r, &p);
    mmrec__lines_close(&r);
    if (s == MMREC_OK) s = mmrec__pairs_finish(&p, out, __func__);
    mmrec__pairs_free(&p);
    return s;
}

/* ---- MMRec toolbox .inter: TSV with a header ---- */

enum { MMREC__INTER_USER, MMREC__INTER_ITEM, MMREC__INTER_LABEL, MMREC__INTER_COLS };
static const char *const mmrec__inter_names[MMREC__INTER_COLS] = {"userID", "itemID", "x_label"};

/* Finds the required columns in the header line; *n_fields is its field
 * count. */
static mmrec_status mmrec__inter_header(const mmrec__lines *r, const char *line, size_t len,
                                        size_t col[MMREC__INTER_COLS], size_t *n_fields) {
    if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) { /* UTF-8 byte order mark */
        line += 3;
        len -= 3;
    }
    for (int c = 0; c < MMREC__INTER_COLS; c++) col[c] = SIZE_MAX;
    size_t field = 0, k = 0;
    for (;; field++) {
        size_t begin = k;
        while (k < len && line[k] != '\t') k++;
        for (int c = 0; c < MMREC__INTER_COLS; c++) {
            const char *name = mmrec__inter_names[c];
            if (k - begin != strlen(name) || memcmp(line + begin, name, k - begin) != 0) continue;
            if (col[c] != SIZE_MAX)
                return mmrec__set_error(MMREC_EFORMAT, r->func,
                                        "'%s' line %llu: column '%s' appears twice in the header "
                                        "(fields %zu and %zu)",
                                        r->path, r->line_no, name, col[c] + 1, field + 1);
            col[c] = field;
        }
        if (k == len) break;
        k++; /* the tab */
    }
    for (int c = 0; c < MMREC__INTER_COLS; c++)
        if (col[c] == SIZE_MAX)
            return mmrec__set_error(MMREC_EFORMAT, r->func,
                                    "'%s' line %llu: no column '%s' in the header (tab-separated "
                                    "column names expected)",
                                    r->path, r->line_no, mmrec__inter_names[c]);
    *n_fields = field + 1;
    return MMREC_OK;
}

static mmrec_status mmrec__inter_parse(mmrec__lines *r, int split, mmrec__pairs *p) {
    const char *line;
    size_t len;
    do {
        MMREC_FORWARD_IF(mmrec__lines_next(r, &line, &len));
    } while (line != NULL && len == 0);
    if (line == NULL)
        return mmrec__set_error(MMREC_EFORMAT, r->func,
                                "'%s' line %llu: no header line (the file is empty or blank)",
                                r->path, r->line_no + 1);
    size_t col[MMREC__INTER_COLS], n_fields = 0;
    MMREC_FORWARD_IF(mmrec__inter_header(r, line, len, col, &n_fields));
    for (;;) {
        MMREC_FORWARD_IF(mmrec__lines_next(r, &line, &len));
        if (line == NULL) return MMREC_OK;
        if (len == 0) continue;
        const char *value[MMREC__INTER_COLS] = {NULL, NULL, NULL};
        size_t value_len[MMREC__INTER_COLS] = {0, 0, 0};
        size_t field = 0, k = 0;
        for (;; field++) {
            size_t begin = k;
            while (k < len && line[k] != '\t') k++;
            for (int c = 0; c < MMREC__INTER_COLS; c++)
                if (col[c] == field) {
                    value[c] = line + begin;
                    value_len[c] = k - begin;
                }
            if (k == len) break;
            k++;
        }
        if (field + 1 != n_fields)
            return mmrec__set_error(MMREC_EFORMAT, r->func,
                                    "'%s' line %llu: %zu fields, the header has %zu", r->path,
                                    r->line_no, field + 1, n_fields);
        int64_t id[MMREC__INTER_COLS];
        for (int c = 0; c < MMREC__INTER_COLS; c++)
            MMREC_FORWARD_IF(mmrec__data_parse_id(r, mmrec__inter_names[c], value[c],
                                                  value_len[c], &id[c]));
        if (id[MMREC__INTER_LABEL] > 2)
            return mmrec__set_error(MMREC_EFORMAT, r->func,
                                    "'%s' line %llu: x_label is %lld, expected 0, 1 or 2",
                                    r->path, r->line_no, (long long)id[MMREC__INTER_LABEL]);
        if (split < 0 || id[MMREC__INTER_LABEL] == split)
            MMREC_FORWARD_IF(mmrec__pairs_push(p, id[MMREC__INTER_USER], id[MMREC__INTER_ITEM],
                                               r->func));
    }
}

mmrec_status mmrec_interactions_read_inter(const char *path, int split, mmrec_interactions **out) {
    MMREC_CHECK_NULL(path);
    MMREC_CHECK_NULL(out);
    MMREC_FAIL_IF(split < -1 || split > 2, MMREC_EINVAL,
                  "split is %d, expected 0 (train), 1 (valid), 2 (test) or -1 (all)", split);
    mmrec__lines r;
    MMREC_FORWARD_IF(mmrec__lines_open(&r, path, __func__));
    mmrec__pairs p;
    mmrec__pairs_init(&p, &r);
    mmrec_status s = mmrec__inter_parse(&r, split, &p);
    mmrec__lines_close(&r);
    if (s == MMREC_OK) s = mmrec__pairs_finish(&p, out, __func__);
    mmrec__pairs_free(&p);
    return s;
}
