/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: weft-init's flag parser and rules builder. The input is
 * an argument list, one argument per line (seed: tests/golden/init/<case>/
 * args). Whatever parses must build a restore text for both families that
 * declares the four chains and ends in COMMIT; whatever does not must say
 * why. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../init/flags.h"
#include "../init/rules.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    argv[argc++] = "weft-init";
    for (char *p = copy; argc <= MAX_ARGS;) {
        char *nl = strchr(p, '\n');
        argv[argc++] = p;
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    argv[argc] = NULL;

    struct init_config cfg;
    char err[512];
    if (flags_parse(argc, argv, &cfg, err, sizeof err) == 0) {
        static const int fams[] = {AF_INET, AF_INET6};
        for (size_t i = 0; i < 2; i++) {
            struct buf b;
            buf_init(&b, RULES_MAX_TEXT);
            if (rules_build_apply(&cfg, fams[i], NULL, &b) != 0)
                abort();
            const char *t = buf_cstr(&b);
            if (!strstr(t, ":WEFT_INBOUND - [0:0]\n") || !strstr(t, ":WEFT_REDIRECT - [0:0]\n") ||
                b.len < 7 || strcmp(t + b.len - 7, "COMMIT\n") != 0)
                abort();
            buf_free(&b);
        }
    } else if (err[0] == '\0') {
        abort();
    }
    free(copy);
    return 0;
}
