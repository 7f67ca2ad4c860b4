/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for lib/k8s.c's HTTP/1.1 response reader (lib/http1
 * underneath): the input is fed whole and then in pieces whose sizes come
 * from the first byte; both must agree, and the decoded body never exceeds
 * its limit. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run(const char *p, size_t n, size_t step, struct k8s_http_response *r)
{
    int rc = 0;
    size_t off = 0;
    while (off < n && rc == 0) {
        size_t take = n - off < step ? n - off : step;
        size_t used = 0;
        rc = k8s_http_response_feed(r, p + off, take, &used);
        if (used > take)
            abort();
        off += used;
        if (rc == 0 && used != take)
            abort(); /* short consumption only once done */
    }
    if (rc == 0)
        rc = k8s_http_response_eof(r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 17) + 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    struct k8s_http_response a, b;
    k8s_http_response_init(&a, 4096);
    k8s_http_response_init(&b, 4096);
    int ra = run(p, n, n ? n : 1, &a);
    int rb = run(p, n, step, &b);
    if (ra != rb)
        abort();
    if (ra == 1 && (a.status != b.status || a.body.len != b.body.len ||
                    (a.body.len && memcmp(a.body.data, b.body.data, a.body.len) != 0)))
        abort();
    if (a.body.len > 4096)
        abort();
    k8s_http_response_free(&a);
    k8s_http_response_free(&b);
    return 0;
}
