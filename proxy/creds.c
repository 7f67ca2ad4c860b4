/* SPDX-License-Identifier: Apache-2.0 */
/* The credential store (see creds.h): parses PEM identities and bundles,
 * validates them, and publishes a new pair of SSL_CTX per change under a
 * mutex. Also the TLS verify callback that turns chain and SPIFFE checks
 * into the bounded failure reasons of the metrics. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "creds.h"
#include "errbuf.h"
#include "filestamp.h"
#include "tls.h"
#include "xalloc.h"

struct creds_file {
    char *path;
    struct file_stamp st; /* as of the last successful load */
};

struct creds {
    pthread_mutex_t mu;
    char trust_domain[SPIFFE_MAX_TRUST_DOMAIN + 1];
    X509 *leaf;
    STACK_OF(X509) *chain;     /* intermediates, may be empty */
    EVP_PKEY *key;
    STACK_OF(X509) *anchors;
    struct spiffe_id local_id;
    time_t not_after;
    SSL_CTX *server, *client;  /* current generation, NULL until both parts exist */
    unsigned long generation;
    struct creds_file cert_file, key_file, trust_file;
};

#define CREDS_READ_BUFFER (4 * (16384 + 256))

static int creds_ex_index = -1;
static pthread_once_t creds_once = PTHREAD_ONCE_INIT;

static void creds_init_once(void)
{
    creds_ex_index = SSL_get_ex_new_index(0, "weft creds_peer", NULL, NULL, NULL);
}

const char *creds_fail_name(enum creds_fail f)
{
    static const char *names[CREDS_FAIL_COUNT] = {
        "none", "no_peer_cert", "expired", "unknown_ca", "bad_cert", "no_spiffe_id", "wrong_trust_domain",
        "unexpected_identity", "no_alpn", "protocol", "timeout", "peer_closed", "no_credentials",
    };
    return (unsigned)f < CREDS_FAIL_COUNT ? names[f] : "protocol";
}

struct creds *creds_new(const char *trust_domain)
{
    pthread_once(&creds_once, creds_init_once);
    struct creds *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    snprintf(c->trust_domain, sizeof c->trust_domain, "%s", trust_domain);
    return c;
}

static void creds_file_clear(struct creds_file *f)
{
    free(f->path);
    memset(f, 0, sizeof *f);
}

void creds_free(struct creds *c)
{
    if (!c)
        return;
    X509_free(c->leaf);
    sk_X509_pop_free(c->chain, X509_free);
    EVP_PKEY_free(c->key);
    sk_X509_pop_free(c->anchors, X509_free);
    SSL_CTX_free(c->server);
    SSL_CTX_free(c->client);
    creds_file_clear(&c->cert_file);
    creds_file_clear(&c->key_file);
    creds_file_clear(&c->trust_file);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Reads every certificate of a PEM blob; NULL when there is none or one is
 * broken. */
static STACK_OF(X509) *creds_parse_certs(const char *pem, size_t len)
{
    if (len == 0 || len > CREDS_MAX_PEM)
        return NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    if (!bio || !sk)
        goto fail;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            goto fail;
        }
    /* The loop ends on "no start line" at EOF; anything else is breakage. */
    unsigned long e = ERR_peek_last_error();
    if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
        goto fail;
    ERR_clear_error();
    BIO_free(bio);
    if (sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        return NULL;
    }
    return sk;
fail:
    ERR_clear_error();
    BIO_free(bio);
    sk_X509_pop_free(sk, X509_free);
    return NULL;
}

static time_t creds_asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    return timegm(&tm);
}

static int creds_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                             unsigned int inlen, void *arg)
{
    (void)arg;
    static const unsigned char want[] = "\x06" CREDS_ALPN "\x07" CREDS_ALPN_H2;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, want, sizeof want - 1, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    struct creds_peer *peer = SSL_get_ex_data(ssl, creds_ex_index);
    if (peer && peer->fail == CREDS_FAIL_NONE)
        peer->fail = CREDS_FAIL_ALPN;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static enum creds_fail creds_map_x509_error(int e)
{
    switch (e) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return CREDS_FAIL_EXPIRED;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return CREDS_FAIL_UNKNOWN_CA;
    default:
        return CREDS_FAIL_BAD_CERT;
    }
}

static void creds_verify_arg_free(void *p)
{
    free(p);
}

static int creds_ctx_ex_index = -1;
static pthread_once_t creds_ctx_once = PTHREAD_ONCE_INIT;
static void creds_ctx_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    creds_verify_arg_free(ptr);
}
static void creds_ctx_init_once(void)
{
    creds_ctx_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, creds_ctx_free_cb);
}

struct creds_verify_arg {
    char trust_domain[SPIFFE_MAX_TRUST_DOMAIN + 1];
};

static int creds_verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct creds_peer *peer = ssl ? SSL_get_ex_data(ssl, creds_ex_index) : NULL;
    if (!peer)
        return 0; /* every Weft SSL has one attached: refuse anything else */
    if (!ok) {
        if (peer->fail == CREDS_FAIL_NONE)
            peer->fail = creds_map_x509_error(X509_STORE_CTX_get_error(xs));
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(xs) != 0)
        return 1;
    struct creds_verify_arg *va = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), creds_ctx_ex_index);
    struct spiffe_id id;
    enum creds_fail f = CREDS_FAIL_NONE;
    if (tls_cert_spiffe(X509_STORE_CTX_get_current_cert(xs), &id) < 0)
        f = CREDS_FAIL_NO_SPIFFE_ID;
    else if (!va || strcmp(id.trust_domain, va->trust_domain) != 0)
        f = CREDS_FAIL_TRUST_DOMAIN;
    else if (peer->expect_id) {
        char uri[SPIFFE_MAX_ID];
        if (spiffe_format(id.trust_domain, id.ns, id.sa, uri, sizeof uri) < 0 || strcmp(uri, peer->expect_id) != 0)
            f = CREDS_FAIL_WRONG_ID;
    }
    if (f != CREDS_FAIL_NONE) {
        if (peer->fail == CREDS_FAIL_NONE)
            peer->fail = f;
        X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    peer->id = id;
    return 1;
}

/* One context of a generation; called with the mutex held. */
static SSL_CTX *creds_build_ctx(struct creds *c, X509_STORE *store, int server)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        return NULL;
    pthread_once(&creds_ctx_once, creds_ctx_init_once);
    struct creds_verify_arg *va = xcalloc(1, sizeof *va);
    memcpy(va->trust_domain, c->trust_domain, sizeof va->trust_domain);
    SSL_CTX_set_ex_data(ctx, creds_ctx_ex_index, va); /* freed with ctx */
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) || !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        SSL_CTX_use_certificate(ctx, c->leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, c->key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    for (int i = 0; i < sk_X509_num(c->chain); i++)
        if (!SSL_CTX_add1_chain_cert(ctx, sk_X509_value(c->chain, i)))
            goto fail;
    X509_STORE_up_ref(store);
    SSL_CTX_set_cert_store(ctx, store); /* takes the reference */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Read whole socket buffers, not a 5-byte header then a record: half the
     * read() calls on bulk transfers. The relay drains SSL until WANT_READ, so
     * nothing waits in OpenSSL's buffer while we wait for epoll. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* With read-ahead, up to 4 full records per read(); the buffer exists
     * only while it holds data (SSL_MODE_RELEASE_BUFFERS). */
    SSL_CTX_set_default_read_buffer_len(ctx, CREDS_READ_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (server) {
        SSL_CTX_set_num_tickets(ctx, 0);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, creds_verify_cb);
        SSL_CTX_set_alpn_select_cb(ctx, creds_alpn_select, NULL);
    } else {
        static const unsigned char alpn[] = "\x06" CREDS_ALPN;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, creds_verify_cb);
        if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) != 0)
            goto fail;
    }
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

/* Builds and installs a generation from the current parts; mutex held. */
static int creds_rebuild(struct creds *c, char *err, size_t errlen)
{
    if (!c->leaf || !c->anchors)
        return 0; /* not complete yet: nothing to publish */
    X509_STORE *store = X509_STORE_new();
    SSL_CTX *s = NULL, *cl = NULL;
    int r = -EINVAL;
    if (!store)
        goto out;
    for (int i = 0; i < sk_X509_num(c->anchors); i++)
        X509_STORE_add_cert(store, sk_X509_value(c->anchors, i));
    s = creds_build_ctx(c, store, 1);
    cl = creds_build_ctx(c, store, 0);
    if (!s || !cl) {
        errbuf_set(err, errlen, "could not build TLS contexts from the certificate and key");
        goto out;
    }
    SSL_CTX_free(c->server);
    SSL_CTX_free(c->client);
    c->server = s;
    c->client = cl;
    s = cl = NULL;
    c->generation++;
    r = 0;
out:
    SSL_CTX_free(s);
    SSL_CTX_free(cl);
    X509_STORE_free(store);
    ERR_clear_error();
    return r;
}

int creds_set_identity_pem(struct creds *c, const char *chain_pem, size_t len, EVP_PKEY *key, char *err,
                           size_t errlen)
{
    STACK_OF(X509) *sk = creds_parse_certs(chain_pem, len);
    struct spiffe_id id;
    int r = -EINVAL;
    if (!sk) {
        errbuf_set(err, errlen, "certificate chain: no valid PEM certificate");
        return -EINVAL;
    }
    X509 *leaf = sk_X509_shift(sk);
    if (!key || X509_check_private_key(leaf, key) != 1) {
        errbuf_set(err, errlen, "private key does not match the leaf certificate");
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
        errbuf_set(err, errlen, "leaf certificate is expired");
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
        errbuf_set(err, errlen, "leaf certificate is not valid yet");
        goto out;
    }
    if (tls_cert_spiffe(leaf, &id) < 0) {
        errbuf_set(err, errlen, "leaf certificate has no single Weft SPIFFE URI SAN");
        goto out;
    }
    if (strcmp(id.trust_domain, c->trust_domain) != 0) {
        errbuf_set(err, errlen, "leaf certificate is of trust domain %s, not %s", id.trust_domain, c->trust_domain);
        goto out;
    }
    pthread_mutex_lock(&c->mu);
    X509 *old_leaf = c->leaf;
    STACK_OF(X509) *old_chain = c->chain;
    EVP_PKEY *old_key = c->key;
    EVP_PKEY_up_ref(key);
    c->leaf = leaf;
    c->chain = sk;
    c->key = key;
    r = creds_rebuild(c, err, errlen);
    if (r < 0) { /* keep what was in force */
        c->leaf = old_leaf;
        c->chain = old_chain;
        c->key = old_key;
        pthread_mutex_unlock(&c->mu);
        EVP_PKEY_free(key);
        goto out;
    }
    c->local_id = id;
    c->not_after = creds_asn1_time(X509_get0_notAfter(leaf));
    pthread_mutex_unlock(&c->mu);
    X509_free(old_leaf);
    sk_X509_pop_free(old_chain, X509_free);
    EVP_PKEY_free(old_key);
    return 0;
out:
    X509_free(leaf);
    sk_X509_pop_free(sk, X509_free);
    ERR_clear_error();
    return r;
}

int creds_set_trust_pem(struct creds *c, const char *pem, size_t len, char *err, size_t errlen)
{
    STACK_OF(X509) *sk = creds_parse_certs(pem, len);
    if (!sk) {
        errbuf_set(err, errlen, "trust bundle: no valid PEM certificate");
        return -EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    STACK_OF(X509) *old = c->anchors;
    c->anchors = sk;
    int r = creds_rebuild(c, err, errlen);
    if (r < 0) {
        c->anchors = old;
        old = sk;
    }
    pthread_mutex_unlock(&c->mu);
    sk_X509_pop_free(old, X509_free);
    return r;
}

static int creds_read_file(const char *path, char **out, size_t *len, struct file_stamp *st)
{
    FILE *f = fopen(path, "re");
    struct stat sb;
    int r = 0;
    if (!f)
        return -errno;
    if (fstat(fileno(f), &sb) < 0 || sb.st_size > CREDS_MAX_PEM) {
        r = errno ? -errno : -EFBIG;
        goto out;
    }
    file_stamp_from_stat(&sb, st);
    *out = xmalloc((size_t)sb.st_size + 1);
    *len = fread(*out, 1, (size_t)sb.st_size, f);
    (*out)[*len] = '\0';
out:
    fclose(f);
    return r;
}

static int creds_load_identity_files(struct creds *c, const char *cert, const char *key, struct file_stamp *cst,
                                     struct file_stamp *kst, char *err, size_t errlen)
{
    char *cpem = NULL, *kpem = NULL, e2[200] = "";
    size_t clen = 0, klen = 0;
    EVP_PKEY *pk = NULL;
    int r = creds_read_file(cert, &cpem, &clen, cst);
    if (r < 0) {
        errbuf_set(err, errlen, "--cert %s: %s", cert, strerror(-r));
        goto out;
    }
    if ((r = creds_read_file(key, &kpem, &klen, kst)) < 0) {
        errbuf_set(err, errlen, "--key %s: %s", key, strerror(-r));
        goto out;
    }
    BIO *bio = BIO_new_mem_buf(kpem, (int)klen);
    pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pk) {
        errbuf_set(err, errlen, "--key %s: not a PEM private key", key);
        r = -EINVAL;
        goto out;
    }
    if ((r = creds_set_identity_pem(c, cpem, clen, pk, e2, sizeof e2)) < 0)
        errbuf_set(err, errlen, "--cert %s: %s", cert, e2);
out:
    EVP_PKEY_free(pk);
    free(cpem);
    if (kpem) {
        OPENSSL_cleanse(kpem, klen);
        free(kpem);
    }
    ERR_clear_error();
    return r;
}

static int creds_load_trust_file(struct creds *c, const char *path, struct file_stamp *st, char *err, size_t errlen)
{
    char *pem = NULL, e2[200] = "";
    size_t len = 0;
    int r = creds_read_file(path, &pem, &len, st);
    if (r < 0)
        errbuf_set(err, errlen, "--trust-bundle %s: %s", path, strerror(-r));
    else if ((r = creds_set_trust_pem(c, pem, len, e2, sizeof e2)) < 0)
        errbuf_set(err, errlen, "--trust-bundle %s: %s", path, e2);
    free(pem);
    return r;
}

int creds_load_files(struct creds *c, const char *cert_path, const char *key_path, const char *trust_path,
                     char *err, size_t errlen)
{
    struct file_stamp cst, kst, tst;
    int r;
    /* The bundle first, so the identity's generation is complete at once. */
    if (trust_path && *trust_path) {
        if ((r = creds_load_trust_file(c, trust_path, &tst, err, errlen)) < 0)
            return r;
        creds_file_clear(&c->trust_file);
        c->trust_file.path = xstrdup(trust_path);
        c->trust_file.st = tst;
    }
    if (cert_path && *cert_path && key_path && *key_path) {
        if ((r = creds_load_identity_files(c, cert_path, key_path, &cst, &kst, err, errlen)) < 0)
            return r;
        creds_file_clear(&c->cert_file);
        creds_file_clear(&c->key_file);
        c->cert_file.path = xstrdup(cert_path);
        c->cert_file.st = cst;
        c->key_file.path = xstrdup(key_path);
        c->key_file.st = kst;
    }
    return 0;
}

static int creds_file_changed(const struct creds_file *f)
{
    struct file_stamp st;
    if (!f->path)
        return 0;
    if (file_stamp_read(f->path, &st) < 0)
        return 0; /* gone for now (an atomic swap in progress): keep the old */
    return !file_stamp_equal(&st, &f->st);
}

int creds_reload_if_changed(struct creds *c, char *err, size_t errlen)
{
    int changed = 0, r;
    if (creds_file_changed(&c->trust_file)) {
        struct file_stamp st;
        if ((r = creds_load_trust_file(c, c->trust_file.path, &st, err, errlen)) < 0)
            return r;
        c->trust_file.st = st;
        changed = 1;
    }
    if (creds_file_changed(&c->cert_file) || creds_file_changed(&c->key_file)) {
        struct file_stamp cst, kst;
        if ((r = creds_load_identity_files(c, c->cert_file.path, c->key_file.path, &cst, &kst, err, errlen)) < 0)
            return r;
        c->cert_file.st = cst;
        c->key_file.st = kst;
        changed = 1;
    }
    return changed;
}

time_t creds_not_after(struct creds *c)
{
    pthread_mutex_lock(&c->mu);
    time_t t = c->leaf ? c->not_after : 0;
    pthread_mutex_unlock(&c->mu);
    return t;
}

int creds_ready(struct creds *c)
{
    pthread_mutex_lock(&c->mu);
    int ok = c->server && c->leaf && X509_cmp_current_time(X509_get0_notAfter(c->leaf)) > 0;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

int creds_local_id(struct creds *c, struct spiffe_id *out)
{
    pthread_mutex_lock(&c->mu);
    int r = c->leaf ? 0 : -ENOENT;
    if (r == 0)
        *out = c->local_id;
    pthread_mutex_unlock(&c->mu);
    return r;
}

unsigned long creds_generation(struct creds *c)
{
    pthread_mutex_lock(&c->mu);
    unsigned long g = c->generation;
    pthread_mutex_unlock(&c->mu);
    return g;
}

static SSL_CTX *creds_ref(struct creds *c, int server)
{
    pthread_mutex_lock(&c->mu);
    SSL_CTX *ctx = server ? c->server : c->client;
    if (ctx)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&c->mu);
    return ctx;
}

SSL_CTX *creds_server_ctx(struct creds *c)
{
    return creds_ref(c, 1);
}

SSL_CTX *creds_client_ctx(struct creds *c)
{
    return creds_ref(c, 0);
}

SSL_CTX *creds_control_ctx(struct creds *c, const unsigned char *alpn, size_t alpnlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    X509_STORE *store = NULL;
    if (!ctx)
        return NULL;
    pthread_mutex_lock(&c->mu);
    int ok = c->leaf && c->key && c->anchors;
    if (ok && (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) || SSL_CTX_use_certificate(ctx, c->leaf) != 1 ||
               SSL_CTX_use_PrivateKey(ctx, c->key) != 1 || SSL_CTX_check_private_key(ctx) != 1))
        ok = 0;
    for (int i = 0; ok && i < sk_X509_num(c->chain); i++)
        if (!SSL_CTX_add1_chain_cert(ctx, sk_X509_value(c->chain, i)))
            ok = 0;
    if (ok && (store = X509_STORE_new()) != NULL) {
        for (int i = 0; i < sk_X509_num(c->anchors); i++)
            X509_STORE_add_cert(store, sk_X509_value(c->anchors, i));
        SSL_CTX_set_cert_store(ctx, store); /* takes the reference */
    } else {
        ok = 0;
    }
    pthread_mutex_unlock(&c->mu);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL); /* the chain; the caller sets the name per SSL */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (!ok || SSL_CTX_set_alpn_protos(ctx, alpn, (unsigned)alpnlen) != 0) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int creds_ssl_attach(SSL *ssl, struct creds_peer *peer)
{
    pthread_once(&creds_once, creds_init_once);
    memset(&peer->id, 0, sizeof peer->id);
    peer->fail = CREDS_FAIL_NONE;
    return SSL_set_ex_data(ssl, creds_ex_index, peer) == 1 ? 0 : -ENOMEM;
}

int creds_peer_finish(SSL *ssl, struct creds_peer *peer, const char *trust_domain)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    struct spiffe_id id;
    if (!x) {
        peer->fail = CREDS_FAIL_NO_PEER_CERT;
        return -EPERM;
    }
    if (SSL_get_verify_result(ssl) != X509_V_OK) {
        peer->fail = creds_map_x509_error((int)SSL_get_verify_result(ssl));
        return -EPERM;
    }
    if (tls_cert_spiffe(x, &id) < 0) {
        peer->fail = CREDS_FAIL_NO_SPIFFE_ID;
        return -EPERM;
    }
    if (strcmp(id.trust_domain, trust_domain) != 0) {
        peer->fail = CREDS_FAIL_TRUST_DOMAIN;
        return -EPERM;
    }
    if (peer->expect_id) { /* the verify callback checked it; a resumed or odd path must not skip it */
        char uri[SPIFFE_MAX_ID];
        if (spiffe_format(id.trust_domain, id.ns, id.sa, uri, sizeof uri) < 0 || strcmp(uri, peer->expect_id) != 0) {
            peer->fail = CREDS_FAIL_WRONG_ID;
            return -EPERM;
        }
    }
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    if ((alen != strlen(CREDS_ALPN) || memcmp(alpn, CREDS_ALPN, alen) != 0) && !creds_alpn_is_h2(ssl)) {
        peer->fail = CREDS_FAIL_ALPN;
        return -EPERM;
    }
    peer->id = id;
    return 0;
}

int creds_alpn_is_h2(const SSL *ssl)
{
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    return alen == strlen(CREDS_ALPN_H2) && memcmp(alpn, CREDS_ALPN_H2, alen) == 0;
}

enum creds_fail creds_classify_failure(SSL *ssl, struct creds_peer *peer, int ssl_err)
{
    (void)ssl;
    enum creds_fail f = peer->fail;
    unsigned long e = ERR_peek_error();
    if (f == CREDS_FAIL_NONE && e && ERR_GET_LIB(e) == ERR_LIB_SSL) {
        switch (ERR_GET_REASON(e)) {
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
            f = CREDS_FAIL_NO_PEER_CERT;
            break;
        case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
            f = CREDS_FAIL_EXPIRED;
            break;
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
            f = CREDS_FAIL_UNKNOWN_CA;
            break;
        case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
        case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
            f = CREDS_FAIL_BAD_CERT;
            break;
        case SSL_R_NO_APPLICATION_PROTOCOL:
        case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
            f = CREDS_FAIL_ALPN;
            break;
        default:
            f = CREDS_FAIL_PROTOCOL;
        }
    }
    if (f == CREDS_FAIL_NONE)
        f = (ssl_err == SSL_ERROR_ZERO_RETURN || ssl_err == SSL_ERROR_SYSCALL) ? CREDS_FAIL_PEER_CLOSED
                                                                                : CREDS_FAIL_PROTOCOL;
    ERR_clear_error();
    return f;
}
