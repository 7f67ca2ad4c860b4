/* SPDX-License-Identifier: Apache-2.0 */
/* Base64; see b64.h. */
#include "b64.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = xmalloc((len + 2) / 3 * 4 + 1), *o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = ALPHABET[v >> 18];
        *o++ = ALPHABET[(v >> 12) & 63];
        *o++ = ALPHABET[(v >> 6) & 63];
        *o++ = ALPHABET[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        *o++ = ALPHABET[v >> 18];
        *o++ = ALPHABET[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (len - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        *o++ = ALPHABET[v >> 18];
        *o++ = ALPHABET[(v >> 12) & 63];
        *o++ = ALPHABET[(v >> 6) & 63];
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

char *b64_decode(const char *text, size_t len, size_t *outlen)
{
    char *out = xmalloc(len / 4 * 3 + 4);
    size_t n = 0, q = 0, pad = 0;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\n' || c == '\r')
            continue;
        if (c == '=') {
            pad++;
            if (q < 2 || q + pad > 4)
                goto bad;
            if (q + pad == 4) {
                v <<= 6 * (4 - q);
                out[n++] = (char)(v >> 16);
                if (q == 3)
                    out[n++] = (char)(v >> 8);
                q = 4; /* nothing may follow the padding */
            }
            continue;
        }
        const char *at = c ? strchr(ALPHABET, c) : NULL;
        if (!at || pad || q == 4)
            goto bad;
        v = v << 6 | (unsigned)(at - ALPHABET);
        if (++q == 4) {
            out[n++] = (char)(v >> 16);
            out[n++] = (char)(v >> 8);
            out[n++] = (char)v;
            q = 0;
            v = 0;
        }
    }
    if (q != 0 && q != 4) /* a group cut short, or padding begun and not finished */
        goto bad;
    out[n] = '\0';
    *outlen = n;
    return out;
bad:
    free(out);
    return NULL;
}
