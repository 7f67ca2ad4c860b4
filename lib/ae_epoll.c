/* SPDX-License-Identifier: Apache-2.0 */
/* The epoll backend of the event loop (level-triggered). Nothing else in the
 * proxy includes <sys/epoll.h>. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ae.h"
#include "ae_backend.h"
#include "xalloc.h"

struct ae_backend {
    int epfd;
    int setsize;
    struct epoll_event *events;
};

#define AE_EPOLL_BATCH 512 /* events taken per epoll_wait */

struct ae_backend *ae_backend_new(int setsize)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return NULL;
    struct ae_backend *b = xcalloc(1, sizeof *b);
    b->epfd = epfd;
    b->setsize = setsize;
    b->events = xcalloc(AE_EPOLL_BATCH, sizeof *b->events);
    return b;
}

void ae_backend_free(struct ae_backend *b)
{
    if (!b)
        return;
    close(b->epfd);
    free(b->events);
    free(b);
}

int ae_backend_set(struct ae_backend *b, int fd, int old_mask, int new_mask)
{
    struct epoll_event ev = {0};
    ev.data.fd = fd;
    if (new_mask & AE_READABLE)
        ev.events |= EPOLLIN;
    if (new_mask & AE_WRITABLE)
        ev.events |= EPOLLOUT;
    int op = old_mask == AE_NONE ? EPOLL_CTL_ADD : new_mask == AE_NONE ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (old_mask == new_mask)
        return 0;
    if (epoll_ctl(b->epfd, op, fd, &ev) < 0)
        return -errno;
    return 0;
}

int ae_backend_poll(struct ae_backend *b, struct ae_fired *fired, int max, int timeout_ms)
{
    if (max > AE_EPOLL_BATCH)
        max = AE_EPOLL_BATCH;
    int n = epoll_wait(b->epfd, b->events, max, timeout_ms);
    if (n < 0)
        return 0;
    for (int i = 0; i < n; i++) {
        uint32_t e = b->events[i].events;
        int mask = 0;
        /* Errors and hangups wake both directions: the callbacks find out
         * what happened from read()/write() themselves. */
        if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
            mask |= AE_READABLE;
        if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            mask |= AE_WRITABLE;
        fired[i].fd = b->events[i].data.fd;
        fired[i].mask = mask;
    }
    return n;
}
