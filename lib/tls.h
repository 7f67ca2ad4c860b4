/* SPDX-License-Identifier: Apache-2.0 */
/* OpenSSL pieces every TLS-speaking part needs the same way: the queued
 * error as a message for a person, and the SPIFFE ID a certificate carries. */
#ifndef WEFT_TLS_H
#define WEFT_TLS_H
#include <stddef.h>
#include <openssl/x509.h>

#include "spiffe.h"

/* "what: <first queued OpenSSL error>" into err; clears the queue so the
 * next call on this thread does not report a stale error. */
void tls_error(char *err, size_t errlen, const char *what);

/* The single SPIFFE URI SAN of x: 0, -ENOENT (none, or several: an
 * identity must be unambiguous) or -EINVAL (one that does not parse). */
int tls_cert_spiffe(X509 *x, struct spiffe_id *id);

#endif
