/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/dest.c: the server's stream messages parsed and
 * checked (good answers of every kind, and bad input each refused with a
 * reason naming the field), the store's snapshots (pending, failed, answers
 * and their versions per connection epoch, a rejected or error answer
 * keeping the last good one, idle expiry, the want queue and its limit),
 * and the dial decision (round robin over ready endpoints, terminating ones
 * only when nothing else serves, meshed vs not, expected identities, the
 * fallback and wait routes). */
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

#include "dest.h"

#define TD "cluster.local"

static struct sockaddr_storage addr(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
        in6->sin6_port = htons(port);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
        in->sin_port = htons(port);
    }
    return ss;
}

static const char *ip_of(const struct sockaddr_storage *ss, char *buf)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &in->sin_addr, buf, INET_ADDRSTRLEN);
    return buf;
}

static const char *EP_WEB1 = "{\"address\":\"10.1.1.10\",\"port\":8080,\"ready\":true,\"serving\":true,"
                             "\"terminating\":false,\"meshed\":true,\"opaque\":false,"
                             "\"identity\":\"spiffe://cluster.local/ns/shop/sa/web\"}";
static const char *EP_WEB2 = "{\"address\":\"10.1.1.11\",\"port\":8080,\"ready\":true,\"serving\":true,"
                             "\"terminating\":false,\"meshed\":true,"
                             "\"identity\":\"spiffe://cluster.local/ns/shop/sa/web\"}";
static const char *EP_PLAIN = "{\"address\":\"10.1.1.12\",\"port\":8080,\"ready\":true,\"serving\":true,"
                              "\"terminating\":false,\"meshed\":false}";
static const char *EP_TERM = "{\"address\":\"10.1.1.13\",\"port\":8080,\"ready\":false,\"serving\":true,"
                             "\"terminating\":true,\"meshed\":true,"
                             "\"identity\":\"spiffe://cluster.local/ns/shop/sa/web-old\"}";
static const char *EP_DOWN = "{\"address\":\"10.1.1.14\",\"port\":8080,\"ready\":false,\"serving\":false,"
                             "\"terminating\":false,\"meshed\":false}";

/* An answer line for destination 10.96.10.10:80 with these endpoints. */
static char *service_line(uint64_t version, const char *eps)
{
    size_t n = strlen(eps) + 512;
    char *s = malloc(n);
    snprintf(s, n,
             "{\"type\":\"answer\",\"id\":\"destination:10.96.10.10:80\",\"version\":%llu,\"answer\":"
             "{\"version\":1,\"kind\":\"service\",\"destination\":\"10.96.10.10:80\",\"service\":{"
             "\"namespace\":\"shop\",\"name\":\"web\",\"port\":{\"name\":\"http\",\"port\":80,\"protocol\":\"TCP\","
             "\"targetPort\":8080,\"appProtocol\":\"http\"},\"opaque\":false,\"endpoints\":[%s],"
             "\"httpRoutes\":[],\"grpcRoutes\":[]}}}",
             (unsigned long long)version, eps);
    return s;
}

static int parse(const char *line, struct dest_msg *m, char *err, size_t errlen)
{
    return dest_parse_msg(line, strlen(line), TD, m, err, errlen);
}

static struct dest_answer *take_answer(const char *line)
{
    struct dest_msg m;
    char err[512] = "";
    int r = parse(line, &m, err, sizeof err);
    if (r != 0)
        fail_msg("parse failed: %s", err);
    assert_int_equal(m.type, DEST_MSG_ANSWER);
    struct dest_answer *a = m.answer;
    m.answer = NULL;
    dest_msg_clear(&m);
    return a;
}

static void test_ids(void **state)
{
    (void)state;
    struct sockaddr_storage ss, want = addr("10.96.0.1", 443);
    char id[DEST_MAX_ID + 1];
    assert_int_equal(dest_parse_id("destination:10.96.0.1:443", &ss), 0);
    assert_memory_equal(&ss, &want, sizeof ss);
    dest_format_id(&ss, id, sizeof id);
    assert_string_equal(id, "destination:10.96.0.1:443");
    want = addr("fd00:96::10", 80);
    assert_int_equal(dest_parse_id("destination:[fd00:96:0::10]:80", &ss), 0);
    assert_memory_equal(&ss, &want, sizeof ss);
    dest_format_id(&ss, id, sizeof id);
    assert_string_equal(id, "destination:[fd00:96::10]:80"); /* the server's canonical form */
    assert_int_equal(dest_parse_id("policy:shop/web-1", &ss), 0);
    assert_int_equal(ss.ss_family, AF_UNSPEC);
    const char *bad[] = {"destination:10.96.0.1", "destination:10.96.0.1:0", "destination:10.96.0.1:65536",
                         "destination:fd00::1:80", "destination:[fd00::1]80", "destination:host:80",
                         "policy:shop", "policy:/web", "policy:Shop/web", "service:10.0.0.1:80", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(dest_parse_id(bad[i], &ss), -EINVAL);
}

static void test_parse_hello_error(void **state)
{
    (void)state;
    struct dest_msg m;
    char err[256];
    assert_int_equal(parse("{\"type\":\"hello\",\"protocol\":1,\"identity\":\"spiffe://cluster.local/ns/a/sa/b\","
                           "\"limits\":{\"subscriptions\":1000,\"messageBytes\":16384}}",
                           &m, err, sizeof err),
                     0);
    assert_int_equal(m.type, DEST_MSG_HELLO);
    assert_int_equal(m.max_subscriptions, 1000);
    dest_msg_clear(&m);
    assert_int_equal(parse("{\"type\":\"hello\",\"protocol\":2}", &m, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "hello.protocol"));
    dest_msg_clear(&m);
    assert_int_equal(parse("{\"type\":\"error\",\"code\":\"too-many-subscriptions\",\"error\":\"at most 4\","
                           "\"id\":\"destination:10.0.0.1:80\"}",
                           &m, err, sizeof err),
                     0);
    assert_int_equal(m.type, DEST_MSG_ERROR);
    assert_string_equal(m.code, "too-many-subscriptions");
    assert_string_equal(m.id, "destination:10.0.0.1:80");
    dest_msg_clear(&m);
}

static void test_parse_service(void **state)
{
    (void)state;
    char eps[2048];
    snprintf(eps, sizeof eps, "%s,%s,%s", EP_WEB1, EP_PLAIN, EP_TERM);
    char *line = service_line(7, eps);
    struct dest_msg m;
    char err[256] = "";
    assert_int_equal(parse(line, &m, err, sizeof err), 0);
    assert_int_equal(m.type, DEST_MSG_ANSWER);
    assert_string_equal(m.id, "destination:10.96.10.10:80");
    assert_int_equal(m.version, 7);
    const struct dest_answer *a = m.answer;
    assert_int_equal(a->kind, DEST_KIND_SERVICE);
    assert_string_equal(a->app_protocol, "http");
    assert_int_equal(a->neps, 3);
    assert_true(a->eps[0].meshed);
    assert_string_equal(a->eps[0].identity, "spiffe://cluster.local/ns/shop/sa/web");
    assert_false(a->eps[1].meshed);
    assert_null(a->eps[1].identity);
    assert_true(a->eps[2].terminating);
    assert_false(a->eps[2].ready);
    dest_msg_clear(&m);
    free(line);
}

static void test_parse_pod_unknown_policy(void **state)
{
    (void)state;
    struct dest_msg m;
    char err[256] = "";
    assert_int_equal(parse("{\"type\":\"answer\",\"id\":\"destination:10.1.3.5:5432\",\"version\":3,\"answer\":"
                           "{\"version\":1,\"kind\":\"pod\",\"destination\":\"10.1.3.5:5432\",\"pod\":{\"namespace\":"
                           "\"shop\",\"name\":\"db-0\",\"identity\":\"spiffe://cluster.local/ns/shop/sa/db\","
                           "\"opaque\":true}}}",
                           &m, err, sizeof err),
                     0);
    assert_int_equal(m.answer->kind, DEST_KIND_POD);
    assert_string_equal(m.answer->identity, "spiffe://cluster.local/ns/shop/sa/db");
    assert_true(m.answer->opaque);
    dest_msg_clear(&m);
    assert_int_equal(parse("{\"type\":\"answer\",\"id\":\"destination:93.184.216.34:443\",\"version\":4,\"answer\":"
                           "{\"version\":1,\"kind\":\"unknown\",\"destination\":\"93.184.216.34:443\","
                           "\"reason\":\"not-found\"}}",
                           &m, err, sizeof err),
                     0);
    assert_int_equal(m.answer->kind, DEST_KIND_UNKNOWN);
    dest_msg_clear(&m);
    assert_int_equal(parse("{\"type\":\"answer\",\"id\":\"policy:shop/web-1\",\"version\":5,\"answer\":"
                           "{\"version\":1,\"kind\":\"policy\",\"mtlsMode\":\"PERMISSIVE\",\"inboundPolicy\":\"mesh\","
                           "\"allowFrom\":[\"ops/monitor\",\"dev/*\"]}}",
                           &m, err, sizeof err),
                     0);
    assert_int_equal(m.answer->kind, DEST_KIND_POLICY);
    assert_int_equal(m.answer->policy.mtls_mode, MTLS_PERMISSIVE);
    assert_int_equal(m.answer->policy.policy, AUTHZ_MESH);
    assert_int_equal(m.answer->policy.nrules, 2);
    assert_string_equal(m.answer->policy.rules[0].ns, "ops");
    assert_string_equal(m.answer->policy.rules[1].sa, "*");
    dest_msg_clear(&m);
    assert_int_equal(parse("{\"type\":\"answer\",\"id\":\"policy:shop/web-1\",\"version\":6,\"answer\":"
                           "{\"version\":1,\"kind\":\"error\",\"error\":\"pod shop/web-1: unknown pod\"}}",
                           &m, err, sizeof err),
                     0);
    assert_int_equal(m.answer->kind, DEST_KIND_ERROR);
    assert_string_equal(m.answer->error, "pod shop/web-1: unknown pod");
    dest_msg_clear(&m);
}

/* Each bad message is refused with a reason naming what was wrong; an
 * answer whose id and version were read stays nackable. */
static void test_parse_bad(void **state)
{
    (void)state;
    static const struct {
        const char *line, *want;
        int nackable;
    } cases[] = {
        {"not json", "not JSON", 0},
        {"[1,2]", "expected an object", 0},
        {"{\"type\":\"push\"}", "unknown message type", 0},
        {"{\"type\":\"answer\",\"id\":\"nope\",\"version\":1,\"answer\":{}}", "answer.id", 0},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":0,\"answer\":{}}", "answer.version", 0},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":2,\"kind\":\"unknown\",\"destination\":\"10.0.0.1:80\"}}",
         "version: expected 1", 1},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"mystery\",\"destination\":\"10.0.0.1:80\"}}",
         "unknown kind", 1},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"unknown\",\"destination\":\"10.0.0.2:80\"}}",
         "answer.destination", 1},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"policy\",\"mtlsMode\":\"STRICT\",\"inboundPolicy\":\"mesh\"}}",
         "answer.destination", 1},
        {"{\"type\":\"answer\",\"id\":\"policy:shop/a\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"unknown\",\"destination\":\"10.0.0.2:80\"}}",
         "for a policy subscription", 1},
        {"{\"type\":\"answer\",\"id\":\"policy:shop/a\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"policy\",\"mtlsMode\":\"OFF\",\"inboundPolicy\":\"mesh\"}}",
         "mtlsMode", 1},
        {"{\"type\":\"answer\",\"id\":\"policy:shop/a\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"policy\",\"mtlsMode\":\"STRICT\",\"inboundPolicy\":\"open\"}}",
         "inboundPolicy", 1},
        {"{\"type\":\"answer\",\"id\":\"policy:shop/a\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"policy\",\"mtlsMode\":\"STRICT\",\"inboundPolicy\":\"mesh\","
         "\"allowFrom\":[\"ops/a,ops/b\"]}}",
         "allowFrom[0]", 1},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"pod\",\"destination\":\"10.0.0.1:80\",\"pod\":{\"identity\":"
         "\"spiffe://example.org/ns/a/sa/b\"}}}",
         "not of trust domain", 1},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"pod\",\"destination\":\"10.0.0.1:80\",\"pod\":{}}}",
         "pod.identity", 1},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"service\",\"destination\":\"10.0.0.1:80\",\"service\":{\"port\":{},"
         "\"endpoints\":[{\"address\":\"fd00::1\",\"port\":80,\"ready\":true,\"serving\":true,"
         "\"terminating\":false,\"meshed\":false}]}}}",
         "service.endpoints[0].address", 1},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"service\",\"destination\":\"10.0.0.1:80\",\"service\":{\"port\":{},"
         "\"endpoints\":[{\"address\":\"10.0.0.9\",\"port\":80,\"ready\":\"yes\",\"serving\":true,"
         "\"terminating\":false,\"meshed\":false}]}}}",
         "service.endpoints[0].ready", 1},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"service\",\"destination\":\"10.0.0.1:80\",\"service\":{\"port\":{},"
         "\"endpoints\":[{\"address\":\"10.0.0.9\",\"port\":80,\"ready\":true,\"serving\":true,"
         "\"terminating\":false,\"meshed\":true}]}}}",
         "service.endpoints[0].identity", 1},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"service\",\"destination\":\"10.0.0.1:80\",\"service\":{\"port\":{},"
         "\"endpoints\":[{\"address\":\"10.0.0.9\",\"port\":0,\"ready\":true,\"serving\":true,"
         "\"terminating\":false,\"meshed\":false}]}}}",
         "service.endpoints[0].port", 1},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"service\",\"destination\":\"10.0.0.1:80\",\"service\":{\"port\":{},"
         "\"endpoints\":{}}}}",
         "service.endpoints: expected a list", 1},
        {"{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
         "{\"version\":1,\"kind\":\"service\",\"destination\":\"10.0.0.1:80\",\"service\":{\"port\":"
         "{\"appProtocol\":\"\"},\"endpoints\":[]}}}",
         "appProtocol", 1},
        {"{\"type\":\"answer\",\"type\":\"answer\"}", "not JSON", 0}, /* duplicate keys */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct dest_msg m;
        char err[512] = "";
        int r = parse(cases[i].line, &m, err, sizeof err);
        if (r != -EINVAL || !strstr(err, cases[i].want))
            fail_msg("case %zu: r=%d err=\"%s\", want \"%s\"", i, r, err, cases[i].want);
        assert_int_equal(m.type == DEST_MSG_ANSWER, cases[i].nackable);
        assert_null(m.answer);
        dest_msg_clear(&m);
    }
}

/* DEST_MAX_ENDPOINTS endpoints are taken, one more refused; a message of
 * DEST_MAX_LINE bytes is read, one byte more refused. */
static void test_parse_limits(void **state)
{
    (void)state;
    const char *ep = "{\"address\":\"10.2.0.1\",\"port\":80,\"ready\":true,\"serving\":true,\"terminating\":false,"
                     "\"meshed\":false}";
    size_t el = strlen(ep);
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = DEST_MAX_ENDPOINTS + (size_t)extra;
        char *eps = malloc(n * (el + 1) + 1);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            if (i)
                eps[off++] = ',';
            memcpy(eps + off, ep, el);
            off += el;
        }
        eps[off] = '\0';
        char *line = service_line(1, eps);
        struct dest_msg m;
        char err[256] = "";
        int r = parse(line, &m, err, sizeof err);
        if (extra) {
            assert_int_equal(r, -EINVAL);
            assert_non_null(strstr(err, "at most 4096"));
        } else {
            assert_int_equal(r, 0);
            assert_int_equal(m.answer->neps, DEST_MAX_ENDPOINTS);
        }
        dest_msg_clear(&m);
        free(line);
        free(eps);
    }
    /* The size limit: padded with blanks, which JSON allows. */
    const char *hello = "{\"type\":\"hello\",\"protocol\":1}";
    for (size_t len = DEST_MAX_LINE; len <= (size_t)DEST_MAX_LINE + 1; len++) {
        char *line = malloc(len);
        memset(line, ' ', len);
        memcpy(line, hello, strlen(hello));
        struct dest_msg m;
        char err[256] = "";
        int r = dest_parse_msg(line, len, TD, &m, err, sizeof err);
        assert_int_equal(r, len == DEST_MAX_LINE ? 0 : -EINVAL);
        if (r)
            assert_non_null(strstr(err, "at most"));
        dest_msg_clear(&m);
        free(line);
    }
}

/* appProtocol of DEST_MAX_APP_PROTOCOL bytes (the API's longest: a
 * 253-byte prefix, "/", a 63-byte name) is kept, one more refused. */
static void test_app_protocol_limit(void **state)
{
    (void)state;
    for (size_t n = DEST_MAX_APP_PROTOCOL; n <= DEST_MAX_APP_PROTOCOL + 1; n++) {
        char ap[DEST_MAX_APP_PROTOCOL + 2], line[1024];
        memset(ap, 'a', n);
        ap[n] = '\0';
        snprintf(line, sizeof line,
                 "{\"type\":\"answer\",\"id\":\"destination:10.0.0.1:80\",\"version\":1,\"answer\":"
                 "{\"version\":1,\"kind\":\"service\",\"destination\":\"10.0.0.1:80\",\"service\":{\"port\":"
                 "{\"appProtocol\":\"%s\"},\"endpoints\":[]}}}",
                 ap);
        struct dest_msg m;
        char err[256] = "";
        int r = parse(line, &m, err, sizeof err);
        if (n == DEST_MAX_APP_PROTOCOL) {
            assert_int_equal(r, 0);
            assert_int_equal(strlen(m.answer->app_protocol), n);
        } else {
            assert_int_equal(r, -EINVAL);
            assert_non_null(strstr(err, "appProtocol"));
        }
        dest_msg_clear(&m);
    }
}

/* The service line with "timeouts":<t> after "opaque". */
static char *timeouts_line(const char *t)
{
    char *base = service_line(9, EP_WEB1), *at = strstr(base, "\"opaque\":false,");
    size_t n = strlen(base) + strlen(t) + 32;
    char *s = malloc(n);
    snprintf(s, n, "%.*s\"opaque\":false,\"timeouts\":%s,%s", (int)(at - base), base, t,
             at + strlen("\"opaque\":false,"));
    free(base);
    return s;
}

static void test_parse_timeouts(void **state)
{
    (void)state;
    struct dest_msg m;
    char err[256];
    /* None set: every one -1, the settings apply. */
    char *line = service_line(9, EP_WEB1);
    struct dest_answer *a = take_answer(line);
    assert_true(a->timeouts.request_ms == -1 && a->timeouts.header_ms == -1 && a->timeouts.idle_ms == -1);
    dest_answer_free(a);
    free(line);
    /* At the limit; an unknown member (a later addition) ignored. */
    line = timeouts_line("{\"requestMs\":86400000,\"responseHeaderMs\":0,\"idleMs\":1,\"connectMs\":5}");
    a = take_answer(line);
    assert_true(a->timeouts.request_ms == 86400000 && a->timeouts.header_ms == 0 && a->timeouts.idle_ms == 1);
    dest_answer_free(a);
    free(line);
    line = timeouts_line("{\"responseHeaderMs\":250}");
    a = take_answer(line);
    assert_true(a->timeouts.request_ms == -1 && a->timeouts.header_ms == 250 && a->timeouts.idle_ms == -1);
    dest_answer_free(a);
    free(line);
    /* One past, below, not integers, not an object: the answer is refused whole, named. */
    static const struct {
        const char *t, *err;
    } bad[] = {
        {"{\"requestMs\":86400001}", "service.timeouts.requestMs: expected an integer 0-86400000"},
        {"{\"responseHeaderMs\":-1}", "service.timeouts.responseHeaderMs: expected an integer 0-86400000"},
        {"{\"idleMs\":0}", "service.timeouts.idleMs: expected an integer 1-86400000"},
        {"{\"requestMs\":\"5s\"}", "service.timeouts.requestMs: expected an integer 0-86400000"},
        {"{\"requestMs\":1.5}", "service.timeouts.requestMs: expected an integer 0-86400000"},
        {"[]", "service.timeouts: expected an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        line = timeouts_line(bad[i].t);
        err[0] = '\0';
        assert_int_equal(parse(line, &m, err, sizeof err), -EINVAL);
        assert_string_equal(err, bad[i].err);
        dest_msg_clear(&m);
        free(line);
    }
    /* The store's lookup by destination. */
    struct dest_store *st = dest_store_new();
    struct sockaddr_storage vip, other = addr("10.96.10.11", 80);
    struct dest_timeouts t;
    assert_int_equal(dest_parse_addr("10.96.10.10:80", &vip), 0);
    assert_int_equal(dest_store_timeouts(st, &vip, &t), 0);
    assert_true(t.request_ms == -1 && t.header_ms == -1 && t.idle_ms == -1);
    assert_int_equal(dest_store_add_pending(st, &vip, 1000), 0);
    assert_int_equal(dest_store_timeouts(st, &vip, &t), 0); /* pending: no answer yet */
    line = timeouts_line("{\"requestMs\":300}");
    assert_int_equal(dest_store_apply(st, &vip, take_answer(line), 9, 1), 0);
    assert_int_equal(dest_store_timeouts(st, &vip, &t), 1);
    assert_true(t.request_ms == 300 && t.header_ms == -1 && t.idle_ms == -1);
    assert_int_equal(dest_store_timeouts(st, &other, &t), 0);
    assert_int_equal(dest_parse_addr("[fd00::1]:80", &other), 0);
    assert_int_equal(dest_parse_addr("10.96.10.10", &other), -EINVAL);
    dest_store_free(st);
    free(line);
}

static void test_store_versions(void **state)
{
    (void)state;
    struct dest_store *st = dest_store_new();
    struct sockaddr_storage vip = addr("10.96.10.10", 80), other = addr("10.96.10.11", 80);
    char *l1 = service_line(5, EP_WEB1), *l2 = service_line(6, EP_WEB2), *l0 = service_line(4, EP_PLAIN);
    assert_int_equal(dest_store_apply(st, &vip, take_answer(l1), 5, 1), -ENOENT); /* not subscribed */
    assert_int_equal(dest_store_add_pending(st, &vip, 1000), 0);
    assert_int_equal(dest_store_add_pending(st, &vip, 1000), 0); /* no change */
    assert_int_equal(dest_store_generation(st), 2);
    const struct dest_snap *s = dest_store_get(st);
    const struct dest_entry *e = dest_snap_find(s, &vip);
    assert_non_null(e);
    assert_int_equal(e->state, DEST_PENDING);
    assert_null(dest_snap_find(s, &other));
    assert_int_equal(dest_store_apply(st, &vip, take_answer(l1), 5, 1), 0);
    /* The pinned snapshot still shows what it showed. */
    assert_int_equal(e->state, DEST_PENDING);
    dest_snap_put(s);
    s = dest_store_get(st);
    e = dest_snap_find(s, &vip);
    assert_int_equal(e->state, DEST_READY);
    assert_int_equal(e->version, 5);
    dest_snap_put(s);
    /* Older or equal versions of the same connection are stale. */
    assert_int_equal(dest_store_apply(st, &vip, take_answer(l0), 4, 1), -ESTALE);
    assert_int_equal(dest_store_apply(st, &vip, take_answer(l1), 5, 1), -ESTALE);
    assert_int_equal(dest_store_apply(st, &vip, take_answer(l2), 6, 1), 0);
    /* A new connection's versions start over. */
    assert_int_equal(dest_store_apply(st, &vip, take_answer(l0), 4, 2), 0);
    s = dest_store_get(st);
    e = dest_snap_find(s, &vip);
    assert_int_equal(e->version, 4);
    assert_int_equal(e->epoch, 2);
    char ip[INET_ADDRSTRLEN];
    assert_string_equal(ip_of(&e->ans->eps[0].addr, ip), "10.1.1.12");
    dest_snap_put(s);
    free(l0);
    free(l1);
    free(l2);
    dest_store_free(st);
}

/* An error answer, a nack (the client marks it failed) or a refusal keep
 * a good answer; a pending entry becomes failed (the fallback). */
static void test_store_keeps_last_good(void **state)
{
    (void)state;
    struct dest_store *st = dest_store_new();
    struct sockaddr_storage vip = addr("10.96.10.10", 80), p2 = addr("10.96.10.12", 80);
    char *l1 = service_line(5, EP_WEB1);
    const char *err_line = "{\"type\":\"answer\",\"id\":\"destination:10.96.10.10:80\",\"version\":9,\"answer\":"
                           "{\"version\":1,\"kind\":\"error\",\"error\":\"store full\"}}";
    assert_int_equal(dest_store_add_pending(st, &vip, 0), 0);
    assert_int_equal(dest_store_apply(st, &vip, take_answer(l1), 5, 1), 0);
    assert_int_equal(dest_store_apply(st, &vip, take_answer(err_line), 9, 1), 0);
    assert_int_equal(dest_store_fail(st, &vip), 0);
    const struct dest_snap *s = dest_store_get(st);
    const struct dest_entry *e = dest_snap_find(s, &vip);
    assert_int_equal(e->state, DEST_READY);
    assert_int_equal(e->version, 5);
    dest_snap_put(s);
    /* A nacked (unparsable) answer never reaches the store: the client
     * calls dest_store_fail, which a good entry ignores (above). */
    struct dest_msg m;
    char err[256];
    char *bad = service_line(10, "{\"address\":\"x\"}");
    assert_int_equal(dest_parse_msg(bad, strlen(bad), TD, &m, err, sizeof err), -EINVAL);
    assert_int_equal(m.type, DEST_MSG_ANSWER);
    assert_int_equal(m.version, 10);
    dest_msg_clear(&m);
    free(bad);
    assert_int_equal(dest_store_add_pending(st, &p2, 0), 0);
    char eline[300];
    snprintf(eline, sizeof eline, "%s", err_line);
    memcpy(strstr(eline, "10.96.10.10"), "10.96.10.12", 11);
    assert_int_equal(dest_store_apply(st, &p2, take_answer(eline), 9, 1), 0);
    s = dest_store_get(st);
    assert_int_equal(dest_snap_find(s, &p2)->state, DEST_FAILED);
    struct sockaddr_storage none = addr("10.9.9.9", 1);
    assert_int_equal(dest_store_fail(st, &none), -ENOENT);
    dest_snap_put(s);
    free(l1);
    dest_store_free(st);
}

static void test_store_expire_and_wants(void **state)
{
    (void)state;
    struct dest_store *st = dest_store_new();
    struct sockaddr_storage a = addr("10.96.0.1", 80), b = addr("10.96.0.2", 80), c = addr("fd00::1", 80);
    assert_int_equal(dest_store_add_pending(st, &c, 1000), 0);
    assert_int_equal(dest_store_add_pending(st, &b, 1000), 0);
    assert_int_equal(dest_store_add_pending(st, &a, 1000), 0);
    assert_int_equal(dest_store_count(st), 3);
    const struct dest_snap *s = dest_store_get(st);
    char ip[INET_ADDRSTRLEN];
    assert_string_equal(ip_of(&s->v[0]->dst, ip), "10.96.0.1"); /* sorted */
    struct dest_target t;
    dest_choose(dest_snap_find(s, &b), &b, 5000, &t); /* b used at 5 s */
    dest_snap_put(s);
    struct sockaddr_storage out[4];
    assert_int_equal(dest_store_expire(st, 3999, 3000, out, 4), 0);
    assert_int_equal(dest_store_expire(st, 4000, 3000, out, 4), 2);
    assert_int_equal(dest_store_count(st), 1);
    s = dest_store_get(st);
    assert_non_null(dest_snap_find(s, &b));
    dest_snap_put(s);
    /* The queue of wanted destinations: deduplicated, bounded. */
    assert_int_equal(dest_store_want(st, &a), 1);
    assert_int_equal(dest_store_want(st, &a), 0);
    for (unsigned i = 1; i < DEST_MAX_WANTS; i++) {
        struct sockaddr_storage x = addr("10.50.0.1", (uint16_t)i);
        assert_int_equal(dest_store_want(st, &x), 1);
    }
    struct sockaddr_storage y = addr("10.51.0.1", 1);
    assert_int_equal(dest_store_want(st, &y), -ENOSPC);
    struct sockaddr_storage got[DEST_MAX_WANTS];
    assert_int_equal(dest_store_take_wants(st, got, 10), 10);
    assert_memory_equal(&got[0], &a, sizeof a);
    assert_int_equal(dest_store_take_wants(st, got, DEST_MAX_WANTS), DEST_MAX_WANTS - 10);
    assert_int_equal(dest_store_take_wants(st, got, DEST_MAX_WANTS), 0);
    dest_store_free(st);
}

/* DEST_MAX_ENTRIES destinations are held, one more is refused. */
static void test_store_limit(void **state)
{
    (void)state;
    struct dest_store *st = dest_store_new();
    for (unsigned i = 0; i < DEST_MAX_ENTRIES; i++) {
        struct sockaddr_storage x = addr("10.60.0.1", (uint16_t)(i + 1));
        assert_int_equal(dest_store_add_pending(st, &x, 0), 0);
    }
    struct sockaddr_storage one_more = addr("10.61.0.1", 1);
    assert_int_equal(dest_store_add_pending(st, &one_more, 0), -ENOSPC);
    assert_int_equal(dest_store_count(st), DEST_MAX_ENTRIES);
    dest_store_free(st);
}

static struct dest_store *store_with(const char *eps, struct sockaddr_storage *vip)
{
    struct dest_store *st = dest_store_new();
    *vip = addr("10.96.10.10", 80);
    char *l = service_line(1, eps);
    assert_int_equal(dest_store_add_pending(st, vip, 0), 0);
    assert_int_equal(dest_store_apply(st, vip, take_answer(l), 1, 1), 0);
    free(l);
    return st;
}

static void test_choose_round_robin(void **state)
{
    (void)state;
    char eps[2048];
    snprintf(eps, sizeof eps, "%s,%s,%s,%s,%s", EP_WEB1, EP_TERM, EP_WEB2, EP_DOWN, EP_PLAIN);
    struct sockaddr_storage vip;
    struct dest_store *st = store_with(eps, &vip);
    const struct dest_snap *s = dest_store_get(st);
    const struct dest_entry *e = dest_snap_find(s, &vip);
    int count[3] = {0};
    char ip[INET_ADDRSTRLEN];
    for (int i = 0; i < 9; i++) {
        struct dest_target t;
        dest_choose(e, &vip, 10, &t);
        ip_of(&t.addr, ip);
        assert_string_equal(t.app_protocol, "http");
        if (strcmp(ip, "10.1.1.10") == 0 || strcmp(ip, "10.1.1.11") == 0) {
            assert_int_equal(t.route, DEST_ROUTE_MTLS);
            assert_string_equal(t.expect_id, "spiffe://cluster.local/ns/shop/sa/web");
            count[ip[8] - '0']++;
        } else {
            assert_string_equal(ip, "10.1.1.12"); /* never the terminating or the down one */
            assert_int_equal(t.route, DEST_ROUTE_PLAIN);
            assert_null(t.expect_id);
            count[2]++;
        }
        assert_int_equal(ntohs(((struct sockaddr_in *)&t.addr)->sin_port), 8080);
    }
    assert_int_equal(count[0], 3);
    assert_int_equal(count[1], 3);
    assert_int_equal(count[2], 3);
    dest_snap_put(s);
    /* The cursor carries over to the next answer of the destination. */
    char *l2 = service_line(2, eps);
    assert_int_equal(dest_store_apply(st, &vip, take_answer(l2), 2, 1), 0);
    free(l2);
    s = dest_store_get(st);
    assert_int_equal(atomic_load(&dest_snap_find(s, &vip)->rr), 9);
    dest_snap_put(s);
    dest_store_free(st);
}

static void test_choose_terminating_and_none(void **state)
{
    (void)state;
    char eps[2048];
    struct sockaddr_storage vip;
    snprintf(eps, sizeof eps, "%s,%s", EP_DOWN, EP_TERM);
    struct dest_store *st = store_with(eps, &vip);
    const struct dest_snap *s = dest_store_get(st);
    struct dest_target t;
    char ip[INET_ADDRSTRLEN];
    dest_choose(dest_snap_find(s, &vip), &vip, 10, &t);
    assert_int_equal(t.route, DEST_ROUTE_MTLS); /* only a serving terminating one left: it takes it */
    assert_string_equal(ip_of(&t.addr, ip), "10.1.1.13");
    assert_string_equal(t.expect_id, "spiffe://cluster.local/ns/shop/sa/web-old");
    dest_snap_put(s);
    dest_store_free(st);
    st = store_with(EP_DOWN, &vip);
    s = dest_store_get(st);
    dest_choose(dest_snap_find(s, &vip), &vip, 10, &t);
    assert_int_equal(t.route, DEST_ROUTE_NO_ENDPOINT);
    dest_snap_put(s);
    dest_store_free(st);
    st = store_with("", &vip);
    s = dest_store_get(st);
    dest_choose(dest_snap_find(s, &vip), &vip, 10, &t);
    assert_int_equal(t.route, DEST_ROUTE_NO_ENDPOINT);
    dest_snap_put(s);
    dest_store_free(st);
}

static void test_choose_kinds(void **state)
{
    (void)state;
    struct sockaddr_storage pod = addr("10.1.3.5", 5432), ext = addr("93.184.216.34", 443);
    struct dest_store *st = dest_store_new();
    struct dest_target t;
    char ip[INET_ADDRSTRLEN];
    dest_choose(NULL, &pod, 0, &t);
    assert_int_equal(t.route, DEST_ROUTE_FALLBACK);
    assert_memory_equal(&t.addr, &pod, sizeof pod);
    assert_int_equal(dest_store_add_pending(st, &pod, 0), 0);
    assert_int_equal(dest_store_add_pending(st, &ext, 0), 0);
    const struct dest_snap *s = dest_store_get(st);
    dest_choose(dest_snap_find(s, &pod), &pod, 0, &t);
    assert_int_equal(t.route, DEST_ROUTE_WAIT);
    dest_snap_put(s);
    assert_int_equal(dest_store_apply(st, &pod,
                                      take_answer("{\"type\":\"answer\",\"id\":\"destination:10.1.3.5:5432\","
                                                  "\"version\":3,\"answer\":{\"version\":1,\"kind\":\"pod\","
                                                  "\"destination\":\"10.1.3.5:5432\",\"pod\":{\"identity\":"
                                                  "\"spiffe://cluster.local/ns/shop/sa/db\",\"opaque\":true}}}"),
                                      3, 1),
                     0);
    assert_int_equal(dest_store_apply(st, &ext,
                                      take_answer("{\"type\":\"answer\",\"id\":\"destination:93.184.216.34:443\","
                                                  "\"version\":4,\"answer\":{\"version\":1,\"kind\":\"unknown\","
                                                  "\"destination\":\"93.184.216.34:443\",\"reason\":\"not-found\"}}"),
                                      4, 1),
                     0);
    s = dest_store_get(st);
    dest_choose(dest_snap_find(s, &pod), &pod, 0, &t);
    assert_int_equal(t.route, DEST_ROUTE_MTLS);
    assert_string_equal(ip_of(&t.addr, ip), "10.1.3.5");
    assert_string_equal(t.expect_id, "spiffe://cluster.local/ns/shop/sa/db");
    assert_true(t.opaque);
    dest_choose(dest_snap_find(s, &ext), &ext, 0, &t);
    assert_int_equal(t.route, DEST_ROUTE_PLAIN);
    assert_memory_equal(&t.addr, &ext, sizeof ext);
    dest_snap_put(s);
    /* Failed: the fallback. */
    struct sockaddr_storage f = addr("10.96.0.99", 80);
    assert_int_equal(dest_store_add_pending(st, &f, 0), 0);
    assert_int_equal(dest_store_fail(st, &f), 0);
    s = dest_store_get(st);
    dest_choose(dest_snap_find(s, &f), &f, 0, &t);
    assert_int_equal(t.route, DEST_ROUTE_FALLBACK);
    dest_snap_put(s);
    dest_store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_parse_hello_error),
        cmocka_unit_test(test_parse_service),
        cmocka_unit_test(test_parse_pod_unknown_policy),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_app_protocol_limit),
        cmocka_unit_test(test_parse_timeouts),
        cmocka_unit_test(test_store_versions),
        cmocka_unit_test(test_store_keeps_last_good),
        cmocka_unit_test(test_store_expire_and_wants),
        cmocka_unit_test(test_store_limit),
        cmocka_unit_test(test_choose_round_robin),
        cmocka_unit_test(test_choose_terminating_and_none),
        cmocka_unit_test(test_choose_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
