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

#endif
