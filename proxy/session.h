/* SPDX-License-Identifier: Apache-2.0 */
/* A session: one accepted connection and its upstream, walked through a
 * chain of stages fixed at compile time (tcp -> tls -> detect -> relay), one
 * file per stage:
 *
 *   session_accept.c    original destination, the caller, TLS accept, authz
 *   session_detect.c    the first bytes: mesh TLS or plaintext (inbound), then
 *                       the protocol: HTTP/1, HTTP/2 or opaque (proxy/detect.c)
 *   session_upstream.c  the upstream from the worker's pool, TLS connect
 *   relay_tcp.c         bytes both ways (struct proxy_proto proto_tcp)
 *   session.c           life cycle, event dispatch, the one deadline timer
 *
 * Everything runs on the worker's loop. A session pins the configuration
 * snapshot of its accept and reads every setting from it. A closed session
 * is unlinked at once but freed only before the next poll, so no callback
 * frees what it runs on. */
#ifndef WEFT_PROXY_SESSION_H
#define WEFT_PROXY_SESSION_H
#include "proxy.h"

enum session_stage {
    STAGE_CLASSIFY,    /* inbound: mesh TLS or plaintext, from peeked bytes */
    STAGE_TLS_ACCEPT,  /* inbound mTLS handshake */
    STAGE_DETECT,      /* the protocol, from the client's first bytes */
    STAGE_CONNECT,     /* upstream dial under way */
    STAGE_TLS_CONNECT, /* outbound mTLS handshake */
    STAGE_RELAY,
};

struct session;
/* What runs once both ends are connected (and authorized). proto_tcp copies
 * bytes both ways; an HTTP server stage would parse here instead. */
struct proxy_proto {
    const char *name;
    /* Called when any fd of the session is ready: 0 to go on, 1 finished,
     * -1 to close on an error. */
    int (*pump)(struct session *s);
    /* Frees the protocol's own state when the session closes; may be NULL. */
    void (*close)(struct session *s);
};
extern const struct proxy_proto proto_tcp;
struct http_h1;
struct http_h2s;

struct pending {        /* bytes read but not yet written; NULL when empty */
    char *data;
    size_t off, len;
};

struct session {
    struct worker *w;
    struct session *prev, *next;      /* the worker's list */
    const struct cfgsnap *snap;       /* pinned for the session's life */
    const struct proxy_config *cfg;   /* &snap->cfg */
    enum pm_dir dir;
    enum session_stage stage;
    const struct proxy_proto *proto;
    struct conn down, up;             /* downstream: accepted; upstream: from the pool */
    struct pending to_up, to_down;
    struct creds_peer peer;           /* TLS peer (inbound: caller; outbound: server) */
    struct sockaddr_storage dst;      /* the original destination */
    struct sockaddr_storage src;      /* the caller */
    struct pm_series *series;         /* chosen when the decision is made */
    struct http_h1 *h1;               /* proto_h1's state (proxy/http_h1.c), else NULL */
    struct http_h2s *h2;              /* proto_h2's state (proxy/http_h2_server.c), else NULL */
    uint64_t last_active_ms;
    uint64_t accepted_ns;             /* for the detection time */
    long long timer;                  /* the stage's deadline, or the relay's idle check */
    long long retry_timer;            /* the next look at peeked bytes */
    char *expect_id;                  /* outbound: the SPIFFE ID discovery says the server has (owned), or NULL */
    uint64_t dest_wait_until_ms;      /* outbound: waiting for discovery's first answer until then; 0 not yet */
    int dest_wait_counted;            /* outbound: that wait was counted (cp_client_count_route) */
    struct session *dwait_prev, *dwait_next; /* on w->detecting while dwait (session_detect.c) */
    unsigned tls_down : 1, tls_up : 1, closed : 1;
    unsigned dwait : 1;               /* outbound, detecting before its destination's answer */
};

/* session.c */
struct session *session_new(struct worker *w, int fd, enum pm_dir dir, const struct sockaddr_storage *src,
                            const struct sockaddr_storage *dst);
void session_step(struct session *s);
void session_set_mask(struct session *s, struct conn *c, int mask);
/* Chooses the connection's metric series once (later calls do nothing). */
void session_count(struct session *s, int tls, enum pm_authz a, int peer);
/* The current stage ends in ms; at the deadline session.c applies the
 * stage's timeout (or, in the relay, checks the idle time). */
void session_deadline(struct session *s, unsigned long ms);
/* A failed handshake on c: counted by reason, logged, closed. */
void session_tls_failed(struct session *s, struct conn *c, int side);
const char *session_addr(const struct sockaddr_storage *ss, char *buf, size_t len);
const char *session_dir_name(const struct session *s);

/* session_accept.c */
void session_tls_accept_start(struct session *s);
void session_tls_accept(struct session *s);

/* session_detect.c */
void session_classify(struct session *s);
void session_classify_deadline(struct session *s);
/* Outbound, right after accept: detection, or straight to the upstream on
 * an opaque port. */
void session_detect_start(struct session *s);
void session_detect(struct session *s);
void session_detect_deadline(struct session *s);
/* Outbound HTTP waited for discovery's answer: on from where it waited. */
void session_detect_resume(struct session *s);
/* Discovery published answers (the worker's wake-up): each session on
 * w->detecting looks at its destination's again; a declared opaque port
 * is relayed at once. */
void session_detect_answers(struct worker *w);
/* Takes s off w->detecting (at close, when detection ends); else nothing. */
void session_detect_unlist(struct session *s);
uint16_t session_dst_port(const struct session *s);

/* session_upstream.c */
void session_connect(struct session *s);
void session_connected(struct session *s);
void session_tls_connect(struct session *s);
/* Outbound with discovery: 1 while the first connection to a destination
 * waits for discovery's answer (the retry timer looks again: session_connect,
 * or detection when the session is still there), else 0. */
int session_route_wait(struct session *s);
struct dest_target;
struct dest_snap;
/* The target from the answer held now, counted; the caller puts *snap once
 * it is done with t->expect_id. */
void session_route_choose(struct session *s, struct dest_target *t, const struct dest_snap **snap);

/* relay_tcp.c */
void session_start_relay(struct session *s);

#endif
