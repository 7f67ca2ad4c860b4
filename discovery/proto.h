/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy-facing protocol, version 1 (docs/discovery.md#the-protocol):
 * what a proxy sends on its stream, one JSON object a line, and what the
 * server answers. This file is the pure part: a line framer with a size
 * limit and the parser of client messages, so the server and the fuzzer
 * (fuzz/fuzz_discovery_stream.c) run the same code. No I/O. */
#ifndef WEFT_DISCOVERY_PROTO_H
#define WEFT_DISCOVERY_PROTO_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "buf.h"
#include "spiffe.h"

#define PROTO_VERSION 1
#define PROTO_MAX_MESSAGE 16384 /* default limit of one client message, newline excluded */
#define PROTO_MAX_ID 400        /* "policy:<ns>/<name>" at most 7 + 63 + 1 + 253 */
#define PROTO_MAX_REASON 1024   /* a nack's reason */

enum proto_type {
    PROTO_SUBSCRIBE,
    PROTO_UNSUBSCRIBE,
    PROTO_ACK,
    PROTO_NACK,
};

enum proto_sub {
    PROTO_SUB_DESTINATION, /* "destination:<ip>:<port>" or "destination:[<ipv6>]:<port>" */
    PROTO_SUB_POLICY,      /* "policy:<namespace>/<pod>" */
};

struct proto_msg {
    enum proto_type type;
    enum proto_sub sub;
    char id[PROTO_MAX_ID + 1];           /* canonical form of the id asked for */
    struct addr_dest dest;               /* destination subscriptions */
    char ns[SPIFFE_MAX_NAMESPACE + 1];   /* policy subscriptions */
    char name[SPIFFE_MAX_SA + 1];
    uint64_t version;                    /* ack, nack */
    char reason[PROTO_MAX_REASON + 1];   /* nack */
};

/* A subscription id to its canonical form and parts: 0, or -EINVAL with why. */
int proto_parse_id(const char *id, size_t len, struct proto_msg *m, char *err, size_t errlen);
/* One client message (a line without its newline): 0, or -EINVAL with a
 * message that names the field. Unknown fields are ignored (a later minor
 * revision may add some); an unknown type is an error. */
int proto_parse(const char *line, size_t len, struct proto_msg *m, char *err, size_t errlen);

/* Splits a byte stream into lines of at most max bytes. A longer line is
 * reported once, as too large, when its length passes max, and skipped up to
 * its newline: the stream stays usable. A trailing "\r" is dropped (curl -d
 * from a file written on Windows). */
struct proto_framer {
    struct buf line;
    size_t max;
    size_t skipped; /* bytes of an oversize line dropped so far; 0 when not skipping */
};
/* line: NULL when too_large; return nonzero to stop feeding (the return is passed back). */
typedef int proto_line_fn(void *arg, const char *line, size_t len, int too_large);
void proto_framer_init(struct proto_framer *f, size_t max);
void proto_framer_free(struct proto_framer *f);
int proto_framer_feed(struct proto_framer *f, const char *data, size_t len, proto_line_fn *fn, void *arg);
/* The stream ended: a last line without a newline is delivered as a line. */
int proto_framer_finish(struct proto_framer *f, proto_line_fn *fn, void *arg);

/* Server messages, as one line each (a new string, "\n" included). */
char *proto_line(json_t *msg); /* steals msg */

#endif
