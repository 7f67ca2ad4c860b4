/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 (RFC 4648, standard alphabet, padded) as Kubernetes writes it in
 * Secret data, kubeconfig *-data fields and caBundle. Strict on decode: a
 * byte outside the alphabet or bad padding is an error, not skipped, so a
 * truncated certificate is reported rather than half-read. */
#ifndef WEFT_CLI_B64_H
#define WEFT_CLI_B64_H
#include <stddef.h>

/* A new NUL-terminated string (the caller frees it), never NULL. */
char *b64_encode(const void *data, size_t len);
/* A new buffer with *outlen bytes (NUL-terminated beyond them, for PEM text),
 * or NULL when text is not base64. Line breaks (as in PEM-wrapped base64)
 * are skipped. */
char *b64_decode(const char *text, size_t len, size_t *outlen);

#endif
