/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy's credential store: its own certificate chain and key, and the
 * trust bundle, turned into one server and one client SSL_CTX per
 * generation. Feeders (static files with --cert/--key/--trust-bundle, or the
 * identity client in memory) replace the identity or the trust anchors; each
 * replacement builds a new generation and swaps it in atomically, so new
 * handshakes use the new credentials while established connections keep the
 * SSL objects (and so the SSL_CTX references) they were made with.
 *
 * Thread safety: every function may be called from any thread (workers,
 * the admin thread, an identity client thread); a mutex guards the swap.
 * Nothing here logs or copies key material outside OpenSSL objects. */
#ifndef WEFT_PROXY_CREDS_H
#define WEFT_PROXY_CREDS_H
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "spiffe.h"

#define CREDS_ALPN "weft/1"     /* opaque TCP between proxies */
#define CREDS_ALPN_H2 "weft/h2" /* HTTP requests as streams of one HTTP/2 connection (upstream_pool.h) */
#define CREDS_MAX_PEM (1024 * 1024) /* a chain or bundle larger than this is refused */

struct creds;

/* trust_domain: the only trust domain whose identities are accepted (the
 * verify step rejects peer certificates whose URI SAN names another one). */
struct creds *creds_new(const char *trust_domain);
void creds_free(struct creds *c);

/* Replaces the workload identity: chain_pem is the leaf certificate followed
 * by intermediates (PEM, len bytes, need not be NUL-terminated); key is the
 * leaf's private key. The store takes its own reference on key
 * (EVP_PKEY_up_ref): the caller keeps and frees its own. Refused with -EINVAL
 * and a reason in err (never key or certificate bytes) when the PEM does not
 * parse, the key does not match the leaf, the leaf is expired or not yet
 * valid, or the leaf's URI SAN is not a SPIFFE ID of the store's trust
 * domain. On error the previous identity stays in force. */
int creds_set_identity_pem(struct creds *c, const char *chain_pem, size_t len, EVP_PKEY *key, char *err,
                           size_t errlen);
/* Replaces the trust anchors (one or more PEM CA certificates). Same error
 * rules; the previous bundle stays in force on error. */
int creds_set_trust_pem(struct creds *c, const char *pem, size_t len, char *err, size_t errlen);

/* Static files. creds_load_files reads all three now (0 or -errno with err
 * naming the file); any of the paths may be NULL when an in-memory feeder
 * provides that part. creds_reload_if_changed re-reads whichever of the files
 * changed (mtime, size, inode) since the last successful load; it returns 1
 * when a new generation was installed, 0 when nothing changed, -errno when a
 * changed file did not load (the old credentials stay). Call it periodically. */
int creds_load_files(struct creds *c, const char *cert_path, const char *key_path, const char *trust_path,
                     char *err, size_t errlen);
int creds_reload_if_changed(struct creds *c, char *err, size_t errlen);

/* notAfter of the current leaf, 0 when no identity is loaded. */
time_t creds_not_after(struct creds *c);
/* 1 when an identity and a trust bundle are loaded and the leaf is currently
 * valid (what /ready requires). */
int creds_ready(struct creds *c);
/* The current leaf's SPIFFE ID; 0 or -ENOENT. */
int creds_local_id(struct creds *c, struct spiffe_id *out);
/* Counter bumped on every installed generation (for logs and tests). */
unsigned long creds_generation(struct creds *c);

/* A new reference to the current generation's context (SSL_CTX_free it when
 * done; an SSL made from it holds its own reference), or NULL when not ready.
 * Server contexts require and verify a client certificate and select ALPN
 * weft/1 or weft/h2; client contexts present the identity, offer weft/1 and verify the
 * server. Both are TLS 1.3 only. */
SSL_CTX *creds_server_ctx(struct creds *c);
SSL_CTX *creds_client_ctx(struct creds *c);
/* Whether the handshake settled on ALPN weft/h2 (servers select it or
 * weft/1, whichever the client offers; a pooled HTTP/2 client offers it
 * alone with SSL_set_alpn_protos). */
int creds_alpn_is_h2(const SSL *ssl);

/* A new client context (SSL_CTX_free it) for a control-plane server such
 * as weft-discovery: the current identity as the client certificate, the
 * server's chain verified against the trust bundle (its name is the
 * caller's to set on each SSL), TLS 1.3, the given ALPN list (wire
 * format). Built from the credentials current at the call, so a rotated
 * certificate is presented from the next connection on. NULL when not
 * ready. */
SSL_CTX *creds_control_ctx(struct creds *c, const unsigned char *alpn, size_t alpnlen);

/* Failure reasons of the verify step, for the metrics (bounded set). */
enum creds_fail {
    CREDS_FAIL_NONE,
    CREDS_FAIL_NO_PEER_CERT,     /* "no_peer_cert" */
    CREDS_FAIL_EXPIRED,          /* "expired" (or not yet valid) */
    CREDS_FAIL_UNKNOWN_CA,       /* "unknown_ca": chain does not end in the bundle */
    CREDS_FAIL_BAD_CERT,         /* "bad_cert": other verification failures */
    CREDS_FAIL_NO_SPIFFE_ID,     /* "no_spiffe_id": no single valid Weft SPIFFE URI SAN */
    CREDS_FAIL_TRUST_DOMAIN,     /* "wrong_trust_domain" */
    CREDS_FAIL_WRONG_ID,         /* "unexpected_identity": not the ID the config expects */
    CREDS_FAIL_ALPN,             /* "no_alpn" */
    CREDS_FAIL_PROTOCOL,         /* "protocol": any other handshake error */
    CREDS_FAIL_TIMEOUT,          /* "timeout" */
    CREDS_FAIL_PEER_CLOSED,      /* "peer_closed" */
    CREDS_FAIL_NOT_READY,        /* "no_credentials": we have no certificate */
    CREDS_FAIL_COUNT
};
const char *creds_fail_name(enum creds_fail f);

/* Per-SSL verification result, filled by the verify callback; attach with
 * creds_ssl_attach before the handshake (it clears fail and id; expect_id is
 * the caller's: initialise it). expect_id, when non-NULL, is the exact SPIFFE
 * URI the peer must present (outbound). The struct must outlive the SSL. */
struct creds_peer {
    enum creds_fail fail;
    struct spiffe_id id;  /* valid when fail == CREDS_FAIL_NONE after the handshake */
    const char *expect_id;
};
int creds_ssl_attach(SSL *ssl, struct creds_peer *peer);
/* After a successful handshake: re-checks the leaf's SPIFFE ID (the verify
 * callback may not run for every case) and fills peer->id. 0 or -EPERM with
 * peer->fail set. */
int creds_peer_finish(SSL *ssl, struct creds_peer *peer, const char *trust_domain);
/* Maps a failed handshake (SSL_get_error and the error queue) to a reason,
 * preferring what the verify callback recorded. Clears the error queue. */
enum creds_fail creds_classify_failure(SSL *ssl, struct creds_peer *peer, int ssl_err);


#endif
