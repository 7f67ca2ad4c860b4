/* SPDX-License-Identifier: Apache-2.0 */
/* The serving certificate of a libmicrohttpd HTTPS server, re-read when its
 * files change (cert-manager renewals, Secret rotation): every TLS handshake
 * checks the files' identity (inode, size, mtime) and, when they changed and
 * the new pair loads and matches, new connections get the new certificate.
 * A pair caught half-written is not used; the previous one stays. One per
 * process, since GnuTLS's retrieve callback carries no user pointer. */
#ifndef WEFT_CERTWATCH_H
#define WEFT_CERTWATCH_H
#include <stddef.h>

/* Loads the pair now; 0, or -errno with the file and problem in err. */
int certwatch_init(const char *cert_path, const char *key_path, char *err, size_t errlen);
/* The value for MHD_OPTION_HTTPS_CERT_CALLBACK. */
void *certwatch_mhd_callback(void);
/* Checks the files now (also done on every handshake); 1 when a new pair was
 * taken, 0 when unchanged, -errno when the new files do not load. */
int certwatch_refresh(char *err, size_t errlen);
/* Expiry of the certificate now served (0 when none). */
long long certwatch_not_after(void);
/* How many times a new pair was taken since start. */
unsigned long certwatch_generation(void);
void certwatch_shutdown(void);

#endif
