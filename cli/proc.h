/* SPDX-License-Identifier: Apache-2.0 */
/* Runs a helper program (kubectl kustomize, the certificate scripts) with
 * stdin from /dev/null and its stdout and stderr captured, bounded. */
#ifndef WEFT_CLI_PROC_H
#define WEFT_CLI_PROC_H
#include "buf.h"

/* argv[0] is looked up in PATH. Returns its exit status (0..255), or -1 with
 * err saying why it did not run or was killed. out and errout grow to their
 * max; the rest of the output is dropped. */
int proc_run(char *const argv[], struct buf *out, struct buf *errout, char *err, size_t errlen);

#endif
