/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: weft-proxy's protocol detection (proxy/detect.c) on
 * arbitrary bytes. Checks the answer is a result detect_protocol may give,
 * that a decision never changes with more bytes (every prefix is undecided
 * or agrees), and that whatever it calls HTTP/1 is a request line lib/http1
 * reads without error. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/http1.h"
#include "../proxy/detect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum detect_result full = detect_protocol(data, size);
    if (full != DETECT_NEED_MORE && full != DETECT_HTTP1 && full != DETECT_H2 && full != DETECT_OPAQUE)
        abort();
    if (size > DETECT_MAX_BYTES && full == DETECT_NEED_MORE)
        abort(); /* bounded: past the limit there is always an answer */
    size_t step = size > 256 ? size / 64 : 1;
    for (size_t k = 0; k < size; k += step) {
        enum detect_result r = detect_protocol(data, k);
        if (r != DETECT_NEED_MORE && r != full)
            abort();
    }
    if (full == DETECT_HTTP1) {
        /* Past the empty lines allowed before it, the request line ends at
         * the next LF. */
        size_t i = 0;
        while (i + 1 < size && data[i] == '\r' && data[i + 1] == '\n')
            i += 2;
        const uint8_t *lf = memchr(data + i, '\n', size - i);
        if (!lf)
            abort();
        struct http1_parser p;
        size_t used;
        http1_init(&p, HTTP1_REQUEST, NULL);
        enum http1_event e = http1_parse(&p, (const char *)data, (size_t)(lf - data) + 1, &used, NULL, NULL);
        http1_free(&p);
        if (e == HTTP1_ERROR)
            abort();
    }
    return 0;
}
