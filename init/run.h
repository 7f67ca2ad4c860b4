/* SPDX-License-Identifier: Apache-2.0 */
/* Runs one helper program (iptables-restore, iptables-save) with bytes on its
 * stdin, collecting its stdout and stderr, bounded in size and time. The only
 * place weft-init spawns anything. */
#ifndef WEFT_INIT_RUN_H
#define WEFT_INIT_RUN_H
#include <stddef.h>

#include "buf.h"

/* Spawns argv[0] (looked up in PATH) with input on stdin; out and err (may
 * be NULL: discarded) receive stdout and stderr up to their max. Waits at
 * most timeout_ms, then kills the child. Returns the exit status (0-255),
 * 128+signal when it died of one, or -errno when it could not run it
 * (-ENOENT: not found, -ETIMEDOUT). */
int run_command(char *const argv[], const char *input, size_t inlen, struct buf *out,
                struct buf *err, int timeout_ms);
/* Whether name is an executable in PATH. */
int run_in_path(const char *name);

#endif
