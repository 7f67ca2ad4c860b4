/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the gRPC health response parser (proxy/grpc_health.c)
 * on arbitrary bytes, as an app under probe may send anything. Checks that
 * a parsed answer has a status in range. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../proxy/grpc_health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int status = -2;
    if (grpc_health_parse_response(data, size, &status) == 0 && (status < -1 || status > 1000))
        abort();
    return 0;
}
