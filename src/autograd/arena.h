/* Bump arena: a chain of large 64-byte-aligned blocks. Rewinding is O(1) and
 * keeps the blocks; when a step needed more than one block, the rewind merges
 * them into one, so a repeated step soon runs in a single block and
 * allocates nothing. Under AddressSanitizer freed space is poisoned and each
 * allocation is followed by a poisoned red zone. */
#ifndef MMREC_ARENA_H
#define MMREC_ARENA_H

#include <stddef.h>

typedef struct mmrec__arena_block {
    struct mmrec__arena_block *next;
    size_t size; /* usable bytes after the header */
} mmrec__arena_block;

typedef struct mmrec__arena {
    mmrec__arena_block *first, *cur;
    size_t offset;      /* bytes used in cur */
    size_t used;        /* bytes used in all blocks before cur */
    size_t capacity;    /* all blocks */
    size_t high_water;  /* most bytes used in one step */
} mmrec__arena;

typedef struct mmrec__arena_mark {
    mmrec__arena_block *cur;
    size_t offset, used;
} mmrec__arena_mark;

void mmrec__arena_init(mmrec__arena *arena);
void mmrec__arena_free(mmrec__arena *arena);
void *mmrec__arena_alloc(mmrec__arena *arena, size_t size);
void mmrec__arena_reset(mmrec__arena *arena);
mmrec__arena_mark mmrec__arena_mark_get(const mmrec__arena *arena);
void mmrec__arena_rollback(mmrec__arena *arena, mmrec__arena_mark mark);

#endif
