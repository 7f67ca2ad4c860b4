/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of cli/kubeconfig.c (the resolver and the ExecCredential
 * reader) and cli/b64.c. The golden cases (tests/golden/cli/kubeconfig-*)
 * cover the messages; these cover the pieces one by one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "b64.h"
#include "kubeconfig.h"

static json_t *doc(const char *text)
{
    json_error_t e;
    json_t *d = json_loads(text, 0, &e);
    if (!d)
        fail_msg("bad test JSON: %s: %s", e.text, text);
    return d;
}

/* One file at /k/config with one context "c" on cluster "k" with server and user "u". */
static int resolve(const char *server, const char *user_json, const char *ctx, const char *ns,
                   struct kube_target *t, char *err, size_t errlen)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"current-context\":\"c\",\"clusters\":[{\"name\":\"k\",\"cluster\":{\"server\":\"%s\"}}],"
             "\"users\":[{\"name\":\"u\",\"user\":%s}],"
             "\"contexts\":[{\"name\":\"c\",\"context\":{\"cluster\":\"k\",\"user\":\"u\"}}]}",
             server, user_json);
    json_t *d = doc(text);
    struct kubeconfig_file f = {"/k/config", d};
    struct kubeconfig_options o = {.context = ctx, .ns = ns};
    int rc = kubeconfig_resolve(&f, 1, &o, t, err, errlen);
    json_decref(d);
    return rc;
}

static void test_server_urls(void **state)
{
    (void)state;
    static const struct {
        const char *url, *host, *port, *prefix;
    } ok[] = {
        {"https://10.0.0.1", "10.0.0.1", "443", ""},
        {"https://api.example:6443", "api.example", "6443", ""},
        {"https://[fd00::1]:8443/", "fd00::1", "8443", ""},
        {"https://[::1]", "::1", "443", ""},
        {"https://rancher.example/k8s/clusters/c-1//", "rancher.example", "443", "/k8s/clusters/c-1"},
        {"https://h:1", "h", "1", ""},
        {"https://h:65535", "h", "65535", ""},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        struct kube_target t;
        char err[512];
        if (resolve(ok[i].url, "{}", NULL, NULL, &t, err, sizeof err) != 0)
            fail_msg("%s: %s", ok[i].url, err);
        assert_string_equal(t.host, ok[i].host);
        assert_string_equal(t.port, ok[i].port);
        assert_string_equal(t.path_prefix, ok[i].prefix);
        kube_target_free(&t);
    }
    static const char *const bad[] = {
        "http://h", "https://", "https://h:0", "https://h:65536", "https://h:", "https://[::1", "https://[]:1",
        "https://h?x=1", "https://h/p?x", "https://h:12a", "https://a b", "https://[::1]x", "h:6443",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct kube_target t;
        char err[512] = "";
        if (resolve(bad[i], "{}", NULL, NULL, &t, err, sizeof err) != -EINVAL)
            fail_msg("%s: accepted", bad[i]);
        assert_non_null(strstr(err, "server"));
    }
}

static void test_user_forms(void **state)
{
    (void)state;
    struct kube_target t;
    char err[512];
    /* inline data wins over the file, a token over tokenFile, as in kubectl */
    assert_int_equal(resolve("https://h", "{\"client-certificate\":\"c.crt\",\"client-certificate-data\":\"Y2VydA==\","
                             "\"client-key\":\"/abs/k.key\",\"token\":\"t\",\"tokenFile\":\"tok\"}",
                             NULL, NULL, &t, err, sizeof err), 0);
    assert_int_equal(t.cert.len, 4);
    assert_memory_equal(t.cert.data, "cert", 4);
    assert_null(t.cert.file);
    assert_string_equal(t.key.file, "/abs/k.key");
    assert_string_equal(t.token, "t");
    assert_null(t.token_file);
    kube_target_free(&t);
    /* relative files against the kubeconfig's directory */
    assert_int_equal(resolve("https://h", "{\"tokenFile\":\"./sub/tok\"}", NULL, "x", &t, err, sizeof err), 0);
    assert_string_equal(t.token_file, "/k/sub/tok");
    assert_string_equal(t.ns, "x");
    kube_target_free(&t);
    assert_int_equal(resolve("https://h", "{\"exec\":{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\","
                             "\"command\":\"plugin\",\"args\":[\"a\",\"b\"],\"env\":[{\"name\":\"N\",\"value\":\"v=1\"}]}}",
                             NULL, NULL, &t, err, sizeof err), 0);
    assert_true(t.has_exec);
    assert_string_equal(t.exec.command, "plugin"); /* no '/': looked up in PATH */
    assert_string_equal(t.exec.argv[0], "plugin");
    assert_string_equal(t.exec.argv[2], "b");
    assert_null(t.exec.argv[3]);
    assert_string_equal(t.exec.env[0], "N=v=1");
    assert_null(t.exec.env[1]);
    kube_target_free(&t);
    static const char *const bad[] = {
        "{\"client-key\":\"k\"}",
        "{\"client-certificate-data\":\"@@@\",\"client-key-data\":\"a2V5\"}",
        "{\"token\":7}",
        "{\"auth-provider\":{\"name\":\"gcp\"}}",
        "{\"exec\":{\"apiVersion\":\"client.authentication.k8s.io/v1\"}}",
        "{\"exec\":{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"command\":\"x\",\"args\":[1]}}",
        "{\"exec\":{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"command\":\"x\",\"env\":[{\"name\":\"A=B\",\"value\":\"v\"}]}}",
        "{\"exec\":{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"command\":\"x\",\"interactiveMode\":\"Sometimes\"}}",
        "{\"exec\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        if (resolve("https://h", bad[i], NULL, NULL, &t, err, sizeof err) != -EINVAL)
            fail_msg("%s: accepted", bad[i]);
        if (!strstr(err, "user \"u\""))
            fail_msg("%s: message does not name the user: %s", bad[i], err);
    }
}

static void test_context_selection(void **state)
{
    (void)state;
    struct kube_target t;
    char err[512];
    assert_int_equal(resolve("https://h", "{}", "missing", NULL, &t, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "context \"missing\" (--context) not found (contexts: \"c\")"));
    /* a malformed file is named */
    json_t *d = doc("{\"contexts\":{}}");
    struct kubeconfig_file f = {"/k/config", d};
    struct kubeconfig_options o = {.context = "c"};
    assert_int_equal(kubeconfig_resolve(&f, 1, &o, &t, err, sizeof err), -EINVAL);
    assert_string_equal(err, "/k/config: contexts: expected a list");
    json_decref(d);
    d = doc("[]");
    f.doc = d;
    assert_int_equal(kubeconfig_resolve(&f, 1, &o, &t, err, sizeof err), -EINVAL);
    json_decref(d);
    /* an empty file among others is nothing, not an error */
    json_t *d2 = doc("{\"current-context\":\"c\",\"clusters\":[{\"name\":\"k\",\"cluster\":{\"server\":\"https://x\"}}],"
                     "\"contexts\":[{\"name\":\"c\",\"context\":{\"cluster\":\"k\"}}]}");
    struct kubeconfig_file two[] = {{"/a", NULL}, {"/b/c", d2}};
    struct kubeconfig_options none = {0};
    assert_int_equal(kubeconfig_resolve(two, 2, &none, &t, err, sizeof err), 0);
    assert_null(t.user);
    assert_string_equal(t.sources, "/a:/b/c");
    assert_string_equal(t.ns, "default");
    kube_target_free(&t);
    json_decref(d2);
}

static void test_exec_credential(void **state)
{
    (void)state;
    char *tok, *cert, *key, err[256];
    const char *v1 = "client.authentication.k8s.io/v1";
#define EC(status) "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":" status "}"
    const char *good = EC("{\"token\":\"abc\",\"expirationTimestamp\":\"2030-01-01T00:00:00Z\"}");
    assert_int_equal(kubeconfig_exec_parse(good, strlen(good), v1, &tok, &cert, &key, err, sizeof err), 0);
    assert_string_equal(tok, "abc");
    assert_null(cert);
    free(tok);
    const char *pair = EC("{\"clientCertificateData\":\"C\",\"clientKeyData\":\"K\"}");
    assert_int_equal(kubeconfig_exec_parse(pair, strlen(pair), v1, &tok, &cert, &key, err, sizeof err), 0);
    assert_null(tok);
    assert_string_equal(cert, "C");
    assert_string_equal(key, "K");
    free(cert);
    free(key);
    static const char *const bad[] = {
        "", "not json", EC("{}"), EC("{\"clientCertificateData\":\"C\"}"), EC("{\"token\":\"a b\"}"), EC("7"),
        "{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}",
        "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"Secret\",\"status\":{\"token\":\"t\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (kubeconfig_exec_parse(bad[i], strlen(bad[i]), v1, &tok, &cert, &key, err, sizeof err) != -EINVAL)
            fail_msg("%s: accepted", bad[i]);
        assert_null(tok);
        assert_null(cert);
    }
#undef EC
}

static void test_b64(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *e = b64_encode(plain[i], strlen(plain[i]));
        assert_string_equal(e, enc[i]);
        size_t n;
        char *d = b64_decode(e, strlen(e), &n);
        assert_non_null(d);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(d, plain[i], n);
        free(e);
        free(d);
    }
    size_t n;
    char *d = b64_decode("Zm9v\nYmFy\n", 10, &n); /* wrapped, as PEM bodies are */
    assert_non_null(d);
    assert_int_equal(n, 6);
    free(d);
    static const char *const bad[] = {"Z", "Zg=", "Zg===", "Zm9v=", "Zg==Zg==", "Zm 9v", "Zm9v!", "=Zg="};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if ((d = b64_decode(bad[i], strlen(bad[i]), &n))) {
            free(d);
            fail_msg("%s: decoded", bad[i]);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_urls),
        cmocka_unit_test(test_user_forms),
        cmocka_unit_test(test_context_selection),
        cmocka_unit_test(test_exec_credential),
        cmocka_unit_test(test_b64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
