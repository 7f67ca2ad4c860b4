/* SPDX-License-Identifier: Apache-2.0 */
/* posix_spawnp plus a poll loop that feeds stdin and drains stdout/stderr at
 * the same time, so a chatty child never blocks on a full pipe while we
 * block writing to it. */
#include "clock.h"
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long now_ms(void)
{
    return (long)clock_mono_ms();
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int run_in_path(const char *name)
{
    const char *path = getenv("PATH");
    if (strchr(name, '/'))
        return access(name, X_OK) == 0;
    if (!path || !*path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const char *p = path; *p;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        char full[4096];
        struct stat sb;
        if (len > 0 && len + strlen(name) + 2 < sizeof full) {
            memcpy(full, p, len);
            full[len] = '/';
            memcpy(full + len + 1, name, strlen(name) + 1);
            if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode) && access(full, X_OK) == 0)
                return 1;
        }
        if (!colon)
            break;
        p = colon + 1;
    }
    return 0;
}

/* Reads what is there from *fd into b, keeping the first b->max bytes;
 * closes *fd at EOF or error. */
static void drain(int *fd, struct buf *b)
{
    char chunk[4096];
    ssize_t n = read(*fd, chunk, sizeof chunk);
    if (n > 0) {
        size_t room = b && b->max > b->len ? b->max - b->len : 0;
        if (room)
            (void)buf_append(b, chunk, (size_t)n < room ? (size_t)n : room);
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close_fd(fd);
    }
}

int run_command(char *const argv[], const char *input, size_t inlen, struct buf *out,
                struct buf *err, int timeout_ms)
{
    int in[2] = {-1, -1}, o[2] = {-1, -1}, e[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    int fa_ready = 0, rc = 0, status = 0;
    pid_t pid = -1;
    size_t sent = 0;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0) {
        rc = -errno;
        goto out;
    }
    if ((rc = -posix_spawn_file_actions_init(&fa)) < 0)
        goto out;
    fa_ready = 1;
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, o[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, e[1], STDERR_FILENO);
    int serr = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    if (serr != 0) {
        pid = -1;
        rc = -serr;
        goto out;
    }
    close_fd(&in[0]);
    close_fd(&o[1]);
    close_fd(&e[1]);
    /* Writing to a child that exited early must be an error, not SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    if (inlen == 0)
        close_fd(&in[1]);

    long deadline = now_ms() + timeout_ms;
    while (in[1] >= 0 || o[0] >= 0 || e[0] >= 0) {
        struct pollfd pfd[3] = {{in[1], POLLOUT, 0}, {o[0], POLLIN, 0}, {e[0], POLLIN, 0}};
        long left = deadline - now_ms();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            kill(pid, SIGKILL);
            break;
        }
        int n = poll(pfd, 3, (int)left);
        if (n < 0 && errno != EINTR) {
            rc = -errno;
            kill(pid, SIGKILL);
            break;
        }
        if (n <= 0)
            continue;
        if (in[1] >= 0 && pfd[0].revents) {
            ssize_t w = write(in[1], input + sent, inlen - sent);
            if (w > 0)
                sent += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || sent == inlen)
                close_fd(&in[1]);
        }
        if (o[0] >= 0 && pfd[1].revents)
            drain(&o[0], out);
        if (e[0] >= 0 && pfd[2].revents)
            drain(&e[0], err);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (rc == 0)
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
out:
    if (fa_ready)
        posix_spawn_file_actions_destroy(&fa);
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&o[0]);
    close_fd(&o[1]);
    close_fd(&e[0]);
    close_fd(&e[1]);
    return rc;
}
