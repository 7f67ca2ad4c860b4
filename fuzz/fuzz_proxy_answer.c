/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: what weft-discovery sends a proxy, as the proxy reads
 * it: arbitrary bytes through the discovery client's line splitter
 * (proxy/cp_client.c, pieces of a size the first byte picks) and each line
 * through dest_parse_msg (proxy/dest.c); an answer that parses is put in a
 * store and dialled from. Checked: a line delivered is within the limit, an
 * mTLS route always has the identity to verify, a dialled address has
 * the question's address family, and a Service's timeouts are unset or
 * within their limits. Leaks and overflows are ASan's. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../proxy/cp_client.h"
#include "../proxy/dest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_LINE 65536

static int fuzz_line(void *arg, const char *line, size_t len)
{
    struct dest_store *st = arg;
    struct dest_msg m;
    char err[512];
    assert(len <= FUZZ_MAX_LINE);
    if (dest_parse_msg(line, len, "cluster.local", &m, err, sizeof err) == 0 && m.type == DEST_MSG_ANSWER) {
        struct sockaddr_storage key;
        assert(dest_parse_id(m.id, &key) == 0);
        if (key.ss_family != AF_UNSPEC) {
            assert(m.answer->kind != DEST_KIND_POLICY);
            dest_store_add_pending(st, &key, 0);
            dest_store_apply(st, &key, m.answer, m.version, 1);
            m.answer = NULL; /* taken */
            const struct dest_snap *s = dest_store_get(st);
            for (int i = 0; i < 3; i++) {
                struct dest_target t;
                dest_choose(dest_snap_find(s, &key), &key, 1, &t);
                assert(t.route != DEST_ROUTE_MTLS || t.expect_id);
                assert(t.addr.ss_family == key.ss_family);
            }
            dest_snap_put(s);
            struct dest_timeouts to;
            if (dest_store_timeouts(st, &key, &to)) /* a Service's timeouts: unset or within the limits */
                assert(to.request_ms >= -1 && to.request_ms <= DEST_MAX_TIMEOUT_MS && to.header_ms >= -1 &&
                       to.header_ms <= DEST_MAX_TIMEOUT_MS && (to.idle_ms == -1 || to.idle_ms >= 1) &&
                       to.idle_ms <= DEST_MAX_TIMEOUT_MS);
        }
    }
    dest_msg_clear(&m);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 1 << 20)
        return 0;
    size_t piece = (size_t)data[0] + 1;
    struct dest_store *st = dest_store_new();
    struct cpc_lines l;
    cpc_lines_init(&l, FUZZ_MAX_LINE);
    for (size_t off = 1; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        if (cpc_lines_feed(&l, (const char *)data + off, n, fuzz_line, st) != 0)
            break; /* over the limit: the client drops the stream */
    }
    cpc_lines_free(&l);
    dest_store_free(st);
    return 0;
}
