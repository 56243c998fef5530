/* SPDX-License-Identifier: GPL-2.0 */
/*
 * marufs C shim: the only C in the module. It provides what the kernel's Rust
 * bindings (kernel::bindings) do not have: building a filesystem type's
 * fs_context operation table from its Rust trampolines, the mount-parameter
 * table (linux/fs_context.h and fs_parser.h are not in the generated
 * bindings, and fsparam_*() are macros), inline helpers, and the
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
struct file_system_type;

/* Mount options (see Documentation/man/marufs.5.md). */
enum marufs_opt {
	MARUFS_OPT_NODE,
	MARUFS_OPT_UID,
	MARUFS_OPT_GID,
	MARUFS_OPT_MODE,
	MARUFS_OPT_LEASE_MS,
	MARUFS_OPT_COHERENT,
};

/* One parsed option: which, and its value (uid/gid as kernel-global ids). */
struct marufs_param_value {
	int opt;
	u32 value;
};

/* Implemented in shim.c. */
struct marufs_periodic;
struct marufs_periodic *marufs_shim_periodic_start(void *data, struct super_block *sb,
						   unsigned int period_ms,
						   void (*fn)(void *data, struct super_block *sb));
bool marufs_shim_unmap_sb(struct super_block *sb);
/* Above any wait status (16 bits) and not a negative errno. */
#define MARUFS_FENCE_NONE 0x10000
int marufs_shim_fence_host(u32 node, u64 epoch);
void marufs_shim_periodic_stop(struct marufs_periodic *p);
const void *marufs_shim_fs_parameters(void);
void *marufs_shim_fc_ops_new(void (*free)(struct fs_context *),
			     int (*parse_param)(struct fs_context *, struct fs_parameter *),
			     int (*get_tree)(struct fs_context *),
			     int (*reconfigure)(struct fs_context *));
void marufs_shim_fc_ops_free(void *ops);
struct file_system_type *marufs_shim_fc_fs_type(struct fs_context *fc);
void marufs_shim_fc_set_ops(struct fs_context *fc, const void *ops);
int marufs_shim_parse_param(struct fs_context *fc, struct fs_parameter *param,
			    struct marufs_param_value *out);
int marufs_shim_get_tree_nodev(struct fs_context *fc,
			       int (*fill)(struct super_block *, struct fs_context *));
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
struct dentry;
struct dir_context;
const unsigned char *marufs_shim_dentry_name(struct dentry *d, u32 *len);
struct qstr;
const unsigned char *marufs_shim_qstr_name(const struct qstr *q, u32 *len);
bool marufs_shim_dir_emit_dots(struct file *f, struct dir_context *ctx);
bool marufs_shim_dir_emit(struct dir_context *ctx, const char *name, int len,
			  u64 ino, unsigned int type);
s64 marufs_shim_dir_pos(struct dir_context *ctx);
void marufs_shim_dir_set_pos(struct dir_context *ctx, s64 pos);
struct inode;
bool marufs_shim_inode_is_new(struct inode *inode);
void marufs_shim_inode_set_times(struct inode *inode, u64 mtime_ns, u64 ctime_ns);
void marufs_shim_inode_set_size(struct inode *inode, u64 size, u64 blocks);
bool marufs_shim_file_writable(struct file *f);
struct iov_iter;
size_t marufs_shim_iov_count(struct iov_iter *i);
u32 marufs_shim_current_fsuid(void);
u32 marufs_shim_current_fsgid(void);
struct vm_area_desc;
struct vm_fault;
struct vm_operations_struct;
/* What a fault asks for: file position of the (huge) page, write or read. */
struct marufs_fault {
	u64 pos;
	bool write;
	bool fits;	/* the huge page lies inside the VMA */
};
struct file *marufs_shim_mmap_file(struct vm_area_desc *desc);
bool marufs_shim_mmap_shared(struct vm_area_desc *desc);
void marufs_shim_mmap_install(struct vm_area_desc *desc,
			      const struct vm_operations_struct *ops);
struct file *marufs_shim_vmf_file(struct vm_fault *vmf);
void marufs_shim_fault_info(struct vm_fault *vmf, unsigned int order,
			    struct marufs_fault *out);
unsigned int marufs_shim_insert_page(struct vm_fault *vmf, struct page *page,
				     bool write);
unsigned int marufs_shim_insert(struct vm_fault *vmf, u64 phys,
				unsigned int order, bool write);
unsigned int marufs_shim_pmd_order(void);
unsigned long marufs_shim_get_unmapped_area(struct file *f, unsigned long addr,
					    unsigned long len, unsigned long pgoff,
					    unsigned long flags);
struct kstatfs;
void marufs_shim_fill_statfs(struct kstatfs *buf, u32 bsize, u64 blocks,
			     u64 bfree, u64 files, u64 ffree, u32 namelen,
			     u64 fsid);
/* Zeroes [dst, dst + len) with cache-bypassing stores (written back to
 * memory without a separate flush; 8-byte aligned dst and len). */
void marufs_shim_zero_flushcache(void *dst, size_t len);
/* Inode lock and the mapping's invalidate lock (faults vs revocation). */
void marufs_shim_inode_lock(struct inode *inode);
struct kiocb;
bool marufs_shim_inode_lock_shared_iocb(struct inode *inode, struct kiocb *iocb);
void marufs_shim_inode_unlock_shared(struct inode *inode);
void marufs_shim_inode_unlock(struct inode *inode);
void marufs_shim_invalidate_lock(struct inode *inode);
void marufs_shim_invalidate_unlock(struct inode *inode);
void marufs_shim_invalidate_lock_shared(struct inode *inode);
void marufs_shim_invalidate_unlock_shared(struct inode *inode);
/* Zaps every user mapping of the inode (they fault again). */
void marufs_shim_unmap_all(struct inode *inode);
void marufs_shim_unmap_from(struct inode *inode, u64 from);
bool marufs_shim_dev_range_busy(u64 phys, u64 len);
bool marufs_shim_page_busy(struct page *page);
int marufs_shim_dev_folio_order(u64 phys);
void *marufs_shim_pagemap_get(u64 phys);
void marufs_shim_pagemap_put(void *pgmap);
bool marufs_shim_pagemap_dying(void *pgmap);
bool marufs_shim_sleep_killable(unsigned int ms);
/* i_op->tmpfile: attaches the new inode to the file and opens it. */
int marufs_shim_tmpfile_open(struct file *file, struct inode *inode);
/* i_op->link of an O_TMPFILE: gives the inode its name. */
void marufs_shim_link_instantiate(struct inode *inode, struct dentry *dentry);
/* vm_ops->page_mkwrite allowing the write: locks the folio. */
unsigned int marufs_shim_mkwrite_allow(struct vm_fault *vmf);
/* Permission check of the caller on an inode (MAY_* mask). */
int marufs_shim_permission(struct file *f, int mask);

/*
 * Looks `name` (`len` bytes, no '/' or NUL, not "." or "..") up in the
 * directory open as `dir` the way a path walk does: the dcache (the
 * filesystem's d_revalidate), else the filesystem's lookup, which caches the
 * result. No permission check (the caller checked search permission once).
 * Returns 1 and fills `st` for a present name, 0 for an absent one, -errno.
 */
struct marufs_stat {
	u64 ino;
	u64 size;
	u64 mtime_ns;
	u32 mode;
	u32 uid;
	u32 gid;
	u32 pad;
};
int marufs_shim_dcache_lookup(struct file *dir, const unsigned char *name, u32 len,
			      struct marufs_stat *st);
/*
 * The filesystem's tag (d_time) of the dentry `f` was opened through, and
 * its parent directory's inode number in `*dir_ino` (0 if none).
 */
unsigned long marufs_shim_file_vouch(struct file *f, u64 *dir_ino);
/*
 * The dcache alone: `name`'s hashed dentry in the directory open as `dir`,
 * not revalidated: its d_time (the filesystem's tag) in `*tag`, and 1 + `st`
 * for a positive dentry, 0 for a negative one; -EAGAIN if there is none.
 */
int marufs_shim_dcache_peek(struct file *dir, const unsigned char *name, u32 len,
			    unsigned long *tag, struct marufs_stat *st);

#endif
