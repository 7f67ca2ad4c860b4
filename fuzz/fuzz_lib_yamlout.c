/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for lib/yamlout.c: whatever lib/yamljson.c reads from the
 * input (a multi-document stream) is written back as YAML, which must read
 * back as equal JSON: no string may come back as another type, no key or
 * document may be lost. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "buf.h"
#include "yamljson.h"
#include "yamlout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    json_t *docs = yamljson_parse_all((const char *)data, size, "fuzz", err, sizeof err);
    if (!docs)
        return 0;
    struct buf out;
    buf_init(&out, 64 * 1024 * 1024);
    if (yamlout_write(docs, &out, err, sizeof err) < 0)
        abort();
    json_t *again = yamljson_parse_all(out.data ? out.data : "", out.len, "again", err, sizeof err);
    /* The written stream may pass the reader's size limit only if the input was near it. */
    if (!again && out.len <= YAMLJSON_MAX_BYTES)
        abort();
    if (again && !json_equal(docs, again))
        abort();
    json_decref(again);
    json_decref(docs);
    buf_free(&out);
    return 0;
}
