/* Data-parallel training over MPI (mmrec_mpi.h), run on 2 ranks by
 * `make mpi-test` (mpirun -np 2; any number of ranks >= 2 works).
 *
 * The model has a dense part (an MLP 8 -> 16 -> 1) and a row-sparse table
 * (an Embedding of 50,000 rows of 8, or argv[1] rows); the loss is the mean BCE of the MLP's
 * logit of each gathered row. Over several Adam steps, with rank r on its
 * own batch b_r of 24 rows (half of the ids from a small range, so the
 * ranks share rows, half from the whole table):
 *   (a) rank 0's parameters equal, to float32 rounding, those of a second
 *       model rank 0 trains alone on the union b_0 ∪ b_1 ∪ ... with the
 *       mean loss;
 *   (b) every rank's parameters are bit-identical to rank 0's after the
 *       broadcast and after every step (memcmp);
 *   (c) each rank sends the dense part's bytes and only its touched rows
 *       (8 + 4 * dim bytes each), a few KB whatever the table's size;
 * the calls reject bad arguments with a message naming them; and when one
 * rank's model changed, every rank fails the step (that rank naming the
 * change, the others naming the rank) and no gradient changes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmrec/mmrec.h>

#include "mmrec_mpi.h"

enum { DIM = 8, HIDDEN = 16, BATCH = 24, STEPS = 6 };

static int64_t rows_ = 50000; /* the table's rows; argv[1] may set another count */

static int rank_;

#define FAIL(...)                                                         \
    do {                                                                  \
        fprintf(stderr, "test_mpi rank %d: %s:%d: ", rank_, __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                                     \
        fputc('\n', stderr);                                              \
        MPI_Abort(MPI_COMM_WORLD, 1);                                     \
    } while (0)
#define CHECK(call)                                                       \
    do {                                                                  \
        mmrec_status s_ = (call);                                         \
        if (s_ != MMREC_OK)                                               \
            FAIL("%s: %s (%s | %s)", #call, mmrec_status_name(s_), mmrec_last_error(), \
                 mmrec_mpi_last_error());                                 \
    } while (0)
/* A call fails with `status` and mmrec_mpi_last_error() holds `needle`. */
#define EXPECT(call, status, needle)                                      \
    do {                                                                  \
        mmrec_status s_ = (call);                                         \
        if (s_ != (status) || strstr(mmrec_mpi_last_error(), (needle)) == NULL) \
            FAIL("%s gave %s '%s', expected %s naming %s", #call, mmrec_status_name(s_), \
                 mmrec_mpi_last_error(), mmrec_status_name(status), needle); \
    } while (0)

typedef struct net {
    mmrec_model *model;
    mmrec_module *emb, *mlp;
    mmrec_optimizer *opt;
    mmrec_tape *tape;
    size_t n_params; /* trainable elements */
} net;

static void net_create(net *n, uint64_t seed) {
    CHECK(mmrec_model_create(&n->model));
    CHECK(mmrec_model_seed(n->model, seed));
    mmrec_embedding_config ec;
    CHECK(mmrec_embedding_config_init(&ec));
    ec.num_rows = rows_;
    ec.dim = DIM;
    ec.init_std = 0.1f;
    CHECK(mmrec_embedding_create(n->model, "item", &ec, &n->emb));
    static const int64_t sizes[3] = {DIM, HIDDEN, 1};
    mmrec_mlp_config mc;
    CHECK(mmrec_mlp_config_init(&mc));
    mc.sizes = sizes;
    mc.num_sizes = 3;
    CHECK(mmrec_mlp_create(n->model, "mlp", &mc, &n->mlp));
    mmrec_optimizer_config oc;
    CHECK(mmrec_optimizer_config_init(&oc));
    oc.type = MMREC_OPT_ADAM;
    oc.lr = 1e-2f;
    CHECK(mmrec_optimizer_create(n->model, &oc, &n->opt));
    CHECK(mmrec_tape_create(&n->tape));
    CHECK(mmrec_model_param_count(n->model, &n->n_params, NULL));
}

static void net_destroy(net *n) {
    mmrec_tape_destroy(n->tape);
    mmrec_optimizer_destroy(n->opt);
    mmrec_model_destroy(n->model);
}

/* Forward and backward of the mean BCE over `count` rows. */
static void net_backward(net *n, const int64_t *ids, const float *targets, size_t count) {
    mmrec_tensor *e, *logits, *y, *loss;
    int64_t ys[2] = {(int64_t)count, 1};
    CHECK(mmrec_embedding_forward(n->emb, n->tape, ids, count, &e));
    CHECK(mmrec_mlp_forward(n->mlp, n->tape, e, &logits));
    CHECK(mmrec_tape_wrap(n->tape, (float *)targets, 2, ys, MMREC_TENSOR_READONLY, &y));
    CHECK(mmrec_loss_bce_logits(n->tape, logits, y, &loss));
    CHECK(mmrec_tape_backward(n->tape, loss));
}

static void net_step(net *n) {
    CHECK(mmrec_optimizer_step(n->opt));
    mmrec_tape_reset(n->tape);
}

/* Rank r's batch of step s: half of the ids below 40 (shared between the
 * ranks), half anywhere in the table. */
static void batch(int step, int r, int64_t *ids, float *targets) {
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(step * 7 + r + 1);
    for (int k = 0; k < BATCH; k++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t v = x >> 33;
        ids[k] = k % 2 ? (int64_t)(v % 40) : (int64_t)(v % (uint64_t)rows_);
        targets[k] = (float)((ids[k] * 7 + step) % 3 == 0);
    }
}

static size_t distinct(const int64_t *ids, size_t count) {
    size_t d = 0;
    for (size_t k = 0; k < count; k++) {
        size_t j = 0;
        while (j < k && ids[j] != ids[k]) j++;
        d += j == k;
    }
    return d;
}

static void bad_inputs(net *n) {
    mmrec_mpi_dp *dp = (mmrec_mpi_dp *)n; /* never written on failure */
    EXPECT(mmrec_mpi_dp_create(NULL, MPI_COMM_WORLD, &dp), MMREC_EINVAL, "'model'");
    EXPECT(mmrec_mpi_dp_create(n->model, MPI_COMM_NULL, &dp), MMREC_EINVAL, "'comm'");
    EXPECT(mmrec_mpi_dp_create(n->model, MPI_COMM_WORLD, NULL), MMREC_EINVAL, "'out'");
    EXPECT(mmrec_mpi_dp_create((mmrec_model *)n->tape, MPI_COMM_WORLD, &dp), MMREC_EINVAL,
           "'model'");
    if (dp != (mmrec_mpi_dp *)n) FAIL("a failed create wrote *out");
    EXPECT(mmrec_mpi_dp_broadcast_params(NULL), MMREC_EINVAL, "'dp'");
    EXPECT(mmrec_mpi_dp_average_grads(NULL), MMREC_EINVAL, "'dp'");
    EXPECT(mmrec_mpi_dp_average_grads((mmrec_mpi_dp *)n), MMREC_EINVAL, "'dp' is not a context");
    size_t v;
    EXPECT(mmrec_mpi_dp_traffic(NULL, &v, NULL, NULL), MMREC_EINVAL, "'dp'");
    mmrec_mpi_dp_destroy(NULL);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) FAIL("run on 2 or more ranks (mpirun -np 2), not %d", size);
    if (argc > 1 && (rows_ = atoll(argv[1])) < 40) FAIL("the table needs 40 rows or more");
    CHECK(mmrec_set_num_threads(1));

    net dp_net, ref;
    net_create(&dp_net, 7 + (uint64_t)rank_); /* rank 1 starts elsewhere: the broadcast fixes it */
    bad_inputs(&dp_net);
    mmrec_mpi_dp *dp;
    CHECK(mmrec_mpi_dp_create(dp_net.model, MPI_COMM_WORLD, &dp));
    CHECK(mmrec_mpi_dp_broadcast_params(dp));
    if (rank_ == 0) net_create(&ref, 7);

    size_t np = dp_net.n_params, dense = (DIM * HIDDEN + HIDDEN + HIDDEN + 1);
    float *mine = malloc(np * sizeof *mine), *other = malloc(np * sizeof *other);
    float *want = malloc(np * sizeof *want);
    int64_t *ids = malloc((size_t)size * BATCH * sizeof *ids);
    float *targets = malloc((size_t)size * BATCH * sizeof *targets);
    if (!mine || !other || !want || !ids || !targets) FAIL("out of memory");
    double worst = 0.0;
    for (int step = 0; step <= STEPS; step++) {
        if (step > 0) {
            for (int r = 0; r < size; r++) batch(step, r, ids + r * BATCH, targets + r * BATCH);
            const int64_t *my_ids = ids + rank_ * BATCH;
            net_backward(&dp_net, my_ids, targets + rank_ * BATCH, BATCH);
            CHECK(mmrec_mpi_dp_average_grads(dp));
            net_step(&dp_net);
            if (rank_ == 0) { /* the reference: one process, the union batch */
                net_backward(&ref, ids, targets, (size_t)size * BATCH);
                net_step(&ref);
            }
            /* (c) the dense part's bytes and the touched rows only */
            size_t dense_bytes, rows, sparse_bytes;
            CHECK(mmrec_mpi_dp_traffic(dp, &dense_bytes, &rows, &sparse_bytes));
            size_t want_rows = distinct(my_ids, BATCH);
            if (dense_bytes != dense * sizeof(float) || rows != want_rows ||
                sparse_bytes != want_rows * (sizeof(int64_t) + DIM * sizeof(float)))
                FAIL("step %d sent %zu dense bytes, %zu rows in %zu bytes; expected %zu, %zu, "
                     "%zu",
                     step, dense_bytes, rows, sparse_bytes, dense * sizeof(float), want_rows,
                     want_rows * (sizeof(int64_t) + DIM * sizeof(float)));
            if (rank_ == 0 && step == 1)
                printf("test_mpi: a step sends %zu dense bytes and %zu rows in %zu bytes per "
                       "rank (the table holds %zu bytes)\n",
                       dense_bytes, rows, sparse_bytes, (size_t)rows_ * DIM * sizeof(float));
        }
        /* (b) bit-identical on every rank, after the broadcast and every step */
        CHECK(mmrec_model_export_params(dp_net.model, mine, np));
        if (rank_ > 0) {
            MPI_Send(mine, (int)np, MPI_FLOAT, 0, step, MPI_COMM_WORLD);
        } else {
            for (int r = 1; r < size; r++) {
                MPI_Recv(other, (int)np, MPI_FLOAT, r, step, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                if (memcmp(mine, other, np * sizeof *mine) != 0)
                    FAIL("after step %d rank %d's parameters differ from rank 0's", step, r);
            }
            /* (a) equal to the single-process reference to float32 rounding */
            CHECK(mmrec_model_export_params(ref.model, want, np));
            for (size_t i = 0; i < np; i++) {
                double d = fabs((double)mine[i] - (double)want[i]);
                if (d > worst) worst = d;
                if (d > 1e-5 + 1e-5 * fabs((double)want[i]))
                    FAIL("after step %d parameter %zu is %.9g, one process on the union batch "
                         "gives %.9g",
                         step, i, (double)mine[i], (double)want[i]);
            }
        }
    }
    /* a rank whose model changed fails, and so do the others, naming it;
     * the gradients stay as they were */
    int64_t ids1[BATCH];
    float t1[BATCH];
    batch(1, rank_, ids1, t1);
    net_backward(&dp_net, ids1, t1, BATCH);
    float g_before[DIM * HIDDEN + HIDDEN + HIDDEN + 1], g_after[DIM * HIDDEN + HIDDEN + HIDDEN + 1];
    CHECK(mmrec_model_export_dense_grads(dp_net.model, g_before, dense));
    if (rank_ == 1) CHECK(mmrec_model_freeze(dp_net.model, "mlp", NULL));
    if (rank_ == 1)
        EXPECT(mmrec_mpi_dp_average_grads(dp), MMREC_ESTATE, "changed since mmrec_mpi_dp_create");
    else
        EXPECT(mmrec_mpi_dp_average_grads(dp), MMREC_ESTATE, "rank 1 failed");
    if (rank_ == 0) {
        size_t nr;
        int64_t rows[BATCH];
        CHECK(mmrec_model_grad_rows(dp_net.model, 0, rows, BATCH, &nr));
        if (nr != distinct(ids1, BATCH)) FAIL("a failed average changed the table's rows");
        CHECK(mmrec_model_export_dense_grads(dp_net.model, g_after, dense));
        if (memcmp(g_before, g_after, sizeof g_before) != 0)
            FAIL("a failed average changed the dense gradients");
    }
    if (rank_ == 0) {
        printf("test_mpi: %d Adam steps on %d ranks: bit-identical ranks, largest difference "
               "from one process on the union batch %.3g\n",
               STEPS, size, worst);
        net_destroy(&ref);
    }
    mmrec_mpi_dp_destroy(dp);
    net_destroy(&dp_net);
    free(mine);
    free(other);
    free(want);
    free(ids);
    free(targets);
    MPI_Finalize();
    if (rank_ == 0) printf("test_mpi: passed\n");
    return 0;
}
