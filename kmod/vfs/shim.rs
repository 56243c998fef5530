// SPDX-License-Identifier: GPL-2.0

//! Declarations of the C shim (`kmod/shim.c`, `kmod/shim.h`): what
//! `kernel::bindings` lacks. See `shim.h` for what each function does.

use kernel::{bindings, ffi::c_char, ffi::c_int, ffi::c_void};

/// Opaque `struct dev_dax` (drivers/dax private).
#[repr(C)]
pub(crate) struct DevDax {
    _private: [u8; 0],
}

/// `struct marufs_param_value`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct ParamValue {
    pub(crate) opt: c_int,
    pub(crate) value: u32,
}

/// `struct marufs_fault`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct FaultInfo {
    pub(crate) pos: u64,
    pub(crate) write: bool,
    pub(crate) fits: bool,
}

/// `struct marufs_stat`: what a batched lookup reports of a present name.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Stat {
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime_ns: u64,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) pad: u32,
}

/// Opaque `struct marufs_periodic`.
#[repr(C)]
pub(crate) struct Periodic {
    _private: [u8; 0],
}

/// `enum marufs_opt` values.
pub(crate) const OPT_NODE: c_int = 0;
pub(crate) const OPT_UID: c_int = 1;
pub(crate) const OPT_GID: c_int = 2;
pub(crate) const OPT_MODE: c_int = 3;
pub(crate) const OPT_LEASE_MS: c_int = 4;
pub(crate) const OPT_COHERENT: c_int = 5;

/// `fs_context_operations.free`.
pub(crate) type FcFreeFn = unsafe extern "C" fn(*mut bindings::fs_context);
/// `fs_context_operations.parse_param`.
pub(crate) type FcParseFn = unsafe extern "C" fn(*mut bindings::fs_context, *mut bindings::fs_parameter) -> c_int;
/// `fs_context_operations.get_tree` and `.reconfigure`.
pub(crate) type FcTreeFn = unsafe extern "C" fn(*mut bindings::fs_context) -> c_int;
/// The `fill_super` callback of `get_tree_nodev`.
pub(crate) type FillSuperFn = unsafe extern "C" fn(*mut bindings::super_block, *mut bindings::fs_context) -> c_int;
/// The work function of a periodic item.
pub(crate) type PeriodicFn = unsafe extern "C" fn(*mut c_void, *mut bindings::super_block);

// Pointers to kernel structs cross this boundary only as pointers; the lint
// looks at the pointees, some of which bindgen leaves empty in this config.
#[allow(improper_ctypes)]
extern "C" {
    pub(crate) fn marufs_shim_fs_parameters() -> *const c_void;
    pub(crate) fn marufs_shim_fc_ops_new(
        free: FcFreeFn,
        parse_param: FcParseFn,
        get_tree: FcTreeFn,
        reconfigure: FcTreeFn,
    ) -> *mut c_void;
    pub(crate) fn marufs_shim_fc_ops_free(ops: *mut c_void);
    pub(crate) fn marufs_shim_fc_fs_type(fc: *mut bindings::fs_context) -> *mut bindings::file_system_type;
    pub(crate) fn marufs_shim_fc_set_ops(fc: *mut bindings::fs_context, ops: *const c_void);
    pub(crate) fn marufs_shim_parse_param(
        fc: *mut bindings::fs_context,
        param: *mut bindings::fs_parameter,
        out: *mut ParamValue,
    ) -> c_int;
    pub(crate) fn marufs_shim_get_tree_nodev(fc: *mut bindings::fs_context, fill: Option<FillSuperFn>) -> c_int;
    pub(crate) fn marufs_shim_fc_private(fc: *mut bindings::fs_context) -> *mut c_void;
    pub(crate) fn marufs_shim_fc_set_private(fc: *mut bindings::fs_context, p: *mut c_void);
    pub(crate) fn marufs_shim_fc_source(fc: *mut bindings::fs_context) -> *const c_char;
    pub(crate) fn marufs_shim_fc_read_only(fc: *mut bindings::fs_context) -> bool;
    pub(crate) fn marufs_shim_fc_root_sb(fc: *mut bindings::fs_context)
        -> *mut bindings::super_block;
    pub(crate) fn marufs_shim_file_dev_dax(f: *mut bindings::file) -> *mut DevDax;
    pub(crate) fn marufs_shim_dax_phys(dax: *mut DevDax, offset: u64, len: u64) -> u64;
    pub(crate) fn marufs_shim_memcpy(dst: *mut c_void, src: *const c_void, len: usize);
    pub(crate) fn marufs_shim_ktime_ns() -> u64;
    pub(crate) fn marufs_shim_real_ns() -> u64;
    pub(crate) fn marufs_shim_cond_resched();
    pub(crate) fn marufs_shim_dentry_name(d: *mut bindings::dentry, len: *mut u32) -> *const u8;
    pub(crate) fn marufs_shim_qstr_name(q: *const bindings::qstr, len: *mut u32) -> *const u8;
    pub(crate) fn marufs_shim_dir_emit_dots(
        f: *mut bindings::file,
        ctx: *mut bindings::dir_context,
    ) -> bool;
    pub(crate) fn marufs_shim_dir_emit(
        ctx: *mut bindings::dir_context,
        name: *const c_char,
        len: c_int,
        ino: u64,
        ty: u32,
    ) -> bool;
    pub(crate) fn marufs_shim_dir_pos(ctx: *mut bindings::dir_context) -> i64;
    pub(crate) fn marufs_shim_dir_set_pos(ctx: *mut bindings::dir_context, pos: i64);
    pub(crate) fn marufs_shim_inode_is_new(inode: *mut bindings::inode) -> bool;
    pub(crate) fn marufs_shim_inode_set_times(inode: *mut bindings::inode, mtime: u64, ctime: u64);
    pub(crate) fn marufs_shim_inode_set_size(inode: *mut bindings::inode, size: u64, blocks: u64);
    pub(crate) fn marufs_shim_file_writable(f: *mut bindings::file) -> bool;
    pub(crate) fn marufs_shim_iov_count(i: *mut bindings::iov_iter) -> usize;
    pub(crate) fn marufs_shim_current_fsuid() -> u32;
    pub(crate) fn marufs_shim_current_fsgid() -> u32;
    pub(crate) fn marufs_shim_mmap_file(desc: *mut bindings::vm_area_desc) -> *mut bindings::file;
    pub(crate) fn marufs_shim_mmap_shared(desc: *mut bindings::vm_area_desc) -> bool;
    pub(crate) fn marufs_shim_mmap_install(
        desc: *mut bindings::vm_area_desc,
        ops: *const bindings::vm_operations_struct,
    );
    pub(crate) fn marufs_shim_vmf_file(vmf: *mut bindings::vm_fault) -> *mut bindings::file;
    pub(crate) fn marufs_shim_fault_info(vmf: *mut bindings::vm_fault, order: u32, out: *mut FaultInfo);
    pub(crate) fn marufs_shim_insert(vmf: *mut bindings::vm_fault, phys: u64, order: u32, write: bool) -> u32;
    pub(crate) fn marufs_shim_insert_page(vmf: *mut bindings::vm_fault, page: *mut bindings::page, write: bool) -> u32;
    pub(crate) fn marufs_shim_pmd_order() -> u32;
    pub(crate) fn marufs_shim_get_unmapped_area(
        f: *mut bindings::file,
        addr: usize,
        len: usize,
        pgoff: usize,
        flags: usize,
    ) -> usize;
    pub(crate) fn marufs_shim_periodic_start(
        data: *mut c_void,
        sb: *mut bindings::super_block,
        period_ms: u32,
        f: Option<PeriodicFn>,
    ) -> *mut Periodic;
    pub(crate) fn marufs_shim_periodic_stop(p: *mut Periodic);
    pub(crate) fn marufs_shim_fill_statfs(
        buf: *mut bindings::kstatfs,
        bsize: u32,
        blocks: u64,
        bfree: u64,
        files: u64,
        ffree: u64,
        namelen: u32,
        fsid: u64,
    );
    pub(crate) fn marufs_shim_zero_flushcache(dst: *mut c_void, len: usize);
    pub(crate) fn marufs_shim_inode_lock(inode: *mut bindings::inode);
    pub(crate) fn marufs_shim_inode_unlock(inode: *mut bindings::inode);
    pub(crate) fn marufs_shim_inode_lock_shared_iocb(inode: *mut bindings::inode, iocb: *mut bindings::kiocb) -> bool;
    pub(crate) fn marufs_shim_inode_unlock_shared(inode: *mut bindings::inode);
    pub(crate) fn marufs_shim_invalidate_lock(inode: *mut bindings::inode);
    pub(crate) fn marufs_shim_invalidate_unlock(inode: *mut bindings::inode);
    pub(crate) fn marufs_shim_invalidate_lock_shared(inode: *mut bindings::inode);
    pub(crate) fn marufs_shim_invalidate_unlock_shared(inode: *mut bindings::inode);
    pub(crate) fn marufs_shim_unmap_all(inode: *mut bindings::inode);
    pub(crate) fn marufs_shim_unmap_sb(sb: *mut bindings::super_block) -> bool;
    pub(crate) fn marufs_shim_fence_host(node: u32, epoch: u64) -> c_int;
    pub(crate) fn marufs_shim_unmap_from(inode: *mut bindings::inode, from: u64);
    pub(crate) fn marufs_shim_dev_range_busy(phys: u64, len: u64) -> bool;
    pub(crate) fn marufs_shim_page_busy(page: *mut bindings::page) -> bool;
    pub(crate) fn marufs_shim_dev_folio_order(phys: u64) -> c_int;
    pub(crate) fn marufs_shim_pagemap_get(phys: u64) -> *mut c_void;
    pub(crate) fn marufs_shim_pagemap_put(pgmap: *mut c_void);
    pub(crate) fn marufs_shim_pagemap_dying(pgmap: *mut c_void) -> bool;
    pub(crate) fn marufs_shim_sleep_killable(ms: u32) -> bool;
    pub(crate) fn marufs_shim_tmpfile_open(file: *mut bindings::file, inode: *mut bindings::inode) -> c_int;
    pub(crate) fn marufs_shim_link_instantiate(inode: *mut bindings::inode, dentry: *mut bindings::dentry);
    pub(crate) fn marufs_shim_mkwrite_allow(vmf: *mut bindings::vm_fault) -> u32;
    pub(crate) fn marufs_shim_permission(f: *mut bindings::file, mask: c_int) -> c_int;
    pub(crate) fn marufs_shim_dcache_lookup(
        dir: *mut bindings::file,
        name: *const u8,
        len: u32,
        st: *mut Stat,
    ) -> c_int;
    pub(crate) fn marufs_shim_file_vouch(f: *mut bindings::file, dir_ino: *mut u64) -> usize;
    pub(crate) fn marufs_shim_dcache_peek(
        dir: *mut bindings::file,
        name: *const u8,
        len: u32,
        tag: *mut usize,
        st: *mut Stat,
    ) -> c_int;
}
