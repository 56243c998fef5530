// SPDX-License-Identifier: GPL-2.0
/* marufs C shim: see shim.h. No filesystem logic lives here. */
#include <linux/fs.h>
#include <linux/fs_context.h>
#include "shim.h"

static const struct fs_context_operations marufs_context_ops = {
	.free = marufs_rs_fc_free,
	.get_tree = marufs_rs_get_tree,
};

int marufs_shim_init_fs_context(struct fs_context *fc)
{
	fc->ops = &marufs_context_ops;
	return marufs_rs_init_fs_context(fc);
}

void *marufs_shim_fc_private(struct fs_context *fc)
{
	return fc->fs_private;
}

void marufs_shim_fc_set_private(struct fs_context *fc, void *p)
{
	fc->fs_private = p;
}

const char *marufs_shim_fc_source(struct fs_context *fc)
{
	return fc->source;
}
