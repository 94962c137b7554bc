#ifndef DOMICILE_VERSION_STAMP_H
#define DOMICILE_VERSION_STAMP_H

// Version-stamped reads of a slot's neighbour lists (a sequence lock), which
// let a graph search read a list without taking a lock and without a data
// race in the C11 memory model: every word is read and written with relaxed
// atomics, and the stamp orders them.
//
// A writer (one at a time per slot: it holds the slot's stripe lock) makes
// the stamp odd, writes, and makes it even again. A reader takes the stamp
// (even), reads, and keeps what it read only if the stamp is unchanged.
// On x86-64 and arm64 every call here is plain loads and stores (the fences
// are compiler barriers on x86-64).

#include <stddef.h>
#include <stdint.h>

/// The stamp before a read: even when no write is under way.
static inline uint32_t domicile_stamp_read_begin(const uint32_t *stamp) {
    return __atomic_load_n(stamp, __ATOMIC_ACQUIRE);
}

/// Whether what was read since `begun` is consistent: no write began or
/// ended meanwhile, and none was under way at `begun`.
static inline int domicile_stamp_read_valid(const uint32_t *stamp, uint32_t begun) {
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return (begun & 1) == 0 && __atomic_load_n(stamp, __ATOMIC_RELAXED) == begun;
}

/// Marks a write under way (the stamp odd) before any word changes.
static inline void domicile_stamp_write_begin(uint32_t *stamp) {
    __atomic_store_n(stamp, __atomic_load_n(stamp, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

/// Marks the write done (the stamp even again), after every word changed.
static inline void domicile_stamp_write_end(uint32_t *stamp) {
    __atomic_store_n(stamp, __atomic_load_n(stamp, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}

static inline uint32_t domicile_load_word(const uint32_t *word) {
    return __atomic_load_n(word, __ATOMIC_RELAXED);
}

static inline void domicile_store_word(uint32_t *word, uint32_t value) {
    __atomic_store_n(word, value, __ATOMIC_RELAXED);
}

static inline void *domicile_load_pointer(void *const *pointer) {
    return __atomic_load_n(pointer, __ATOMIC_RELAXED);
}

static inline void domicile_store_pointer(void **pointer, void *value) {
    __atomic_store_n(pointer, value, __ATOMIC_RELAXED);
}

/// Copies `count` words with relaxed loads (a racing writer may change them:
/// the caller checks the stamp afterwards).
static inline void domicile_copy_words(uint32_t *destination, const uint32_t *source, size_t count) {
    for (size_t index = 0; index < count; index++) destination[index] = __atomic_load_n(source + index, __ATOMIC_RELAXED);
}

#endif
