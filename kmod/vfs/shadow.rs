// SPDX-License-Identifier: GPL-2.0

//! TEST ONLY (`noncoherent_test=1`): a per-host write-back cache in front of
//! the shared device, so that guests whose pool is one coherent host file can
//! still fail when a flush or an invalidate is missing.
//!
//! Every 2 MiB region of the device that this host touches gets two DRAM
//! copies: `cache` (what this host's CPU sees: every kernel load and store,
//! and the pages user mappings are given) and `clean` (what the cache held
//! when it last agreed with memory). A line is dirty when the two differ.
//! Only explicit maintenance moves bytes between cache and device:
//! `write_back_drop` (clflush: write a dirty line back, then refetch it),
//! cache-bypassing stores (`zero`, the `write()` copy: to the device, and the
//! line refetched), and random write-backs of dirty lines ([`Shadow::evict`],
//! from the heartbeat: a cache may evict a dirty line at any moment).
//!
//! A data region is first filled with a poison pattern, both copies alike (a
//! clean line the cache holds from nobody knows when: a previous tenant, a
//! speculative fetch): a host that reads key bytes without invalidating
//! reads poison. Metadata regions (below `data_start`) are filled from the
//! device, all at once when `data_start` is set, so that the lock-free reads
//! of directory change counters (RCU walk, which cannot sleep) never allocate.
//!
//! Concurrency is modelled only as far as the tests need: a user store that
//! races with the write-back of the same line may be lost (real hardware
//! would keep it); marufs never writes a line it is flushing from two sides.

use super::shim;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use kernel::{
    alloc::{KVVec, VVec},
    bindings,
    ffi::c_void,
    prelude::*,
};

/// Region size: the 2 MiB a unit and a PMD span.
pub(crate) const REGION: u64 = 2 << 20;
const LINE: usize = 64;
/// What a data line holds before this host ever fetched it.
const POISON: u8 = 0xA5;

/// Both copies of one region.
///
/// # Invariants
///
/// `cache` and `clean` each point to `len` bytes allocated by a `VVec<u8>`
/// (length and capacity `len`), owned by this region and freed in `drop`.
struct Region {
    cache: *mut u8,
    clean: *mut u8,
    len: usize,
}

fn leak(v: VVec<u8>) -> *mut u8 {
    v.into_raw_parts().0
}

impl Region {
    fn new(len: usize, fill: Option<*const u8>) -> Result<KBox<Region>> {
        let cache = leak(VVec::from_elem(POISON, len, GFP_KERNEL)?);
        let clean = match VVec::from_elem(POISON, len, GFP_KERNEL) {
            Ok(v) => leak(v),
            Err(e) => {
                // SAFETY: `cache` came from `into_raw_parts` of a VVec of
                // length and capacity `len`; rebuilt once, then dropped.
                drop(unsafe { VVec::from_raw_parts(cache, len, len) });
                return Err(e.into());
            }
        };
        if let Some(src) = fill {
            // SAFETY: `src` points to `len` readable device bytes (caller);
            // both copies are ours, `len` bytes each.
            unsafe {
                shim::marufs_shim_memcpy(cache.cast(), src.cast(), len);
                shim::marufs_shim_memcpy(clean.cast(), src.cast(), len);
            }
        }
        // INVARIANT: both buffers are `len`-byte VVec allocations, owned here.
        KBox::new(Region { cache, clean, len }, GFP_KERNEL).map_err(Into::into)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: type invariant: each pointer is a VVec's raw parts with
        // length and capacity `len`, rebuilt exactly once here.
        unsafe {
            drop(VVec::from_raw_parts(self.cache, self.len, self.len));
            drop(VVec::from_raw_parts(self.clean, self.len, self.len));
        }
    }
}

/// The per-host cache model of one device mapping.
///
/// # Invariants
///
/// Each non-null `regions[i]` is a `KBox<Region>` leaked with `into_raw`,
/// covering device bytes `[i * REGION, i * REGION + len)`, freed in `drop`.
/// `dev` maps `size` device bytes for as long as the shadow lives (the
/// owning `DaxMapping` drops the shadow before unmapping).
pub(crate) struct Shadow {
    dev: *mut u8,
    size: u64,
    regions: KVVec<AtomicPtr<Region>>,
    data_start: AtomicU64,
    rng: AtomicU64,
}

// SAFETY: regions are reached through atomics and raw copies only; the
// device mapping is plain memory reachable from any CPU.
unsafe impl Send for Shadow {}
// SAFETY: `&self` methods reach the regions through atomics and raw copies
// only, never through Rust references to the bytes, so concurrent calls
// create no data race in Rust's sense.
unsafe impl Sync for Shadow {}

impl Shadow {
    /// A shadow of `size` bytes of device memory mapped at `dev`.
    ///
    /// # Safety
    ///
    /// `dev` must map `size` bytes until the shadow is dropped.
    pub(crate) unsafe fn new(dev: *mut u8, size: u64) -> Result<Self> {
        let n = size.div_ceil(REGION) as usize;
        let mut regions = KVVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            regions.push(AtomicPtr::new(core::ptr::null_mut()), GFP_KERNEL)?;
        }
        // INVARIANT: no region yet; `dev` maps `size` bytes (caller).
        Ok(Shadow {
            dev,
            size,
            regions,
            data_start: AtomicU64::new(u64::MAX),
            rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        })
    }

    /// Marks `[0, off)` as metadata (filled from the device) and allocates
    /// every region of it now (see the module docs).
    pub(crate) fn set_data_start(&self, off: u64) -> Result {
        self.data_start.store(off, Ordering::Release);
        let mut r = 0;
        while r < off.min(self.size) {
            self.region(r)?;
            r += REGION;
        }
        Ok(())
    }

    /// The region holding device offset `off`, allocated on first use.
    fn region(&self, off: u64) -> Result<&Region> {
        let i = (off / REGION) as usize;
        let slot = self.regions.get(i).ok_or(ERANGE)?;
        let p = slot.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: type invariant: a non-null slot is a live leaked box,
            // freed only when `self` is dropped.
            return Ok(unsafe { &*p });
        }
        let base = i as u64 * REGION;
        let len = (self.size - base).min(REGION) as usize;
        let meta = base < self.data_start.load(Ordering::Acquire);
        // SAFETY: `base + len <= size`: inside the device mapping (type
        // invariant).
        let src = meta.then(|| unsafe { self.dev.add(base as usize).cast_const() });
        let new = KBox::into_raw(Region::new(len, src)?);
        match slot.compare_exchange(core::ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
            // INVARIANT: the slot now holds a leaked box covering its range.
            // SAFETY: just stored; lives until `self` is dropped.
            Ok(_) => Ok(unsafe { &*new }),
            Err(other) => {
                // SAFETY: `new` was leaked above and never published.
                drop(unsafe { KBox::from_raw(new) });
                // SAFETY: the winner's box, live until `self` is dropped.
                Ok(unsafe { &*other })
            }
        }
    }

    /// Calls `f(region, within, n, done, dev_off)` for each region piece of
    /// `[off, off + len)`: `n` bytes at byte `within` of the region, which
    /// are device bytes `dev_off..`, and bytes `done..` of the range.
    fn pieces(
        &self,
        off: u64,
        len: usize,
        mut f: impl FnMut(&Region, usize, usize, usize, u64) -> Result,
    ) -> Result {
        if off.checked_add(len as u64).is_none_or(|e| e > self.size) {
            return Err(ERANGE);
        }
        let mut done = 0usize;
        while done < len {
            let o = off + done as u64;
            let r = self.region(o)?;
            let within = (o % REGION) as usize;
            let n = (len - done).min(r.len - within);
            f(r, within, n, done, o)?;
            done += n;
        }
        Ok(())
    }

    /// A kernel load: from this host's cache.
    pub(crate) fn read(&self, off: u64, buf: &mut [u8]) -> Result {
        let p = buf.as_mut_ptr();
        self.pieces(off, buf.len(), |r, w, n, d, _| {
            // SAFETY: `w + n <= r.len` (pieces); `p + d .. + n` is inside `buf`.
            unsafe { shim::marufs_shim_memcpy(p.add(d).cast(), r.cache.add(w).cast(), n) };
            Ok(())
        })
    }

    /// A kernel store: into this host's cache.
    pub(crate) fn write(&self, off: u64, buf: &[u8]) -> Result {
        let p = buf.as_ptr();
        self.pieces(off, buf.len(), |r, w, n, d, _| {
            // SAFETY: as in `read`, with the roles swapped.
            unsafe { shim::marufs_shim_memcpy(r.cache.add(w).cast(), p.add(d).cast(), n) };
            Ok(())
        })
    }

    /// Writes one line back if dirty; then, if `drop`, refetches it.
    ///
    /// # Safety
    ///
    /// `w + LINE <= r.len`, and `dev` is the device byte of `r.cache + w`.
    unsafe fn line(r: &Region, w: usize, dev: *mut u8, drop: bool) {
        let (mut cur, mut old) = ([0u8; LINE], [0u8; LINE]);
        // SAFETY: function contract: the line lies inside both copies and
        // the device; the locals are ours.
        unsafe {
            shim::marufs_shim_memcpy(cur.as_mut_ptr().cast(), r.cache.add(w).cast(), LINE);
            shim::marufs_shim_memcpy(old.as_mut_ptr().cast(), r.clean.add(w).cast(), LINE);
            if cur != old {
                shim::marufs_shim_memcpy(dev.cast(), cur.as_ptr().cast(), LINE);
                shim::marufs_shim_memcpy(r.clean.add(w).cast(), cur.as_ptr().cast(), LINE);
            }
            if drop {
                let mut fresh = [0u8; LINE];
                shim::marufs_shim_memcpy(fresh.as_mut_ptr().cast(), dev.cast_const().cast(), LINE);
                let mut now = [0u8; LINE];
                shim::marufs_shim_memcpy(now.as_mut_ptr().cast(), r.cache.add(w).cast(), LINE);
                // A store that raced in stays (dirty against the new clean).
                if now == cur {
                    shim::marufs_shim_memcpy(r.cache.add(w).cast(), fresh.as_ptr().cast(), LINE);
                }
                shim::marufs_shim_memcpy(r.clean.add(w).cast(), fresh.as_ptr().cast(), LINE);
            }
        }
    }

    /// clflush of `[off, off + len)`: dirty lines written back, every line
    /// refetched from the device.
    pub(crate) fn write_back_drop(&self, off: u64, len: u64) -> Result {
        let lo = off & !(LINE as u64 - 1);
        let hi = (off + len).div_ceil(LINE as u64) * LINE as u64;
        let hi = hi.min(self.size);
        if hi <= lo {
            return Ok(());
        }
        // Regions are multiples of a line, so pieces start and end on lines.
        self.pieces(lo, (hi - lo) as usize, |r, w, n, _, dev_off| {
            let mut x = 0;
            while x + LINE <= n {
                // SAFETY: `w + x + LINE <= w + n <= r.len`; the device byte
                // of `r.cache + w + x` is `dev_off + x`, inside the device.
                unsafe { Self::line(r, w + x, self.dev.add((dev_off as usize) + x), true) };
                x += LINE;
            }
            Ok(())
        })
    }

    /// Cache-bypassing stores of zeroes: the device zeroed, the lines
    /// refetched (zero) in the cache.
    pub(crate) fn zero(&self, off: u64, len: u64) -> Result {
        if off.checked_add(len).is_none_or(|e| e > self.size) {
            return Err(ERANGE);
        }
        // SAFETY: `off + len <= size`, inside the device mapping.
        unsafe { shim::marufs_shim_zero_flushcache(self.dev.add(off as usize).cast(), len as usize) };
        self.write_back_drop(off, len)
    }

    /// Whether a page user mappings got for `[off, off + len)` is still
    /// referenced (mapped, pinned, held by get_user_pages). Regions never
    /// touched have handed out no page.
    pub(crate) fn busy(&self, off: u64, len: u64) -> bool {
        let mut o = off - off % 4096;
        while o < off.saturating_add(len) {
            let i = (o / REGION) as usize;
            let p = self.regions.get(i).map_or(core::ptr::null_mut(), |s| s.load(Ordering::Acquire));
            if p.is_null() {
                o = (o / REGION + 1) * REGION;
                continue;
            }
            // SAFETY: type invariant: a non-null slot is a live leaked box.
            let r = unsafe { &*p };
            let w = (o % REGION) as usize;
            if w >= r.len {
                o = (o / REGION + 1) * REGION;
                continue;
            }
            // SAFETY: `r.cache + w` lies in a live vmalloc allocation.
            let pg = unsafe { bindings::vmalloc_to_page(r.cache.add(w).cast::<c_void>().cast_const()) };
            // SAFETY: `pg` is a page of a live vmalloc allocation.
            if !pg.is_null() && unsafe { shim::marufs_shim_page_busy(pg) } {
                return true;
            }
            o += 4096;
        }
        false
    }

    /// The cache page user mappings get for device offset `off`.
    pub(crate) fn page(&self, off: u64) -> Result<*mut bindings::page> {
        let r = self.region(off)?;
        let w = (off % REGION) as usize;
        if w >= r.len {
            return Err(ERANGE);
        }
        // SAFETY: `r.cache + w` lies in a live vmalloc allocation.
        let p = unsafe { bindings::vmalloc_to_page(r.cache.add(w).cast::<c_void>().cast_const()) };
        if p.is_null() {
            return Err(EFAULT);
        }
        Ok(p)
    }

    /// Copies from this host's cache to `iter`.
    ///
    /// # Safety
    ///
    /// `iter` must be a live `iov_iter` of the current request.
    pub(crate) unsafe fn copy_to_iter(&self, off: u64, len: usize, iter: *mut bindings::iov_iter) -> Result<usize> {
        let mut total = 0usize;
        let r = self.pieces(off, len, |r, w, n, _, _| {
            // SAFETY: `w + n <= r.len`; `iter` is live (function contract).
            let c = unsafe { bindings::_copy_to_iter(r.cache.add(w).cast::<c_void>(), n, iter) };
            total += c;
            if c < n {
                return Err(EFAULT);
            }
            Ok(())
        });
        match r {
            Ok(()) => Ok(total),
            Err(_) if total > 0 => Ok(total),
            Err(e) => Err(e),
        }
    }

    /// `write()`'s cache-bypassing copy: into the cache, then written back
    /// and refetched, as `copy_from_iter_flushcache` leaves it.
    ///
    /// # Safety
    ///
    /// `iter` must be a live `iov_iter` of the current request.
    pub(crate) unsafe fn copy_from_iter(&self, off: u64, len: usize, iter: *mut bindings::iov_iter) -> Result<usize> {
        let mut total = 0usize;
        let r = self.pieces(off, len, |r, w, n, _, _| {
            // SAFETY: `w + n <= r.len`; `iter` is live (function contract).
            let c = unsafe { bindings::_copy_from_iter(r.cache.add(w).cast::<c_void>(), n, iter) };
            total += c;
            if c < n {
                return Err(EFAULT);
            }
            Ok(())
        });
        if total > 0 {
            self.write_back_drop(off, total as u64)?;
        }
        match r {
            Ok(()) => Ok(total),
            Err(_) if total > 0 => Ok(total),
            Err(e) => Err(e),
        }
    }

    /// A cache evicting `n` random lines: the dirty ones reach the device.
    pub(crate) fn evict(&self, n: u32) {
        let regions = self.regions.len() as u64;
        if regions == 0 {
            return;
        }
        for _ in 0..n {
            let mut x = self.rng.load(Ordering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng.store(x, Ordering::Relaxed);
            let i = (x % regions) as usize;
            let Some(slot) = self.regions.get(i) else { continue };
            let p = slot.load(Ordering::Acquire);
            if p.is_null() {
                continue;
            }
            // SAFETY: a live region (type invariant).
            let r = unsafe { &*p };
            let w = ((x >> 32) as usize % (r.len / LINE)) * LINE;
            let dev = i as u64 * REGION + w as u64;
            // SAFETY: `w + LINE <= r.len`; `dev` is that line's device offset.
            unsafe { Self::line(r, w, self.dev.add(dev as usize), false) };
        }
    }
}

impl Drop for Shadow {
    fn drop(&mut self) {
        for s in self.regions.iter() {
            let p = s.swap(core::ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: type invariant: a leaked box, freed once here.
                drop(unsafe { KBox::from_raw(p) });
            }
        }
    }
}
