/* libFuzzer harness: checkpoint files, read by mmrec_model_load() and
 * mmrec_checkpoint_load() (with an Adam optimizer) into a small model of
 * three parameters. A failed load must leave a message and change nothing
 * (the parameters and the step count are compared with copies taken
 * before); after a successful one the optimizer takes a step. Seeds: tests/fuzz/corpus/checkpoint (make fuzz-corpus). */
#include "fuzz_common.h"
#include "fuzz_model.h"

static mmrec_model *model;
static mmrec_optimizer *opt;
static fuzz_file file;

static void fuzz_setup(void) {
    FUZZ_MUST(fuzz_checkpoint_model(&model));
    mmrec_optimizer_config cfg;
    FUZZ_MUST(mmrec_optimizer_config_init(&cfg));
    FUZZ_MUST(mmrec_optimizer_create(model, &cfg, &opt));
    fuzz_file_init(&file, "checkpoint");
}

static void fuzz_teardown(void) {
    mmrec_optimizer_destroy(opt);
    mmrec_model_destroy(model);
    close(file.fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (model == NULL) {
        fuzz_setup();
        atexit(fuzz_teardown);
    }
    const char *path = fuzz_file_set(&file, data, size);
    float before[FUZZ_CKPT_PARAMS], after[FUZZ_CKPT_PARAMS];
    FUZZ_MUST(mmrec_model_export_params(model, before, FUZZ_CKPT_PARAMS));

    if (!FUZZ_OK(mmrec_model_load(model, path))) {
        FUZZ_MUST(mmrec_model_export_params(model, after, FUZZ_CKPT_PARAMS));
        FUZZ_REQUIRE(memcmp(before, after, sizeof before) == 0,
                     "a failed mmrec_model_load changed the parameters");
    }
    FUZZ_MUST(mmrec_model_export_params(model, before, FUZZ_CKPT_PARAMS));
    uint64_t steps_before = 0, steps_after = 0;
    FUZZ_MUST(mmrec_optimizer_step_count(opt, &steps_before));
    if (FUZZ_OK(mmrec_checkpoint_load(model, opt, path))) {
        /* the loaded state must be usable: one step on zero gradients */
        FUZZ_MUST(mmrec_model_zero_grad(model));
        (void)FUZZ_OK(mmrec_optimizer_step(opt));
    } else {
        FUZZ_MUST(mmrec_model_export_params(model, after, FUZZ_CKPT_PARAMS));
        FUZZ_REQUIRE(memcmp(before, after, sizeof before) == 0,
                     "a failed mmrec_checkpoint_load changed the parameters");
        FUZZ_MUST(mmrec_optimizer_step_count(opt, &steps_after));
        FUZZ_REQUIRE(steps_before == steps_after,
                     "a failed mmrec_checkpoint_load changed the step count");
    }
    return 0;
}
