/* SPDX-License-Identifier: Apache-2.0 */
/* The check the kubelet makes for a grpc probe: grpc.health.v1.Health/Check
 * over HTTP/2 without TLS, a success only when the answer says SERVING.
 * /app-health runs it for probes the webhook rewrote, so gRPC probes keep
 * working under STRICT mTLS. The message codecs are pure (and fuzzed);
 * grpc_health_check does blocking I/O on the admin thread, bounded by the
 * probe's timeout. */
#ifndef WEFT_PROXY_GRPC_HEALTH_H
#define WEFT_PROXY_GRPC_HEALTH_H
#include <stddef.h>

#define GRPC_HEALTH_MAX_SERVICE 1024   /* the service name in a request */
#define GRPC_HEALTH_MAX_RESPONSE 4096  /* response message bytes kept */

/* HealthCheckResponse.ServingStatus */
enum grpc_serving_status {
    GRPC_STATUS_UNKNOWN = 0,
    GRPC_STATUS_SERVING = 1,
    GRPC_STATUS_NOT_SERVING = 2,
    GRPC_STATUS_SERVICE_UNKNOWN = 3,
};

/* The length-prefixed gRPC message HealthCheckRequest{service}: the number
 * of bytes written, or -ENOSPC, or -EINVAL for a service over the limit. */
int grpc_health_request(const char *service, unsigned char *out, size_t outlen);
/* One length-prefixed, uncompressed HealthCheckResponse: 0 and *status (a
 * status field that is absent means UNKNOWN, as in proto3), or -EBADMSG. */
int grpc_health_parse_response(const unsigned char *body, size_t len, int *status);
const char *grpc_health_status_name(int status);

/* Runs Check for service on fd (a connected TCP socket) with authority as
 * :authority, within timeout_ms. 1 when the app answers SERVING, else 0;
 * detail says what happened either way. */
int grpc_health_check(int fd, const char *authority, const char *service, unsigned timeout_ms, char *detail,
                      size_t detaillen);

#endif
