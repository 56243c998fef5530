// SPDX-License-Identifier: GPL-2.0
/* marufs C shim: see shim.h. No filesystem logic lives here. */
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <linux/statfs.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include "shim.h"

/* statfs f_type of marufs: "MARU" */
#define MARUFS_MAGIC 0x4d415255

/* Exported by drivers/dax/bus.c; its declaration lives in a private header. */
phys_addr_t dax_pgoff_to_phys(struct dev_dax *dev_dax, pgoff_t pgoff,
			      unsigned long size);

static const struct fs_context_operations marufs_context_ops = {
	.free = marufs_rs_fc_free,
	.parse_param = marufs_rs_parse_param,
	.get_tree = marufs_rs_get_tree,
	.reconfigure = marufs_rs_reconfigure,
};

static const struct fs_parameter_spec marufs_fs_parameters[] = {
	fsparam_u32("node", MARUFS_OPT_NODE),
	fsparam_uid("uid", MARUFS_OPT_UID),
	fsparam_gid("gid", MARUFS_OPT_GID),
	fsparam_u32oct("mode", MARUFS_OPT_MODE),
	fsparam_u32("lease_ms", MARUFS_OPT_LEASE_MS),
	{}
};

const void *marufs_shim_fs_parameters(void)
{
	return marufs_fs_parameters;
}

int marufs_shim_init_fs_context(struct fs_context *fc)
{
	fc->ops = &marufs_context_ops;
	return marufs_rs_init_fs_context(fc);
}

int marufs_shim_parse_param(struct fs_context *fc, struct fs_parameter *param,
			    struct marufs_param_value *out)
{
	struct fs_parse_result r;
	int opt = fs_parse(fc, marufs_fs_parameters, param, &r);

	if (opt < 0)
		return opt;
	out->opt = opt;
	switch (opt) {
	case MARUFS_OPT_UID:
		out->value = __kuid_val(r.uid);
		break;
	case MARUFS_OPT_GID:
		out->value = __kgid_val(r.gid);
		break;
	default:
		out->value = r.uint_32;
		break;
	}
	return 0;
}

int marufs_shim_get_tree_nodev(struct fs_context *fc)
{
	return get_tree_nodev(fc, marufs_rs_fill_super);
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

bool marufs_shim_fc_read_only(struct fs_context *fc)
{
	return fc->sb_flags & SB_RDONLY;
}

struct super_block *marufs_shim_fc_root_sb(struct fs_context *fc)
{
	return fc->root ? fc->root->d_sb : NULL;
}

/*
 * The dev_dax behind an opened file, or NULL if the file is not a device-dax
 * character device: dax_open() points f_mapping at the inode of the dax
 * pseudo filesystem (DAXFS_MAGIC) and private_data at the dev_dax.
 */
struct dev_dax *marufs_shim_file_dev_dax(struct file *f)
{
	struct inode *host = f->f_mapping ? f->f_mapping->host : NULL;

	if (!S_ISCHR(file_inode(f)->i_mode) || !host || !host->i_sb ||
	    host->i_sb->s_magic != DAXFS_MAGIC)
		return NULL;
	return f->private_data;
}

/* Physical address of [offset, offset+len) of the device, or U64_MAX. */
u64 marufs_shim_dax_phys(struct dev_dax *dax, u64 offset, u64 len)
{
	phys_addr_t p = dax_pgoff_to_phys(dax, offset >> PAGE_SHIFT, len);

	return p == (phys_addr_t)-1 ? U64_MAX : (u64)p;
}

/* Copies to/from shared device memory that other hosts may be writing. */
void marufs_shim_memcpy(void *dst, const void *src, size_t len)
{
	memcpy(dst, src, len);
}

u64 marufs_shim_ktime_ns(void)
{
	return ktime_get_ns();
}

u64 marufs_shim_real_ns(void)
{
	return ktime_get_real_ns();
}

void marufs_shim_cond_resched(void)
{
	cond_resched();
}

void marufs_shim_fill_statfs(struct kstatfs *buf, u32 bsize, u64 blocks,
			     u64 bfree, u64 files, u64 ffree, u32 namelen,
			     u64 fsid)
{
	buf->f_type = MARUFS_MAGIC;
	buf->f_bsize = bsize;
	buf->f_frsize = bsize;
	buf->f_blocks = blocks;
	buf->f_bfree = bfree;
	buf->f_bavail = bfree;
	buf->f_files = files;
	buf->f_ffree = ffree;
	buf->f_namelen = namelen;
	buf->f_fsid = u64_to_fsid(fsid);
}
