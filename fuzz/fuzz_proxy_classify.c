/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: weft-proxy's first-bytes classification (proxy/classify.c)
 * on arbitrary bytes. Checks the answer is one of the four and that no
 * prefix of the input contradicts the final answer once decided. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../proxy/classify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum classify_result full = classify_first_bytes(data, size);
    if (full > CLASSIFY_PLAINTEXT)
        abort();
    /* A decided prefix must agree with the whole. */
    for (size_t k = 0; k < size && k < 64; k++) {
        enum classify_result r = classify_first_bytes(data, k);
        if (r != CLASSIFY_NEED_MORE && r != full)
            abort();
    }
    return 0;
}
