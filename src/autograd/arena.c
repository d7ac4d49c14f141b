/* Bump arena (see arena.h). */
#include "arena.h"
#include "../core/core_internal.h"

#include <string.h>

#ifdef MMREC__ASAN
#include <sanitizer/asan_interface.h>
#define MMREC__REDZONE 64
#define MMREC__POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define MMREC__UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define MMREC__REDZONE 0
#define MMREC__POISON(p, n) ((void)(p), (void)(n))
#define MMREC__UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define MMREC__BLOCK_HEADER 64
#define MMREC__MIN_BLOCK (1u << 20)

static inline char *mmrec__block_data(mmrec__arena_block *b) {
    return (char *)b + MMREC__BLOCK_HEADER;
}

static mmrec__arena_block *mmrec__block_new(size_t size) {
    mmrec__arena_block *b = mmrec__alloc(MMREC__BLOCK_HEADER + size);
    if (b == NULL) return NULL;
    b->next = NULL;
    b->size = size;
    MMREC__POISON(mmrec__block_data(b), size);
    return b;
}

void mmrec__arena_init(mmrec__arena *arena) { memset(arena, 0, sizeof *arena); }

void mmrec__arena_free(mmrec__arena *arena) {
    mmrec__arena_block *b = arena->first;
    while (b) {
        mmrec__arena_block *next = b->next;
        MMREC__UNPOISON(mmrec__block_data(b), b->size);
        mmrec__free(b);
        b = next;
    }
    mmrec__arena_init(arena);
}

void *mmrec__arena_alloc(mmrec__arena *arena, size_t size) {
    size_t need = ((size + 63) & ~(size_t)63) + MMREC__REDZONE;
    if (need < size) return NULL;
    if (arena->cur == NULL || arena->offset + need > arena->cur->size) {
        /* Move on to the next kept block that fits, else chain a new one. */
        mmrec__arena_block *b = arena->cur ? arena->cur->next : arena->first;
        size_t used = arena->cur ? arena->used + arena->offset : 0;
        while (b && b->size < need) b = b->next; /* too small: unused this step */
        if (b == NULL) {
            size_t grow = arena->capacity > MMREC__MIN_BLOCK ? arena->capacity : MMREC__MIN_BLOCK;
            b = mmrec__block_new(need > grow ? need : grow);
            if (b == NULL) return NULL;
            /* Append at the end of the chain. */
            if (arena->first == NULL) {
                arena->first = b;
            } else {
                mmrec__arena_block *last = arena->cur ? arena->cur : arena->first;
                while (last->next) last = last->next;
                last->next = b;
            }
            arena->capacity += b->size;
        }
        arena->used = used;
        arena->cur = b;
        arena->offset = 0;
    }
    char *ptr = mmrec__block_data(arena->cur) + arena->offset;
    arena->offset += need;
    size_t total = arena->used + arena->offset;
    if (total > arena->high_water) arena->high_water = total;
    MMREC__UNPOISON(ptr, size);
    return ptr;
}

void mmrec__arena_reset(mmrec__arena *arena) {
    if (arena->first && arena->first->next) {
        /* The step spilled over one block: merge into one of the total size
         * so later steps fit without chaining. Keep the chain if that fails. */
        mmrec__arena_block *merged = mmrec__block_new(arena->capacity);
        if (merged) {
            size_t capacity = arena->capacity, high_water = arena->high_water;
            mmrec__arena_free(arena);
            arena->first = merged;
            arena->capacity = capacity;
            arena->high_water = high_water;
        }
    }
    for (mmrec__arena_block *b = arena->first; b; b = b->next)
        MMREC__POISON(mmrec__block_data(b), b->size);
    arena->cur = arena->first;
    arena->offset = 0;
    arena->used = 0;
}

mmrec__arena_mark mmrec__arena_mark_get(const mmrec__arena *arena) {
    mmrec__arena_mark m = {arena->cur, arena->offset, arena->used};
    return m;
}

void mmrec__arena_rollback(mmrec__arena *arena, mmrec__arena_mark mark) {
    arena->cur = mark.cur;
    arena->offset = mark.offset;
    arena->used = mark.used;
}
