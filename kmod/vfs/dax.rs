// SPDX-License-Identifier: GPL-2.0

//! Device-dax access: open `/dev/daxX.Y`, find its physical range, map it into
//! the kernel (write-back cacheable), and copy/flush/invalidate bytes in it.
//!
//! Other hosts write the same memory without coherence, so every access is a
//! plain copy (C `memcpy`) to or from a private buffer — no Rust reference to
//! the shared bytes is ever formed — and visibility is explicit: `flush` writes
//! this CPU's cache lines back, `invalidate` drops them (`clflush` does both).

use super::{shadow::Shadow, shim};
use kernel::{bindings, ffi::c_void, prelude::*, str::CStr};

/// Why [`DaxDevice::open`] failed.
#[derive(Debug)]
pub enum DaxOpenError {
    /// `filp_open` failed with this error (no such file, permission...).
    Open(Error),
    /// The file is not a device-dax character device.
    NotDax,
    /// The device's first 2 MiB are not physically addressable.
    NoRange,
    /// The device has no live page map (it is being removed).
    Gone,
}

/// An opened device-dax character device.
///
/// # Invariants
///
/// `file` is an open `struct file` of a device-dax device (we hold a
/// reference, dropped in `drop`); `[phys, phys + len)` is the device's first
/// physically contiguous range; `pgmap` is a reference to the page map of
/// its struct pages (`get_dev_pagemap`), put in `drop` unless leaked.
pub struct DaxDevice {
    file: *mut bindings::file,
    phys: u64,
    len: u64,
    pgmap: *mut c_void,
}

// SAFETY: the file reference and dev_dax may be used and released from any
// thread; `DaxDevice` has no interior mutability.
unsafe impl Send for DaxDevice {}
// SAFETY: `&DaxDevice` only reads immutable fields.
unsafe impl Sync for DaxDevice {}

const SZ_2M: u64 = 2 << 20;

impl DaxDevice {
    /// Opens `path` (read-write) and checks that it is a device-dax device.
    pub fn open(path: &CStr) -> Result<Self, DaxOpenError> {
        // SAFETY: `path` is a valid NUL-terminated string.
        let file = unsafe {
            bindings::filp_open(
                path.as_char_ptr(),
                (bindings::O_RDWR | bindings::O_LARGEFILE) as i32,
                0,
            )
        };
        if file.is_null() {
            return Err(DaxOpenError::Open(EINVAL));
        }
        let err = file as isize;
        if (-4095..0).contains(&err) {
            return Err(DaxOpenError::Open(Error::from_errno(err as i32)));
        }
        // SAFETY: `file` is an open file we hold a reference to.
        let dax = unsafe { shim::marufs_shim_file_dev_dax(file) };
        let close = || {
            // SAFETY: `file` is open and ours; closed exactly once here.
            unsafe { bindings::filp_close(file, core::ptr::null_mut()) };
        };
        if dax.is_null() {
            close();
            return Err(DaxOpenError::NotDax);
        }
        // SAFETY: `dax` is the live dev_dax of the open file.
        let phys = unsafe { shim::marufs_shim_dax_phys(dax, 0, SZ_2M) };
        if phys == u64::MAX {
            close();
            return Err(DaxOpenError::NoRange);
        }
        // Largest 2 MiB multiple that is one contiguous physical range.
        let (mut lo, mut hi) = (1u64, 1u64 << 23); // 2 MiB .. 16 TiB, in 2 MiB units
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            // SAFETY: `dax` is the live dev_dax of `file`, which we hold
            // open; the shim bounds the range by the device's own ranges.
            let p = unsafe { shim::marufs_shim_dax_phys(dax, 0, mid * SZ_2M) };
            if p == phys {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        // The page map: held while mounted, so that removing the device
        // waits for the unmount (memunmap_pages() waits for its references)
        // instead of freeing struct pages our user mappings and pins use.
        // SAFETY: any physical address may be looked up.
        let pgmap = unsafe { shim::marufs_shim_pagemap_get(phys) };
        if pgmap.is_null() {
            close();
            return Err(DaxOpenError::Gone);
        }
        if (-4095..0).contains(&(pgmap as isize)) {
            // Not device_dax's page type (the fsdev_dax driver's devices).
            close();
            return Err(DaxOpenError::NotDax);
        }
        // INVARIANT: `file` is an open device-dax file,
        // `[phys, phys + lo * 2 MiB)` its first contiguous range, `pgmap` a
        // reference to its page map.
        Ok(Self {
            file,
            phys,
            len: lo * SZ_2M,
            pgmap,
        })
    }

    /// Order of the folio holding device offset `off` (`None`: no page).
    pub fn folio_order(&self, off: u64) -> Option<u32> {
        // SAFETY: any physical address may be queried.
        u32::try_from(unsafe { shim::marufs_shim_dev_folio_order(self.phys + off) }).ok()
    }

    /// The order of a PMD mapping (a 2 MiB folio on x86-64).
    pub fn pmd_order(&self) -> u32 {
        // SAFETY: no preconditions.
        unsafe { shim::marufs_shim_pmd_order() }
    }

    /// Whether device offset `off` starts a 2 MiB folio at a 2 MiB-aligned
    /// physical address, so that key units there can be mapped with PMDs
    /// (a namespace aligned to 4 KiB has order-0 folios).
    pub fn huge_at(&self, off: u64) -> bool {
        let p = self.phys + off;
        // SAFETY: any physical address may be queried.
        let order = unsafe { shim::marufs_shim_dev_folio_order(p) };
        // SAFETY: no preconditions.
        let pmd = unsafe { shim::marufs_shim_pmd_order() };
        p % SZ_2M == 0 && u32::try_from(order).is_ok_and(|o| o == pmd)
    }

    /// Whether removal of the device has begun: it is waiting for this
    /// mount to go away.
    pub fn removal_pending(&self) -> bool {
        // SAFETY: `pgmap` is referenced (type invariant).
        !self.pgmap.is_null() && unsafe { shim::marufs_shim_pagemap_dying(self.pgmap) }
    }

    /// Keeps the page-map reference forever: the device can then never be
    /// removed, which is the safe outcome when pages of it may still be
    /// pinned after the mount is gone.
    pub fn leak_pagemap(&mut self) {
        self.pgmap = core::ptr::null_mut();
    }

    /// Size in bytes of the device's contiguous range.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// Physical address of the device's first byte.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Maps `[0, len)` of the device into the kernel, write-back cacheable.
    /// `shadowed` (TEST ONLY, `noncoherent_test=1`): every access goes
    /// through a per-host cache model (`vfs/shadow.rs`).
    pub fn map(&self, len: u64, shadowed: bool) -> Result<DaxMapping> {
        if len == 0 || len > self.len {
            return Err(EINVAL);
        }
        // SAFETY: `[phys, phys + len)` is device memory of an open device
        // (type invariant); memremap returns NULL on failure.
        let virt = unsafe {
            bindings::memremap(self.phys, len as usize, bindings::MEMREMAP_WB as usize)
        };
        if virt.is_null() {
            return Err(ENOMEM);
        }
        let shadow = if shadowed {
            // SAFETY: `virt` maps `len` bytes until the mapping is dropped,
            // which drops the shadow first.
            match unsafe { Shadow::new(virt.cast(), len) } {
                Ok(s) => Some(s),
                Err(e) => {
                    // SAFETY: mapped just above, unmapped once here.
                    unsafe { bindings::memunmap(virt) };
                    return Err(e);
                }
            }
        } else {
            None
        };
        // INVARIANT: `virt` maps `len` bytes until `drop`.
        Ok(DaxMapping {
            virt: virt.cast(),
            len,
            phys: self.phys,
            shadow,
        })
    }
}

impl Drop for DaxDevice {
    fn drop(&mut self) {
        if !self.pgmap.is_null() {
            // SAFETY: taken in `open`, put once here (type invariant).
            unsafe { shim::marufs_shim_pagemap_put(self.pgmap) };
        }
        // SAFETY: `file` is open and ours (type invariant); closed once.
        unsafe { bindings::filp_close(self.file, core::ptr::null_mut()) };
    }
}

/// A kernel mapping of device memory.
///
/// # Invariants
///
/// `virt` is a `memremap()`ed mapping of `len` bytes, unmapped in `drop`.
pub struct DaxMapping {
    virt: *mut u8,
    len: u64,
    /// Physical address of byte 0.
    phys: u64,
    /// TEST ONLY: the per-host cache model every access goes through.
    shadow: Option<Shadow>,
}

// SAFETY: the mapping is plain memory reachable from any CPU; all access goes
// through copies, and concurrent access is governed by the marufs protocol.
unsafe impl Send for DaxMapping {}
// SAFETY: the mapping's fields are immutable after `map` and the bytes are
// reached only through raw copies/flushes, never through Rust references, so
// concurrent `&self` calls from several CPUs create no data race in Rust's
// sense; what they mean is governed by the marufs protocol.
unsafe impl Sync for DaxMapping {}

impl DaxMapping {
    /// Size of the mapping in bytes.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// Physical address of byte 0.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Whether accesses go through the test-only cache model.
    pub fn shadowed(&self) -> bool {
        self.shadow.is_some()
    }

    /// TEST ONLY: `[0, off)` is metadata (see `vfs/shadow.rs`).
    pub fn set_data_start(&self, off: u64) -> Result {
        match &self.shadow {
            Some(s) => s.set_data_start(off),
            None => Ok(()),
        }
    }

    /// TEST ONLY: the cache model evicts `n` random lines (dirty ones are
    /// written back), as a cache may at any moment.
    pub fn evict_some(&self, n: u32) {
        if let Some(s) = &self.shadow {
            s.evict(n);
        }
    }

    /// TEST ONLY: the page of the cache model a user mapping gets for
    /// device offset `off` (`None` without the model).
    pub(crate) fn shadow_page(&self, off: u64) -> Option<Result<*mut bindings::page>> {
        self.shadow.as_ref().map(|s| s.page(off))
    }

    /// Whether a page of `[off, off + len)` is still referenced by anything
    /// but its resting count: a user mapping, a pin or a get_user_pages
    /// reference (DMA registration, vmsplice'd pipe buffer, direct I/O).
    /// Out-of-range bytes count as unreferenced.
    pub fn busy(&self, off: u64, len: u64) -> bool {
        let Some(end) = off.checked_add(len).filter(|&e| e <= self.len) else {
            return false;
        };
        if let Some(s) = &self.shadow {
            return s.busy(off, end - off);
        }
        // SAFETY: any physical range may be queried; `[phys + off, phys +
        // end)` is device memory whose page map the device holds.
        unsafe { shim::marufs_shim_dev_range_busy(self.phys + off, end - off) }
    }

    fn range(&self, off: u64, len: usize) -> Result<*mut u8> {
        let end = off.checked_add(len as u64).ok_or(EINVAL)?;
        if end > self.len {
            return Err(ERANGE);
        }
        // SAFETY: `off + len <= self.len`, inside the mapping (type invariant).
        Ok(unsafe { self.virt.add(off as usize) })
    }

    /// Copies `buf.len()` bytes at `off` into `buf`.
    pub fn read(&self, off: u64, buf: &mut [u8]) -> Result {
        let p = self.range(off, buf.len())?;
        if let Some(s) = &self.shadow {
            return s.read(off, buf);
        }
        // SAFETY: `p..p+len` is inside the mapping; `buf` is a distinct,
        // writable local buffer. A C memcpy: other hosts may write concurrently.
        unsafe { shim::marufs_shim_memcpy(buf.as_mut_ptr().cast(), p.cast(), buf.len()) };
        Ok(())
    }

    /// Copies `buf` to `off`.
    pub fn write(&self, off: u64, buf: &[u8]) -> Result {
        let p = self.range(off, buf.len())?;
        if let Some(s) = &self.shadow {
            return s.write(off, buf);
        }
        // SAFETY: as in `read`, with the roles swapped.
        unsafe { shim::marufs_shim_memcpy(p.cast(), buf.as_ptr().cast(), buf.len()) };
        Ok(())
    }

    /// Writes back and drops this CPU's cache lines for the range
    /// (`clflushopt` + fences), making stores visible to other hosts and the
    /// next load come from memory.
    pub fn flush(&self, off: u64, len: u64) -> Result {
        let p = self.range(off, len as usize)?;
        if let Some(s) = &self.shadow {
            return s.write_back_drop(off, len);
        }
        let mut done = 0u64;
        while done < len {
            // clflush_cache_range takes a 32-bit size: go in 1 GiB steps.
            let n = core::cmp::min(len - done, 1 << 30);
            // SAFETY: `[p + done, p + done + n)` is inside the mapping.
            unsafe { bindings::clflush_cache_range(p.add(done as usize).cast::<c_void>(), n as u32) };
            done += n;
        }
        Ok(())
    }
}

impl Drop for DaxMapping {
    fn drop(&mut self) {
        // The shadow refers to the mapping: gone first.
        self.shadow = None;
        // SAFETY: `virt` came from memremap (type invariant); unmapped once.
        unsafe { bindings::memunmap(self.virt.cast()) };
    }
}

impl DaxMapping {
    /// Copies `len` bytes at `off` to the user/kernel buffer behind `iter`;
    /// returns how many were copied (short on a fault in the destination).
    ///
    /// # Safety
    ///
    /// `iter` must be a live `iov_iter` of the current request.
    pub(crate) unsafe fn copy_to_iter(&self, off: u64, len: usize, iter: *mut bindings::iov_iter) -> Result<usize> {
        let p = self.range(off, len)?;
        if let Some(s) = &self.shadow {
            // SAFETY: `iter` is live (function contract), which is the cache
            // model's only requirement; it bounds `off`/`len` itself.
            return unsafe { s.copy_to_iter(off, len, iter) };
        }
        // SAFETY: `[p, p + len)` is inside the mapping; `iter` is live
        // (function contract).
        Ok(unsafe { bindings::_copy_to_iter(p.cast(), len, iter) })
    }

    /// Copies up to `len` bytes from `iter` to `off`, writing them back to
    /// memory (`flushcache`: visible to other hosts without a separate flush);
    /// returns how many were copied.
    ///
    /// # Safety
    ///
    /// `iter` must be a live `iov_iter` of the current request.
    pub(crate) unsafe fn copy_from_iter(&self, off: u64, len: usize, iter: *mut bindings::iov_iter) -> Result<usize> {
        let p = self.range(off, len)?;
        if let Some(s) = &self.shadow {
            // SAFETY: `iter` is live (function contract), which is the cache
            // model's only requirement; it bounds `off`/`len` itself.
            return unsafe { s.copy_from_iter(off, len, iter) };
        }
        // SAFETY: `[p, p + len)` is inside the mapping (`range` checked it)
        // and `iter` is live (function contract).
        Ok(unsafe { bindings::_copy_from_iter_flushcache(p.cast(), len, iter) })
    }
}

impl DaxMapping {
    /// Zeroes `[off, off + len)` with cache-bypassing stores: the zeroes are
    /// in memory (visible to other hosts) without a `clflush` per line, and
    /// zeroing does not evict this CPU's cache.
    pub fn zero(&self, off: u64, len: u64) -> Result {
        let p = self.range(off, len as usize)?;
        if let Some(s) = &self.shadow {
            return s.zero(off, len);
        }
        // SAFETY: `[p, p + len)` is inside the mapping.
        unsafe { shim::marufs_shim_zero_flushcache(p.cast(), len as usize) };
        Ok(())
    }
}
