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
    file::{key_args_of_file, Keys},
    fs_context::Fs,
    shim, Table,
};
use kernel::{bindings, ffi::c_int};

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

}

pub(crate) static VM_OPS: Table<bindings::vm_operations_struct> = Table({
    // SAFETY: all-zero is a valid table (every hook optional).
    let mut o: bindings::vm_operations_struct = unsafe { core::mem::zeroed() };
    o.fault = Some(fault_cb);
    o.huge_fault = Some(huge_fault_cb);
    // With `page_mkwrite`, shared writable mappings are write-notify: pages
    // are mapped read-only first and a write asks us again, so a key
    // published while mapped writable (linkat of an O_TMPFILE) refuses it.
    o.page_mkwrite = Some(page_mkwrite_cb);
    o
});

/// `file_operations.mmap_prepare`.
///
/// # Safety
///
/// VFS contract: `desc` describes a mapping of an open marufs key.
pub(crate) unsafe extern "C" fn mmap_prepare_cb(desc: *mut bindings::vm_area_desc) -> c_int {
    // SAFETY: `desc` is valid (VFS contract); VM_OPS is static.
    unsafe { shim::marufs_shim_mmap_prepare(desc, &VM_OPS.0) }
}

/// `file_operations.get_unmapped_area`: 2 MiB-aligned placement.
///
/// # Safety
///
/// VFS contract.
pub(crate) unsafe extern "C" fn get_unmapped_area_cb(
    file: *mut bindings::file,
    addr: usize,
    len: usize,
    pgoff: usize,
    flags: usize,
) -> usize {
    // SAFETY: VFS contract; arguments passed through.
    unsafe { shim::marufs_shim_get_unmapped_area(file, addr, len, pgoff, flags) }
}

const SIGBUS: u32 = bindings::vm_fault_reason_VM_FAULT_SIGBUS;
const FALLBACK: u32 = bindings::vm_fault_reason_VM_FAULT_FALLBACK;

/// Serves a fault of the given order.
///
/// # Safety
///
/// `vmf` must be a live fault on a marufs key mapping.
unsafe fn do_fault(vmf: *mut bindings::vm_fault, order: u32) -> u32 {
    // SAFETY: function contract: the VMA holds the file open.
    let file = unsafe { shim::marufs_shim_vmf_file(vmf) };
    // SAFETY: `file` is an open marufs key.
    let Ok((d, k)) = (unsafe { key_args_of_file(file) }) else {
        return SIGBUS;
    };
    let mut fi = shim::FaultInfo::default();
    // SAFETY: `vmf` is live.
    unsafe { shim::marufs_shim_fault_info(vmf, order, &mut fi) };
    if order != 0 && !fi.fits {
        return FALLBACK;
    }
    // SAFETY: `file` is open, its inode live.
    let inode = unsafe { shim::marufs_shim_file_inode(file) };
    // SAFETY: as above. Shared: faults run concurrently; `link_cb` takes it
    // exclusively to publish and zap, so no write-enabled entry planned
    // before a publish is inserted after its zap.
    unsafe { shim::marufs_shim_invalidate_lock_shared(inode) };
    let r = match Fs::plan(d, k, fi.pos, order, fi.write) {
        FaultPlan::Map(off) => {
            // Every fault is bounded by the device here, whatever `plan`
            // returned.
            let map = <Fs as Keys>::mapping(d);
            let len = 4096u64 << order;
            if off.checked_add(len).is_none_or(|end| end > map.size()) || off % len != 0 {
                // A plan outside the device (or misaligned for its size) is
                // a filesystem bug or corrupt metadata: never map it.
                SIGBUS
            } else if let Some(page) = map.shadow_page(off) {
                // TEST ONLY: the cache model's pages, 4 KiB at a time.
                match page {
                    Ok(_) if order != 0 => FALLBACK,
                    // SAFETY: `vmf` is live; `p` is a page of the cache
                    // model's vmalloc memory, which lives as long as the
                    // mount and so as long as the VMA's file.
                    Ok(p) => unsafe { shim::marufs_shim_insert_page(vmf, p, fi.write) },
                    Err(_) => SIGBUS,
                }
            } else {
                let base = map.phys();
                // The open file holds the key for the VMA's lifetime; the
                // shim checks the pfn is device memory of the right order.
                // SAFETY: `vmf` is live; `base + off .. + len` is inside the device (checked above).
                unsafe { shim::marufs_shim_insert(vmf, base + off, order, fi.write) }
            }
        }
        FaultPlan::Fallback => FALLBACK,
        FaultPlan::SigBus => SIGBUS,
    };
    // SAFETY: taken above.
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
/// Called by the mm with a live write fault on our VMA (`vmf->page` set).
unsafe extern "C" fn page_mkwrite_cb(vmf: *mut bindings::vm_fault) -> u32 {
    // SAFETY: mm contract: the VMA holds the file open.
    let file = unsafe { shim::marufs_shim_vmf_file(vmf) };
    // SAFETY: `file` is an open marufs key.
    let Ok((d, k)) = (unsafe { key_args_of_file(file) }) else {
        return SIGBUS;
    };
    if !Fs::mkwrite(d, k) {
        return SIGBUS;
    }
    // SAFETY: `vmf` is a live write fault with its page set.
    unsafe { shim::marufs_shim_mkwrite_allow(vmf) }
}

/// `vm_operations_struct.fault` (one page).
///
/// # Safety
///
/// Called by the mm with a live fault on our VMA.
unsafe extern "C" fn fault_cb(vmf: *mut bindings::vm_fault) -> u32 {
    // SAFETY: mm contract.
    unsafe { do_fault(vmf, 0) }
}

/// `vm_operations_struct.huge_fault`.
///
/// # Safety
///
/// Called by the mm with a live fault on our VMA.
unsafe extern "C" fn huge_fault_cb(vmf: *mut bindings::vm_fault, order: u32) -> u32 {
    // SAFETY: no preconditions.
    if order != unsafe { shim::marufs_shim_pmd_order() } {
        return FALLBACK;
    }
    // SAFETY: mm contract.
    unsafe { do_fault(vmf, order) }
}
