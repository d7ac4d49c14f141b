/* Built against an installed libmmrec with nothing but pkg-config. */
#include <mmrec/mmrec.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    if (mmrec_version_number() != MMREC_VERSION_NUMBER) {
        fprintf(stderr, "header %s, library %s\n", MMREC_VERSION_STRING, mmrec_version_string());
        return 1;
    }
    mmrec_tape *tape;
    if (mmrec_tape_create(&tape) != MMREC_OK) return 1;
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1};
    int64_t shape[2] = {2, 2};
    mmrec_tensor *ta, *tb, *y;
    if (mmrec_tape_wrap(tape, a, 2, shape, MMREC_TENSOR_READONLY, &ta) != MMREC_OK ||
        mmrec_tape_wrap(tape, b, 2, shape, MMREC_TENSOR_READONLY, &tb) != MMREC_OK ||
        mmrec_matmul(tape, ta, tb, 0, &y) != MMREC_OK)
        return 1;
    float out[4];
    if (mmrec_tensor_copy_to(y, out, 4) != MMREC_OK || memcmp(out, a, sizeof a) != 0) return 1;
    if (mmrec_matmul(tape, NULL, tb, 0, &y) != MMREC_EINVAL) return 1;
    mmrec_tape_destroy(tape);
    printf("consumer ok %s\n", mmrec_version_string());
    return 0;
}
