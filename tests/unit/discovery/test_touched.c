/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the store's change tracking (store_record_reads,
 * store_take_touched, store_sync), which lets the server recompute only the
 * answers a change can affect. The property checked everywhere: after any
 * change, an answer whose recorded reads meet none of the touched keys is
 * exactly the answer computed again from scratch. It is checked over every
 * destination (each Service IP and port, each pod IP, unknown ones) and
 * every pod's policy of the golden clusters, through each watch event of
 * the golden cases and through changes made here for what those do not
 * cover (routes, ReferenceGrants, namespaces, IPs moving, deletes, a
 * re-read directory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "answer.h"
#include "fixtures.h"
#include "objdir.h"
#include "settings.h"
#include "yamljson.h"

static json_t *mesh;

static int setup_group(void **state)
{
    (void)state;
    char err[512];
    json_t *doc = yamljson_load_file("templates/mesh.yaml", err, sizeof err);
    if (!doc || !(mesh = settings_from_mesh(doc, err, sizeof err)))
        return -1;
    json_decref(doc);
    return 0;
}

static int teardown_group(void **state)
{
    (void)state;
    json_decref(mesh);
    return 0;
}

/* Every question worth asking of s: "d:<dest>" or "p:<ns>/<pod>". */
static json_t *questions(struct store *s)
{
    json_t *qs = json_array(), *obj, *v, *p;
    const char *key;
    size_t i, j;
    char q[300];
    json_object_foreach(store_objects(s, REDUCE_SERVICE), key, obj) {
        json_array_foreach(json_object_get(obj, "clusterIPs"), i, v) {
            const char *ip = json_string_value(v);
            json_array_foreach(json_object_get(obj, "ports"), j, p) {
                snprintf(q, sizeof q, strchr(ip, ':') ? "d:[%s]:%lld" : "d:%s:%lld", ip,
                         (long long)json_integer_value(json_object_get(p, "port")));
                json_array_append_new(qs, json_string(q));
            }
            snprintf(q, sizeof q, strchr(ip, ':') ? "d:[%s]:1" : "d:%s:1", ip); /* no such port */
            json_array_append_new(qs, json_string(q));
        }
    }
    json_object_foreach(store_objects(s, REDUCE_POD), key, obj) {
        json_array_foreach(json_object_get(obj, "ips"), i, v) {
            snprintf(q, sizeof q, strchr(json_string_value(v), ':') ? "d:[%s]:8080" : "d:%s:8080",
                     json_string_value(v));
            json_array_append_new(qs, json_string(q));
        }
        snprintf(q, sizeof q, "p:%s", key);
        json_array_append_new(qs, json_string(q));
    }
    /* Addresses that some changes below give to a Service or a pod. */
    static const char *const more[] = {"d:10.96.77.7:80", "d:10.1.77.7:8080", "d:10.96.40.1:80", "d:203.0.113.9:443"};
    for (size_t k = 0; k < sizeof more / sizeof *more; k++)
        json_array_append_new(qs, json_string(more[k]));
    return qs;
}

/* The answer to q as text; with reads, the keys it read are added there. */
static char *ask(struct store *s, const char *q, json_t *reads)
{
    json_t *a = NULL;
    store_record_reads(s, reads);
    if (q[0] == 'd') {
        struct addr_dest d;
        assert_int_equal(addr_parse_dest(q + 2, &d), 0);
        a = answer_destination(s, "cluster.local", &d);
    } else {
        char ns[64];
        const char *slash = strchr(q + 2, '/');
        snprintf(ns, sizeof ns, "%.*s", (int)(slash - (q + 2)), q + 2);
        answer_pod_policy(s, mesh, "cluster.local", ns, slash + 1, &a);
    }
    store_record_reads(s, NULL);
    char *text = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(a);
    return text;
}

struct snapshot {
    json_t *qs;
    json_t *texts; /* q -> text */
    json_t *reads; /* q -> {key: true} */
};

static void snap(struct store *s, struct snapshot *sn)
{
    sn->qs = questions(s);
    sn->texts = json_object();
    sn->reads = json_object();
    size_t i;
    json_t *q;
    json_array_foreach(sn->qs, i, q) {
        json_t *r = json_object();
        char *t = ask(s, json_string_value(q), r);
        json_object_set_new(sn->texts, json_string_value(q), json_string(t));
        json_object_set_new(sn->reads, json_string_value(q), r);
        free(t);
    }
}

static void snap_free(struct snapshot *sn)
{
    json_decref(sn->qs);
    json_decref(sn->texts);
    json_decref(sn->reads);
}

/* After a change: every answer that differs read a touched key. Returns how
 * many answers changed (so a case can show it changed something). */
static int check(struct store *s, struct snapshot *sn, const char *what)
{
    json_t *touched = store_take_touched(s), *q;
    size_t i;
    int changed = 0;
    json_array_foreach(sn->qs, i, q) {
        const char *qs = json_string_value(q);
        char *now = ask(s, qs, NULL);
        const char *before = json_string_value(json_object_get(sn->texts, qs));
        if (strcmp(now, before) != 0) {
            changed++;
            int met = 0;
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(sn->reads, qs), k, v)
                if (touched && json_object_get(touched, k))
                    met = 1;
            if (!met)
                fail_msg("%s: the answer to %s changed, but no key it read was touched:\nbefore %s\nafter  %s", what,
                         qs, before, now);
        }
        free(now);
    }
    json_decref(touched);
    return changed;
}

static struct store *load(const char *dir)
{
    char err[1024];
    struct store *s = store_new(NULL);
    if (objdir_load(s, dir, err, sizeof err) < 0)
        fail_msg("%s: %s", dir, err);
    json_decref(store_take_touched(s));
    return s;
}

static void test_golden_events(void **state)
{
    (void)state;
    static const char *const cases[] = {"events-endpoints-change", "events-policy-change", "events-refused-object",
                                        "events-watch-gone", "refgrant-deleted-event"};
    int changed = 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char dir[256], path[256], line[1 << 16];
        snprintf(dir, sizeof dir, "tests/golden/discovery/%s/objects", cases[c]);
        snprintf(path, sizeof path, "tests/golden/discovery/%s/events.jsonl", cases[c]);
        struct store *s = load(dir);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        int n = 0;
        while (fgets(line, sizeof line, f)) {
            struct snapshot sn;
            char err[1024], what[300];
            snap(s, &sn);
            store_apply_event(s, line, strlen(line), err, sizeof err);
            snprintf(what, sizeof what, "%s event %d", cases[c], ++n);
            changed += check(s, &sn, what);
            snap_free(&sn);
        }
        fclose(f);
        store_free(s);
    }
    assert_true(changed > 0); /* the events did change answers */
}

/* One change made with store_apply on the golden cluster plus the
 * ReferenceGrant case's objects. */
static void change(json_t *obj, enum store_event ev, const char *what, int must_change)
{
    struct store *s = load("tests/golden/discovery/service-ipv4/objects");
    char err[1024];
    assert_int_equal(objdir_load(s, "tests/golden/discovery/refgrant-granted/objects", err, sizeof err), 0);
    json_decref(store_take_touched(s));
    struct snapshot sn;
    snap(s, &sn);
    assert_int_equal(store_apply(s, ev, obj, err, sizeof err), 0);
    json_decref(obj);
    int changed = check(s, &sn, what);
    if (must_change && !changed)
        fail_msg("%s changed no answer: the case tests nothing", what);
    snap_free(&sn);
    store_free(s);
}

static void test_changes(void **state)
{
    (void)state;
    /* A Service appears on an address that was unknown, and one changes its IP. */
    change(service("shop", "new", "10.96.77.7"), STORE_ADDED, "new Service", 1);
    change(service("shop", "web", "10.96.77.7"), STORE_MODIFIED, "Service IP moved", 1);
    change(service("shop", "web", "10.96.77.7"), STORE_DELETED, "Service deleted", 1);
    /* A pod takes an IP, a meshed pod stops being meshed, one goes. */
    change(pod("shop", "late", "web", "10.1.77.7", 1), STORE_ADDED, "new pod", 1);
    change(pod("shop", "web-1", "web", "10.1.1.10", 0), STORE_MODIFIED, "pod no longer meshed", 1);
    change(pod("shop", "web-1", "web", "10.1.1.10", 1), STORE_DELETED, "pod deleted", 1);
    /* The namespace's annotations: every policy of its pods. */
    json_t *ns = namespace_obj("shop");
    json_object_set_new(json_object_get(ns, "metadata"), "annotations",
                        json_pack("{s:s}", "weft.dev/inbound-policy", "deny"));
    change(ns, STORE_MODIFIED, "namespace annotation", 1);
    /* Routes: a new one on a Service, one whose backend is another Service. */
    change(http_route("shop", "extra", "web", "web"), STORE_ADDED, "new route", 1);
    json_t *r = http_route("shop", "front", "front", "back");
    json_object_set_new(json_array_get(json_object_get(json_array_get(json_object_get(json_object_get(r, "spec"),
                                                                                      "rules"), 0), "backendRefs"), 0),
                        "namespace", json_string("shop"));
    change(r, STORE_MODIFIED, "route backend moved", 1);
    /* A backend Service's ports change under a route that sends to it. */
    change(json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:[{s:s, s:i}]}}", "apiVersion", "v1", "kind", "Service",
                     "metadata", "namespace", "store", "name", "back", "spec", "clusterIP", "10.96.40.2", "ports",
                     "name", "http", "port", 81),
           STORE_MODIFIED, "backend Service port", 1);
    /* The ReferenceGrant goes, and one is added that permits nothing new. */
    change(json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "gateway.networking.k8s.io/v1beta1", "kind",
                     "ReferenceGrant", "metadata", "namespace", "store", "name", "from-shop"),
           STORE_DELETED, "grant deleted", 1);
    /* A slice that moves to another Service. */
    json_t *sl = slice("shop", "web-x", "db");
    json_array_append_new(json_object_get(sl, "endpoints"), endpoint("10.1.1.10", "web-1"));
    change(sl, STORE_ADDED, "slice of another Service", 0);
}

static void test_sync(void **state)
{
    (void)state;
    struct store *s = load("tests/golden/discovery/service-ipv4/objects");
    struct store *same = load("tests/golden/discovery/service-ipv4/objects");
    unsigned long rev = store_revision(s);
    store_sync(s, same);
    assert_int_equal(store_revision(s), rev); /* nothing differs: nothing changes */
    assert_null(store_take_touched(s));
    /* A re-read directory with one slice changed and one object gone. */
    struct snapshot sn;
    snap(s, &sn);
    char err[1024];
    json_t *sl = slice("shop", "web-abcde", "web");
    json_array_append_new(json_object_get(sl, "endpoints"), endpoint("10.1.1.99", NULL));
    assert_int_equal(store_apply(same, STORE_MODIFIED, sl, err, sizeof err), 0);
    json_decref(sl);
    const char *key;
    json_t *obj;
    json_object_foreach(store_objects(same, REDUCE_POD), key, obj) {
        store_delete_key(same, REDUCE_POD, key);
        break;
    }
    store_sync(s, same);
    assert_true(store_revision(s) > rev);
    for (int k = 0; k < REDUCE_KINDS; k++)
        assert_true(json_equal(store_objects(s, (enum reduce_kind)k), store_objects(same, (enum reduce_kind)k)));
    assert_true(check(s, &sn, "directory re-read") > 0);
    snap_free(&sn);
    store_free(same);
    /* Touched names only what changed: one Service edited touches it, its
     * kind and its IPs' index sets, not every object. */
    json_t *svc = service("shop", "web", "10.96.10.10");
    assert_int_equal(store_apply(s, STORE_MODIFIED, svc, err, sizeof err), 0);
    json_decref(svc);
    json_t *t = store_take_touched(s);
    assert_non_null(json_object_get(t, "k0:shop/web"));
    assert_non_null(json_object_get(t, "k0:*"));
    assert_non_null(json_object_get(t, "i0:10.96.10.10"));
    assert_true(json_object_size(t) <= 5);
    json_decref(t);
    assert_null(store_take_touched(s));
    store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_events),
        cmocka_unit_test(test_changes),
        cmocka_unit_test(test_sync),
    };
    return cmocka_run_group_tests_name("discovery/touched", tests, setup_group, teardown_group);
}
