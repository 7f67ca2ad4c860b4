/* SPDX-License-Identifier: Apache-2.0 */
/* The fixed request filter chain (proxy/http_filter.c) that runs the
 * exchange functions declared in proxy/http_msg.h: timeout -> metrics, then
 * the upstream side. */
#ifndef WEFT_PROXY_HTTP_FILTER_H
#define WEFT_PROXY_HTTP_FILTER_H
#include <stddef.h>

#include "http_msg.h"

/* The i-th filter's name in chain order, NULL past the end (for tests and
 * docs: the order is part of the contract). */
const char *http_filter_name(size_t i);

#endif
