/* SPDX-License-Identifier: Apache-2.0 */
/* See filestamp.h. */
#include "filestamp.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

void file_stamp_from_stat(const struct stat *sb, struct file_stamp *st)
{
    memset(st, 0, sizeof *st);
    st->dev = sb->st_dev;
    st->ino = sb->st_ino;
    st->size = sb->st_size;
    st->mtime = sb->st_mtim;
    st->ctime = sb->st_ctim;
}

int file_stamp_read(const char *path, struct file_stamp *st)
{
    struct stat sb;
    memset(st, 0, sizeof *st);
    if (!path)
        return -EINVAL;
    if (stat(path, &sb) < 0)
        return -errno;
    file_stamp_from_stat(&sb, st);
    return 0;
}

int file_stamp_equal(const struct file_stamp *a, const struct file_stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}
