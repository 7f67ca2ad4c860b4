/* SPDX-License-Identifier: Apache-2.0 */
/* What weft-discovery told this proxy about outbound destinations, and the
 * dial decision made from it (docs/discovery.md, "The answer format").
 * Pure: no sockets, no threads of its own.
 *
 * dest_parse_msg reads one line of the server's /v1/stream body (hello,
 * answer, error) and checks an answer whole: a consumer must reject what it
 * does not understand, and a rejected answer is nacked with the reason while
 * the last good one stays in force.
 *
 * The answers live in a store of immutable, reference-counted snapshots
 * (proxy/cfgsnap.h's pattern): the discovery client's thread is the only
 * writer and swaps a new snapshot in for every change; workers pin the
 * current one for a lookup. An entry's round-robin cursor and last use are
 * atomics, the only fields that change in place: they are carried over to
 * the entry that replaces it. */
#ifndef WEFT_PROXY_DEST_H
#define WEFT_PROXY_DEST_H
#include <jansson.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "authz.h"
#include "config.h"
#include "spiffe.h"

#define DEST_MAX_ENDPOINTS 4096          /* endpoints kept of one Service port */
#define DEST_MAX_LINE (4 * 1024 * 1024)  /* one server message, newline excluded */
#define DEST_MAX_ID 400                  /* a subscription id (the server's limit) */
#define DEST_MAX_APP_PROTOCOL 317        /* a Service port's appProtocol: a 253-byte prefix, "/", a 63-byte name */
#define DEST_MAX_WANTS 256               /* subscriptions asked for by workers, not yet taken */
#define DEST_MAX_ENTRIES 4096            /* destinations held; the server allows fewer (hello) */
#define DEST_MAX_TIMEOUT_MS 86400000     /* a Service's timeouts: 24h, the proxy settings' maximum */

enum dest_kind {
    DEST_KIND_SERVICE, /* a Service's ClusterIP:port */
    DEST_KIND_POD,     /* a meshed pod's own IP */
    DEST_KIND_UNKNOWN, /* outside the mesh: plain TCP, as without one */
    DEST_KIND_POLICY,  /* the own pod's inbound policy */
    DEST_KIND_ERROR,   /* discovery could not answer: the last good answer stays */
};

struct dest_endpoint {
    struct sockaddr_storage addr; /* with its port */
    char *identity;               /* the SPIFFE ID it must present; NULL when not meshed */
    unsigned ready : 1, serving : 1, terminating : 1, meshed : 1, opaque : 1;
};

struct dest_policy {
    enum mtls_mode mtls_mode;
    enum authz_policy policy;
    struct authz_rule rules[AUTHZ_MAX_RULES];
    size_t nrules;
};

/* A Service's HTTP timeouts from its weft.dev/ annotations (the answer's
 * service.timeouts); -1 where the Service sets none and the proxy's
 * setting applies. 0 means no limit, as in the settings. */
struct dest_timeouts {
    long request_ms, header_ms, idle_ms;
};

struct dest_answer {                 /* one parsed answer; owned by its entry */
    enum dest_kind kind;
    struct sockaddr_storage dst;     /* destination kinds: the question */
    char app_protocol[DEST_MAX_APP_PROTOCOL + 1]; /* service: the port's appProtocol, "" when unset */
    int opaque;                      /* service or pod port named in weft.dev/opaque-ports */
    struct dest_timeouts timeouts;   /* service; all -1 otherwise */
    struct dest_endpoint *eps;       /* service */
    size_t neps;
    char *identity;                  /* pod: the SPIFFE ID it must present */
    struct dest_policy policy;       /* policy */
    char *error;                     /* error: discovery's message */
};

enum dest_msg_type { DEST_MSG_HELLO, DEST_MSG_ANSWER, DEST_MSG_ERROR };

struct dest_msg {
    enum dest_msg_type type;
    char id[DEST_MAX_ID + 1];        /* answer; error (may be empty) */
    uint64_t version;                /* answer */
    struct dest_answer *answer;      /* answer: parsed, the caller's (dest_answer_free) */
    unsigned long max_subscriptions; /* hello */
    char code[64];                   /* error */
    char error[512];                 /* error: the server's text (cut) */
};

/* Frees an answer and what it holds; NULL is ignored. */
void dest_answer_free(struct dest_answer *a);
/* "destination:<ip>:<port>", "destination:[<ipv6>]:<port>" (dst set) or
 * "policy:<ns>/<pod>" (dst family AF_UNSPEC): 0 or -EINVAL. */
int dest_parse_id(const char *id, struct sockaddr_storage *dst);
/* "<IPv4>:<port>" or "[<IPv6>]:<port>" (session_addr's form): 0 or -EINVAL. */
int dest_parse_addr(const char *hostport, struct sockaddr_storage *dst);
/* The canonical id of a destination (what the server answers with). */
void dest_format_id(const struct sockaddr_storage *dst, char *out, size_t outlen);
/* One server message (a line without its newline). An answer is checked
 * against its id (a destination answer for the same address; a policy for
 * a policy id) and trust_domain (every identity must be of it). 0, or
 * -EINVAL with a reason for a person in err. On -EINVAL after the id was
 * read, m->type is DEST_MSG_ANSWER and m->id/m->version are set, so the
 * caller can nack that version. */
int dest_parse_msg(const char *line, size_t len, const char *trust_domain, struct dest_msg *m, char *err,
                   size_t errlen);
void dest_msg_clear(struct dest_msg *m);

/* ---------- the store ---------- */

enum dest_state {
    DEST_PENDING, /* subscribed, no answer yet */
    DEST_FAILED,  /* discovery refused the subscription or never answered well: fallback */
    DEST_READY,   /* ans holds the last good answer */
};

struct dest_entry {
    atomic_uint refs;
    struct sockaddr_storage dst;       /* the key */
    enum dest_state state;
    struct dest_answer *ans;           /* DEST_READY only */
    uint64_t version, epoch;           /* of ans: the server's version on connection `epoch` */
    atomic_uint_fast64_t rr;           /* round-robin cursor */
    atomic_uint_fast64_t last_used_ms; /* the last dest_choose (monotonic) */
};

struct dest_snap {
    atomic_uint refs;
    uint64_t generation;
    size_t n;
    struct dest_entry **v;             /* sorted by dst */
};

struct dest_store;
struct dest_store *dest_store_new(void);
void dest_store_free(struct dest_store *st);
/* The current snapshot, pinned until dest_snap_put. Any thread. */
const struct dest_snap *dest_store_get(struct dest_store *st);
void dest_snap_put(const struct dest_snap *s);
uint64_t dest_store_generation(struct dest_store *st);
/* The entry of dst in s, or NULL. */
const struct dest_entry *dest_snap_find(const struct dest_snap *s, const struct sockaddr_storage *dst);

/* fn(arg) runs on the writer's thread after each snapshot it publishes
 * (the workers' wake-up for sessions waiting on an answer). Set before the
 * writer starts. */
void dest_store_on_publish(struct dest_store *st, void (*fn)(void *), void *arg);

/* The timeouts of the Service whose answer dst holds: 1 with *out set, 0
 * (*out all -1) when dst holds no good Service answer. Pins and puts the
 * snapshot itself. Any thread. */
int dest_store_timeouts(struct dest_store *st, const struct sockaddr_storage *dst, struct dest_timeouts *out);

/* A worker saw a connection to dst with no entry: queue it for the client
 * (deduplicated, at most DEST_MAX_WANTS). 1 newly queued, 0 already queued,
 * -ENOSPC full. Any thread. */
int dest_store_want(struct dest_store *st, const struct sockaddr_storage *dst);
/* The client's thread takes what was queued (at most max); returns how many. */
size_t dest_store_take_wants(struct dest_store *st, struct sockaddr_storage *out, size_t max);

/* Writer side (one thread). Each change swaps a new snapshot in. */
/* Adds dst as DEST_PENDING (no change when present): 0, -ENOSPC at DEST_MAX_ENTRIES. */
int dest_store_add_pending(struct dest_store *st, const struct sockaddr_storage *dst, uint64_t now_ms);
/* Marks dst DEST_FAILED unless it holds a good answer; 0 or -ENOENT. */
int dest_store_fail(struct dest_store *st, const struct sockaddr_storage *dst);
/* Installs an answer (taken; freed on every path) for dst at version on
 * connection epoch. An answer of kind error keeps the last good one (or
 * fails a pending entry). -ESTALE (nothing changes) for a version not newer
 * than the one held from the same epoch; -ENOENT when dst is not held. */
int dest_store_apply(struct dest_store *st, const struct sockaddr_storage *dst, struct dest_answer *ans,
                     uint64_t version, uint64_t epoch);
/* Removes entries unused for idle_ms (not counting entries added or
 * answered since); their keys go to out (at most max): the caller
 * unsubscribes them. Returns how many were removed. */
size_t dest_store_expire(struct dest_store *st, uint64_t now_ms, uint64_t idle_ms, struct sockaddr_storage *out,
                         size_t max);
size_t dest_store_count(struct dest_store *st);

/* ---------- the dial decision ---------- */

enum dest_route {
    DEST_ROUTE_FALLBACK,    /* no answer to go by: WEFT_MESH_NETWORKS decides, as without discovery */
    DEST_ROUTE_WAIT,        /* subscribed, no answer yet: a first connection may wait briefly */
    DEST_ROUTE_PLAIN,       /* plain TCP to addr */
    DEST_ROUTE_MTLS,        /* mTLS to addr, the server must present expect_id */
    DEST_ROUTE_NO_ENDPOINT, /* a Service with no ready or serving endpoint: refuse */
};

struct dest_target {
    enum dest_route route;
    struct sockaddr_storage addr; /* PLAIN and MTLS: where to dial */
    const char *expect_id;        /* MTLS: points into the entry (pinned with its snapshot) */
    const char *app_protocol;     /* "" when unknown; for the protocol stages */
    int opaque;                   /* skip protocol detection */
};

/* Chooses for a connection to orig with e (NULL: not subscribed) at now_ms:
 * a Service's endpoint round robin over the ready and not terminating ones,
 * else over serving terminating ones (kube-proxy's fallback); mTLS when
 * the chosen endpoint (or the pod) is meshed, plain TCP when it is not and
 * for unknown destinations. Touches e's cursor and last use (atomics). */
void dest_choose(const struct dest_entry *e, const struct sockaddr_storage *orig, uint64_t now_ms,
                 struct dest_target *t);
const char *dest_route_name(enum dest_route r);

#endif
