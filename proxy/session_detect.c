/* SPDX-License-Identifier: Apache-2.0 */
/* The first-bytes stage of an inbound connection: peeked (MSG_PEEK, so the
 * bytes stay queued for whoever reads next) and classified by
 * proxy/classify.c as weft mesh TLS, other TLS or plaintext. Mesh TLS goes to
 * the TLS accept; the rest is refused under STRICT and relayed under
 * PERMISSIVE. */
#include <errno.h>
#include <sys/socket.h>

#include "classify.h"
#include "log.h"
#include "session.h"

#define DETECT_RETRY_MS 5

static void session_refuse_plaintext(struct session *s, enum pm_refused kind, const char *what)
{
    char src[80], dst[80];
    pm_add(&s->w->px->metrics.refused[kind], 1);
    log_info("plaintext refused", "mode=STRICT src=%s dst=%s kind=%s", session_addr(&s->src, src, sizeof src),
             session_addr(&s->dst, dst, sizeof dst), what);
    session_close(s, "strict");
}

static void session_classified(struct session *s, enum classify_result r)
{
    ae_timer_del(s->w->loop, s->retry_timer);
    s->retry_timer = 0;
    if (r == CLASSIFY_WEFT_TLS) {
        session_tls_accept_start(s);
        return;
    }
    if (s->cfg->mtls_mode == MTLS_STRICT) {
        session_refuse_plaintext(s, r == CLASSIFY_OTHER_TLS ? PM_REFUSED_OTHER_TLS : PM_REFUSED_PLAINTEXT,
                                 classify_name(r));
        return;
    }
    session_count(s, 0, PM_AUTHZ_NONE, 0);
    session_connect(s);
}

static long session_classify_retry(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct session *s = data;
    s->retry_timer = 0;
    s->down.ready |= AE_READABLE;
    session_step(s);
    return -1;
}

void session_classify(struct session *s)
{
    unsigned char *buf = (unsigned char *)s->w->scratch;
    if (!(s->down.ready & AE_READABLE))
        return;
    ssize_t n = recv(s->down.fd, buf, CLASSIFY_MAX_BYTES, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        s->down.ready &= ~AE_READABLE;
        return;
    }
    if (n <= 0) {
        session_close(s, n == 0 ? "eof before data" : "recv");
        return;
    }
    enum classify_result r = classify_first_bytes(buf, (size_t)n);
    if (r != CLASSIFY_NEED_MORE) {
        session_classified(s, r);
        return;
    }
    /* The bytes stay queued, so level-triggered readiness would spin: look
     * again shortly instead. */
    s->down.ready &= ~AE_READABLE;
    session_set_mask(s, &s->down, AE_NONE);
    if (!s->retry_timer)
        s->retry_timer = ae_timer_add(s->w->loop, DETECT_RETRY_MS, session_classify_retry, s);
}

/* Bytes may have arrived while the loop was busy, so what is queued decides;
 * nothing, or a first flight still incomplete, counts as plaintext (a
 * server-first protocol, or an idle caller). */
void session_classify_deadline(struct session *s)
{
    unsigned char *buf = (unsigned char *)s->w->scratch;
    ssize_t n = recv(s->down.fd, buf, CLASSIFY_MAX_BYTES, MSG_PEEK | MSG_DONTWAIT);
    enum classify_result r = n > 0 ? classify_first_bytes(buf, (size_t)n) : CLASSIFY_PLAINTEXT;
    session_classified(s, r == CLASSIFY_NEED_MORE ? CLASSIFY_PLAINTEXT : r);
}
