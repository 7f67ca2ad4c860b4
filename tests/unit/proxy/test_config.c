/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/config.c and proxy/probes.c parsing: defaults,
 * precedence (flag > env > file), every bad value named with its variable,
 * WEFT_APP_PROBES shapes and limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

struct env {
    const char *kv[40]; /* "NAME=value" */
};

static const char *env_get(void *ctx, const char *name)
{
    struct env *e = ctx;
    size_t l = strlen(name);
    for (size_t i = 0; e->kv[i]; i++)
        if (strncmp(e->kv[i], name, l) == 0 && e->kv[i][l] == '=')
            return e->kv[i] + l + 1;
    return NULL;
}

static int load(struct proxy_config *cfg, struct env *e, int argc, char **argv, char *err)
{
    int help;
    char *def[] = {"weft-proxy", NULL};
    if (!argv) {
        argv = def;
        argc = 1;
    }
    return config_load(cfg, argc, argv, env_get, e, &help, err, 512);
}

#define BASE "WEFT_POD_NAMESPACE=shop", "WEFT_CERT=/c.pem", "WEFT_KEY=/k.pem"

static void test_defaults(void **state)
{
    (void)state;
    struct env e = {{BASE, NULL}};
    struct proxy_config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &e, 0, NULL, err), 0);
    assert_int_equal(cfg.mtls_mode, MTLS_STRICT);
    assert_int_equal(cfg.authz.policy, AUTHZ_SAME_NAMESPACE);
    assert_string_equal(cfg.authz.ns, "shop");
    assert_string_equal(cfg.trust_domain, "cluster.local");
    assert_string_equal(cfg.authz.trust_domain, "cluster.local");
    assert_int_equal(cfg.inbound_port, 15006);
    assert_int_equal(cfg.outbound_port, 15001);
    assert_int_equal(cfg.admin_port, 15020);
    assert_int_equal(cfg.workers, 1);
    assert_int_equal(cfg.nmesh_networks, 0);
    assert_string_equal(cfg.trust_bundle, "/etc/weft/trust/ca.crt");
    assert_string_equal(cfg.token_file, "/var/run/secrets/weft/token/token");
    assert_int_equal(cfg.http_metrics_budget, 128);
    config_free(&cfg);
    /* The budget at its limit; one past it is refused (test_bad_values_are_named). */
    struct env at = {{BASE, "WEFT_HTTP_METRICS_BUDGET=256", NULL}};
    assert_int_equal(load(&cfg, &at, 0, NULL, err), 0);
    assert_int_equal(cfg.http_metrics_budget, 256);
    config_free(&cfg);
}

static void test_values_and_precedence(void **state)
{
    (void)state;
    struct env e = {{BASE, "WEFT_MTLS_MODE=PERMISSIVE", "WEFT_INBOUND_POLICY=mesh", "WEFT_ALLOW_FROM=ops/*,a/b",
                     "WEFT_MESH_NETWORKS=10.0.0.0/8, fd00::/8", "WEFT_WORKERS=3", "WEFT_DRAIN_SECONDS=9",
                     "WEFT_OUTBOUND_IDENTITIES=10.1.0.0/16=spiffe://cluster.local/ns/db/sa/pg", NULL}};
    char *argv[] = {"weft-proxy", "--workers", "2", "--drain-seconds=4", "--cert", "/x.pem", NULL};
    struct proxy_config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &e, 6, argv, err), 0);
    assert_int_equal(cfg.mtls_mode, MTLS_PERMISSIVE);
    assert_int_equal(cfg.authz.policy, AUTHZ_MESH);
    assert_int_equal(cfg.authz.nrules, 2);
    assert_int_equal(cfg.nmesh_networks, 2);
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.drain_seconds, 4);
    assert_string_equal(cfg.cert, "/x.pem");
    unsigned char a[16];
    inet_pton(AF_INET, "10.1.2.3", a);
    assert_true(config_is_meshed(&cfg, AF_INET, a));
    assert_string_equal(config_expected_id(&cfg, AF_INET, a), "spiffe://cluster.local/ns/db/sa/pg");
    inet_pton(AF_INET, "10.2.2.3", a);
    assert_null(config_expected_id(&cfg, AF_INET, a));
    inet_pton(AF_INET, "192.168.1.1", a);
    assert_false(config_is_meshed(&cfg, AF_INET, a));
    inet_pton(AF_INET6, "fd00::1", a);
    assert_true(config_is_meshed(&cfg, AF_INET6, a));
    config_free(&cfg);
}

static void test_config_file(void **state)
{
    (void)state;
    char path[] = "/tmp/weft-proxy-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *yaml = "WEFT_MTLS_MODE: PERMISSIVE\nWEFT_WORKERS: 4\nWEFT_IDLE_TIMEOUT_SECONDS: 60\n"
                       "WEFT_APP_PROBES: {\"app/livez\": {\"tcpSocket\": {\"port\": 5432}}}\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (int)strlen(yaml));
    close(fd);
    struct env e = {{BASE, "WEFT_WORKERS=5", NULL}};
    char *argv[] = {"weft-proxy", "--config", path, NULL};
    struct proxy_config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &e, 3, argv, err), 0);
    assert_int_equal(cfg.mtls_mode, MTLS_PERMISSIVE); /* from the file */
    assert_int_equal(cfg.workers, 5);                 /* env wins */
    assert_int_equal(cfg.idle_timeout_s, 60);
    assert_int_equal(cfg.probes.n, 1);
    config_free(&cfg);

    FILE *f = fopen(path, "w");
    fputs("WEFT_NOPE: 1\n", f);
    fclose(f);
    assert_int_not_equal(load(&cfg, &e, 3, argv, err), 0);
    assert_non_null(strstr(err, "WEFT_NOPE"));
    unlink(path);
}

static void test_bad_values_are_named(void **state)
{
    (void)state;
    static const struct {
        const char *kv, *must;
    } bad[] = {
        {"WEFT_MTLS_MODE=strict", "WEFT_MTLS_MODE=\"strict\""},
        {"WEFT_INBOUND_POLICY=everyone", "WEFT_INBOUND_POLICY=\"everyone\""},
        {"WEFT_ALLOW_FROM=ops", "WEFT_ALLOW_FROM=\"ops\""},
        {"WEFT_MESH_NETWORKS=10.0.0.1/8", "WEFT_MESH_NETWORKS=\"10.0.0.1/8\""},
        {"WEFT_TRUST_DOMAIN=Bad_Domain", "WEFT_TRUST_DOMAIN"},
        {"WEFT_WORKERS=0", "WEFT_WORKERS=\"0\""},
        {"WEFT_WORKERS=1x", "WEFT_WORKERS"},
        {"WEFT_DRAIN_SECONDS=-1", "WEFT_DRAIN_SECONDS"},
        {"WEFT_INBOUND_PORT=70000", "WEFT_INBOUND_PORT"},
        {"WEFT_INBOUND_PORT=15001", "must differ"},
        {"WEFT_LOG_LEVEL=loud", "WEFT_LOG_LEVEL=\"loud\""},
        {"WEFT_POD_IP=1.2.3", "WEFT_POD_IP=\"1.2.3\""},
        {"WEFT_POD_NAMESPACE=Shop", "WEFT_POD_NAMESPACE=\"Shop\""},
        {"WEFT_SERVICE_ACCOUNT=a_b", "WEFT_SERVICE_ACCOUNT"},
        {"WEFT_APP_PROBES={", "WEFT_APP_PROBES"},
        {"WEFT_OUTBOUND_IDENTITIES=10.0.0.0/8=https://x", "WEFT_OUTBOUND_IDENTITIES"},
        {"WEFT_KEY=", "give both"},
        {"WEFT_HTTP_METRICS_BUDGET=257", "WEFT_HTTP_METRICS_BUDGET=\"257\": must be an integer 0-256"},
        {"WEFT_HTTP_METRICS_BUDGET=-1", "WEFT_HTTP_METRICS_BUDGET"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct env e = {{bad[i].kv, BASE, NULL}};
        struct proxy_config cfg;
        char err[512] = "";
        if (load(&cfg, &e, 0, NULL, err) == 0)
            fail_msg("accepted %s", bad[i].kv);
        if (!strstr(err, bad[i].must))
            fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i].kv, err, bad[i].must);
    }
    struct env none = {{"WEFT_CERT=/c", "WEFT_KEY=/k", NULL}};
    struct proxy_config cfg;
    char err[512];
    assert_int_not_equal(load(&cfg, &none, 0, NULL, err), 0);
    assert_non_null(strstr(err, "WEFT_POD_NAMESPACE"));
    struct env noid = {{"WEFT_POD_NAMESPACE=a", NULL}};
    assert_int_not_equal(load(&cfg, &noid, 0, NULL, err), 0);
    assert_non_null(strstr(err, "WEFT_IDENTITY_ADDR"));
    char *argv[] = {"weft-proxy", "--bogus", "1", NULL};
    struct env ok = {{BASE, NULL}};
    assert_int_not_equal(load(&cfg, &ok, 3, argv, err), 0);
    assert_non_null(strstr(err, "--bogus"));
    char *argv2[] = {"weft-proxy", "--workers", NULL};
    assert_int_not_equal(load(&cfg, &ok, 2, argv2, err), 0);
}

static void test_help(void **state)
{
    (void)state;
    struct env e = {{NULL}};
    struct proxy_config cfg;
    int help = 0;
    char err[64];
    char *argv[] = {"weft-proxy", "--help", NULL};
    assert_int_equal(config_load(&cfg, 2, argv, env_get, &e, &help, err, sizeof err), 0);
    assert_int_equal(help, 1);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    config_print_help(f);
    fclose(f);
    const char *names[] = {"WEFT_POD_NAME", "WEFT_POD_NAMESPACE", "WEFT_POD_IP", "WEFT_SERVICE_ACCOUNT",
                           "WEFT_TRUST_DOMAIN", "WEFT_MTLS_MODE", "WEFT_INBOUND_POLICY", "WEFT_ALLOW_FROM",
                           "WEFT_MESH_NETWORKS", "WEFT_IDENTITY_ADDR", "WEFT_TOKEN_FILE", "WEFT_TRUST_BUNDLE",
                           "WEFT_APP_PROBES", "WEFT_LOG_LEVEL", "--cert", "--key", "--trust-bundle",
                           "--drain-seconds", "--workers", "--config", "wait-ready"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strstr(out, names[i]))
            fail_msg("--help lacks %s", names[i]);
    free(out);
}

static void test_probes(void **state)
{
    (void)state;
    struct probes ps;
    char err[256];
    const char *good = "{\"app/livez\":{\"httpGet\":{\"path\":\"/healthz\",\"port\":8080,\"scheme\":\"HTTP\","
                       "\"httpHeaders\":[{\"name\":\"X-A\",\"value\":\"b c\"},{\"name\":\"Host\",\"value\":\"h\"}]},"
                       "\"timeoutSeconds\":2},\"db/readyz\":{\"tcpSocket\":{\"port\":5432},\"timeoutSeconds\":1},"
                       "\"app/startupz\":{\"httpGet\":{\"port\":80}},"
                       "\"grpc/livez\":{\"grpc\":{\"port\":9090}},"
                       "\"grpc/readyz\":{\"grpc\":{\"port\":9091,\"service\":\"shop.Cart\"},\"timeoutSeconds\":3}}";
    assert_int_equal(probes_parse(good, strlen(good), &ps, err, sizeof err), 0);
    assert_int_equal(ps.n, 5);
    const struct probe *p = probes_find(&ps, "app", "livez");
    assert_non_null(p);
    assert_int_equal(p->type, PROBE_HTTP);
    assert_int_equal(p->port, 8080);
    assert_int_equal(p->timeout_ms, 2000);
    assert_string_equal(p->path, "/healthz");
    assert_string_equal(p->host, "h");
    assert_int_equal(p->nheaders, 1);
    char req[1024];
    assert_true(probes_format_request(p, "198.18.0.2:8080", req, sizeof req) > 0);
    assert_string_equal(req, "GET /healthz HTTP/1.1\r\nHost: h\r\nUser-Agent: kube-probe/weft\r\nAccept: */*\r\n"
                             "Connection: close\r\nX-A: b c\r\n\r\n");
    p = probes_find(&ps, "db", "readyz");
    assert_non_null(p);
    assert_int_equal(p->type, PROBE_TCP);
    assert_int_equal(p->port, 5432);
    p = probes_find(&ps, "app", "startupz");
    assert_string_equal(p->path, "/");
    assert_int_equal(p->timeout_ms, 1000);
    assert_null(p->host); /* Host is then the address probed, as the kubelet sends */
    assert_true(probes_format_request(p, "198.18.0.2:80", req, sizeof req) > 0);
    assert_non_null(strstr(req, "\r\nHost: 198.18.0.2:80\r\n"));
    p = probes_find(&ps, "grpc", "livez");
    assert_int_equal(p->type, PROBE_GRPC);
    assert_int_equal(p->port, 9090);
    assert_string_equal(p->service, "");
    p = probes_find(&ps, "grpc", "readyz");
    assert_int_equal(p->port, 9091);
    assert_string_equal(p->service, "shop.Cart");
    assert_int_equal(p->timeout_ms, 3000);
    assert_null(probes_find(&ps, "app", "readyz"));
    assert_null(probes_find(&ps, "app", "bogus"));
    probes_free(&ps);
    assert_int_equal(probes_parse("", 0, &ps, err, sizeof err), 0);
    assert_int_equal(ps.n, 0);

    const char *bad[] = {
        "[]", "{\"app\":{\"tcpSocket\":{\"port\":1}}}", "{\"app/alive\":{\"tcpSocket\":{\"port\":1}}}",
        "{\"App/livez\":{\"tcpSocket\":{\"port\":1}}}", "{\"app/livez\":{\"tcpSocket\":{\"port\":0}}}",
        "{\"app/livez\":{\"tcpSocket\":{\"port\":\"http\"}}}", "{\"app/livez\":{}}",
        "{\"app/livez\":{\"tcpSocket\":{\"port\":1},\"httpGet\":{\"port\":1}}}",
        "{\"app/livez\":{\"httpGet\":{\"port\":1,\"path\":\"x\"}}}",
        "{\"app/livez\":{\"httpGet\":{\"port\":1,\"path\":\"/a\\r\\nX: y\"}}}",
        "{\"app/livez\":{\"httpGet\":{\"port\":1,\"httpHeaders\":[{\"name\":\"A:\",\"value\":\"b\"}]}}}",
        "{\"app/livez\":{\"httpGet\":{\"port\":1,\"httpHeaders\":[{\"name\":\"A\",\"value\":\"b\\nc\"}]}}}",
        "{\"app/livez\":{\"httpGet\":{\"port\":1,\"scheme\":\"FTP\"}}}",
        "{\"app/livez\":{\"tcpSocket\":{\"port\":1},\"timeoutSeconds\":0}}",
        "{\"app/livez\":{\"tcpSocket\":{\"port\":1}},\"app/livez\":{\"tcpSocket\":{\"port\":2}}}",
        "{\"app/livez\":{\"grpc\":{\"port\":1},\"tcpSocket\":{\"port\":1}}}",
        "{\"app/livez\":{\"grpc\":{}}}",
        "{\"app/livez\":{\"grpc\":{\"port\":70000}}}",
        "{\"app/livez\":{\"grpc\":{\"port\":1,\"service\":5}}}",
        "{\"app/livez\":{\"grpc\":{\"port\":1,\"service\":\"a\\nb\"}}}",
        "{\"app/livez\":{\"grpc\":\"9090\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        if (probes_parse(bad[i], strlen(bad[i]), &ps, err, sizeof err) == 0)
            fail_msg("accepted %s", bad[i]);
        assert_true(err[0] != '\0');
        assert_int_equal(ps.n, 0);
    }
    /* A gRPC health service name: 1,024 bytes parse, one more does not. */
    char grpc[1200];
    for (int len = 1024; len <= 1025; len++) {
        int n = snprintf(grpc, sizeof grpc, "{\"app/livez\":{\"grpc\":{\"port\":9090,\"service\":\"");
        memset(grpc + n, 's', (size_t)len);
        snprintf(grpc + n + len, sizeof grpc - (size_t)(n + len), "\"}}}");
        int rc = probes_parse(grpc, strlen(grpc), &ps, err, sizeof err);
        if (len == 1024) {
            assert_int_equal(rc, 0);
            assert_int_equal(strlen(probes_find(&ps, "app", "livez")->service), 1024);
            probes_free(&ps);
        } else {
            assert_int_not_equal(rc, 0);
            assert_non_null(strstr(err, "grpc.service"));
        }
    }
    /* Size limit: PROBES_MAX_JSON is fine in size terms, one more is not. */
    char *big = malloc(PROBES_MAX_JSON + 2);
    memset(big, ' ', PROBES_MAX_JSON + 1);
    big[0] = '{';
    big[PROBES_MAX_JSON - 1] = '}';
    assert_int_equal(probes_parse(big, PROBES_MAX_JSON, &ps, err, sizeof err), 0);
    big[PROBES_MAX_JSON - 1] = ' ';
    big[PROBES_MAX_JSON] = '}';
    assert_int_not_equal(probes_parse(big, PROBES_MAX_JSON + 1, &ps, err, sizeof err), 0);
    free(big);
}

static void test_opaque_ports(void **state)
{
    (void)state;
    struct proxy_config cfg;
    char err[512];
    struct env e = {{BASE, NULL}};
    assert_int_equal(load(&cfg, &e, 0, NULL, err), 0);
    const uint16_t linkerd[] = {25, 587, 3306, 4444, 5432, 6379, 9300, 11211};
    assert_int_equal(cfg.nopaque_ports, 8);
    for (size_t i = 0; i < 8; i++)
        assert_true(config_is_opaque_port(&cfg, linkerd[i]));
    assert_false(config_is_opaque_port(&cfg, 80));
    assert_int_equal(cfg.detect_timeout_ms, 1000);
    config_free(&cfg);

    struct env none = {{BASE, "WEFT_OPAQUE_PORTS=", NULL}};
    assert_int_equal(load(&cfg, &none, 0, NULL, err), 0);
    assert_int_equal(cfg.nopaque_ports, 0);
    assert_false(config_is_opaque_port(&cfg, 3306));
    config_free(&cfg);

    /* At the list's limit and one past it. */
    static char at[32 + 64 * 6], past[32 + 65 * 6];
    size_t off = (size_t)snprintf(at, sizeof at, "WEFT_OPAQUE_PORTS=");
    for (int i = 0; i < 64; i++)
        off += (size_t)snprintf(at + off, sizeof at - off, i ? ",%d" : "%d", 1000 + i);
    snprintf(past, sizeof past, "%s,2000", at);
    struct env e64 = {{BASE, at, NULL}};
    assert_int_equal(load(&cfg, &e64, 0, NULL, err), 0);
    assert_int_equal(cfg.nopaque_ports, 64);
    assert_true(config_is_opaque_port(&cfg, 1063));
    config_free(&cfg);
    struct env e65 = {{BASE, past, NULL}};
    assert_int_equal(load(&cfg, &e65, 0, NULL, err), -EINVAL);
    assert_non_null(strstr(err, "WEFT_OPAQUE_PORTS=\"1000,1001"));
    assert_non_null(strstr(err, "at most 64"));

    char *argv[] = {"weft-proxy", "--opaque-ports", "5432", NULL};
    assert_int_equal(load(&cfg, &none, 3, argv, err), 0); /* the flag wins over the environment */
    assert_int_equal(cfg.nopaque_ports, 1);
    assert_true(config_is_opaque_port(&cfg, 5432));
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opaque_ports),
        cmocka_unit_test(test_defaults),           cmocka_unit_test(test_values_and_precedence),
        cmocka_unit_test(test_config_file),        cmocka_unit_test(test_bad_values_are_named),
        cmocka_unit_test(test_help),               cmocka_unit_test(test_probes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
