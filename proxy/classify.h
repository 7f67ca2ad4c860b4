/* SPDX-License-Identifier: Apache-2.0 */
/* First-bytes classification of an inbound connection (pure, fuzzed): is it
 * a TLS ClientHello offering ALPN weft/1 (a meshed peer), some other TLS, or
 * plaintext? The ClientHello must fit in its first record, which every
 * weft-proxy client's does. */
#ifndef WEFT_PROXY_CLASSIFY_H
#define WEFT_PROXY_CLASSIFY_H
#include <stddef.h>

#define CLASSIFY_MAX_BYTES (5 + 16384) /* one TLS record: never peek beyond */

enum classify_result {
    CLASSIFY_NEED_MORE,  /* could still be a weft ClientHello: wait for more */
    CLASSIFY_WEFT_TLS,   /* ClientHello offering weft/1 or weft/h2 */
    CLASSIFY_OTHER_TLS,  /* a ClientHello offering neither */
    CLASSIFY_PLAINTEXT,  /* anything else */
};

enum classify_result classify_first_bytes(const unsigned char *p, size_t len);
const char *classify_name(enum classify_result r);

#endif
