/* SPDX-License-Identifier: Apache-2.0 */
/* The heap the discovery store holds, kind by kind: applies the manifests
 * of gen.py (Lists) in the order given and prints the heap in use
 * (mallinfo2) each file added, then the lookup indexes'. One malloc arena,
 * as weft-discovery serve runs. Built against a build's objects:
 *   B=build; cc -O2 -Idiscovery -Ilib -o storemem bench/discovery/storemem.c \
 *     $B/obj/discovery/{addr,answer,grant,proto,reduce,route,store}.o $B/libweft.a \
 *     $(pkg-config --libs jansson openssl libnghttp2 yaml-0.1) -lm
 *   python3 bench/discovery/gen.py objs 500 10000 1000
 *   cd objs && ../storemem . *.json */
#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

static size_t heap_used(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: storemem DIR FILE...\n");
        return 2;
    }
    mallopt(M_ARENA_MAX, 1);
    struct store *s = store_new(NULL);
    size_t base = heap_used(), prev = base;
    for (int a = 2; a < argc; a++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], argv[a]);
        json_error_t jerr;
        json_t *list = json_load_file(path, 0, &jerr), *o;
        if (!list) {
            fprintf(stderr, "storemem: %s: %s\n", path, jerr.text);
            return 1;
        }
        size_t i, n = 0;
        json_array_foreach(json_object_get(list, "items"), i, o) {
            char err[512] = "";
            if (store_apply(s, STORE_ADDED, o, err, sizeof err) < 0) {
                fprintf(stderr, "storemem: %s: %s\n", path, err);
                return 1;
            }
            n++;
        }
        json_decref(list);
        size_t u = heap_used();
        printf("%-24s %6zu objects %8.2f MiB %6.0f B/object\n", argv[a], n, (u - prev) / 1048576.0,
               n ? (double)(u - prev) / (double)n : 0.0);
        prev = u;
    }
    store_index(s, STORE_INDEX_POD_IP, ""); /* built on first use */
    size_t u = heap_used();
    printf("%-24s %23.2f MiB\n", "indexes", (u - prev) / 1048576.0);
    printf("%-24s %23.2f MiB\n", "total", (u - base) / 1048576.0);
    store_free(s);
    return 0;
}
