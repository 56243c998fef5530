// SPDX-License-Identifier: GPL-2.0

//! `file_operations.mmap_prepare/get_unmapped_area` and
//! `struct vm_operations_struct` for keys: user mappings of device memory.
//!
//! The fault handler maps the device's own ZONE_DEVICE folios (device-dax
//! memory has struct pages), a whole 2 MiB folio per PMD wherever the key's
//! unit is PMD-aligned in the VMA, so mappings are cheap (16 faults for a
//! 32 MiB key) and pinnable (`get_user_pages` works: RDMA/GPU registration).
//! No page cache is involved. See `Documentation/design/kernel.md`.

use super::{
    file::{File, Keys},
    shim, FsOps, Tables,
};
use kernel::{bindings, ffi::c_int, prelude::*};

/// How a fault is to be served.
pub enum FaultPlan {
    /// Map the device byte at this offset (PMD: the 2 MiB unit starting there).
    Map(u64),
    /// Retry with a smaller page size.
    Fallback,
    /// Access outside the key, or a write to an immutable key: SIGBUS.
    SigBus,
}

/// Fault policy of a filesystem.
pub trait Faults: Keys {
    /// Plans a fault of `1 << (order + 12)` bytes at file position `pos`.
    fn plan(d: &Self::Data, k: &Self::KeyState, pos: u64, order: u32, write: bool) -> FaultPlan;
    /// Whether a write may make a read-only-mapped page of the key writable
    /// (`page_mkwrite`: the key is still unpublished).
    fn mkwrite(d: &Self::Data, k: &Self::KeyState) -> bool;
    /// Whether the key may be mapped at all; `shared`: `MAP_SHARED` (else a
    /// private, copy-on-write mapping).
    fn mmap(d: &Self::Data, k: &Self::KeyState, shared: bool) -> Result;
}

impl<T: FsOps> Tables<T> {
    /// `T`'s operations of key mappings.
    pub(crate) const VM_OPS: bindings::vm_operations_struct = {
        // SAFETY: all-zero is a valid table (every hook optional).
        let mut o: bindings::vm_operations_struct = unsafe { core::mem::zeroed() };
        o.fault = Some(fault_cb::<T>);
        o.huge_fault = Some(huge_fault_cb::<T>);
        // With `page_mkwrite`, shared writable mappings are write-notify:
        // pages are mapped read-only first and a write asks us again, so a
        // key published while mapped writable (linkat of an O_TMPFILE)
        // refuses it.
        o.page_mkwrite = Some(page_mkwrite_cb::<T>);
        o
    };
}

/// `file_operations.mmap_prepare`: asks the filesystem, then installs `T`'s
/// mapping operations (and PMD faults: `VM_HUGEPAGE`).
///
/// # Safety
///
/// `desc` must describe a new mapping of an open key of `T`, as
/// `mmap_region` passes it (the mapping does not exist yet).
pub(crate) unsafe extern "C" fn mmap_prepare_cb<T: FsOps>(desc: *mut bindings::vm_area_desc) -> c_int {
    // SAFETY: `desc` is valid for the call (function contract).
    let fp = unsafe { shim::marufs_shim_mmap_file(desc) };
    if fp.is_null() {
        // A stacked caller mapping our file under another `vm_file`: faults
        // could not tell which file they serve.
        return EINVAL.to_errno();
    }
    // SAFETY: `desc->file` is an open key of `T` (opened by `open_cb::<T>`),
    // held by the caller for the call, and the VMA's `vm_file` (checked
    // by the shim), which the faults below read.
    let file = unsafe { File::<T>::from_raw(fp) };
    // SAFETY: `desc` is valid for the call (function contract).
    let shared = unsafe { shim::marufs_shim_mmap_shared(desc) };
    let r = file.args().and_then(|(d, k, _)| T::mmap(d, k, shared));
    if let Err(e) = r {
        return e.to_errno();
    }
    // SAFETY: `desc` is valid and not yet a mapping (function contract); the
    // table is a promoted constant (`'static`) of `T`, whose file it maps.
    unsafe { shim::marufs_shim_mmap_install(desc, &Tables::<T>::VM_OPS) };
    0
}

/// `file_operations.get_unmapped_area`: 2 MiB-aligned placement.
///
/// # Safety
///
/// The arguments must be those `__get_unmapped_area` passes for an open
/// file (the mm's lock held).
pub(crate) unsafe extern "C" fn get_unmapped_area_cb(
    file: *mut bindings::file,
    addr: usize,
    len: usize,
    pgoff: usize,
    flags: usize,
) -> usize {
    // SAFETY: the arguments are passed through unchanged to
    // `thp_get_unmapped_area`, which has the same contract (function
    // contract).
    unsafe { shim::marufs_shim_get_unmapped_area(file, addr, len, pgoff, flags) }
}

const SIGBUS: u32 = bindings::vm_fault_reason_VM_FAULT_SIGBUS;
const FALLBACK: u32 = bindings::vm_fault_reason_VM_FAULT_FALLBACK;

/// Serves a fault of the given order.
///
/// # Safety
///
/// `vmf` must be a live fault on a mapping of a key of `T` (one made by
/// `mmap_prepare_cb::<T>`), the mm's or VMA's lock held.
unsafe fn do_fault<T: FsOps>(vmf: *mut bindings::vm_fault, order: u32) -> u32 {
    // SAFETY: a VMA holds its file open and the fault holds the VMA
    // (function contract); the mapping was made by `mmap_prepare_cb::<T>`,
    // which checked that its `vm_file` is the key of `T` it opened.
    let file = unsafe { File::<T>::from_raw(shim::marufs_shim_vmf_file(vmf)) };
    let Ok((d, k, _)) = file.args() else {
        return SIGBUS;
    };
    let mut fi = shim::FaultInfo::default();
    // SAFETY: `vmf` is live (function contract); `fi` is a local.
    unsafe { shim::marufs_shim_fault_info(vmf, order, &mut fi) };
    if order != 0 && !fi.fits {
        return FALLBACK;
    }
    let inode = file.inode().as_ptr();
    // SAFETY: the inode is live while its file is. Shared: faults run
    // concurrently; `link_cb` takes it exclusively to publish and zap, so no
    // write-enabled entry planned before a publish is inserted after its zap.
    unsafe { shim::marufs_shim_invalidate_lock_shared(inode) };
    let r = match T::plan(d, k, fi.pos, order, fi.write) {
        FaultPlan::Map(off) => {
            // Every fault is bounded by the device here, whatever `plan`
            // returned.
            let map = T::mapping(d);
            let len = 4096u64 << order;
            if off.checked_add(len).is_none_or(|end| end > map.size()) || off % len != 0 {
                // A plan outside the device (or misaligned for its size) is
                // a filesystem bug or corrupt metadata: never map it.
                SIGBUS
            } else if let Some(page) = map.shadow_page(off) {
                // TEST ONLY: the cache model's pages, 4 KiB at a time.
                match page {
                    Ok(_) if order != 0 => FALLBACK,
                    // SAFETY: `vmf` is live (function contract); `p` is a
                    // page of the cache model's vmalloc memory, which lives
                    // as long as the mount and so as long as the VMA's file.
                    Ok(p) => unsafe { shim::marufs_shim_insert_page(vmf, p, fi.write) },
                    Err(_) => SIGBUS,
                }
            } else {
                let base = map.phys();
                // The open file holds the key for the VMA's lifetime; the
                // shim checks the pfn is device memory of the right order.
                // SAFETY: `vmf` is live (function contract); `base + off ..
                // + len` is inside the device (checked above).
                unsafe { shim::marufs_shim_insert(vmf, base + off, order, fi.write) }
            }
        }
        FaultPlan::Fallback => FALLBACK,
        FaultPlan::SigBus => SIGBUS,
    };
    // SAFETY: taken above by this thread.
    unsafe { shim::marufs_shim_invalidate_unlock_shared(inode) };
    r
}

/// `vm_operations_struct.page_mkwrite`: a write to a page mapped read-only.
/// Allowed while the key is unpublished (the folio is returned locked, as
/// the mm expects); SIGBUS once it is published. A publish racing with this
/// zaps the entry first, which the mm notices (`pte_same`) and retries.
///
/// # Safety
///
/// `vmf` must be a live write fault on a mapping of a key of `T` with
/// `vmf->page` set, as `do_page_mkwrite` passes it.
unsafe extern "C" fn page_mkwrite_cb<T: FsOps>(vmf: *mut bindings::vm_fault) -> u32 {
    // SAFETY: the fault holds the VMA, which holds its file, an open key of
    // `T` (function contract).
    let file = unsafe { File::<T>::from_raw(shim::marufs_shim_vmf_file(vmf)) };
    let Ok((d, k, _)) = file.args() else {
        return SIGBUS;
    };
    if !T::mkwrite(d, k) {
        return SIGBUS;
    }
    // SAFETY: `vmf` is a live write fault with its page set (function
    // contract): the shim locks that page's folio.
    unsafe { shim::marufs_shim_mkwrite_allow(vmf) }
}

/// `vm_operations_struct.fault` (one page).
///
/// # Safety
///
/// `vmf` must be a live fault on a mapping of a key of `T`, as
/// `__do_fault` passes it.
unsafe extern "C" fn fault_cb<T: FsOps>(vmf: *mut bindings::vm_fault) -> u32 {
    // SAFETY: the contract of `do_fault` is this function's.
    unsafe { do_fault::<T>(vmf, 0) }
}

/// `vm_operations_struct.huge_fault`.
///
/// # Safety
///
/// `vmf` must be a live fault on a mapping of a key of `T`, as
/// `create_huge_pmd`/`wp_huge_pmd` pass it.
unsafe extern "C" fn huge_fault_cb<T: FsOps>(vmf: *mut bindings::vm_fault, order: u32) -> u32 {
    // SAFETY: `marufs_shim_pmd_order` reads a constant; no precondition.
    if order != unsafe { shim::marufs_shim_pmd_order() } {
        return FALLBACK;
    }
    // SAFETY: the contract of `do_fault` is this function's.
    unsafe { do_fault::<T>(vmf, order) }
}
