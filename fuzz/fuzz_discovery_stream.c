/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: arbitrary bytes as what a proxy sends on its
 * /v1/stream, through the framer (split at a size limit the first byte
 * chooses, fed in pieces the second byte sizes, as the network would cut
 * them) and the message parser the server runs on each line. Checks the
 * framer's contract: no delivered line is over the limit or holds a
 * newline, and a parsed message's canonical id parses back to itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
    size_t max;
};

static int on_line(void *arg, const char *line, size_t len, int too_large)
{
    struct ctx *c = arg;
    char err[512];
    struct proto_msg m, again;
    if (too_large)
        return 0;
    if (len > c->max || memchr(line, '\n', len))
        abort();
    if (proto_parse(line, len, &m, err, sizeof err) == 0) {
        if (proto_parse_id(m.id, strlen(m.id), &again, err, sizeof err) != 0 || strcmp(again.id, m.id) != 0)
            abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct ctx c = {.max = 16 + (size_t)data[0] * 8};
    size_t piece = 1 + data[1];
    struct proto_framer f;
    proto_framer_init(&f, c.max);
    for (size_t i = 2; i < size; i += piece) {
        size_t n = size - i < piece ? size - i : piece;
        proto_framer_feed(&f, (const char *)data + i, n, on_line, &c);
    }
    proto_framer_finish(&f, on_line, &c);
    proto_framer_free(&f);
    return 0;
}
