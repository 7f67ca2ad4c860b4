/* SPDX-License-Identifier: Apache-2.0 */
/* Protocol detection from a connection's first bytes (pure, fuzzed by
 * fuzz/fuzz_proxy_detect.c): the HTTP/2 connection preface (RFC 9113 3.4),
 * an HTTP/1.x request line (RFC 9112 3, confirmed by lib/http1), or
 * anything else, opaque. A decision comes as early as the bytes allow: the
 * first byte that cannot continue a preface or a request line makes it
 * opaque at once, so client-first binary protocols (TLS, most databases)
 * never wait; only a prefix that could still become HTTP asks for more. */
#ifndef WEFT_PROXY_DETECT_H
#define WEFT_PROXY_DETECT_H
#include <stddef.h>

/* A request line (with any empty lines before it) longer than this is
 * relayed as opaque: the same 8 KiB a request head may have at the admin
 * server. */
#define DETECT_MAX_BYTES 8192

enum detect_result {
    DETECT_NEED_MORE, /* a prefix of a preface or a request line: wait for more */
    DETECT_HTTP1,
    DETECT_H2,        /* prior-knowledge h2c: the client preface */
    DETECT_OPAQUE,
    DETECT_TIMEOUT,   /* not a result of detect_protocol: the session's deadline passed first */
    DETECT_NRESULTS
};

/* Looks at the first len bytes (at most DETECT_MAX_BYTES are read); a
 * result other than DETECT_NEED_MORE does not change with more bytes. */
enum detect_result detect_protocol(const unsigned char *p, size_t len);
/* "http1", "h2", "opaque", "timeout" (the metric label), "need_more". */
const char *detect_name(enum detect_result r);
/* Linkerd's default opaque ports: server-speaks-first (or otherwise never
 * HTTP) protocols that skip detection: SMTP, submission, MySQL, Galera,
 * PostgreSQL, Redis, Elasticsearch transport, memcached. */
#define DETECT_DEFAULT_OPAQUE_PORTS "25,587,3306,4444,5432,6379,9300,11211"

#endif
