/* Data-parallel gradient averaging over MPI (mmrec_mpi.h).
 *
 * A step: each rank exports its dense gradients (mmrec_model_export_dense_grads)
 * and the touched rows of each row-sparse table (mmrec_model_grad_rows),
 * scaled by 1 / size; a header per rank (its status and row counts) is
 * gathered first, so a rank that failed stops every rank at the same point.
 * The dense buffer is split into one chunk per rank: MPI_Alltoallv gives
 * each rank every rank's copy of its chunk, it sums them in rank order, and
 * MPI_Allgatherv hands every rank every summed chunk (a reduce-scatter and
 * an allgather: 2 (N - 1) / N of the buffer in and out per rank, each
 * element summed once, by its owner). Each table's ids and rows go to
 * every rank (MPI_Allgatherv), which sums them in rank order
 * (mmrec_model_set_grad_rows adds repeated ids in the order given). The
 * same additions in the same order on the same inputs give identical bits
 * on every rank; an MPI_Allreduce does not promise that.
 *
 * Buffers are allocated at create (the dense buffers, the id lists of the
 * sending side) or grow with the high-water mark of touched rows (the table
 * rows sent and received); ranks grow at the same steps (they see the same
 * counts) and agree on the growth's success before the exchange. */
#include "mpi_internal.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <mmrec/mmrec.h>

#define MMREC_MPI__MAGIC 0x6d6d4d50u /* "mmMP" */

typedef struct mmrec_mpi__table {
    size_t index;           /* parameter index in the model */
    const char *name;       /* borrowed from the model */
    const mmrec_tensor *tensor;
    int64_t rows;
    size_t dim;
    size_t ids_off;         /* offset of this table's ids in ids_send */
    size_t vals_off;        /* offset of this step's rows in vals_send */
    size_t count;           /* this rank's touched rows this step */
    size_t total;           /* every rank's, this step */
    int64_t *ids_recv;      /* [total], grown */
    float *vals_recv;       /* [total * dim], grown */
    size_t recv_cap;        /* rows ids_recv and vals_recv hold */
} mmrec_mpi__table;

struct mmrec_mpi_dp {
    uint32_t magic;
    mmrec_model *model;
    MPI_Comm comm;
    int rank, size;
    size_t trainable;       /* trainable element count at create */
    size_t dense_n;         /* dense element count */
    float *dense_send;      /* [dense_n]; also the summed result */
    float *dense_recv;      /* every rank's copy of this rank's chunk */
    int *chunk_counts, *chunk_displs; /* [size]: rank r's chunk of the dense buffer */
    int *own_counts, *own_displs;     /* [size]: this rank's chunk from each rank */
    mmrec_mpi__table *tables;
    size_t n_tables;
    int64_t *ids_send;      /* every table's rows, at ids_off */
    float *vals_send;       /* this step's rows, grown */
    size_t vals_send_cap;   /* floats */
    int64_t *header_send;   /* [1 + n_tables]: status, then each table's count */
    int64_t *header_recv;   /* [size * (1 + n_tables)] */
    int *counts, *displs;   /* [size], for MPI_Allgatherv */
    size_t last_dense_bytes, last_sparse_rows, last_sparse_bytes;
};

#define MMREC_MPI__FAIL_IF(cond, status, ...)                                 \
    do {                                                                       \
        if (cond) return mmrec_mpi__set_error((status), __func__, __VA_ARGS__); \
    } while (0)
/* An MPI call inside the public function `func`: MMREC_EIO on failure. */
#define MMREC_MPI__CALL(func, call)                                            \
    do {                                                                       \
        int mpi_rc_ = (call);                                                  \
        if (mpi_rc_ != MPI_SUCCESS)                                            \
            return mmrec_mpi__mpi_error(mpi_rc_, (func), #call);               \
    } while (0)

static mmrec_status mmrec_mpi__check(const mmrec_mpi_dp *dp, const char *func) {
    if (dp == NULL) return mmrec_mpi__set_error(MMREC_EINVAL, func, "argument 'dp' is NULL");
    if (dp->magic != MMREC_MPI__MAGIC)
        return mmrec_mpi__set_error(MMREC_EINVAL, func, "argument 'dp' is not a context");
    return MMREC_OK;
}

/* Grows *buf to hold `need` elements of `elem` bytes (contents dropped). */
static bool mmrec_mpi__reserve(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    void *grown = malloc(need * elem);
    if (grown == NULL) return false;
    free(*buf);
    *buf = grown;
    *cap = need;
    return true;
}

static void mmrec_mpi__free(mmrec_mpi_dp *dp) {
    for (size_t t = 0; t < dp->n_tables; t++) {
        free(dp->tables[t].ids_recv);
        free(dp->tables[t].vals_recv);
    }
    free(dp->tables);
    free(dp->dense_send);
    free(dp->dense_recv);
    free(dp->chunk_counts);
    free(dp->chunk_displs);
    free(dp->own_counts);
    free(dp->own_displs);
    free(dp->ids_send);
    free(dp->vals_send);
    free(dp->header_send);
    free(dp->header_recv);
    free(dp->counts);
    free(dp->displs);
    dp->magic = 0;
    free(dp);
}

/* Finds the model's row-sparse tables and sizes; allocates the buffers. */
static mmrec_status mmrec_mpi__layout(mmrec_mpi_dp *dp, const char *func) {
    mmrec_model *model = dp->model;
    size_t n_params, table_elems = 0, table_rows = 0;
    mmrec_status s = mmrec_model_param_count(model, &dp->trainable, NULL);
    if (s == MMREC_OK) s = mmrec_model_num_params(model, &n_params);
    if (s != MMREC_OK) return mmrec_mpi__forward_error(s, func, "argument 'model'");
    dp->tables = calloc(n_params ? n_params : 1, sizeof *dp->tables);
    if (dp->tables == NULL) return mmrec_mpi__set_error(MMREC_ENOMEM, func, "out of memory");
    for (size_t i = 0; i < n_params; i++) {
        int row_sparse;
        const char *name;
        mmrec_tensor *tensor;
        int ndim;
        int64_t shape[8];
        size_t numel;
        if ((s = mmrec_model_param_row_sparse(model, i, &row_sparse)) != MMREC_OK ||
            (s = mmrec_model_param_at(model, i, &name, &tensor)) != MMREC_OK ||
            (s = mmrec_tensor_shape(tensor, &ndim, shape)) != MMREC_OK ||
            (s = mmrec_tensor_numel(tensor, &numel)) != MMREC_OK)
            return mmrec_mpi__forward_error(s, func, "reading the model's parameters");
        if (!row_sparse) continue;
        mmrec_mpi__table *t = &dp->tables[dp->n_tables++];
        t->index = i;
        t->name = name;
        t->tensor = tensor;
        t->rows = shape[0];
        t->dim = numel / (size_t)shape[0];
        t->ids_off = table_rows;
        table_rows += (size_t)shape[0];
        table_elems += numel;
    }
    dp->dense_n = dp->trainable - table_elems;
    if (dp->dense_n > (size_t)INT_MAX)
        return mmrec_mpi__set_error(MMREC_EINVAL, func,
                                    "argument 'model': the dense part has %zu elements, more "
                                    "than MPI's int counts allow",
                                    dp->dense_n);
    size_t n = (size_t)dp->size;
    dp->dense_send = malloc((dp->dense_n ? dp->dense_n : 1) * sizeof(float));
    dp->chunk_counts = malloc(n * sizeof(int));
    dp->chunk_displs = malloc(n * sizeof(int));
    dp->own_counts = malloc(n * sizeof(int));
    dp->own_displs = malloc(n * sizeof(int));
    if (!dp->chunk_counts || !dp->chunk_displs || !dp->own_counts || !dp->own_displs)
        return mmrec_mpi__set_error(MMREC_ENOMEM, func, "out of memory for the step's buffers");
    for (size_t r = 0; r < n; r++) {
        dp->chunk_displs[r] = (int)(dp->dense_n * r / n);
        dp->chunk_counts[r] = (int)(dp->dense_n * (r + 1) / n) - dp->chunk_displs[r];
    }
    int own = dp->chunk_counts[dp->rank];
    for (size_t r = 0; r < n; r++) {
        dp->own_counts[r] = own;
        dp->own_displs[r] = own * (int)r;
    }
    dp->dense_recv = malloc(((size_t)own * n + 1) * sizeof(float));
    dp->ids_send = malloc((table_rows ? table_rows : 1) * sizeof(int64_t));
    dp->header_send = malloc((1 + dp->n_tables) * sizeof(int64_t));
    dp->header_recv = malloc((1 + dp->n_tables) * n * sizeof(int64_t));
    dp->counts = malloc(n * sizeof(int));
    dp->displs = malloc(n * sizeof(int));
    if (!dp->dense_send || !dp->dense_recv || !dp->ids_send || !dp->header_send ||
        !dp->header_recv || !dp->counts || !dp->displs)
        return mmrec_mpi__set_error(MMREC_ENOMEM, func, "out of memory for the step's buffers");
    return MMREC_OK;
}

mmrec_status mmrec_mpi_dp_create(mmrec_model *model, MPI_Comm comm, mmrec_mpi_dp **out) {
    MMREC_MPI__FAIL_IF(model == NULL, MMREC_EINVAL, "argument 'model' is NULL");
    MMREC_MPI__FAIL_IF(out == NULL, MMREC_EINVAL, "argument 'out' is NULL");
    int flag = 0;
    MPI_Initialized(&flag);
    MMREC_MPI__FAIL_IF(!flag, MMREC_ESTATE, "MPI is not initialized (call MPI_Init first)");
    MPI_Finalized(&flag);
    MMREC_MPI__FAIL_IF(flag, MMREC_ESTATE, "MPI was finalized");
    MMREC_MPI__FAIL_IF(comm == MPI_COMM_NULL, MMREC_EINVAL, "argument 'comm' is MPI_COMM_NULL");
    size_t trainable;
    mmrec_status s = mmrec_model_param_count(model, &trainable, NULL);
    if (s != MMREC_OK) return mmrec_mpi__forward_error(s, __func__, "argument 'model'");

    int size = 0;
    int rc = MPI_Comm_size(comm, &size);
    if (rc != MPI_SUCCESS) return mmrec_mpi__mpi_error(rc, __func__, "MPI_Comm_size(comm)");
    mmrec_mpi_dp *dp = calloc(1, sizeof *dp);
    int64_t *all = malloc(4 * (size_t)size * sizeof *all); /* every rank's layout */
    if (dp == NULL || all == NULL) {
        free(dp);
        free(all);
        return mmrec_mpi__set_error(MMREC_ENOMEM, __func__, "out of memory");
    }
    dp->magic = MMREC_MPI__MAGIC;
    dp->model = model;
    rc = MPI_Comm_dup(comm, &dp->comm);
    if (rc != MPI_SUCCESS) {
        mmrec_mpi__free(dp);
        free(all);
        return mmrec_mpi__mpi_error(rc, __func__, "MPI_Comm_dup(comm)");
    }
    MPI_Comm_set_errhandler(dp->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(dp->comm, &dp->rank);
    MPI_Comm_size(dp->comm, &dp->size);
    s = mmrec_mpi__layout(dp, __func__);

    /* every rank: its status and its model's layout, checked against rank 0's */
    uint64_t hash = 1469598103934665603ull; /* FNV-1a over (index, rows, dim) of the tables */
    for (size_t t = 0; t < dp->n_tables; t++) {
        uint64_t v[3] = {dp->tables[t].index, (uint64_t)dp->tables[t].rows, dp->tables[t].dim};
        for (int k = 0; k < 3; k++) hash = (hash ^ v[k]) * 1099511628211ull;
    }
    int64_t mine[4] = {s, (int64_t)dp->dense_n, (int64_t)dp->n_tables, (int64_t)hash};
    rc = MPI_Allgather(mine, 4, MPI_INT64_T, all, 4, MPI_INT64_T, dp->comm);
    if (rc != MPI_SUCCESS) s = mmrec_mpi__mpi_error(rc, __func__, "MPI_Allgather");
    for (int r = 0; s == MMREC_OK && r < dp->size; r++) {
        const int64_t *o = all + 4 * r;
        if (o[0] != MMREC_OK)
            s = mmrec_mpi__set_error(MMREC_ESTATE, __func__, "rank %d failed (%s)", r,
                                     mmrec_status_name((mmrec_status)o[0]));
        else if (o[1] != all[1] || o[2] != all[2] || o[3] != all[3])
            s = mmrec_mpi__set_error(MMREC_EINVAL, __func__,
                                     "argument 'model' differs across ranks: rank %d has %lld "
                                     "dense elements and %lld row-sparse tables, rank 0 %lld "
                                     "and %lld%s",
                                     r, (long long)o[1], (long long)o[2], (long long)all[1],
                                     (long long)all[2],
                                     o[1] == all[1] && o[2] == all[2] ? " (of other shapes)" : "");
    }
    free(all);
    if (s != MMREC_OK) {
        MPI_Comm_free(&dp->comm);
        mmrec_mpi__free(dp);
        return s;
    }
    *out = dp;
    return MMREC_OK;
}

void mmrec_mpi_dp_destroy(mmrec_mpi_dp *dp) {
    if (dp == NULL || dp->magic != MMREC_MPI__MAGIC) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&dp->comm);
    mmrec_mpi__free(dp);
}

mmrec_status mmrec_mpi_dp_broadcast_params(mmrec_mpi_dp *dp) {
    mmrec_status s = mmrec_mpi__check(dp, __func__);
    if (s != MMREC_OK) return s;
    size_t n = dp->trainable;
    float *buf = malloc((n ? n : 1) * sizeof *buf);
    if (buf == NULL) s = mmrec_mpi__set_error(MMREC_ENOMEM, __func__, "out of memory");
    else if (dp->rank == 0 && (s = mmrec_model_export_params(dp->model, buf, n)) != MMREC_OK)
        s = mmrec_mpi__forward_error(s, __func__, "rank 0's parameters");
    for (size_t i = 0; s == MMREC_OK && dp->rank == 0 && i < n; i++)
        if (!isfinite(buf[i]))
            s = mmrec_mpi__set_error(MMREC_ESTATE, __func__,
                                     "rank 0's parameters hold %g at flat index %zu",
                                     (double)buf[i], i);
    /* agree before the broadcast: a rank that failed does not take part */
    int ok = s == MMREC_OK, all_ok = 0;
    int rc = MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, dp->comm);
    if (rc != MPI_SUCCESS && s == MMREC_OK) s = mmrec_mpi__mpi_error(rc, __func__, "MPI_Allreduce");
    if (s == MMREC_OK && !all_ok)
        s = mmrec_mpi__set_error(MMREC_ESTATE, __func__, "another rank failed");
    for (size_t off = 0; s == MMREC_OK && off < n; off += (size_t)INT_MAX) {
        size_t chunk = n - off < (size_t)INT_MAX ? n - off : (size_t)INT_MAX;
        rc = MPI_Bcast(buf + off, (int)chunk, MPI_FLOAT, 0, dp->comm);
        if (rc != MPI_SUCCESS) s = mmrec_mpi__mpi_error(rc, __func__, "MPI_Bcast");
    }
    if (s == MMREC_OK && dp->rank != 0 &&
        (s = mmrec_model_import_params(dp->model, buf, n)) != MMREC_OK)
        s = mmrec_mpi__forward_error(s, __func__, "importing rank 0's parameters");
    free(buf);
    return s;
}

/* A libmmrec call on the model failed inside a step: the model no longer
 * has the layout create saw (a parameter frozen or unfrozen, the model
 * destroyed). */
static mmrec_status mmrec_mpi__changed(mmrec_status s, const char *func, const char *what) {
    return mmrec_mpi__forward_error(s == MMREC_ENOMEM ? s : MMREC_ESTATE, func, what);
}

/* Phase 1, local: this rank's dense buffer and touched rows, times 1/size. */
static mmrec_status mmrec_mpi__pack(mmrec_mpi_dp *dp, const char *func) {
    float scale = 1.0f / (float)dp->size;
    mmrec_status s = mmrec_model_export_dense_grads(dp->model, dp->dense_send, dp->dense_n);
    if (s != MMREC_OK)
        return mmrec_mpi__changed(s, func, "the model changed since mmrec_mpi_dp_create");
    for (size_t i = 0; i < dp->dense_n; i++) dp->dense_send[i] *= scale;
    size_t vals = 0;
    for (size_t t = 0; t < dp->n_tables; t++) {
        mmrec_mpi__table *tb = &dp->tables[t];
        s = mmrec_model_grad_rows(dp->model, tb->index, dp->ids_send + tb->ids_off,
                                  (size_t)tb->rows, &tb->count);
        if (s != MMREC_OK) return mmrec_mpi__changed(s, func, tb->name);
        tb->vals_off = vals;
        vals += tb->count * tb->dim;
    }
    if (!mmrec_mpi__reserve((void **)&dp->vals_send, &dp->vals_send_cap, vals, sizeof(float)))
        return mmrec_mpi__set_error(MMREC_ENOMEM, func, "out of memory for %zu table rows", vals);
    for (size_t t = 0; t < dp->n_tables; t++) {
        const mmrec_mpi__table *tb = &dp->tables[t];
        const float *g;
        if ((s = mmrec_tensor_grad(tb->tensor, &g)) != MMREC_OK || g == NULL)
            return mmrec_mpi__changed(s, func, tb->name);
        const int64_t *ids = dp->ids_send + tb->ids_off;
        for (size_t k = 0; k < tb->count; k++) {
            const float *row = g + (size_t)ids[k] * tb->dim;
            float *o = dp->vals_send + tb->vals_off + k * tb->dim;
            for (size_t j = 0; j < tb->dim; j++) o[j] = row[j] * scale;
        }
    }
    return MMREC_OK;
}

/* Every rank's row counts from the gathered headers; grows the receive
 * buffers. Every rank computes the same totals and so grows at the same
 * steps; the growth's success is agreed on before the exchange. */
static mmrec_status mmrec_mpi__prepare_recv(mmrec_mpi_dp *dp, const char *func) {
    size_t stride = 1 + dp->n_tables;
    bool grows = false;
    for (size_t t = 0; t < dp->n_tables; t++) {
        mmrec_mpi__table *tb = &dp->tables[t];
        tb->total = 0;
        for (int r = 0; r < dp->size; r++) {
            size_t c = (size_t)dp->header_recv[(size_t)r * stride + 1 + t];
            if (c * tb->dim > (size_t)INT_MAX - tb->total * tb->dim)
                return mmrec_mpi__set_error(MMREC_ERANGE, func,
                                            "table '%s': %zu rows from the ranks exceed MPI's "
                                            "int counts",
                                            tb->name, tb->total + c);
            tb->total += c;
        }
        grows |= tb->total > tb->recv_cap;
    }
    if (!grows) return MMREC_OK;
    int ok = 1, all_ok = 0;
    for (size_t t = 0; t < dp->n_tables && ok; t++) {
        mmrec_mpi__table *tb = &dp->tables[t];
        if (tb->total <= tb->recv_cap) continue;
        size_t cap = tb->recv_cap, cap2 = tb->recv_cap;
        ok = mmrec_mpi__reserve((void **)&tb->ids_recv, &cap, tb->total, sizeof(int64_t)) &&
             mmrec_mpi__reserve((void **)&tb->vals_recv, &cap2, tb->total * tb->dim,
                                sizeof(float));
        if (ok) tb->recv_cap = tb->total;
    }
    int rc = MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, dp->comm);
    if (rc != MPI_SUCCESS) return mmrec_mpi__mpi_error(rc, func, "MPI_Allreduce");
    if (!ok) return mmrec_mpi__set_error(MMREC_ENOMEM, func, "out of memory for table rows");
    if (!all_ok) return mmrec_mpi__set_error(MMREC_ESTATE, func, "another rank ran out of memory");
    return MMREC_OK;
}

/* Phase 3: this rank's chunk of every rank's dense buffer; each table's ids
 * and rows from every rank. */
static mmrec_status mmrec_mpi__exchange(mmrec_mpi_dp *dp, const char *func) {
    size_t stride = 1 + dp->n_tables;
    if (dp->dense_n > 0)
        MMREC_MPI__CALL(func, MPI_Alltoallv(dp->dense_send, dp->chunk_counts, dp->chunk_displs,
                                            MPI_FLOAT, dp->dense_recv, dp->own_counts,
                                            dp->own_displs, MPI_FLOAT, dp->comm));
    for (size_t t = 0; t < dp->n_tables; t++) {
        mmrec_mpi__table *tb = &dp->tables[t];
        if (tb->total == 0) continue;
        int off = 0;
        for (int r = 0; r < dp->size; r++) {
            dp->counts[r] = (int)dp->header_recv[(size_t)r * stride + 1 + t];
            dp->displs[r] = off;
            off += dp->counts[r];
        }
        MMREC_MPI__CALL(func, MPI_Allgatherv(dp->ids_send + tb->ids_off, (int)tb->count,
                                             MPI_INT64_T, tb->ids_recv, dp->counts, dp->displs,
                                             MPI_INT64_T, dp->comm));
        for (int r = 0; r < dp->size; r++) {
            dp->counts[r] *= (int)tb->dim;
            dp->displs[r] *= (int)tb->dim;
        }
        MMREC_MPI__CALL(func, MPI_Allgatherv(dp->vals_send + tb->vals_off,
                                             (int)(tb->count * tb->dim), MPI_FLOAT,
                                             tb->vals_recv, dp->counts, dp->displs, MPI_FLOAT,
                                             dp->comm));
    }
    return MMREC_OK;
}

mmrec_status mmrec_mpi_dp_average_grads(mmrec_mpi_dp *dp) {
    mmrec_status s = mmrec_mpi__check(dp, __func__);
    if (s != MMREC_OK) return s;
    if (dp->size == 1) { /* the mean of one rank's gradients: nothing moves */
        dp->last_dense_bytes = dp->last_sparse_rows = dp->last_sparse_bytes = 0;
        return MMREC_OK;
    }
    mmrec_status local = mmrec_mpi__pack(dp, __func__);
    size_t stride = 1 + dp->n_tables;
    dp->header_send[0] = local;
    for (size_t t = 0; t < dp->n_tables; t++)
        dp->header_send[1 + t] = local == MMREC_OK ? (int64_t)dp->tables[t].count : 0;
    int rc = MPI_Allgather(dp->header_send, (int)stride, MPI_INT64_T, dp->header_recv, (int)stride,
                           MPI_INT64_T, dp->comm);
    if (rc != MPI_SUCCESS) return mmrec_mpi__mpi_error(rc, __func__, "MPI_Allgather");
    if (local != MMREC_OK) return local;
    for (int r = 0; r < dp->size; r++)
        if (dp->header_recv[(size_t)r * stride] != MMREC_OK)
            return mmrec_mpi__set_error(
                MMREC_ESTATE, __func__, "rank %d failed (%s)", r,
                mmrec_status_name((mmrec_status)dp->header_recv[(size_t)r * stride]));
    if ((s = mmrec_mpi__prepare_recv(dp, __func__)) != MMREC_OK) return s;
    if ((s = mmrec_mpi__exchange(dp, __func__)) != MMREC_OK) return s;

    /* Phase 4: sum in rank order; check the tables before changing anything */
    size_t n = dp->dense_n, own = (size_t)dp->chunk_counts[dp->rank];
    float *sum = dp->dense_send + dp->chunk_displs[dp->rank];
    memcpy(sum, dp->dense_recv, own * sizeof(float));
    for (int r = 1; r < dp->size; r++) {
        const float *src = dp->dense_recv + (size_t)r * own;
        for (size_t i = 0; i < own; i++) sum[i] += src[i];
    }
    if (n > 0) /* every rank's summed chunk, to every rank */
        MMREC_MPI__CALL(__func__, MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, dp->dense_send,
                                                 dp->chunk_counts, dp->chunk_displs,
                                                 MPI_FLOAT, dp->comm));
    for (size_t t = 0; t < dp->n_tables; t++) {
        const mmrec_mpi__table *tb = &dp->tables[t];
        for (size_t i = 0; i < tb->total * tb->dim; i++)
            MMREC_MPI__FAIL_IF(!isfinite(tb->vals_recv[i]), MMREC_ENUMERIC,
                               "the gradient of table '%s' holds %g in row %lld (on some rank)",
                               tb->name, (double)tb->vals_recv[i],
                               (long long)tb->ids_recv[i / tb->dim]);
    }
    /* the import checks the dense sum (a failure changes nothing) */
    if ((s = mmrec_model_import_dense_grads(dp->model, dp->dense_send, n)) != MMREC_OK)
        return mmrec_mpi__forward_error(s, __func__, "importing the dense gradients");
    size_t rows = 0, bytes = 0;
    for (size_t t = 0; t < dp->n_tables; t++) {
        const mmrec_mpi__table *tb = &dp->tables[t];
        s = mmrec_model_set_grad_rows(dp->model, tb->index, tb->ids_recv, tb->total,
                                      tb->vals_recv);
        if (s != MMREC_OK) return mmrec_mpi__forward_error(s, __func__, tb->name);
        rows += tb->count;
        bytes += tb->count * (sizeof(int64_t) + tb->dim * sizeof(float));
    }
    dp->last_dense_bytes = n * sizeof(float);
    dp->last_sparse_rows = rows;
    dp->last_sparse_bytes = bytes;
    return MMREC_OK;
}

mmrec_status mmrec_mpi_dp_traffic(const mmrec_mpi_dp *dp, size_t *dense_bytes_out,
                                  size_t *sparse_rows_out, size_t *sparse_bytes_out) {
    mmrec_status s = mmrec_mpi__check(dp, __func__);
    if (s != MMREC_OK) return s;
    if (dense_bytes_out) *dense_bytes_out = dp->last_dense_bytes;
    if (sparse_rows_out) *sparse_rows_out = dp->last_sparse_rows;
    if (sparse_bytes_out) *sparse_bytes_out = dp->last_sparse_bytes;
    return MMREC_OK;
}
