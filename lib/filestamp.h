/* SPDX-License-Identifier: Apache-2.0 */
/* Has a file changed since we last read it? Device, inode, size, mtime and
 * ctime: Kubernetes swaps ConfigMap and Secret volumes by renaming a symlink,
 * which changes the inode a path resolves to even when size and mtime stay. */
#ifndef WEFT_FILESTAMP_H
#define WEFT_FILESTAMP_H
#include <sys/types.h>
#include <time.h>

struct file_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

/* stat()s path (following symlinks): 0, or -errno with *st zeroed (so a
 * missing file reads as one stamp, and its coming back as a change). */
int file_stamp_read(const char *path, struct file_stamp *st);
struct stat;
void file_stamp_from_stat(const struct stat *sb, struct file_stamp *st);
int file_stamp_equal(const struct file_stamp *a, const struct file_stamp *b);

#endif
