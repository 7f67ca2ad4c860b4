/* SPDX-License-Identifier: Apache-2.0 */
/* Shared cluster flags and connection; see cluster.h. */
#include "cluster.h"

#include <string.h>

int cluster_flag(int c, const char *arg, struct kubeconfig_options *o)
{
    switch (c) {
    case CLUSTER_F_KUBECONFIG: o->kubeconfig = arg; return 1;
    case CLUSTER_F_CONTEXT: o->context = arg; return 1;
    case 'n': o->ns = arg; return 1;
    default: return 0;
    }
}

int cluster_connect(const struct kubeconfig_options *o, struct kube_target *t, struct kubeclient **c, char *err,
                    size_t errlen)
{
    *c = NULL;
    if (kubeconfig_load(o, t, err, errlen) < 0)
        return -1;
    if (kubeconfig_credentials(t, err, errlen) < 0 || !(*c = kubeclient_new(t, err, errlen))) {
        kube_target_free(t);
        return -1;
    }
    return 0;
}
