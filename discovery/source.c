/* SPDX-License-Identifier: Apache-2.0 */
/* The store's sources; see source.h. */
#include "source.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "log.h"
#include "metrics.h"
#include "objdir.h"
#include "xalloc.h"

#if !JSON_HAVE_ATOMIC_BUILTINS && !JSON_HAVE_SYNC_BUILTINS
#error "objects cross threads by reference: jansson must count references atomically"
#endif

#define SOURCE_QUEUE_MAX 4096    /* queued objects before a watch thread waits for the loop */
#define SOURCE_DIR_DEBOUNCE_MS 50
#define SOURCE_DIR_CHECK_MS 2000

/* crd: served only once its CustomResourceDefinition is installed; a 404
 * on its list is "not installed", not an error (K8S_WATCH_ABSENT). */
static const struct {
    const char *path, *name;
    enum reduce_kind kind;
    int crd;
} source_resources[] = {
    {"/api/v1/namespaces", "namespaces", REDUCE_NAMESPACE, 0},
    {"/api/v1/services", "services", REDUCE_SERVICE, 0},
    {"/apis/discovery.k8s.io/v1/endpointslices", "endpointslices", REDUCE_SLICE, 0},
    {"/api/v1/pods", "pods", REDUCE_POD, 0},
    {"/apis/gateway.networking.k8s.io/v1/httproutes", "httproutes", REDUCE_HTTPROUTE, 1},
    {"/apis/gateway.networking.k8s.io/v1/grpcroutes", "grpcroutes", REDUCE_GRPCROUTE, 1},
    {"/apis/gateway.networking.k8s.io/v1beta1/referencegrants", "referencegrants", REDUCE_REFGRANT, 1},
};
#define SOURCE_RESOURCES (sizeof source_resources / sizeof *source_resources)

struct source_item {
    int res;
    enum k8s_watch_kind kind;
    json_t *obj; /* owned */
    uint64_t received_ns;
    struct source_item *next;
};

struct source;

struct source_watch {
    struct source *src;
    int res;
    int on;
    pthread_t tid;
    struct k8s_watch_stats stats;
    json_t *seen;        /* keys received since the list began (loop thread) */
    atomic_int synced;
};

struct source {
    struct ae_loop *loop;
    source_changed_fn *fn;
    void *arg;
    struct store *store;
    atomic_int ready;
    struct metrics_counter rejected;       /* objects the store refused */
    /* k8s */
    struct k8s_client *client;
    struct source_watch w[SOURCE_RESOURCES];
    atomic_int stop;
    pthread_mutex_t lock;
    pthread_cond_t room;
    struct source_item *head, *tail;
    size_t queued;
    int crd_recheck_ms;
    /* directory */
    char *dir;
    int ifd;
    long long debounce, check;
    char fingerprint[64];
    struct metrics_counter reloads[2];     /* ok, error */
    atomic_uint_fast64_t last_change_ms;
};

struct store *source_store(struct source *s)
{
    return s->store;
}

int source_ready(struct source *s)
{
    return atomic_load(&s->ready);
}

/* ---------- directory ---------- */

/* Names, sizes and times of the directory's entries, hashed (FNV-1a): the
 * file-changed check that also catches what inotify cannot see. */
static void source_dir_fingerprint(const char *dir, char out[64])
{
    uint64_t h = 1469598103934665603ull;
    char cmd[64];
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(out, 64, "missing");
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[4352];
        /* Hidden entries are not read (objdir.h), and ".." changes with its
         * parent: counting it would reload on every write beside DIR. A
         * ConfigMap volume's visible files are symlinks into its hidden
         * ..data, so stat() below still sees a swap. */
        if (e->d_name[0] == '.')
            continue;
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) < 0)
            continue;
        uint64_t parts[4] = {(uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec,
                             (uint64_t)st.st_ino};
        uint64_t eh = 1469598103934665603ull;
        for (const char *p = e->d_name; *p; p++)
            eh = (eh ^ (unsigned char)*p) * 1099511628211ull;
        for (int i = 0; i < 4; i++)
            eh = (eh ^ parts[i]) * 1099511628211ull;
        h += eh; /* order-free: readdir's order is not stable */
    }
    closedir(d);
    snprintf(cmd, sizeof cmd, "%016llx", (unsigned long long)h);
    snprintf(out, 64, "%s", cmd);
}

/* A reload took objects in with annotations ignored: the count and the
 * latest message (each object's answer names all of its own). */
static void source_log_warnings(const char *dir, const struct store *st, unsigned long n)
{
    char last[512];
    snprintf(last, sizeof last, "%s", store_last_warning(st));
    log_warn("annotation ignored, the default applies", "dir=\"%s\" objects=%lu last=\"%s\"", dir, n,
             log_clean(last));
}

static int source_dir_reload(struct source *s, char *err, size_t errlen)
{
    struct store *fresh = store_new(NULL);
    if (objdir_load(fresh, s->dir, err, errlen) < 0) {
        store_free(fresh);
        metrics_inc(&s->reloads[1]);
        return -EINVAL;
    }
    metrics_inc(&s->reloads[0]);
    if (!s->store) {
        s->store = fresh;
        atomic_store(&s->last_change_ms, k8s_monotonic_ms());
        if (store_warnings(fresh))
            source_log_warnings(s->dir, fresh, store_warnings(fresh));
        return 0;
    }
    /* Into the store in force, object by object: only what changed in the
     * directory is touched, so only the answers it affects are recomputed. */
    unsigned long before = store_revision(s->store), warned = store_warnings(s->store);
    store_sync(s->store, fresh);
    if (store_warnings(s->store) != warned)
        source_log_warnings(s->dir, s->store, store_warnings(s->store) - warned);
    store_free(fresh);
    malloc_trim(0); /* two stores were alive for a moment: give the fresh one's pages back */
    if (store_revision(s->store) != before) {
        atomic_store(&s->last_change_ms, k8s_monotonic_ms());
        if (s->fn)
            s->fn(s->arg, s->store, metrics_now_ns());
    }
    return 0;
}

static long source_dir_debounced(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct source *s = data;
    char err[1024];
    s->debounce = 0;
    source_dir_fingerprint(s->dir, s->fingerprint);
    if (source_dir_reload(s, err, sizeof err) < 0)
        log_warn("objects directory not reloaded, the last good objects stay in force", "error=\"%s\"", err);
    else
        log_info("objects directory reloaded", "dir=%s", s->dir);
    return -1;
}

static void source_dir_kick(struct source *s)
{
    if (!s->debounce)
        s->debounce = ae_timer_add(s->loop, SOURCE_DIR_DEBOUNCE_MS, source_dir_debounced, s);
}

static void source_dir_inotify(struct ae_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)mask;
    struct source *s = data;
    char events[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int any = 0;
    while (read(fd, events, sizeof events) > 0)
        any = 1;
    if (any)
        source_dir_kick(s);
}

static long source_dir_check(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    struct source *s = data;
    char fp[64];
    source_dir_fingerprint(s->dir, fp);
    if (strcmp(fp, s->fingerprint) != 0)
        source_dir_kick(s);
    return SOURCE_DIR_CHECK_MS;
}

struct source *source_dir_new(struct ae_loop *loop, const char *dir, source_changed_fn *fn, void *arg, char *err,
                              size_t errlen)
{
    struct source *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->fn = fn;
    s->arg = arg;
    s->dir = xstrdup(dir);
    s->ifd = -1;
    s->rejected.labels = "";
    s->reloads[0].labels = "result=\"ok\"";
    s->reloads[1].labels = "result=\"error\"";
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->room, NULL);
    source_dir_fingerprint(dir, s->fingerprint);
    if (source_dir_reload(s, err, errlen) < 0) {
        source_free(s);
        return NULL;
    }
    s->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    /* A ConfigMap volume swaps a ..data symlink: the directory's own entries change. */
    if (s->ifd < 0 ||
        inotify_add_watch(s->ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                                           IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) < 0 ||
        ae_file_add(loop, s->ifd, AE_READABLE, source_dir_inotify, s) < 0)
        log_warn("inotify unavailable: the objects directory is checked every 2 s", "dir=%s error=\"%s\"", dir,
                 strerror(errno));
    s->check = ae_timer_add(loop, SOURCE_DIR_CHECK_MS, source_dir_check, s);
    atomic_store(&s->ready, 1);
    return s;
}

/* ---------- Kubernetes ---------- */

/* On a watch thread: queue, waiting while the loop is behind. */
static void source_on_watch(void *arg, enum k8s_watch_kind kind, json_t *obj, const char *rv)
{
    (void)rv;
    struct source_watch *w = arg;
    struct source *s = w->src;
    struct source_item *it = xcalloc(1, sizeof *it);
    it->res = w->res;
    it->kind = kind;
    /* Handed over, not copied: jansson's reference counts are atomic
     * (JSON_HAVE_ATOMIC_BUILTINS), the watch thread does not touch obj
     * again beyond dropping its list page's reference, and the queue's
     * lock orders what it wrote before. A deep copy of every list item
     * held a second tree of each 500-object page while the loop caught up. */
    it->obj = obj ? json_incref(obj) : NULL;
    it->received_ns = metrics_now_ns();
    pthread_mutex_lock(&s->lock);
    while (s->queued >= SOURCE_QUEUE_MAX && !atomic_load(&s->stop))
        pthread_cond_wait(&s->room, &s->lock);
    if (s->tail)
        s->tail->next = it;
    else
        s->head = it;
    s->tail = it;
    s->queued++;
    pthread_mutex_unlock(&s->lock);
    ae_wakeup(s->loop);
}

static void *source_watch_thread(void *arg)
{
    struct source_watch *w = arg;
    /* managedFields: no reduce reads it, and it was half of a Pod list's
     * parse (bench/RESULTS.md). */
    struct k8s_watch_opts o = {.path = source_resources[w->res].path, .max_event = STORE_MAX_EVENT_BYTES,
                               .absent_recheck_ms = source_resources[w->res].crd ? w->src->crd_recheck_ms : 0,
                               .drop_member = "managedFields"};
    k8s_watch_run(w->src->client, &o, source_on_watch, w, &w->src->stop, &w->stats);
    return NULL;
}

/* A list ended: what the store holds of that kind and the list did not have is gone. */
static void source_resync(struct source *s, struct source_watch *w)
{
    enum reduce_kind kind = source_resources[w->res].kind;
    json_t *table = store_objects(s->store, kind), *gone = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(table, key, v) {
        if (!json_object_get(w->seen, key))
            json_array_append_new(gone, json_string(key));
    }
    size_t i;
    json_array_foreach(gone, i, v) store_delete_key(s->store, kind, json_string_value(v));
    if (json_array_size(gone))
        log_info("re-list removed objects deleted while not watching", "resource=%s count=%zu",
                 source_resources[w->res].name, json_array_size(gone));
    json_decref(gone);
    json_decref(w->seen);
    w->seen = NULL;
    atomic_store(&w->synced, 1);
    int all = 1;
    for (size_t r = 0; r < SOURCE_RESOURCES; r++)
        if (s->w[r].on && !atomic_load(&s->w[r].synced))
            all = 0;
    if (all && !atomic_load(&s->ready)) {
        size_t absent = 0;
        for (size_t r = 0; r < SOURCE_RESOURCES; r++)
            absent += s->w[r].on && atomic_load(&s->w[r].stats.absent);
        atomic_store(&s->ready, 1);
        log_info("every watched resource listed: ready", "resources=%zu not_installed=%zu", SOURCE_RESOURCES, absent);
    }
}

void source_drain(struct source *s)
{
    if (!s->client)
        return;
    pthread_mutex_lock(&s->lock);
    struct source_item *it = s->head;
    s->head = s->tail = NULL;
    s->queued = 0;
    pthread_cond_broadcast(&s->room);
    pthread_mutex_unlock(&s->lock);
    unsigned long before = store_revision(s->store);
    uint64_t first = 0;
    char err[1024], key[600];
    while (it) {
        struct source_item *next = it->next;
        struct source_watch *w = &s->w[it->res];
        if (!first)
            first = it->received_ns;
        switch (it->kind) {
        case K8S_WATCH_RESET:
            json_decref(w->seen);
            w->seen = json_object();
            break;
        case K8S_WATCH_SYNCED:
            source_resync(s, w);
            break;
        case K8S_WATCH_ABSENT:
            /* Not installed: a list of nothing. What the store held of it
             * (its CRD deleted) goes, and it counts as listed for /readyz. */
            json_decref(w->seen);
            w->seen = json_object();
            source_resync(s, w);
            break;
        case K8S_WATCH_BOOKMARK:
            break;
        default: {
            enum store_event ev = it->kind == K8S_WATCH_ADDED ? STORE_ADDED
                                  : it->kind == K8S_WATCH_MODIFIED ? STORE_MODIFIED : STORE_DELETED;
            err[0] = '\0';
            int rc = store_apply(s->store, ev, it->obj, err, sizeof err);
            if (rc < 0 && rc != -ENOTSUP) {
                metrics_inc(&s->rejected);
                log_warn("object refused, its last good version stays in force", "resource=%s error=\"%s\"",
                         source_resources[it->res].name, err);
            } else if (rc == 0 && err[0]) {
                log_warn("annotation ignored, the default applies", "resource=%s error=\"%s\"",
                         source_resources[it->res].name, log_clean(err));
            }
            if (w->seen && reduce_key(it->obj, source_resources[it->res].kind, key, sizeof key, err, sizeof err) == 0)
                json_object_set_new(w->seen, key, json_true());
        }
        }
        json_decref(it->obj);
        free(it);
        it = next;
    }
    if (store_revision(s->store) != before) {
        atomic_store(&s->last_change_ms, k8s_monotonic_ms());
        if (s->fn)
            s->fn(s->arg, s->store, first);
    }
}

struct source *source_k8s_new(struct ae_loop *loop, struct k8s_client *client, int routes, int crd_recheck_ms,
                              source_changed_fn *fn, void *arg)
{
    struct source *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->crd_recheck_ms = crd_recheck_ms;
    s->fn = fn;
    s->arg = arg;
    s->client = client;
    s->ifd = -1;
    s->store = store_new(NULL);
    s->rejected.labels = "";
    s->reloads[0].labels = "result=\"ok\"";
    s->reloads[1].labels = "result=\"error\"";
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->room, NULL);
    for (size_t r = 0; r < SOURCE_RESOURCES; r++) {
        struct source_watch *w = &s->w[r];
        w->src = s;
        w->res = (int)r;
        if (!routes && source_resources[r].crd)
            continue;
        w->on = 1;
        pthread_create(&w->tid, NULL, source_watch_thread, w);
    }
    return s;
}

void source_free(struct source *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, 1);
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->room);
    pthread_mutex_unlock(&s->lock);
    for (size_t r = 0; r < SOURCE_RESOURCES; r++) {
        if (s->w[r].on)
            pthread_join(s->w[r].tid, NULL);
        json_decref(s->w[r].seen);
    }
    for (struct source_item *it = s->head, *next; it; it = next) {
        next = it->next;
        json_decref(it->obj);
        free(it);
    }
    if (s->ifd >= 0) {
        ae_file_del(s->loop, s->ifd, AE_READABLE);
        close(s->ifd);
    }
    if (s->debounce)
        ae_timer_del(s->loop, s->debounce);
    if (s->check)
        ae_timer_del(s->loop, s->check);
    store_free(s->store);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->room);
    free(s->dir);
    free(s);
}

void source_metrics(struct source *s, struct buf *out)
{
    uint64_t now = k8s_monotonic_ms();
    uint64_t last = atomic_load(&s->last_change_ms);
    metrics_header(out, "weft_discovery_last_update_age_seconds", "gauge",
                   "Seconds since the store last changed (an event applied or the directory reloaded).");
    metrics_gauge(out, "weft_discovery_last_update_age_seconds", "", last ? (double)(now - last) / 1000.0 : -1);
    metrics_counters(out, "weft_discovery_objects_rejected_total",
                     "Objects the store refused (invalid, or their kind full); the last good version stays.",
                     &s->rejected, 1);
    metrics_header(out, "weft_discovery_annotations_ignored_total", "counter",
                   "Objects taken in with a weft.dev/ annotation that does not parse ignored (its default applies).");
    metrics_gauge(out, "weft_discovery_annotations_ignored_total", "", s->store ? (double)store_warnings(s->store) : 0);
    if (s->dir) {
        metrics_counters(out, "weft_discovery_source_reloads_total",
                         "Reloads of the objects directory, by whether it loaded.", s->reloads, 2);
        return;
    }
    static const struct {
        const char *name, *type, *help;
    } series[] = {
        {"weft_discovery_watch_staleness_seconds", "gauge",
         "Seconds the cache of a resource may be behind the API server: 0 while its watch is open on a complete list."},
        {"weft_discovery_watch_up", "gauge", "1 while the resource's watch is open on a complete list."},
        {"weft_discovery_watch_lists_total", "counter", "Lists completed, by resource."},
        {"weft_discovery_watch_events_total", "counter", "ADDED, MODIFIED and DELETED events received, by resource."},
        {"weft_discovery_watch_bookmarks_total", "counter", "BOOKMARK events received, by resource."},
        {"weft_discovery_watch_gone_total", "counter", "410 Gone answers that forced a new list, by resource."},
        {"weft_discovery_watch_errors_total", "counter", "Failed lists or watches followed by a backoff, by resource."},
        {"weft_discovery_resource_installed", "gauge",
         "0 while the resource's last list answered 404 (its CRD not installed; listed again periodically), else 1."},
    };
    for (size_t m = 0; m < sizeof series / sizeof *series; m++) {
        metrics_header(out, series[m].name, series[m].type, series[m].help);
        for (size_t r = 0; r < SOURCE_RESOURCES; r++) {
            struct k8s_watch_stats *st = &s->w[r].stats;
            if (!s->w[r].on)
                continue;
            double v = 0;
            switch (m) {
            case 0: v = k8s_watch_staleness_seconds(st, now); break;
            case 1: v = atomic_load(&st->connected); break;
            case 2: v = (double)atomic_load(&st->lists); break;
            case 3: v = (double)atomic_load(&st->events); break;
            case 4: v = (double)atomic_load(&st->bookmarks); break;
            case 5: v = (double)atomic_load(&st->gone); break;
            case 6: v = (double)atomic_load(&st->errors); break;
            default: v = !atomic_load(&st->absent); break;
            }
            char labels[64];
            snprintf(labels, sizeof labels, "resource=\"%s\"", source_resources[r].name);
            metrics_gauge(out, series[m].name, labels, v);
        }
    }
}
