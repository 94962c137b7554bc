#ifndef DOMICILE_CPREFETCH_H
#define DOMICILE_CPREFETCH_H

// A software prefetch hint, which Swift has no spelling for. A graph search
// jumps between vectors at random addresses; asking for the next neighbour's
// cache line while scoring the current one hides most of the miss. A hint
// only: it never faults and changes no value. Inlined into the Swift caller.
static inline void domicile_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
