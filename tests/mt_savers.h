/* The library's four saves behind one interface, for the fault and crash
 * tests (tests/test_io_faults.c, tests/test_crash.c). Each saver writes
 * "version v" of its file, every stored value equal to v (v = 1 or 2), and
 * reads back which version a file holds. */
#ifndef MMREC_MT_SAVERS_H
#define MMREC_MT_SAVERS_H

#include "mt.h"

typedef struct mt_saver mt_saver;
struct mt_saver {
    const char *name; /* "model", "checkpoint", "cache" or "index" */
    const char *file; /* the file's name in the test directory */
    mmrec_status (*save)(mt_saver *sv, const char *path, float v);
    size_t scale;     /* 1: small files; larger: files scale times as large */
    mmrec_model *m, *m2;      /* model, checkpoint: the saved and the loaded */
    mmrec_optimizer *o, *o2;  /* checkpoint: Adam after one step */
    mmrec_index *idx[3];      /* index: one handle per version */
    float *buf;               /* cache: the values of one field */
};

/* Makes a fresh test directory (mt_dir, removed by mt_tmp_clean) on tmpfs
 * when /dev/shm is there, else in /tmp: fsync costs nothing on tmpfs, and
 * injected faults do not depend on the file system. */
void mt_saver_tmp_dir(void);

/* kind: "model" (mmrec_model_save), "checkpoint" (mmrec_checkpoint_save
 * with Adam state), "cache" (the writer from create to commit: two fields,
 * float32 and float16), "index" (mmrec_index_save). scale multiplies the
 * data's size (1: a few hundred bytes). */
void mt_saver_init(mt_saver *sv, const char *kind, size_t scale);
void mt_saver_free(mt_saver *sv);

/* The version the file at `path` holds: it must load, and every value in
 * it must be the same, 1 or 2; anything else fails the test. */
float mt_saver_version(mt_saver *sv, const char *path);
/* Asserts the file at `path` holds version v. */
void mt_saver_expect(mt_saver *sv, const char *path, float v);

#endif
