// SPDX-License-Identifier: GPL-2.0
/* marufs C shim: see shim.h. No filesystem logic lives here. */
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/magic.h>
#include <linux/cred.h>
#include <linux/dcache.h>
#include <linux/namei.h>
#include <linux/sched.h>
#include <linux/statfs.h>
#include <linux/string.h>
#include <linux/uio.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include <linux/mm.h>
#include <linux/huge_mm.h>
#include <linux/pagemap.h>
#include <linux/timekeeping.h>
#include <linux/unaligned.h>
#include <linux/memremap.h>
#include <linux/percpu-refcount.h>
#include <linux/sched/signal.h>
#include <linux/moduleparam.h>
#include <linux/umh.h>
#include "shim.h"

/*
 * The fabric-fencing hook (protocol.md, "Fencing model"): a program run as
 * `PROGRAM fence NODE EPOCH` before this host takes over a host it judged
 * dead. It must cut that host off the pool (fabric manager, switch port,
 * device access control, power) and exit 0; any other exit postpones the
 * takeover. Empty: software fencing only.
 */
static char *fence_helper;
module_param(fence_helper, charp, 0644);
MODULE_PARM_DESC(fence_helper,
		 "program run as 'PROGRAM fence NODE EPOCH' to cut a host off the pool before taking it over; exit 0 = cut off (default: none, software fencing only)");

/*
 * MARUFS_FENCE_NONE: no helper set; otherwise 0 when the helper exited 0, a
 * negative errno when it could not run, or its (non-zero) wait status. The
 * wait is killable: a fatal signal ends it (as a failure).
 */
int marufs_shim_fence_host(u32 node, u64 epoch)
{
	static char *envp[] = { "HOME=/", "PATH=/sbin:/bin:/usr/sbin:/usr/bin", NULL };
	char n[16], e[24];
	char *argv[] = { NULL, "fence", n, e, NULL };
	char *path = NULL;
	int rc;

	kernel_param_lock(THIS_MODULE);
	if (fence_helper && *fence_helper)
		path = kstrdup(fence_helper, GFP_KERNEL);
	kernel_param_unlock(THIS_MODULE);
	if (!path)
		return MARUFS_FENCE_NONE;
	snprintf(n, sizeof(n), "%u", node);
	snprintf(e, sizeof(e), "%llu", epoch);
	argv[0] = path;
	rc = call_usermodehelper(path, argv, envp, UMH_WAIT_PROC | UMH_KILLABLE);
	kfree(path);
	return rc;
}

/* statfs f_type of marufs: "MARU" */
#define MARUFS_MAGIC 0x4d415255

/* Exported by drivers/dax/bus.c; its declaration lives in a private header. */
phys_addr_t dax_pgoff_to_phys(struct dev_dax *dev_dax, pgoff_t pgoff,
			      unsigned long size);

static const struct fs_parameter_spec marufs_fs_parameters[] = {
	fsparam_u32("node", MARUFS_OPT_NODE),
	fsparam_uid("uid", MARUFS_OPT_UID),
	fsparam_gid("gid", MARUFS_OPT_GID),
	fsparam_u32oct("mode", MARUFS_OPT_MODE),
	fsparam_u32("lease_ms", MARUFS_OPT_LEASE_MS),
	fsparam_flag("coherent", MARUFS_OPT_COHERENT),
	{}
};

const void *marufs_shim_fs_parameters(void)
{
	return marufs_fs_parameters;
}

/*
 * A filesystem type's fs_context operation table, built at registration from
 * its Rust trampolines (the struct is not in the generated bindings).
 */
void *marufs_shim_fc_ops_new(void (*free)(struct fs_context *),
			     int (*parse_param)(struct fs_context *, struct fs_parameter *),
			     int (*get_tree)(struct fs_context *),
			     int (*reconfigure)(struct fs_context *))
{
	struct fs_context_operations *ops = kzalloc(sizeof(*ops), GFP_KERNEL);

	if (!ops)
		return NULL;
	ops->free = free;
	ops->parse_param = parse_param;
	ops->get_tree = get_tree;
	ops->reconfigure = reconfigure;
	return ops;
}

void marufs_shim_fc_ops_free(void *ops)
{
	kfree(ops);
}

struct file_system_type *marufs_shim_fc_fs_type(struct fs_context *fc)
{
	return fc->fs_type;
}

void marufs_shim_fc_set_ops(struct fs_context *fc, const void *ops)
{
	fc->ops = ops;
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
	case MARUFS_OPT_COHERENT:
		out->value = 1; /* a flag: fs_parse sets no value */
		break;
	default:
		out->value = r.uint_32;
		break;
	}
	return 0;
}

int marufs_shim_get_tree_nodev(struct fs_context *fc,
			       int (*fill)(struct super_block *, struct fs_context *))
{
	return get_tree_nodev(fc, fill);
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

/*
 * Copies to/from shared device memory that other hosts may be writing.
 * Aligned copies go word by word with single 8-byte accesses: every 8-byte
 * word of the metadata (tickets, heartbeats, index slots, bitmap words) is
 * then read and written whole, never torn by a byte-wise string copy (memcpy
 * may use `rep movsb`, which gives no per-word atomicity). It is also much
 * faster than `rep movsb` under QEMU's TCG, where string instructions are
 * emulated a byte at a time.
 */
void marufs_shim_memcpy(void *dst, const void *src, size_t len)
{
	bool sa = !(((unsigned long)src | len) & 7);
	bool da = !(((unsigned long)dst | len) & 7);
	u64 *d = dst;
	const u64 *s = src;
	size_t i;

	if (sa && da) {
		for (i = 0; i < len / 8; i++)
			WRITE_ONCE(d[i], READ_ONCE(s[i]));
	} else if (sa) {
		/* aligned device words into an unaligned local buffer */
		for (i = 0; i < len / 8; i++)
			put_unaligned(READ_ONCE(s[i]), &d[i]);
	} else if (da) {
		for (i = 0; i < len / 8; i++)
			WRITE_ONCE(d[i], get_unaligned(&s[i]));
	} else {
		memcpy(dst, src, len);
	}
}

u64 marufs_shim_ktime_ns(void)
{
	/* Boottime: it advances through suspend, so a lease is never believed
	 * across one. */
	return ktime_get_boottime_ns();
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

const unsigned char *marufs_shim_dentry_name(struct dentry *d, u32 *len)
{
	*len = d->d_name.len;
	return d->d_name.name;
}

bool marufs_shim_dir_emit_dots(struct file *f, struct dir_context *ctx)
{
	return dir_emit_dots(f, ctx);
}

bool marufs_shim_dir_emit(struct dir_context *ctx, const char *name, int len,
			  u64 ino, unsigned int type)
{
	return dir_emit(ctx, name, len, ino, type);
}

s64 marufs_shim_dir_pos(struct dir_context *ctx)
{
	return ctx->pos;
}

void marufs_shim_dir_set_pos(struct dir_context *ctx, s64 pos)
{
	ctx->pos = pos;
}

u32 marufs_shim_current_fsuid(void)
{
	return __kuid_val(current_fsuid());
}

u32 marufs_shim_current_fsgid(void)
{
	return __kgid_val(current_fsgid());
}

bool marufs_shim_inode_is_new(struct inode *inode)
{
	return inode_state_read_once(inode) & I_NEW;
}

void marufs_shim_inode_set_times(struct inode *inode, u64 mtime_ns, u64 ctime_ns)
{
	struct timespec64 m = ns_to_timespec64(mtime_ns);
	struct timespec64 c = ns_to_timespec64(ctime_ns);

	inode_set_mtime_to_ts(inode, m);
	inode_set_atime_to_ts(inode, m);
	inode_set_ctime_to_ts(inode, c);
}

void marufs_shim_inode_set_size(struct inode *inode, u64 size, u64 blocks)
{
	i_size_write(inode, size);
	inode->i_blocks = blocks;
}

const unsigned char *marufs_shim_qstr_name(const struct qstr *q, u32 *len)
{
	*len = q->len;
	return q->name;
}

bool marufs_shim_file_writable(struct file *f)
{
	return f->f_mode & FMODE_WRITE;
}

size_t marufs_shim_iov_count(struct iov_iter *i)
{
	return iov_iter_count(i);
}

/*
 * The file being mapped, or NULL when the mapping's vm_file is another one
 * (a stacked caller): faults read vm_file, so the two must agree.
 */
struct file *marufs_shim_mmap_file(struct vm_area_desc *desc)
{
	return desc->vm_file == desc->file ? desc->file : NULL;
}

/* A MAP_SHARED mapping (else private, copy-on-write). */
bool marufs_shim_mmap_shared(struct vm_area_desc *desc)
{
	return vma_flags_test_any(&desc->vma_flags, VMA_MAYSHARE_BIT);
}

/* Installs the mapping's operations; VM_HUGEPAGE asks for PMD faults. */
void marufs_shim_mmap_install(struct vm_area_desc *desc,
			      const struct vm_operations_struct *ops)
{
	desc->vm_ops = ops;
	vma_desc_set_flags(desc, VMA_HUGEPAGE_BIT);
}

struct file *marufs_shim_vmf_file(struct vm_fault *vmf)
{
	return vmf->vma->vm_file;
}

void marufs_shim_fault_info(struct vm_fault *vmf, unsigned int order,
			    struct marufs_fault *out)
{
	unsigned long size = PAGE_SIZE << order;
	unsigned long addr = vmf->address & ~(size - 1);

	out->write = vmf->flags & FAULT_FLAG_WRITE;
	out->fits = addr >= vmf->vma->vm_start && addr + size <= vmf->vma->vm_end;
	out->pos = (u64)linear_page_index(vmf->vma, addr) << PAGE_SHIFT;
}

/*
 * Maps device memory at phys: a PMD of the 2 MiB folio, or one page. The
 * caller bounded phys by the device's range; this checks the page itself:
 * a valid pfn of ZONE_DEVICE memory (never ordinary RAM), and for a PMD the
 * head of a folio of exactly PMD order at an aligned pfn (a device-dax
 * instance aligned to 4 KiB has order-0 folios: the fault falls back to
 * pages instead of tripping vmf_insert_folio_pmd's WARN).
 */
unsigned int marufs_shim_insert(struct vm_fault *vmf, u64 phys,
				unsigned int order, bool write)
{
	unsigned long pfn = PHYS_PFN(phys);
	struct folio *folio;
	struct page *page;

	if (!pfn_valid(pfn))
		return VM_FAULT_SIGBUS;
	page = pfn_to_page(pfn);
	if (!is_zone_device_page(page))
		return VM_FAULT_SIGBUS;
	folio = page_folio(page);
	if (order == PMD_ORDER) {
		if (!IS_ALIGNED(pfn, 1UL << PMD_ORDER) ||
		    folio_order(folio) != PMD_ORDER || &folio->page != page)
			return VM_FAULT_FALLBACK;
		return vmf_insert_folio_pmd(vmf, folio, write);
	}
	return vmf_insert_page_mkwrite(vmf, page, write);
}

/* TEST ONLY (noncoherent_test): maps a page of the cache model. */
unsigned int marufs_shim_insert_page(struct vm_fault *vmf, struct page *page,
				     bool write)
{
	return vmf_insert_page_mkwrite(vmf, page, write);
}

unsigned int marufs_shim_pmd_order(void)
{
	return PMD_ORDER;
}

/* 2 MiB-aligned addresses so that faults can map PMDs. */
unsigned long marufs_shim_get_unmapped_area(struct file *f, unsigned long addr,
					    unsigned long len, unsigned long pgoff,
					    unsigned long flags)
{
	return thp_get_unmapped_area(f, addr, len, pgoff, flags);
}

/* A self-rearming delayed work item calling fn(data, sb). */
struct marufs_periodic {
	struct delayed_work work;
	void (*fn)(void *data, struct super_block *sb);
	void *data;
	struct super_block *sb;
	unsigned long period;
};

static void marufs_periodic_fn(struct work_struct *w)
{
	struct marufs_periodic *p =
		container_of(to_delayed_work(w), struct marufs_periodic, work);

	p->fn(p->data, p->sb);
	queue_delayed_work(system_dfl_wq, &p->work, p->period);
}

struct marufs_periodic *marufs_shim_periodic_start(void *data, struct super_block *sb,
						   unsigned int period_ms,
						   void (*fn)(void *data, struct super_block *sb))
{
	struct marufs_periodic *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (!p)
		return NULL;
	p->fn = fn;
	p->data = data;
	p->sb = sb;
	p->period = msecs_to_jiffies(period_ms);
	INIT_DELAYED_WORK(&p->work, marufs_periodic_fn);
	queue_delayed_work(system_dfl_wq, &p->work, p->period);
	return p;
}

/* Stops the work (waiting for a running instance) and frees it. */
void marufs_shim_periodic_stop(struct marufs_periodic *p)
{
	if (!p)
		return;
	disable_delayed_work_sync(&p->work);
	kfree(p);
}

void marufs_shim_zero_flushcache(void *dst, size_t len)
{
	size_t done = 0;
	char *d = dst;

	while (done < len) {
		size_t n = min_t(size_t, len - done, PAGE_SIZE);

		memcpy_flushcache(d + done, page_address(ZERO_PAGE(0)), n);
		done += n;
		/* Per page, not per unit: on slow media (an emulated CXL window:
		 * a unit can take a second) a kernel without preemption would
		 * otherwise keep the heartbeat's worker off this CPU. */
		cond_resched();
	}
	/* Non-temporal stores are weakly ordered: fence before anything that
	 * publishes the zeroed range. */
	wmb();
}

void marufs_shim_inode_lock(struct inode *inode)
{
	inode_lock(inode);
}

/* Shared inode lock for a read; false (nothing taken) if IOCB_NOWAIT would wait. */
bool marufs_shim_inode_lock_shared_iocb(struct inode *inode, struct kiocb *iocb)
{
	if (iocb->ki_flags & IOCB_NOWAIT)
		return inode_trylock_shared(inode);
	inode_lock_shared(inode);
	return true;
}

void marufs_shim_inode_unlock_shared(struct inode *inode)
{
	inode_unlock_shared(inode);
}

void marufs_shim_inode_unlock(struct inode *inode)
{
	inode_unlock(inode);
}

void marufs_shim_invalidate_lock(struct inode *inode)
{
	filemap_invalidate_lock(inode->i_mapping);
}

void marufs_shim_invalidate_unlock(struct inode *inode)
{
	filemap_invalidate_unlock(inode->i_mapping);
}

void marufs_shim_invalidate_lock_shared(struct inode *inode)
{
	filemap_invalidate_lock_shared(inode->i_mapping);
}

void marufs_shim_invalidate_unlock_shared(struct inode *inode)
{
	filemap_invalidate_unlock_shared(inode->i_mapping);
}

void marufs_shim_unmap_all(struct inode *inode)
{
	unmap_mapping_range(inode->i_mapping, 0, 0, 1);
}

/*
 * Zaps every user mapping of every regular file of `sb`, each under its
 * invalidate lock (faults take it shared, so one that planned before the zap
 * cannot insert after it). The walk is drop_pagecache_sb()'s. Runs only while
 * the superblock is active and no unmount holds s_umount: false when it could
 * not run now (the caller asks again later; an unmount tears the mappings
 * down anyway).
 */
bool marufs_shim_unmap_sb(struct super_block *sb)
{
	struct inode *inode, *toput = NULL;

	if (!down_read_trylock(&sb->s_umount))
		return false;
	if (!(sb->s_flags & SB_ACTIVE)) {
		up_read(&sb->s_umount);
		return false;
	}
	spin_lock(&sb->s_inode_list_lock);
	list_for_each_entry(inode, &sb->s_inodes, i_sb_list) {
		spin_lock(&inode->i_lock);
		if ((inode_state_read(inode) & (I_FREEING | I_WILL_FREE | I_NEW)) ||
		    !S_ISREG(inode->i_mode)) {
			spin_unlock(&inode->i_lock);
			continue;
		}
		__iget(inode);
		spin_unlock(&inode->i_lock);
		spin_unlock(&sb->s_inode_list_lock);

		filemap_invalidate_lock(inode->i_mapping);
		unmap_mapping_range(inode->i_mapping, 0, 0, 1);
		filemap_invalidate_unlock(inode->i_mapping);
		iput(toput);
		toput = inode;

		cond_resched();
		spin_lock(&sb->s_inode_list_lock);
	}
	spin_unlock(&sb->s_inode_list_lock);
	iput(toput);
	up_read(&sb->s_umount);
	return true;
}

/* Zaps every user mapping of the file from byte `from` (page-rounded up). */
void marufs_shim_unmap_from(struct inode *inode, u64 from)
{
	unmap_mapping_range(inode->i_mapping, round_up(from, PAGE_SIZE), 0, 1);
}

/*
 * Whether any page of device memory [phys, phys + len) is referenced beyond
 * its resting count: mapped by a process, or held by get_user_pages() or
 * pin_user_pages() (DMA registrations, pipe buffers filled by vmsplice,
 * direct I/O in flight). Device-dax (MEMORY_DEVICE_GENERIC) folios rest at
 * one reference (mm_init.c: only FS_DAX and driver-managed types start at
 * zero); every mapping, get and pin adds to the folio's count.
 */
bool marufs_shim_dev_range_busy(u64 phys, u64 len)
{
	unsigned long pfn = PHYS_PFN(phys), end = PHYS_PFN(phys + len);

	while (pfn < end) {
		struct folio *folio;
		unsigned long next;

		if (!pfn_valid(pfn)) {
			pfn++;
			continue;
		}
		folio = pfn_folio(pfn);
		if (folio_ref_count(folio) > 1)
			return true;
		next = folio_pfn(folio) + folio_nr_pages(folio);
		pfn = next > pfn ? next : pfn + 1;
	}
	return false;
}

/* Order of the folio holding device memory at phys (-1: no struct page). */
int marufs_shim_dev_folio_order(u64 phys)
{
	unsigned long pfn = PHYS_PFN(phys);

	if (!pfn_valid(pfn))
		return -1;
	return folio_order(pfn_folio(pfn));
}

/* TEST ONLY (noncoherent_test): the same for a page of the cache model
 * (vmalloc pages rest at one reference). */
bool marufs_shim_page_busy(struct page *page)
{
	return page_count(page) > 1;
}

/*
 * A reference to the device's page map (its struct pages). While it is held,
 * removing the device (unbinding device_dax, destroying the region) waits in
 * memunmap_pages() instead of freeing struct pages that user mappings and
 * pins of marufs keys still point at. NULL if the pfn has no live page map.
 */
void *marufs_shim_pagemap_get(u64 phys)
{
	struct dev_pagemap *pgmap = get_dev_pagemap(PHYS_PFN(phys));

	/*
	 * Only device_dax's MEMORY_DEVICE_GENERIC pages rest at one reference
	 * (what marufs_shim_dev_range_busy relies on); the fsdev_dax driver's
	 * char devices look the same but their FS_DAX pages rest at zero.
	 */
	if (pgmap && pgmap->type != MEMORY_DEVICE_GENERIC) {
		put_dev_pagemap(pgmap);
		return ERR_PTR(-EOPNOTSUPP);
	}
	return pgmap;
}

void marufs_shim_pagemap_put(void *pgmap)
{
	put_dev_pagemap(pgmap);
}

/* Whether removal of the device has begun (it waits for our reference). */
bool marufs_shim_pagemap_dying(void *pgmap)
{
	return percpu_ref_is_dying(&((struct dev_pagemap *)pgmap)->ref);
}

/* Sleeps `ms` milliseconds unless killed; true if a fatal signal is pending. */
bool marufs_shim_sleep_killable(unsigned int ms)
{
	schedule_timeout_killable(msecs_to_jiffies(ms));
	return fatal_signal_pending(current);
}

int marufs_shim_tmpfile_open(struct file *file, struct inode *inode)
{
	d_tmpfile(file, inode);
	return finish_open_simple(file, 0);
}

void marufs_shim_link_instantiate(struct inode *inode, struct dentry *dentry)
{
	inode_set_ctime_current(inode);
	inc_nlink(inode);
	ihold(inode);
	d_instantiate(dentry, inode);
}

unsigned int marufs_shim_mkwrite_allow(struct vm_fault *vmf)
{
	folio_lock(page_folio(vmf->page));
	return VM_FAULT_LOCKED;
}


int marufs_shim_permission(struct file *f, int mask)
{
	return inode_permission(file_mnt_idmap(f), file_inode(f), mask);
}



static void marufs_fill_stat(struct inode *i, struct marufs_stat *st)
{
	st->ino = i->i_ino;
	st->size = i_size_read(i);
	st->mtime_ns = (u64)inode_get_mtime_sec(i) * NSEC_PER_SEC + inode_get_mtime_nsec(i);
	st->mode = i->i_mode;
	st->uid = __kuid_val(i->i_uid);
	st->gid = __kgid_val(i->i_gid);
}

int marufs_shim_dcache_lookup(struct file *dir, const unsigned char *name, u32 len,
			      struct marufs_stat *st)
{
	struct qstr q = QSTR_INIT(name, len);
	struct dentry *d = lookup_noperm_unlocked(&q, dir->f_path.dentry);
	struct inode *i;

	if (IS_ERR(d))
		return PTR_ERR(d);
	i = d_inode(d);
	if (!i) {
		dput(d);
		return 0;
	}
	marufs_fill_stat(i, st);
	dput(d);
	return 1;
}

/*
 * The dcache's entry for a name, without revalidating or looking anything
 * up: -EAGAIN if there is none; else its d_time in *tag and 1 (positive,
 * *st filled) or 0 (negative). Whether it is still valid is the caller's
 * decision.
 */
int marufs_shim_dcache_peek(struct file *dir, const unsigned char *name, u32 len,
			    unsigned long *tag, struct marufs_stat *st)
{
	struct dentry *parent = dir->f_path.dentry;
	struct qstr q = QSTR_INIT(name, len);
	struct dentry *d;
	struct inode *i;
	int r = 0;

	/* marufs has no d_hash: the standard hash is the one the dcache uses. */
	q.hash = full_name_hash(parent, name, len);
	d = d_lookup(parent, &q);
	if (!d)
		return -EAGAIN;
	*tag = READ_ONCE(d->d_time);
	i = d_inode(d);
	if (i) {
		marufs_fill_stat(i, st);
		r = 1;
	}
	dput(d);
	return r;
}

unsigned long marufs_shim_file_vouch(struct file *f, u64 *dir_ino)
{
	struct dentry *d = f->f_path.dentry;
	struct dentry *p = dget_parent(d);
	unsigned long tag = READ_ONCE(d->d_time);

	*dir_ino = d_really_is_positive(p) ? d_inode(p)->i_ino : 0;
	dput(p);
	return tag;
}
