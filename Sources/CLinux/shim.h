#ifndef DOMICILE_CLINUX_SHIM_H
#define DOMICILE_CLINUX_SHIM_H

// Linux interfaces that Swift's Glibc module does not export. No library is
// linked: these functions are glibc's own.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <malloc.h>

// accept4 is declared by <sys/socket.h> only under _GNU_SOURCE, which the
// Glibc module is not built with. The prototype is glibc's (accept(2)).
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);

static inline int domicile_accept4(int listener, int flags) {
    return accept4(listener, (struct sockaddr *)0, (socklen_t *)0, flags);
}

// pipe2 is a GNU extension too. Both ends close on exec, so a pipe made for
// one child is never inherited by another (or by that child's children).
extern int pipe2(int pipefd[2], int flags);

static inline int domicile_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

// pthread_setname_np is a GNU extension as well. Names the calling thread
// (15 bytes at most, what top -H and perf show).
extern int pthread_setname_np(pthread_t thread, const char *name);

static inline void domicile_set_thread_name(const char *name) {
    pthread_setname_np(pthread_self(), name);
}

// A JSON number literal (already checked against JSON's grammar by the
// caller) as the nearest double, whatever the process's locale: glibc's
// strtod_l (a GNU extension) in the "C" locale, made once. Returns 0 when
// the literal is longer than 63 bytes, or out of a double's normal range
// (ERANGE: overflow, or underflow to a subnormal or zero); the caller then
// leaves the body to Foundation's decoder.
#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

extern double strtod_l(const char *text, char **end, locale_t locale);

// The "C" locale, made at the first call (a function's static, which the
// importer emits with the function, unlike a header's global).
static inline locale_t domicile_c_locale(void) {
    static locale_t made = (locale_t)0;
    locale_t locale = __atomic_load_n(&made, __ATOMIC_ACQUIRE);
    if (locale == (locale_t)0) {
        locale_t fresh = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        locale_t expected = (locale_t)0;
        if (fresh == (locale_t)0) return fresh;
        if (__atomic_compare_exchange_n(&made, &expected, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return fresh;
        freelocale(fresh);  // another thread made it first
        return expected;
    }
    return locale;
}

static inline int domicile_parse_json_double(const unsigned char *literal, size_t count, double *value) {
    char text[64];
    if (count == 0 || count >= sizeof text) return 0;
    locale_t locale = domicile_c_locale();
    if (locale == (locale_t)0) return 0;
    memcpy(text, literal, count);
    text[count] = 0;
    char *end = text;
    errno = 0;
    double parsed = strtod_l(text, &end, locale);
    if (end != text + count || errno == ERANGE) return 0;
    *value = parsed;
    return 1;
}

#endif
