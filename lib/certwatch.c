/* SPDX-License-Identifier: Apache-2.0 */
/* Hot-reloaded GnuTLS credentials for libmicrohttpd; see certwatch.h. */
#include "certwatch.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "errbuf.h"
#include "filestamp.h"
#include "log.h"
#include "xalloc.h"

#define CERTWATCH_MAX_CHAIN 8
/* GnuTLS borrows the pcert and key for the length of a handshake, so a
 * replaced pair is kept until this many newer ones have replaced it. */
#define CERTWATCH_KEEP 8

struct pair {
    gnutls_pcert_st pcerts[CERTWATCH_MAX_CHAIN];
    unsigned npcerts;
    gnutls_privkey_t key;
    long long not_after; /* of the leaf */
};

static struct {
    pthread_mutex_t lock;
    char *cert_path, *key_path;
    struct file_stamp cert_id, key_id;
    struct pair *pairs[CERTWATCH_KEEP]; /* pairs[current] is served */
    unsigned current;
    unsigned long generation;
} w = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void pair_free(struct pair *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->npcerts; i++)
        gnutls_pcert_deinit(&p->pcerts[i]);
    if (p->key)
        gnutls_privkey_deinit(p->key);
    free(p);
}

/* Whether the certificate's public key is the private key's. */
static int key_matches(gnutls_pcert_st *leaf, gnutls_privkey_t key)
{
    gnutls_pubkey_t pub;
    gnutls_datum_t a = {0}, b = {0};
    int ok = 0;
    if (gnutls_pubkey_init(&pub) < 0)
        return 0;
    if (gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0 &&
        gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &a) == 0 &&
        gnutls_pubkey_export2(leaf->pubkey, GNUTLS_X509_FMT_DER, &b) == 0)
        ok = a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
    gnutls_free(a.data);
    gnutls_free(b.data);
    gnutls_pubkey_deinit(pub);
    return ok;
}

static struct pair *pair_load(char *err, size_t errlen)
{
    gnutls_datum_t cert = {0}, key = {0};
    struct pair *p = xcalloc(1, sizeof *p);
    int rc;
    if ((rc = gnutls_load_file(w.cert_path, &cert)) < 0) {
        errbuf_set(err, errlen, "%s: %s", w.cert_path, gnutls_strerror(rc));
        goto fail;
    }
    if ((rc = gnutls_load_file(w.key_path, &key)) < 0) {
        errbuf_set(err, errlen, "%s: %s", w.key_path, gnutls_strerror(rc));
        goto fail;
    }
    p->npcerts = CERTWATCH_MAX_CHAIN;
    if ((rc = gnutls_pcert_list_import_x509_raw(p->pcerts, &p->npcerts, &cert, GNUTLS_X509_FMT_PEM, 0)) < 0) {
        p->npcerts = 0;
        errbuf_set(err, errlen, "%s: %s", w.cert_path, gnutls_strerror(rc));
        goto fail;
    }
    if ((rc = gnutls_privkey_init(&p->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(p->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        errbuf_set(err, errlen, "%s: %s", w.key_path, gnutls_strerror(rc));
        goto fail;
    }
    if (!key_matches(&p->pcerts[0], p->key)) {
        errbuf_set(err, errlen, "%s does not hold the key of %s", w.key_path, w.cert_path);
        goto fail;
    }
    gnutls_x509_crt_t leaf;
    if (gnutls_x509_crt_init(&leaf) == 0) {
        if (gnutls_x509_crt_import(leaf, &p->pcerts[0].cert, GNUTLS_X509_FMT_DER) == 0)
            p->not_after = (long long)gnutls_x509_crt_get_expiration_time(leaf);
        gnutls_x509_crt_deinit(leaf);
    }
    gnutls_free(cert.data);
    gnutls_free(key.data);
    return p;
fail:
    gnutls_free(cert.data);
    gnutls_free(key.data);
    pair_free(p);
    return NULL;
}

static int stamps_read(struct file_stamp *cid, struct file_stamp *kid, char *err, size_t errlen)
{
    if (file_stamp_read(w.cert_path, cid) < 0 || file_stamp_read(w.key_path, kid) < 0) {
        errbuf_set(err, errlen, "cannot stat %s or %s", w.cert_path, w.key_path);
        return -ENOENT;
    }
    return 0;
}

/* Caller holds w.lock. The stamps are read again after the files: one
 * replaced while they were read (a rotation writing its key just then)
 * would otherwise be loaded under the stamp of the file before it, and
 * loaded (and counted) a second time at the next check. */
static int refresh_locked(char *err, size_t errlen)
{
    struct file_stamp cid, kid, cid2, kid2;
    if (stamps_read(&cid, &kid, err, errlen) < 0)
        return -ENOENT;
    if (w.pairs[w.current] && file_stamp_equal(&cid, &w.cert_id) && file_stamp_equal(&kid, &w.key_id))
        return 0;
    struct pair *p = pair_load(err, errlen);
    if (!p)
        return -EINVAL;
    if (stamps_read(&cid2, &kid2, err, errlen) < 0) {
        pair_free(p);
        return -ENOENT;
    }
    if (!file_stamp_equal(&cid, &cid2) || !file_stamp_equal(&kid, &kid2)) {
        pair_free(p);
        errbuf_set(err, errlen, "%s or %s changed while being read", w.cert_path, w.key_path);
        return -EAGAIN; /* the previous pair serves; the next handshake reads them again */
    }
    unsigned next = (w.current + 1) % CERTWATCH_KEEP;
    pair_free(w.pairs[next]);
    w.pairs[next] = p;
    w.current = next;
    w.cert_id = cid;
    w.key_id = kid;
    w.generation++;
    return 1;
}

int certwatch_refresh(char *err, size_t errlen)
{
    pthread_mutex_lock(&w.lock);
    int rc = refresh_locked(err, errlen);
    pthread_mutex_unlock(&w.lock);
    return rc;
}

static int retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                    unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
    (void)session, (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    char err[512];
    pthread_mutex_lock(&w.lock);
    int rc = refresh_locked(err, sizeof err);
    if (rc == 1)
        log_info("serving certificate reloaded", "cert=%s generation=%lu", w.cert_path, w.generation);
    else if (rc < 0)
        log_warn("serving certificate not reloaded, keeping the previous one", "error=\"%s\"", err);
    struct pair *p = w.pairs[w.current];
    if (p) {
        *pcert = p->pcerts;
        *pcert_length = p->npcerts;
        *privkey = p->key;
    }
    pthread_mutex_unlock(&w.lock);
    return p ? 0 : -1;
}

int certwatch_init(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    w.cert_path = xstrdup(cert_path);
    w.key_path = xstrdup(key_path);
    int rc = certwatch_refresh(err, errlen);
    return rc < 0 ? rc : 0;
}

void *certwatch_mhd_callback(void)
{
    return (void *)&retrieve;
}

long long certwatch_not_after(void)
{
    pthread_mutex_lock(&w.lock);
    long long t = w.pairs[w.current] ? w.pairs[w.current]->not_after : 0;
    pthread_mutex_unlock(&w.lock);
    return t;
}

unsigned long certwatch_generation(void)
{
    pthread_mutex_lock(&w.lock);
    unsigned long g = w.generation;
    pthread_mutex_unlock(&w.lock);
    return g;
}

void certwatch_shutdown(void)
{
    pthread_mutex_lock(&w.lock);
    for (unsigned i = 0; i < CERTWATCH_KEEP; i++) {
        pair_free(w.pairs[i]);
        w.pairs[i] = NULL;
    }
    free(w.cert_path);
    free(w.key_path);
    w.cert_path = w.key_path = NULL;
    pthread_mutex_unlock(&w.lock);
}
