/* SPDX-License-Identifier: Apache-2.0 */
/* The pure helpers of the exchange model (proxy/http_msg.h): what each
 * cause is answered with and called, which fields are connection-specific,
 * and the path a log line or a metric may show. No I/O, no state. */
#include <string.h>
#include <strings.h>

#include "http_msg.h"

static const struct {
    const char *name;
    int status;
} http_causes[HTTP_CAUSE_COUNT] = {
    [HTTP_CAUSE_NONE] = {"none", 0},
    [HTTP_CAUSE_REFUSED] = {"refused", 502},
    [HTTP_CAUSE_RESET] = {"reset", 502},
    [HTTP_CAUSE_TLS] = {"tls", 502},
    [HTTP_CAUSE_BAD_RESPONSE] = {"bad_response", 502},
    [HTTP_CAUSE_CONNECT_TIMEOUT] = {"connect_timeout", 504},
    [HTTP_CAUSE_REQUEST_TIMEOUT] = {"request_timeout", 504},
    [HTTP_CAUSE_HEADER_TIMEOUT] = {"response_header_timeout", 504},
    [HTTP_CAUSE_NO_UPSTREAM] = {"no_upstream", 503},
    [HTTP_CAUSE_DRAINING] = {"draining", 503},
    [HTTP_CAUSE_BAD_REQUEST] = {"bad_request", 400},
    [HTTP_CAUSE_DOWNSTREAM_GONE] = {"downstream_gone", 0},
    [HTTP_CAUSE_DENIED] = {"denied", 403},
};

int http_cause_status(enum http_cause c)
{
    return (unsigned)c < HTTP_CAUSE_COUNT ? http_causes[c].status : 0;
}

const char *http_cause_name(enum http_cause c)
{
    return (unsigned)c < HTTP_CAUSE_COUNT ? http_causes[c].name : "?";
}

int http_name_is(const char *name, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(name, lit, len) == 0;
}

/* Whether the comma list (Connection's value) names this field. */
static int http_list_has(const char *list, size_t list_len, const char *name, size_t len)
{
    size_t i = 0;
    while (i < list_len) {
        while (i < list_len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            i++;
        size_t start = i;
        while (i < list_len && list[i] != ',' && list[i] != ' ' && list[i] != '\t')
            i++;
        if (i - start == len && strncasecmp(list + start, name, len) == 0)
            return 1;
    }
    return 0;
}

int http_field_is_hop_by_hop(const char *name, size_t len, const char *connection, size_t connection_len)
{
    static const char *const fixed[] = {"connection", "keep-alive", "proxy-connection", "te",
                                        "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (http_name_is(name, len, fixed[i]))
            return 1;
    return connection && http_list_has(connection, connection_len, name, len);
}

void http_path_no_query(const char *target, size_t len, char *out, size_t outlen)
{
    size_t n = 0;
    if (outlen == 0)
        return;
    while (n < len && target[n] != '?' && target[n] != '#')
        n++;
    if (n > outlen - 1)
        n = outlen - 1;
    memcpy(out, target, n);
    out[n] = '\0';
}
