/* kinko fs: the FUSE low-level filesystem over a vault's encrypted tree. */
#ifndef KINKO_FS_H
#define KINKO_FS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "kinko/vault.h"

struct kfs;

struct kfs_options {
	double attr_timeout;   /* seconds the kernel may cache attributes */
	double entry_timeout;
	bool writeback_cache;  /* let the kernel merge small writes (-o writeback_cache) */
	bool allow_other;      /* other users may enter (kernel permission checks apply) */
	bool debug;
};

struct kfs *kfs_new(struct kvault *v, const struct kfs_options *o);
void kfs_free(struct kfs *fs);
const struct fuse_lowlevel_ops *kfs_ops(void);

#endif
