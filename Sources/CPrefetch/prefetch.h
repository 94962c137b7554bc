#ifndef DOMICILE_CPREFETCH_H
#define DOMICILE_CPREFETCH_H

#include <stddef.h>

// A software prefetch hint, which Swift has no spelling for. A graph search
// jumps between vectors at random addresses; asking for the next neighbour's
// cache lines while scoring the current one hides most of the miss. A hint
// only: it never faults and changes no value. Inlined into the Swift caller.
static inline void domicile_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/// Prefetches `lines` consecutive 64-byte cache lines from `address`.
static inline void domicile_prefetch_lines(const void *address, size_t lines) {
    const char *line = (const char *)address;
    for (size_t index = 0; index < lines; index++) __builtin_prefetch(line + 64 * index, 0, 3);
}

#endif
