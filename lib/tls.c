/* SPDX-License-Identifier: Apache-2.0 */
/* OpenSSL error text and a certificate's SPIFFE ID, shared by every part. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "errbuf.h"
#include "tls.h"

void tls_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char text[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, text, sizeof text);
    ERR_clear_error();
    errbuf_set(err, errlen, "%s: %s", what, text);
}

int tls_cert_spiffe(X509 *x, struct spiffe_id *id)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int found = 0, r = -ENOENT;
    if (!names)
        return -ENOENT;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI)
            continue;
        const unsigned char *u = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        int ul = ASN1_STRING_length(g->d.uniformResourceIdentifier);
        found++;
        r = (ul > 0 && spiffe_parse((const char *)u, (size_t)ul, id) == 0) ? 0 : -EINVAL;
    }
    GENERAL_NAMES_free(names);
    return found == 1 ? r : -ENOENT;
}
