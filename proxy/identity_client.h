/* SPDX-License-Identifier: Apache-2.0 */
/* weft-proxy's side of issue 5: gets the pod's SPIFFE certificate from
 * weft-identity and keeps it fresh. A fresh ECDSA P-256 key per request, made
 * and kept in memory only; a CSR for spiffe://<td>/ns/<ns>/sa/<sa>; POST
 * /v1/certificates over HTTPS (lib/k8s) with the projected token, the server
 * verified against WEFT_TRUST_BUNDLE as WEFT_IDENTITY_SERVER_NAME; the answer
 * goes to the credential store (creds_set_identity_pem), so new handshakes
 * present it and open connections keep theirs. Renewal at 50-70 % of the
 * lifetime (random within), exponential backoff with jitter while
 * weft-identity cannot be reached, an error logged once a third of the
 * lifetime is left without a renewal.
 *
 * identity_client_start runs all this on a thread of its own, so nothing here
 * touches a worker's event loop. The pure parts are exported for the unit
 * tests. */
#ifndef WEFT_PROXY_IDENTITY_CLIENT_H
#define WEFT_PROXY_IDENTITY_CLIENT_H
#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#include "buf.h"
#include "creds.h"

#define IDC_PATH "/v1/certificates"
#define IDC_MIN_DELAY_MS 200L         /* never renew sooner than this */
#define IDC_BACKOFF_FIRST_MS 500L     /* first retry after a failure */
#define IDC_BACKOFF_MAX_MS 30000L     /* retries are at least this frequent */
#define IDC_MAX_ANSWER (1024 * 1024)

struct ae_loop;
struct proxy_config;
/* Called once by main.c, before any worker runs, when WEFT_IDENTITY_ADDR is
 * set (static --cert/--key files, when also given, are loaded first). Starts
 * the client's thread, which feeds creds with creds_set_identity_pem and
 * creds_set_trust_pem (thread-safe). 0, or -EINVAL for a bad address, server
 * name, namespace or service account. */
int identity_client_start(struct ae_loop *loop, struct creds *creds, const struct proxy_config *cfg);
/* Stops the thread (for tests and orderly exits); safe when never started. */
void identity_client_stop(void);
/* Appends weft_proxy_identity_renewals_total{result=...} to out (for the
 * admin server's /metrics). 0 or -E2BIG. */
int identity_client_render_metrics(struct buf *out);

/* Pure parts. */

/* Milliseconds from now until the renewal of a certificate received at
 * issued_at and valid until not_after: at issued_at + (0.5 + 0.2 * r) of the
 * lifetime, r in [0, 1). At least IDC_MIN_DELAY_MS. */
long idc_renew_delay_ms(time_t now, time_t issued_at, time_t not_after, double r);
/* Delay before retry number failures (1 = first retry): IDC_BACKOFF_FIRST_MS
 * doubled per failure up to IDC_BACKOFF_MAX_MS, times a jitter of 0.8 + 0.4 * r.
 * When a certificate is held (not_after > 0), never past half of its
 * remaining time (but at least IDC_MIN_DELAY_MS). */
long idc_backoff_ms(unsigned failures, double r, time_t now, time_t not_after);
/* A PEM CSR (empty subject, one URI SAN) for key; a new string in *pem. */
int idc_make_csr(EVP_PKEY *key, const char *spiffe_uri, char **pem, char *err, size_t errlen);
/* weft-identity's 200 answer: leaf + chain as one PEM (new string, *len
 * bytes), notAfter parsed. The spiffeId must be expect_uri. 0 or -EINVAL. */
int idc_parse_answer(const json_t *answer, const char *expect_uri, char **pem, size_t *len, time_t *not_after,
                     char *err, size_t errlen);
/* "host:port" or "[v6]:port": 0 or -EINVAL. */
int idc_split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen);

#endif
