/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for lib/jsondrop.c, against jansson: what it writes is
 * within its bound and parses as the input's own tree without the dropped
 * members; it takes every text jansson takes (short of the nesting limit
 * and jansson's NUL bytes),
 * and a text without the name parses after it exactly as before. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsondrop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char name[] = "managedFields";

/* j without any member called name, at every depth (in place). */
static void strip(json_t *j)
{
    if (json_is_object(j)) {
        json_object_del(j, name);
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) strip(v);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) strip(v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char *out = malloc(size ? size : 1);
    ssize_t n = jsondrop_member(in, size, name, out);
    if (n > (ssize_t)size)
        abort();
    json_t *orig = json_loadb(in, size, JSON_DECODE_ANY, NULL);
    json_t *after = n >= 0 ? json_loadb(out, (size_t)n, JSON_DECODE_ANY, NULL) : NULL;
    /* As strict as jansson, no stricter: nesting 2048 deep takes 2048 bytes,
     * and jansson's reader passes over a NUL byte between tokens (refused
     * here: the fallback parses the text itself, so nothing changes). */
    if (orig && n < 0 && size < JSONDROP_MAX_DEPTH && !memchr(in, '\0', size))
        abort();
    if (orig && n >= 0) {
        if (!after)
            abort();
        /* An escaped spelling of the name is a member jansson sees as the name. */
        if (!memchr(in, '\\', size)) {
            strip(orig);
            if (!json_equal(orig, after))
                abort();
        }
    }
    if (n >= 0 && !memmem(in, size, name, sizeof name - 1) && !orig != !after)
        abort();
    json_decref(orig);
    json_decref(after);
    free(out);
    return 0;
}
