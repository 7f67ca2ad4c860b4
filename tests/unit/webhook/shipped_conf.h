/* SPDX-License-Identifier: Apache-2.0 */
/* The group fixture of the webhook and weftctl unit tests: the shipped templates/
 * loaded with conf_load, as the server loads them (tests run from the
 * repository root). */
#ifndef WEFT_TEST_SHIPPED_CONF_H
#define WEFT_TEST_SHIPPED_CONF_H
#include <stdio.h>

#include "../../../webhook/confstore.h" /* also from tests/unit/cli */

static struct conf conf;
#define cfg (conf.inject)

static int setup(void **state)
{
    (void)state;
    char err[512];
    if (conf_load("templates/mesh.yaml", "templates", &conf, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    conf_free(&conf);
    return 0;
}

#endif
