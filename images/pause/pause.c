// SPDX-License-Identifier: Apache-2.0
/* The pod sandbox's pause process for the e2e node's runtime: holds the
 * pod's namespaces, reaps the zombies it inherits as PID 1, exits on
 * SIGINT/SIGTERM. Built static, it is the whole of its image. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static void on_child(int sig)
{
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void)
{
    struct sigaction term = {.sa_handler = on_term};
    struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &term, NULL);
    sigaction(SIGTERM, &term, NULL);
    sigaction(SIGCHLD, &child, NULL);
    for (;;)
        pause();
    return EXIT_FAILURE;
}
