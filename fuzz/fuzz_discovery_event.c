/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: arbitrary bytes through weft-discovery's object and
 * watch-event parsers (store_apply_event, every reducer), then the answers
 * over what was stored. Input that is not an event is also read as a YAML
 * stream of objects, as `weft-discovery answer --objects` reads files, so
 * the golden cases' manifests and events.jsonl lines both make seeds. Each
 * input gets a new store holding at most 8 objects of a kind, so one input
 * reaches the limits; every third document is applied as DELETED. Seeds
 * of fuzz/corpus/fuzz_discovery_event/ put a route and the ReferenceGrant
 * that permits its backends in one input. Then the change tracking the
 * server relies on is checked: with the answers' reads recorded, every
 * other document is deleted again, and an answer that changed must have
 * read a touched key (else abort), and the answers after those deletions
 * must be those of a store built afresh from what is left (the indexes are
 * kept current per change, not rebuilt). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "settings.h"
#include "store.h"
#include "yamljson.h"

static struct store_limits limits;
static json_t *mesh_values;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[512];
    store_default_limits(&limits);
    for (int i = 0; i < REDUCE_KINDS; i++)
        limits.max_objects[i] = 8;
    json_t *mesh = yamljson_load_file("templates/mesh.yaml", err, sizeof err);
    if (!mesh || !(mesh_values = settings_from_mesh(mesh, err, sizeof err)))
        abort(); /* run from the repository root */
    json_decref(mesh);
    return 0;
}

#define QUESTIONS 5

/* Destination answers as text; with reads[i], the keys each read. */
static void answers(struct store *store, char *texts[QUESTIONS], json_t *reads[QUESTIONS])
{
    static const char *const dests[QUESTIONS] = {"10.96.10.10:80", "10.1.1.10:8080", "[fd00:96::10]:80",
                                                 "10.96.10.20:5432", "10.96.40.1:80"};
    for (int i = 0; i < QUESTIONS; i++) {
        struct addr_dest d;
        if (addr_parse_dest(dests[i], &d) < 0)
            abort();
        store_record_reads(store, reads ? reads[i] : NULL);
        json_t *a = answer_destination(store, "cluster.local", &d);
        store_record_reads(store, NULL);
        texts[i] = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(a);
    }
}

/* The indexes were built by the first answers and kept current change by
 * change since: a store built afresh from the same objects answers alike. */
static void expect_as_rebuilt(struct store *store, char *texts[QUESTIONS])
{
    char *rebuilt[QUESTIONS];
    struct store *fresh = store_new(&limits);
    store_sync(fresh, store);
    answers(fresh, rebuilt, NULL);
    store_free(fresh);
    for (int q = 0; q < QUESTIONS; q++) {
        if (strcmp(texts[q], rebuilt[q]) != 0)
            abort(); /* an index kept per change differs from a rebuild */
        free(rebuilt[q]);
    }
}

static void check_tracking(struct store *store, json_t *docs)
{
    char *before[QUESTIONS], *after[QUESTIONS], err[1024];
    json_t *reads[QUESTIONS], *doc;
    size_t i;
    json_decref(store_take_touched(store));
    for (int q = 0; q < QUESTIONS; q++)
        reads[q] = json_object();
    answers(store, before, reads);
    json_array_foreach(docs, i, doc)
        if (i % 2 == 0)
            store_apply(store, STORE_DELETED, doc, err, sizeof err);
    json_t *touched = store_take_touched(store);
    answers(store, after, NULL);
    expect_as_rebuilt(store, after);
    for (int q = 0; q < QUESTIONS; q++) {
        if (strcmp(before[q], after[q]) != 0) {
            const char *k;
            json_t *v;
            int met = 0;
            json_object_foreach(reads[q], k, v) met |= touched && json_object_get(touched, k) != NULL;
            if (!met)
                abort(); /* an answer changed that no touched key could have told the server about */
        }
        free(before[q]);
        free(after[q]);
        json_decref(reads[q]);
    }
    json_decref(touched);
    /* The deleted ones back, each only where its key is free (a new object,
     * last in its table and its index sets alike): the add path too. */
    json_array_foreach(docs, i, doc) {
        enum reduce_kind kind;
        char key[600];
        if (i % 2 == 0 && reduce_kind_of(doc, &kind, err, sizeof err) == 0 &&
            reduce_key(doc, kind, key, sizeof key, err, sizeof err) == 0 && !store_get(store, kind, key))
            store_apply(store, STORE_ADDED, doc, err, sizeof err);
    }
    answers(store, after, NULL);
    expect_as_rebuilt(store, after);
    for (int q = 0; q < QUESTIONS; q++)
        free(after[q]);
}

static void ask(const struct store *store)
{
    /* The golden cluster's Services, and the route of the ReferenceGrant cases. */
    static const char *const dests[] = {"10.96.10.10:80", "10.1.1.10:8080", "[fd00:96::10]:80", "10.96.10.20:5432",
                                        "10.96.40.1:80"};
    struct addr_dest d;
    char err[256];
    for (size_t i = 0; i < sizeof dests / sizeof *dests; i++) {
        if (addr_parse_dest(dests[i], &d) < 0)
            abort();
        json_decref(answer_destination(store, "cluster.local", &d));
    }
    /* Whatever pods were stored: their policy, and whether they may ask. */
    const char *key;
    json_t *pod, *a;
    int n = 0;
    json_object_foreach(store_objects(store, REDUCE_POD), key, pod) {
        if (n++ == 4)
            break;
        const char *ns = json_string_value(json_object_get(pod, "namespace"));
        const char *name = json_string_value(json_object_get(pod, "name"));
        answer_pod_policy(store, mesh_values, "cluster.local", ns, name, &a);
        if (!a)
            abort();
        json_decref(a);
        answer_authorize_policy(store, "cluster.local", "spiffe://cluster.local/ns/shop/sa/web",
                                json_string_value(json_array_get(json_object_get(pod, "ips"), 0)), ns, name, err,
                                sizeof err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    struct store *store = store_new(&limits);
    int rc = store_apply_event(store, (const char *)data, size, err, sizeof err);
    if (rc == -EINVAL && strncmp(err, "watch event:", 12) == 0) {
        json_t *docs = yamljson_parse_all((const char *)data, size, "fuzz", err, sizeof err);
        size_t i;
        json_t *doc;
        json_array_foreach(docs, i, doc) {
            json_t *items = json_object_get(doc, "items");
            if (json_is_array(items)) {
                size_t j;
                json_t *item;
                json_array_foreach(items, j, item)
                    store_apply(store, STORE_ADDED, item, err, sizeof err);
            } else {
                store_apply(store, i % 3 == 2 ? STORE_DELETED : STORE_ADDED, doc, err, sizeof err);
            }
        }
        ask(store);
        check_tracking(store, docs);
        json_decref(docs);
    } else {
        ask(store);
    }
    store_free(store);
    return 0;
}
