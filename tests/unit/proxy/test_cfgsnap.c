/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/cfgsnap.c with real loaded configurations: a pinned
 * snapshot survives swaps and is freed by its last holder (the sanitizer
 * builds catch a leak or a use after free), generations move by one per
 * swap, and four threads getting, reading and putting while a fifth swaps
 * always see one whole snapshot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cfgsnap.h"

static const char *env_get(void *ctx, const char *name)
{
    const char *const *kv = ctx;
    size_t l = strlen(name);
    for (size_t i = 0; kv[i]; i++)
        if (strncmp(kv[i], name, l) == 0 && kv[i][l] == '=')
            return kv[i] + l + 1;
    return NULL;
}

/* A configuration whose idle timeout and namespace both carry n, so a reader
 * can tell a torn snapshot from a whole one. */
static void load(struct proxy_config *cfg, unsigned n)
{
    char idle[32], ns[32];
    snprintf(idle, sizeof idle, "WEFT_IDLE_TIMEOUT_SECONDS=%u", n);
    snprintf(ns, sizeof ns, "WEFT_POD_NAMESPACE=ns%u", n);
    const char *kv[] = {ns, idle, "WEFT_CERT=/c", "WEFT_KEY=/k", NULL};
    char *argv[] = {"weft-proxy", NULL};
    char err[256];
    int help;
    assert_int_equal(config_load(cfg, 1, argv, env_get, kv, &help, err, sizeof err), 0);
}

static void test_pin_survives_swaps(void **state)
{
    (void)state;
    struct proxy_config c;
    load(&c, 1);
    struct cfgstore *st = cfgstore_new(&c);
    assert_null(c.pod_namespace); /* moved, not copied */
    assert_int_equal(cfgstore_generation(st), 1);
    const struct cfgsnap *a = cfgstore_get(st);
    const struct cfgsnap *a2 = cfgsnap_ref(a);
    assert_ptr_equal(a, a2);
    assert_string_equal(a->cfg.pod_namespace, "ns1");

    load(&c, 2);
    cfgstore_swap(st, &c);
    assert_int_equal(cfgstore_generation(st), 2);
    const struct cfgsnap *b = cfgstore_get(st);
    assert_int_equal(b->generation, 2);
    assert_string_equal(b->cfg.pod_namespace, "ns2");
    assert_string_equal(a->cfg.pod_namespace, "ns1"); /* still pinned, still whole */
    cfgsnap_put(a);
    assert_int_equal(a2->cfg.idle_timeout_s, 1);
    cfgsnap_put(a2); /* the last holder frees it */

    load(&c, 3);
    cfgstore_swap(st, &c);
    cfgstore_free(st);                          /* the store goes first ... */
    assert_string_equal(b->cfg.pod_namespace, "ns2"); /* ... its holders keep theirs */
    cfgsnap_put(b);
    cfgsnap_put(NULL);
}

struct race {
    struct cfgstore *st;
    int stop;
    unsigned long reads, torn;
};

static void *reader(void *arg)
{
    struct race *r = arg;
    unsigned long reads = 0, torn = 0;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        const struct cfgsnap *s = cfgstore_get(r->st);
        char want[32];
        snprintf(want, sizeof want, "ns%u", s->cfg.idle_timeout_s);
        if (strcmp(want, s->cfg.pod_namespace) != 0)
            torn++;
        cfgsnap_put(s);
        reads++;
    }
    __atomic_fetch_add(&r->reads, reads, __ATOMIC_RELAXED);
    __atomic_fetch_add(&r->torn, torn, __ATOMIC_RELAXED);
    return NULL;
}

static void test_concurrent_swaps(void **state)
{
    (void)state;
    struct proxy_config c;
    load(&c, 1);
    struct race r = {.st = cfgstore_new(&c)};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, reader, &r);
    for (unsigned n = 2; n <= 300; n++) {
        load(&c, n);
        cfgstore_swap(r.st, &c);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(cfgstore_generation(r.st), 300);
    assert_true(r.reads > 0);
    assert_int_equal(r.torn, 0);
    cfgstore_free(r.st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pin_survives_swaps),
        cmocka_unit_test(test_concurrent_swaps),
    };
    return cmocka_run_group_tests_name("proxy/cfgsnap", tests, NULL, NULL);
}
