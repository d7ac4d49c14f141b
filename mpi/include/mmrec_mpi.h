/* libmmrec_mpi: data-parallel training of an mmrec_model across processes
 * and machines over MPI, in a library of its own (libmmrec_mpi.so, built by
 * `make mpi`) so that libmmrec itself never depends on MPI.
 *
 * Every rank builds the same model (same modules, in the same order), runs
 * forward and backward on its own share of the batch with a mean loss, and
 * calls mmrec_mpi_dp_average_grads() before mmrec_optimizer_step(): each
 * parameter's gradient becomes the mean over the ranks, so with B rows per
 * rank a step equals (to float32 rounding) one process's step on the union
 * batch of N * B rows, and every rank's parameters stay bit-identical.
 *
 *   mmrec_mpi_dp *dp;
 *   mmrec_mpi_dp_create(model, MPI_COMM_WORLD, &dp);
 *   mmrec_mpi_dp_broadcast_params(dp);            rank 0's start, everywhere
 *   for (;;) {
 *       ... forward on this rank's rows, mmrec_tape_backward(tape, loss);
 *       mmrec_mpi_dp_average_grads(dp);
 *       mmrec_optimizer_step(opt);
 *       mmrec_tape_reset(tape);
 *   }
 *   mmrec_mpi_dp_destroy(dp);
 *
 * What travels per step (model.h): the dense part as one flat buffer
 * (mmrec_model_export_dense_grads), and of each row-sparse table (an
 * Embedding's table) only the rows the step touched, as ids and rows
 * (mmrec_model_grad_rows), so a step's traffic does not grow with the
 * table. The dense buffer is reduced in chunks: rank r sums chunk r of
 * every rank's buffer in rank order (MPI_Alltoallv) and sends the sum to
 * all (MPI_Allgatherv): each rank sends and receives 2 (N - 1) / N of the
 * buffer. Every rank receives every rank's table rows (MPI_Allgatherv) and
 * sums them in rank order. Each sum is formed once, or the same way on
 * every rank, so the bits agree everywhere, which an MPI_Allreduce does
 * not promise.
 *
 * Collective calls: create, broadcast_params, average_grads and destroy
 * are collective over the context's communicator: every rank calls them, in
 * the same order. Their argument checks give the same result on every rank
 * that passes the same arguments, and a rank that fails inside a step
 * tells the others, which then fail too (MMREC_ESTATE): no rank is left
 * waiting.
 *
 * Errors: a failed call returns an mmrec_status and writes one sentence to
 * a thread-local buffer of this library, read with mmrec_mpi_last_error()
 * (libmmrec offers no public way for another library to set
 * mmrec_last_error()); when a libmmrec call failed, the sentence quotes its
 * message. A failed call changes no gradient and no parameter.
 *
 * Thread safety: per-handle (the context, and the model it serves). MPI
 * calls are made on the calling thread: MPI_THREAD_FUNNELED suffices. */
#ifndef MMREC_MPI_H
#define MMREC_MPI_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include "mmrec/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MMREC_MPI_API __attribute__((visibility("default")))
#else
#define MMREC_MPI_API
#endif

/* A data-parallel context: a model, a communicator and the step's buffers. */
typedef struct mmrec_mpi_dp mmrec_mpi_dp;

/* Creates a data-parallel context over `model` on every rank of `comm`.
 * Collective over comm. Checks that every rank's model has the same dense
 * element count and the same row-sparse tables (MMREC_EINVAL on every rank
 * otherwise), and allocates the step's buffers once: later steps allocate
 * only when a step touches more table rows than any step before.
 *   model (in)  the model being trained; borrowed: it must outlive the
 *               context and keep its trainable parameters as they were.
 *   comm  (in)  an intra-communicator; duplicated (MPI_Comm_dup), so the
 *               context's messages never mix with the caller's. MPI must
 *               be initialized.
 *   out   (out) new context, owned by the caller (mmrec_mpi_dp_destroy).
 * Returns MMREC_OK, MMREC_EINVAL (model or out NULL, not a model, comm
 *         MPI_COMM_NULL, the models differ across ranks), MMREC_ESTATE
 *         (MPI not initialized or finalized; the model was destroyed),
 *         MMREC_ENOMEM, MMREC_EIO (an MPI call failed; the message quotes
 *         MPI's).
 * Thread safety: per-handle. Since 0.2. */
MMREC_MPI_API mmrec_status mmrec_mpi_dp_create(mmrec_model *model, MPI_Comm comm,
                                               mmrec_mpi_dp **out);

/* Frees the context and its communicator (MPI_Comm_free: collective, call
 * it on every rank before MPI_Finalize). NULL is a no-op. Since 0.2. */
MMREC_MPI_API void mmrec_mpi_dp_destroy(mmrec_mpi_dp *dp);

/* Copies rank 0's trainable parameters to every rank
 * (mmrec_model_export_params, MPI_Bcast, mmrec_model_import_params), so
 * training starts from identical models. Collective. Allocates a buffer of
 * the trainable element count for the call.
 *   dp (in) the context.
 * Returns MMREC_OK, MMREC_EINVAL (dp NULL or not a context), MMREC_ESTATE
 *         (the model changed since create, on any rank), MMREC_ENOMEM,
 *         MMREC_EIO (an MPI call failed).
 * Thread safety: per-handle. Since 0.2. */
MMREC_MPI_API mmrec_status mmrec_mpi_dp_broadcast_params(mmrec_mpi_dp *dp);

/* Replaces every trainable gradient by its mean over the ranks; call it
 * after backward and before mmrec_optimizer_step(). Collective. The dense
 * part moves as one flat buffer; of each row-sparse table only the touched
 * rows move, and afterwards the table's touched rows are the union of
 * every rank's (a row touched on any rank is updated on every rank). Each
 * rank contributes its gradients times 1 / size and the contributions are
 * summed in rank order (above), so the results are bit-identical on all.
 * With one rank nothing moves and the call returns at once. No allocation
 * once the buffers hold the most rows a step has touched.
 *   dp (in) the context.
 * Returns MMREC_OK, MMREC_EINVAL (dp NULL or not a context), MMREC_ESTATE
 *         (the model changed since create, or another rank failed: the
 *         message names the rank), MMREC_ENUMERIC (a NaN or infinity in a
 *         rank's gradient: the message names the table and row, or the
 *         index in the dense flat buffer), MMREC_ENOMEM
 *         (a step touched more rows than any before and the buffers could
 *         not grow), MMREC_EIO (an MPI call failed). A failed call leaves
 *         every gradient as it was.
 * Thread safety: per-handle. Since 0.2. */
MMREC_MPI_API mmrec_status mmrec_mpi_dp_average_grads(mmrec_mpi_dp *dp);

/* What this rank contributed to the last mmrec_mpi_dp_average_grads()
 * (all zero with one rank, or before the first call).
 *   dense_bytes_out  (out, may be NULL) bytes of the dense flat buffer (4
 *                    per element); each rank sends and receives 2 (N - 1)
 *                    / N of it.
 *   sparse_rows_out  (out, may be NULL) table rows this rank sent, over
 *                    every table; every other rank receives them once.
 *   sparse_bytes_out (out, may be NULL) bytes of those rows: an 8-byte id
 *                    and 4 bytes per element each.
 * Returns MMREC_OK, MMREC_EINVAL (dp NULL or not a context).
 * Thread safety: per-handle. Since 0.2. */
MMREC_MPI_API mmrec_status mmrec_mpi_dp_traffic(const mmrec_mpi_dp *dp, size_t *dense_bytes_out,
                                                size_t *sparse_rows_out,
                                                size_t *sparse_bytes_out);

/* The message of the last failed mmrec_mpi_* call on this thread: one
 * sentence naming the function and the argument. Never NULL; the memory
 * is the library's; meaningful only right after a failure.
 * Thread safety: thread-safe. Since 0.2. */
MMREC_MPI_API const char *mmrec_mpi_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* MMREC_MPI_H */
