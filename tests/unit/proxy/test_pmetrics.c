/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/pmetrics.c: exact rendering of a few series, the
 * bounded peer table, and the admin routes that need no sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "pmetrics.h"

static void test_render(void **state)
{
    (void)state;
    static struct proxy_metrics m; /* large: keep it off the stack */
    pm_init(&m);
    int slot = pm_peer_slot(&m, "spiffe://cluster.local/ns/shop/sa/front");
    assert_int_equal(slot, 1);
    assert_int_equal(pm_peer_slot(&m, "spiffe://cluster.local/ns/shop/sa/front"), 1);
    assert_int_equal(pm_peer_slot(&m, ""), 0);
    struct pm_series *s = pm_series(&m, PM_INBOUND, 1, PM_AUTHZ_ALLOWED, slot);
    pm_add(&s->opened, 3);
    pm_add(&s->closed, 1);
    pm_add(&s->bytes_in, 100);
    pm_add(&s->bytes_out, 200);
    pm_add(&m.handshakes[PM_SERVER][CREDS_FAIL_NONE], 3);
    pm_add(&m.handshakes[PM_SERVER][CREDS_FAIL_TRUST_DOMAIN], 2);
    pm_add(&m.refused[PM_REFUSED_PLAINTEXT], 5);
    struct pm_state st = {.cert_not_after = 1700000000, .ready = 1, .heap_inuse = 123, .heap_mapped = 456};
    struct buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(pm_render(&m, &st, &out), 0);
    const char *text = buf_cstr(&out);
    const char *want[] = {
        "# TYPE weft_proxy_connections_opened_total counter\n",
        "weft_proxy_connections_opened_total{direction=\"inbound\",tls=\"true\",authz=\"allowed\","
        "peer=\"spiffe://cluster.local/ns/shop/sa/front\"} 3\n",
        "weft_proxy_connections_closed_total{direction=\"inbound\",tls=\"true\",authz=\"allowed\","
        "peer=\"spiffe://cluster.local/ns/shop/sa/front\"} 1\n",
        "weft_proxy_connections_open{direction=\"inbound\",tls=\"true\",authz=\"allowed\","
        "peer=\"spiffe://cluster.local/ns/shop/sa/front\"} 2\n",
        "weft_proxy_received_bytes_total{direction=\"inbound\",tls=\"true\",authz=\"allowed\","
        "peer=\"spiffe://cluster.local/ns/shop/sa/front\"} 100\n",
        "weft_proxy_sent_bytes_total{direction=\"inbound\",tls=\"true\",authz=\"allowed\","
        "peer=\"spiffe://cluster.local/ns/shop/sa/front\"} 200\n",
        "weft_proxy_tls_handshakes_total{side=\"server\",result=\"success\",reason=\"\"} 3\n",
        "weft_proxy_tls_handshakes_total{side=\"server\",result=\"failure\",reason=\"wrong_trust_domain\"} 2\n",
        "weft_proxy_tls_handshakes_total{side=\"client\",result=\"failure\",reason=\"no_peer_cert\"} 0\n",
        "weft_proxy_inbound_refused_total{kind=\"plaintext\"} 5\n",
        "weft_proxy_certificate_expiry_timestamp_seconds 1700000000\n",
        "weft_proxy_ready 1\n",
        "weft_proxy_draining 0\n",
        "weft_proxy_heap_bytes{kind=\"in_use\"} 123\n",
        "weft_proxy_heap_bytes{kind=\"held\"} 456\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(text, want[i]))
            fail_msg("missing: %s", want[i]);
    /* Unused series are not rendered; unused failure reasons neither. */
    assert_null(strstr(text, "direction=\"outbound\",tls"));
    assert_null(strstr(text, "reason=\"timeout\""));
    /* Every sample line has a HELP/TYPE'd name. */
    buf_free(&out);
    pm_destroy(&m);
}

static void test_peer_table_is_bounded(void **state)
{
    (void)state;
    static struct proxy_metrics m;
    pm_init(&m);
    char uri[80];
    int last = 0;
    for (int i = 0; i < 500; i++) {
        snprintf(uri, sizeof uri, "spiffe://cluster.local/ns/n%d/sa/s", i);
        last = pm_peer_slot(&m, uri);
        assert_true(last > 0 && last < PM_MAX_PEERS);
    }
    assert_int_equal(last, PM_MAX_PEERS - 1);
    pm_add(&pm_series(&m, PM_OUTBOUND, 0, PM_AUTHZ_NONE, last)->opened, 1);
    struct pm_state st = {.draining = 1};
    struct buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(pm_render(&m, &st, &out), 0);
    assert_non_null(strstr(buf_cstr(&out), "peer=\"other\"} 1\n"));
    assert_non_null(strstr(buf_cstr(&out), "weft_proxy_draining 1\n"));
    buf_free(&out);
    /* A render that does not fit fails cleanly. */
    buf_init(&out, 64);
    assert_int_not_equal(pm_render(&m, &st, &out), 0);
    buf_free(&out);
    pm_destroy(&m);
}

static void test_admin_routes(void **state)
{
    (void)state;
    static struct proxy px;
    struct proxy_config cfg;
    memset(&cfg, 0, sizeof cfg);
    memset(&px, 0, sizeof px);
    px.config = cfgstore_new(&cfg); /* cfg moves into the store's first snapshot */
    const struct cfgsnap *boot = cfgstore_get(px.config);
    px.cfg = &boot->cfg;
    pm_init(&px.metrics);
    px.creds = creds_new("cluster.local");
    struct {
        const char *method, *path;
        int loopback, status;
    } cases[] = {
        {"GET", "/live", 0, 200},          {"GET", "/ready", 0, 503},       {"GET", "/metrics", 0, 200},
        {"POST", "/live", 0, 405},         {"GET", "/shutdown", 1, 405},    {"POST", "/shutdown", 0, 403},
        {"GET", "/app-health/app/livez", 0, 404}, {"GET", "/app-health/x", 0, 404}, {"GET", "/nope", 0, 404},
        {"POST", "/shutdown", 1, 200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct admin_response res = {0};
        buf_init(&res.body, 1 << 20);
        admin_route(&px, cases[i].method, cases[i].path, cases[i].loopback, &res);
        if (res.status != cases[i].status)
            fail_msg("%s %s: %d", cases[i].method, cases[i].path, res.status);
        assert_int_equal(res.shutdown, cases[i].status == 200 && strcmp(cases[i].path, "/shutdown") == 0);
        buf_free(&res.body);
    }
    /* /metrics says which snapshot new connections get. */
    struct admin_response res = {0};
    buf_init(&res.body, 1 << 20);
    admin_route(&px, "GET", "/metrics", 0, &res);
    assert_non_null(strstr(res.body.data, "\nweft_proxy_config_generation 1\n"));
    buf_free(&res.body);
    creds_free(px.creds);
    pm_destroy(&px.metrics);
    cfgsnap_put(boot);
    cfgstore_free(px.config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_peer_table_is_bounded),
        cmocka_unit_test(test_admin_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
