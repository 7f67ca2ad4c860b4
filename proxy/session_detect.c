/* SPDX-License-Identifier: Apache-2.0 */
/* The first-bytes stages, both on bytes peeked (MSG_PEEK, so they stay
 * queued for whoever reads next):
 * - inbound classification by proxy/classify.c as weft mesh TLS, other TLS
 *   or plaintext: mesh TLS goes to the TLS accept; the rest is refused under
 *   STRICT and goes on to protocol detection under PERMISSIVE;
 * - protocol detection by proxy/detect.c (outbound, and inbound plaintext):
 *   HTTP/1, HTTP/2 or opaque as soon as the bytes tell, "timeout" when the
 *   client has not said enough by WEFT_DETECT_TIMEOUT_MS (a server-speaks-
 *   first protocol), and no wait at all on WEFT_OPAQUE_PORTS or on a port
 *   discovery declares, also when its answer comes during the wait. Every outcome
 *   is counted; HTTP/1 goes to proxy/http_h1.c, h2c to
 *   proxy/http_h2_server.c, everything else is relayed as TCP. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "classify.h"
#include "dest.h"
#include "detect.h"
#include "http_h1.h"
#include "http_h2_server.h"
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

static void session_detect_begin(struct session *s, int at_deadline);

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
    session_detect_begin(s, s->timer == 0);
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

uint16_t session_dst_port(const struct session *s)
{
    if (s->dst.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&s->dst)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&s->dst)->sin_port);
}

static void session_detect_go(struct session *s, enum detect_result r);

static void session_detected(struct session *s, enum detect_result r)
{
    struct proxy_metrics *m = &s->w->px->metrics;
    ae_timer_del(s->w->loop, s->retry_timer);
    s->retry_timer = 0;
    pm_add(&m->detections[s->dir][r], 1);
    if (r != DETECT_TIMEOUT)
        metrics_observe_ns(&m->detect_time, metrics_now_ns() - s->accepted_ns);
    if (log_enabled(LOG_DEBUG)) {
        char dst[80];
        log_debug("protocol detected", "direction=%s dst=%s protocol=%s", session_dir_name(s),
                  session_addr(&s->dst, dst, sizeof dst), detect_name(r));
    }
    session_detect_go(s, r);
}

/* Also when the wait for discovery's answer is over: the first bytes are
 * still queued, so they tell again which HTTP it was. */
void session_detect_resume(struct session *s)
{
    unsigned char *buf = (unsigned char *)s->w->scratch;
    ssize_t n = recv(s->down.fd, buf, DETECT_MAX_BYTES, MSG_PEEK | MSG_DONTWAIT);
    session_detect_go(s, n > 0 ? detect_protocol(buf, (size_t)n) : DETECT_OPAQUE);
}

static void session_detect_go(struct session *s, enum detect_result r)
{
    session_detect_unlist(s);
    /* HTTP is terminated here, HTTP/1 (proxy/http_h1.c) and prior-knowledge
     * h2c (proxy/http_h2_server.c) alike: each request to a meshed
     * destination travels as a stream of the pooled weft/h2 connection to
     * its proxy (an HTTP/1 Upgrade or CONNECT on a weft/1 connection of its
     * own), to a plain one as HTTP/1.1 or h2c. With discovery each request
     * is routed on its own (proxy/http_route.c); only the wait for a first
     * answer happens here, once per connection. */
    if (r == DETECT_H2 || r == DETECT_HTTP1) {
        if (s->dir == PM_OUTBOUND && s->w->px->dest && session_route_wait(s))
            return;
        if (r == DETECT_H2)
            http_h2_start(s);
        else
            http_h1_start(s);
        return;
    }
    session_connect(s);
}

static long session_detect_retry(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct session *s = data;
    s->retry_timer = 0;
    session_step(s);
    return -1;
}

/* One look at what is queued; at the deadline, undecided means timeout. */
static void session_detect_run(struct session *s, int at_deadline)
{
    unsigned char *buf = (unsigned char *)s->w->scratch;
    ssize_t n = recv(s->down.fd, buf, DETECT_MAX_BYTES, MSG_PEEK | MSG_DONTWAIT);
    int eof = n == 0;
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            session_close(s, "recv");
            return;
        }
        n = 0;
    }
    enum detect_result r = n > 0 ? detect_protocol(buf, (size_t)n) : DETECT_NEED_MORE;
    if (r == DETECT_NEED_MORE && n > 0) {
        /* A peek never reports the FIN behind queued bytes; POLLRDHUP does. */
        struct pollfd pf = {.fd = s->down.fd, .events = POLLRDHUP};
        eof = poll(&pf, 1, 0) == 1 && (pf.revents & (POLLRDHUP | POLLHUP));
    }
    if (r == DETECT_NEED_MORE && eof)
        r = DETECT_OPAQUE; /* the client finished sending before it said enough: relay what there is */
    if (r == DETECT_NEED_MORE && at_deadline)
        r = DETECT_TIMEOUT;
    if (r != DETECT_NEED_MORE) {
        session_detected(s, r);
        return;
    }
    if (n == 0) { /* nothing yet: readiness will tell */
        session_set_mask(s, &s->down, AE_READABLE);
        return;
    }
    /* A prefix stays queued, so level-triggered readiness would spin: look
     * again shortly instead. */
    session_set_mask(s, &s->down, AE_NONE);
    if (!s->retry_timer)
        s->retry_timer = ae_timer_add(s->w->loop, DETECT_RETRY_MS, session_detect_retry, s);
}

/* Outbound with discovery: what the answer held for the destination says
 * of its port decides without looking at bytes. A Service port's
 * appProtocol: "http" is HTTP/1, "kubernetes.io/h2c" and "grpc" are h2c,
 * anything else is opaque; a port in the Service's weft.dev/opaque-ports
 * (the answer's "opaque"), or in an endpoint pod's, or a meshed pod's own
 * opaque port, is opaque. DETECT_NEED_MORE: the answer says nothing (or
 * there is none), detect from the bytes. *state: the entry's enum
 * dest_state, -1 when the destination has none. */
static enum detect_result session_detect_hint(struct session *s, enum pm_skip *why, int *state)
{
    enum detect_result r = DETECT_NEED_MORE;
    const struct dest_snap *snap = dest_store_get(s->w->px->dest);
    const struct dest_entry *e = dest_snap_find(snap, &s->dst);
    const struct dest_answer *a = e && e->state == DEST_READY ? e->ans : NULL;
    *state = e ? (int)e->state : -1;
    if (a && (a->kind == DEST_KIND_SERVICE || a->kind == DEST_KIND_POD)) {
        int opaque = a->opaque;
        for (size_t i = 0; i < a->neps && !opaque; i++)
            opaque = a->eps[i].opaque;
        if (opaque) {
            r = DETECT_OPAQUE;
            *why = PM_SKIP_DISCOVERY_OPAQUE;
        } else if (a->app_protocol[0]) {
            const char *ap = a->app_protocol;
            r = strcmp(ap, "http") == 0                                          ? DETECT_HTTP1
                : strcmp(ap, "kubernetes.io/h2c") == 0 || strcmp(ap, "grpc") == 0 ? DETECT_H2
                                                                                  : DETECT_OPAQUE;
            *why = PM_SKIP_APP_PROTOCOL;
        }
    }
    dest_snap_put(snap);
    return r;
}

/* The hint decided: counted as a skipped detection, and on. */
static void session_detect_skip(struct session *s, enum detect_result r, enum pm_skip why)
{
    pm_add(&s->w->px->metrics.detect_skipped[s->dir][why], 1);
    if (log_enabled(LOG_DEBUG)) {
        char dst[80];
        log_debug("protocol from discovery", "dst=%s protocol=%s reason=%s", session_addr(&s->dst, dst, sizeof dst),
                  detect_name(r), why == PM_SKIP_APP_PROTOCOL ? "app_protocol" : "discovery_opaque");
    }
    session_detect_go(s, r);
}

/* A session detecting before its destination's answer is on the worker's
 * list w->detecting, so that the answer, when it comes, can still spare a
 * server-speaks-first protocol the wait (session_detect_answers). Listed
 * before the store is read: the discovery client's thread wakes the
 * workers with a session listed after it published (worker_dest_published),
 * so an answer published in between is not missed. */
static void session_detect_list(struct session *s)
{
    struct worker *w = s->w;
    s->dwait_prev = NULL;
    s->dwait_next = w->detecting;
    if (w->detecting)
        w->detecting->dwait_prev = s;
    w->detecting = s;
    s->dwait = 1;
    atomic_fetch_add(&w->ndetecting, 1);
}

void session_detect_unlist(struct session *s)
{
    struct worker *w = s->w;
    if (!s->dwait)
        return;
    if (s->dwait_prev)
        s->dwait_prev->dwait_next = s->dwait_next;
    else
        w->detecting = s->dwait_next;
    if (s->dwait_next)
        s->dwait_next->dwait_prev = s->dwait_prev;
    s->dwait_prev = s->dwait_next = NULL;
    s->dwait = 0;
    atomic_fetch_sub(&w->ndetecting, 1);
}

/* Only an opaque port is decided here: the client has said nothing it
 * could be told by (or too little), and a server-speaks-first protocol
 * would otherwise wait out WEFT_DETECT_TIMEOUT_MS. An HTTP port still
 * waits for the client's bytes, as does a destination the answer says
 * nothing of; both leave the list. */
void session_detect_answers(struct worker *w)
{
    struct session *next;
    for (struct session *s = w->detecting; s; s = next) {
        next = s->dwait_next; /* s may go on, or close (and leave the list); the others stay */
        enum pm_skip why;
        int state;
        enum detect_result r = session_detect_hint(s, &why, &state);
        if (r == DETECT_OPAQUE) {
            ae_timer_del(w->loop, s->retry_timer); /* a prefix's next look */
            s->retry_timer = 0;
            session_detect_skip(s, r, why);
        } else if (r != DETECT_NEED_MORE || state == DEST_READY || state == DEST_FAILED) {
            session_detect_unlist(s);
        }
    }
}

/* The deadline is the caller's (outbound: armed by session_detect_start;
 * inbound: the classification's, still running). */
static void session_detect_begin(struct session *s, int at_deadline)
{
    struct proxy *px = s->w->px;
    if (config_is_opaque_port(s->cfg, session_dst_port(s))) {
        pm_add(&px->metrics.detect_skipped[s->dir][PM_SKIP_OPAQUE_PORT], 1);
        session_connect(s);
        return;
    }
    s->stage = STAGE_DETECT;
    if (s->dir == PM_OUTBOUND && px->dest) {
        /* From an answer held now, or from one that comes while the client
         * has said nothing (session_detect_answers); either way detection
         * starts at once, as without discovery: a slow discovery delays
         * no connection before its bytes, and the wait for the answer
         * stays after them (session_route_wait). */
        enum pm_skip why;
        int state;
        session_detect_list(s);
        enum detect_result r = session_detect_hint(s, &why, &state);
        if (r != DETECT_NEED_MORE) {
            session_detect_skip(s, r, why);
            return;
        }
        if (state == DEST_READY || state == DEST_FAILED)
            session_detect_unlist(s);
        else if (state < 0 && dest_store_want(px->dest, &s->dst) == 1)
            cp_client_wake(px->cp); /* subscribed now, not once the bytes told */
    }
    session_detect_run(s, at_deadline);
}

void session_detect_start(struct session *s)
{
    if (!config_is_opaque_port(s->cfg, session_dst_port(s)))
        session_deadline(s, s->cfg->detect_timeout_ms);
    session_detect_begin(s, 0);
}

void session_detect(struct session *s)
{
    session_detect_run(s, 0);
}

void session_detect_deadline(struct session *s)
{
    session_detect_run(s, 1);
}
