/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for cli/check.c, cli/authz.c and cli/stat.c: the input
 * is read as Prometheus text (stat's parser) and as a snapshot (JSON, as
 * --snapshot reads it), evaluated by weftctl check, with and without --pre,
 * judged by authz why, tabled by stat and read as a Prometheus answer to
 * each of stat's queries. Whatever the objects
 * hold (certificates that do not parse, wrong types, missing keys), nothing
 * may crash or leak, check must give at least one result, and authz why
 * must answer 0, 1 or -1 with a message. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "buf.h"
#include "check.h"
#include "stat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stat_row row = {0};
    char perr[256];
    if (stat_add_metrics(&row, (const char *)data, size, perr, sizeof perr) == 0 && row.scraped != 1)
        abort();
    json_t *snap = json_loadb((const char *)data, size, 0, NULL);
    if (!snap)
        return 0;
    for (int pre = 0; pre <= 1; pre++) {
        json_t *results = check_evaluate(snap, pre);
        if (json_array_size(results) == 0)
            abort();
        struct buf out;
        buf_init(&out, 64 * 1024 * 1024);
        check_render_text(results, &out);
        int rc = check_exit_status(results, 1);
        if (rc < 0 || rc > 2)
            abort();
        buf_free(&out);
        json_decref(results);
    }
    struct buf out;
    char err[2048] = "";
    buf_init(&out, 64 * 1024 * 1024);
    int rc = authz_why(snap, &out, err, sizeof err);
    if (rc < -1 || rc > 1 || (rc == -1 && !err[0]))
        abort();
    buf_free(&out);
    buf_init(&out, 64 * 1024 * 1024);
    rc = stat_render(snap, snap, &out, err, sizeof err);
    if (rc < -1 || rc > 1)
        abort();
    buf_reset(&out);
    rc = stat_render(snap, NULL, &out, err, sizeof err);
    if (rc < -1 || rc > 1)
        abort();
    buf_free(&out);
    /* The same JSON as a Prometheus answer to each of stat's queries: what
     * it builds must read back through the sums. */
    json_t *texts = json_object();
    for (int i = 0; i < STAT_NQUERIES; i++)
        if (stat_prom_text(i, snap, texts, err, sizeof err) < 0 && !err[0])
            abort();
    const char *key;
    json_t *t;
    json_object_foreach(texts, key, t) {
        struct stat_row pr = {0};
        const char *tx = json_string_value(t);
        if (tx && stat_add_metrics(&pr, tx, strlen(tx), perr, sizeof perr) < 0)
            abort();
    }
    json_decref(texts);
    json_decref(snap);
    return 0;
}
