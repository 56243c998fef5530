/* SPDX-License-Identifier: GPL-2.0 */
/*
 * marufs C shim: the only C in the module. It provides what the kernel's Rust
 * bindings (kernel::bindings) do not have: the fs_context operation table and
 * the mount-parameter table (linux/fs_context.h and fs_parser.h are not in the
 * generated bindings, and fsparam_*() are macros), inline helpers, and the
 * device-dax lookup (dax_pgoff_to_phys() is exported but declared only in a
 * private header). Every function is a thin, logic-free adapter; the Rust side
 * declares them in vfs/shim.rs.
 */
#ifndef MARUFS_SHIM_H
#define MARUFS_SHIM_H

#include <linux/types.h>

struct fs_context;
struct fs_parameter;
struct super_block;
struct file;
struct dev_dax;

/* Implemented in Rust (kmod/vfs/fs_context.rs). */
int marufs_rs_init_fs_context(struct fs_context *fc);
int marufs_rs_parse_param(struct fs_context *fc, struct fs_parameter *param);
int marufs_rs_get_tree(struct fs_context *fc);
int marufs_rs_reconfigure(struct fs_context *fc);
void marufs_rs_fc_free(struct fs_context *fc);
int marufs_rs_fill_super(struct super_block *sb, struct fs_context *fc);

/* Mount options (see Documentation/man/marufs.5.md). */
enum marufs_opt {
	MARUFS_OPT_NODE,
	MARUFS_OPT_UID,
	MARUFS_OPT_GID,
	MARUFS_OPT_MODE,
	MARUFS_OPT_LEASE_MS,
};

/* One parsed option: which, and its value (uid/gid as kernel-global ids). */
struct marufs_param_value {
	int opt;
	u32 value;
};

/* Implemented in shim.c. */
const void *marufs_shim_fs_parameters(void);
int marufs_shim_init_fs_context(struct fs_context *fc);
int marufs_shim_parse_param(struct fs_context *fc, struct fs_parameter *param,
			    struct marufs_param_value *out);
int marufs_shim_get_tree_nodev(struct fs_context *fc);
void *marufs_shim_fc_private(struct fs_context *fc);
void marufs_shim_fc_set_private(struct fs_context *fc, void *p);
const char *marufs_shim_fc_source(struct fs_context *fc);
bool marufs_shim_fc_read_only(struct fs_context *fc);
struct super_block *marufs_shim_fc_root_sb(struct fs_context *fc);

struct dev_dax *marufs_shim_file_dev_dax(struct file *f);
u64 marufs_shim_dax_phys(struct dev_dax *dax, u64 offset, u64 len);
void marufs_shim_memcpy(void *dst, const void *src, size_t len);
u64 marufs_shim_ktime_ns(void);
u64 marufs_shim_real_ns(void);
void marufs_shim_cond_resched(void);
struct kstatfs;
void marufs_shim_fill_statfs(struct kstatfs *buf, u32 bsize, u64 blocks,
			     u64 bfree, u64 files, u64 ffree, u32 namelen,
			     u64 fsid);

#endif
