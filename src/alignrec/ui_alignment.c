/* AlignRec's user-item alignment, 1 - mean_b cos(u_b, i_b), composed of
 * the public ops (cosine similarity, mean, 1 - x: three nodes).
 * Reference: the ui_cosine_loss term of ALIGNREC.calculate_loss in
 * sjtulyf123/AlignRec_CIKM24 src/models/alignrec.py (F.cosine_similarity,
 * eps 1e-8); tests/golden/make_golden.py::write_alignrec. */
#include "../ops/ops_internal.h"
#include "mmrec/alignrec.h"

static mmrec_status mmrec__ui_align_run(mmrec_tape *tape, mmrec_tensor *users,
                                        mmrec_tensor *items, mmrec_tensor **out) {
    mmrec_tensor *cos, *mean, *one;
    MMREC_FORWARD_IF(mmrec_cosine_similarity(tape, users, items, 1e-8f, &cos));
    MMREC_FORWARD_IF(mmrec_mean(tape, cos, MMREC_AXIS_ALL, &mean));
    int64_t shape[1] = {1};
    MMREC_FORWARD_IF(mmrec_tape_tensor(tape, 1, shape, 0, &one));
    one->data[0] = 1.0f;
    return mmrec_sub(tape, one, mean, out);
}

mmrec_status mmrec_loss_ui_alignment(mmrec_tape *tape, mmrec_tensor *users, mmrec_tensor *items,
                                     mmrec_tensor **out) {
    MMREC_CHECK_OP2(tape, users, items, out);
    if (users->ndim != 2 || items->ndim != 2 || users->shape[0] != items->shape[0] ||
        users->shape[1] != items->shape[1])
        MMREC_FAIL_SHAPE2("users and items must both be [batch, dim]", users, items);
    MMREC_CHECK_FINITE(users);
    MMREC_CHECK_FINITE(items);
    mmrec__tape_mark mark = mmrec__tape_mark_get(tape);
    mmrec_status s = mmrec__ui_align_run(tape, users, items, out);
    if (s != MMREC_OK) mmrec__tape_rollback(tape, mark);
    return s;
}
