/* SPDX-License-Identifier: Apache-2.0 */
/* The contract between ae.c and its polling backend (ae_epoll.c): the only
 * place that knows how readiness is obtained from the kernel. */
#ifndef WEFT_PROXY_AE_BACKEND_H
#define WEFT_PROXY_AE_BACKEND_H

struct ae_backend;
struct ae_fired {
    int fd;
    int mask;
};

struct ae_backend *ae_backend_new(int setsize);
void ae_backend_free(struct ae_backend *b);
/* old_mask is the fd's current interest, new_mask the wanted one (either may
 * be AE_NONE). 0 or -errno. */
int ae_backend_set(struct ae_backend *b, int fd, int old_mask, int new_mask);
/* Waits up to timeout_ms (-1: forever) and fills at most max events; returns
 * how many, 0 on timeout or EINTR. */
int ae_backend_poll(struct ae_backend *b, struct ae_fired *fired, int max, int timeout_ms);

#endif
