/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: weft-init's reader of iptables-save output and the
 * restore texts built from what it read (seed: any iptables-save output).
 * Whatever is read must yield apply and cleanup texts within bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../init/flags.h"
#include "../init/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rules_state st;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    (void)rules_save_has_rules(text);
    (void)rules_ipv6_in_use(text);
    if (rules_scan_save(text, &st) == 0) {
        struct init_config cfg;
        char err[256];
        char *argv[] = {"weft-init", NULL};
        struct buf b;
        size_t changes;
        if (flags_parse(1, argv, &cfg, err, sizeof err) != 0)
            abort();
        buf_init(&b, RULES_MAX_TEXT);
        if (rules_build_apply(&cfg, AF_INET, &st, &b) != 0)
            abort();
        buf_reset(&b);
        if (rules_build_cleanup(&st, &b, &changes) != 0)
            abort();
        buf_free(&b);
    }
    free(text);
    return 0;
}
