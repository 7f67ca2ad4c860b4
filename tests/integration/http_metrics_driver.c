/* SPDX-License-Identifier: Apache-2.0 */
/* Prints the weft_proxy_http_* families of a store filled with one of each
 * kind of outcome (both directions, gRPC, proxy errors, no response, a
 * label value needing escapes, and the overflow sets past a budget of 6),
 * for test_proxy_red.py to hand to promtool: the exposition with samples
 * checked by the real parser whether or not an HTTP stage records yet. */
#include <stdio.h>
#include <string.h>

#include "http_metrics.h"

static void rec(struct http_metrics *hm, enum pm_dir d, const char *t, const char *m, int status, int grpc,
                int proxy_error, unsigned long long ms)
{
    struct http_outcome o = {.dir = d, .method = m, .method_len = strlen(m), .status = status,
                             .grpc_status = grpc, .proxy_error = proxy_error,
                             .headers_ns = ms * 1000000ULL / 2, .total_ns = ms * 1000000ULL};
    if (d == PM_INBOUND) {
        o.peer = t;
        o.peer_len = strlen(t);
    } else {
        o.dst = t;
        o.dst_len = strlen(t);
    }
    http_metrics_record(hm, &o);
}

int main(void)
{
    struct http_metrics *hm = http_metrics_new(6);
    rec(hm, PM_INBOUND, "spiffe://cluster.local/ns/shop/sa/front", "GET", 200, -1, 0, 3);
    rec(hm, PM_INBOUND, "spiffe://cluster.local/ns/shop/sa/front", "GET", 200, -1, 0, 70);
    rec(hm, PM_INBOUND, "", "POST", 503, -1, 0, 12);
    rec(hm, PM_INBOUND, "", "BREW", 0, -1, 0, 1);
    rec(hm, PM_OUTBOUND, "catalog.shop.svc:9000", "POST", 200, 14, 0, 20);
    rec(hm, PM_OUTBOUND, "we\"ird\\host:80", "PUT", 504, -1, 1, 15000);
    for (int i = 0; i < 4; i++) /* past the budget of 6 */
        rec(hm, i % 2 ? PM_INBOUND : PM_OUTBOUND, "late:1", "DELETE", 500 + i, -1, i == 3, 1);
    struct buf out;
    buf_init(&out, 1 << 20);
    int rc = http_metrics_render(hm, &out);
    if (rc == 0)
        fwrite(out.data, 1, out.len, stdout);
    buf_free(&out);
    http_metrics_free(hm);
    return rc == 0 ? 0 : 1;
}
