/* SPDX-License-Identifier: Apache-2.0 */
/* A bounds-checked walk over a TLS ClientHello to its ALPN extension. Every
 * read goes through the cursor, which fails instead of running past `end`. */
#include <string.h>

#include "classify.h"
#include "creds.h"

struct cur {
    const unsigned char *p, *end;
    int short_read; /* the data ended early: more bytes may decide */
};

static int cur_take(struct cur *c, size_t n, const unsigned char **out)
{
    if ((size_t)(c->end - c->p) < n) {
        c->short_read = 1;
        return -1;
    }
    if (out)
        *out = c->p;
    c->p += n;
    return 0;
}

static int cur_u8(struct cur *c, size_t *v)
{
    const unsigned char *b;
    if (cur_take(c, 1, &b) < 0)
        return -1;
    *v = b[0];
    return 0;
}

static int cur_u16(struct cur *c, size_t *v)
{
    const unsigned char *b;
    if (cur_take(c, 2, &b) < 0)
        return -1;
    *v = (size_t)b[0] << 8 | b[1];
    return 0;
}

static int cur_u24(struct cur *c, size_t *v)
{
    const unsigned char *b;
    if (cur_take(c, 3, &b) < 0)
        return -1;
    *v = (size_t)b[0] << 16 | (size_t)b[1] << 8 | b[2];
    return 0;
}

/* Sub-cursor over the next n bytes. */
static int cur_sub(struct cur *c, size_t n, struct cur *sub)
{
    const unsigned char *b;
    if (cur_take(c, n, &b) < 0)
        return -1;
    sub->p = b;
    sub->end = b + n;
    sub->short_read = 0;
    return 0;
}

static int alpn_offers_weft(struct cur *ext)
{
    size_t listlen, l;
    struct cur list;
    const unsigned char *name;
    if (cur_u16(ext, &listlen) < 0 || cur_sub(ext, listlen, &list) < 0)
        return 0;
    while (list.p < list.end) {
        if (cur_u8(&list, &l) < 0 || l == 0 || cur_take(&list, l, &name) < 0)
            return 0;
        if ((l == strlen(CREDS_ALPN) && memcmp(name, CREDS_ALPN, l) == 0) ||
            (l == strlen(CREDS_ALPN_H2) && memcmp(name, CREDS_ALPN_H2, l) == 0))
            return 1; /* either of the proxies' own protocols */
    }
    return 0;
}

enum classify_result classify_first_bytes(const unsigned char *data, size_t len)
{
    struct cur rec = {data, data + (len > CLASSIFY_MAX_BYTES ? CLASSIFY_MAX_BYTES : len), 0};
    size_t v, reclen, hslen;
    const unsigned char *b;
    struct cur hs, exts;

    if (len == 0)
        return CLASSIFY_NEED_MORE;
    if (data[0] != 0x16)
        return CLASSIFY_PLAINTEXT;
    if (cur_take(&rec, 1, NULL) < 0 || cur_u8(&rec, &v) < 0)
        return rec.short_read ? CLASSIFY_NEED_MORE : CLASSIFY_PLAINTEXT;
    if (v != 0x03)
        return CLASSIFY_PLAINTEXT;
    if (cur_u8(&rec, &v) < 0)
        return CLASSIFY_NEED_MORE;
    if (v > 0x04)
        return CLASSIFY_PLAINTEXT;
    if (cur_u16(&rec, &reclen) < 0)
        return CLASSIFY_NEED_MORE;
    if (reclen < 4 || reclen > 16384)
        return CLASSIFY_PLAINTEXT;
    /* From here the record is TLS-shaped: a malformed hello is "other TLS",
     * and too few bytes means wait. */
    if (cur_sub(&rec, reclen, &hs) < 0) {
        /* Parse what there is; only a complete record can say "no weft". */
        hs.p = rec.p;
        hs.end = rec.end;
        hs.short_read = 0;
    }
    int complete = (size_t)(hs.end - hs.p) == reclen;
#define NEED(expr)                                                        \
    do {                                                                  \
        if ((expr) < 0)                                                   \
            return complete ? CLASSIFY_OTHER_TLS : CLASSIFY_NEED_MORE;    \
    } while (0)
    NEED(cur_u8(&hs, &v));
    if (v != 0x01) /* not a ClientHello */
        return CLASSIFY_OTHER_TLS;
    NEED(cur_u24(&hs, &hslen));
    if (hslen > reclen - 4)
        return CLASSIFY_OTHER_TLS; /* spans records: not one of ours */
    NEED(cur_take(&hs, 2 + 32, &b));   /* legacy_version, random */
    NEED(cur_u8(&hs, &v));
    NEED(cur_take(&hs, v, NULL));      /* legacy_session_id */
    NEED(cur_u16(&hs, &v));
    NEED(cur_take(&hs, v, NULL));      /* cipher_suites */
    NEED(cur_u8(&hs, &v));
    NEED(cur_take(&hs, v, NULL));      /* legacy_compression_methods */
    if (hs.p == hs.end && complete)
        return CLASSIFY_OTHER_TLS;     /* no extensions: no ALPN */
    NEED(cur_u16(&hs, &v));
    NEED(cur_sub(&hs, v, &exts));
    while (exts.p < exts.end) {
        size_t type, elen;
        struct cur ext;
        if (cur_u16(&exts, &type) < 0 || cur_u16(&exts, &elen) < 0 || cur_sub(&exts, elen, &ext) < 0)
            return CLASSIFY_OTHER_TLS;
        if (type == 16)
            return alpn_offers_weft(&ext) ? CLASSIFY_WEFT_TLS : CLASSIFY_OTHER_TLS;
    }
#undef NEED
    return CLASSIFY_OTHER_TLS;
}

const char *classify_name(enum classify_result r)
{
    switch (r) {
    case CLASSIFY_NEED_MORE: return "need_more";
    case CLASSIFY_WEFT_TLS: return "weft_tls";
    case CLASSIFY_OTHER_TLS: return "other_tls";
    case CLASSIFY_PLAINTEXT: return "plaintext";
    }
    return "?";
}
