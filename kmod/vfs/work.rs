// SPDX-License-Identifier: GPL-2.0

//! Periodic work of a mount (`struct delayed_work`, in the shim): two items,
//! each rearming itself after it runs. The tick (the host's heartbeat, peer
//! checks, orphan reclaim) must run on time; background work (zeroing ahead,
//! slow on slow media) runs in an item of its own, so that it never delays a
//! tick.
//!
//! Why not the kernel crate's `workqueue::DelayedWork`: in this kernel it has
//! no cancel or disable, so a self-rearming item could still be queued when
//! the mount's state goes (or the module's text, at unload). The shim's item
//! is stopped with `disable_delayed_work_sync`, which waits for a running
//! tick and keeps it from rearming.

use super::{fs_context::FileSystem, shim};
use kernel::{bindings, ffi::c_void, prelude::*};

/// Periodic work of a filesystem's mount.
pub trait Periodic: FileSystem {
    /// The period of the mount's work in milliseconds (`None`: no work),
    /// asked once when the superblock takes the mount's state.
    fn period_ms(d: &Self::Data) -> Option<u32>;
    /// Runs every period while mounted (process context, may sleep).
    /// Returns [`Tick::RevokeMappings`] when every user mapping of the
    /// mount's files must be zapped now (later faults go to the
    /// filesystem's fault handler again).
    fn tick(d: &Self::Data) -> Tick;
    /// The period of the mount's background work (`None`: none), asked once
    /// with `period_ms`.
    fn background_period_ms(d: &Self::Data) -> Option<u32>;
    /// Runs every background period while mounted (process context, may
    /// sleep), concurrently with `tick`.
    fn background(d: &Self::Data);
    /// After a [`Tick::RevokeMappings`]: `done` is false when the
    /// revocation could not run now (an unmount is in progress, which tears
    /// the mappings down itself); the next tick may ask again.
    fn revoked(d: &Self::Data, done: bool);
}

/// What a tick asks of the mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Nothing.
    Done,
    /// Zap every user mapping of every regular file of the mount.
    RevokeMappings,
}

/// A running periodic work item for one mount.
///
/// # Invariants
///
/// `p` was returned by `marufs_shim_periodic_start` with `tick_cb::<T>` for
/// a `T::Data` that outlives this value; it is stopped (and freed) exactly
/// once, in `drop`.
pub struct PeriodicWork {
    p: *mut shim::Periodic,
}

// SAFETY: the work item may be stopped from any thread.
unsafe impl Send for PeriodicWork {}
// SAFETY: no `&self` methods.
unsafe impl Sync for PeriodicWork {}

impl PeriodicWork {
    /// Starts calling `T::tick(data)` every `period_ms`, for the mount of
    /// superblock `sb`.
    ///
    /// # Safety
    ///
    /// `data` must stay valid (not moved or dropped) until the returned value
    /// is dropped, and so must the superblock `sb` (the work is stopped in
    /// `kill_sb`, before the superblock is freed).
    pub(crate) unsafe fn start<T: Periodic>(
        data: &T::Data,
        sb: *mut bindings::super_block,
        period_ms: u32,
    ) -> Result<Self> {
        // SAFETY: the function's contract is ours; `tick_cb::<T>` reads its
        // arguments as the `T::Data` and superblock they are.
        unsafe { Self::start_with(data, sb, period_ms, tick_cb::<T>) }
    }

    /// Starts calling `T::background(data)` every `period_ms`.
    ///
    /// # Safety
    ///
    /// As for [`PeriodicWork::start`].
    pub(crate) unsafe fn start_background<T: Periodic>(
        data: &T::Data,
        sb: *mut bindings::super_block,
        period_ms: u32,
    ) -> Result<Self> {
        // SAFETY: the function's contract is ours; `background_cb::<T>`
        // reads its argument as the `T::Data` it is.
        unsafe { Self::start_with(data, sb, period_ms, background_cb::<T>) }
    }

    /// # Safety
    ///
    /// As for [`PeriodicWork::start`], and `f` reads `data` only as the
    /// `T::Data` it is and `sb` only as the superblock it is.
    unsafe fn start_with<D>(
        data: &D,
        sb: *mut bindings::super_block,
        period_ms: u32,
        f: shim::PeriodicFn,
    ) -> Result<Self> {
        let ptr = core::ptr::from_ref(data).cast_mut().cast::<c_void>();
        // SAFETY: `ptr` and `sb` stay valid while the work runs (function
        // contract) and `f` reads them as what they are (function contract).
        let p = unsafe { shim::marufs_shim_periodic_start(ptr, sb, period_ms, Some(f)) };
        if p.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: started for `data`, which outlives us (function contract).
        Ok(Self { p })
    }
}

impl Drop for PeriodicWork {
    fn drop(&mut self) {
        // SAFETY: `p` is a running work item (type invariant); this waits for
        // a running tick and frees it.
        unsafe { shim::marufs_shim_periodic_stop(self.p) };
    }
}

/// The shim's work function for filesystem `T`.
///
/// # Safety
///
/// `data` and `sb` must be the pointers given to `PeriodicWork::start::<T>`,
/// whose values have not been dropped (the shim calls this only while the
/// item is not stopped).
unsafe extern "C" fn tick_cb<T: Periodic>(data: *mut c_void, sb: *mut bindings::super_block) {
    // SAFETY: `data` is a live `T::Data` (function contract); only shared
    // access is made, as by every other user of the mount's state.
    let d = unsafe { &*data.cast::<T::Data>() };
    if T::tick(d) == Tick::RevokeMappings {
        // SAFETY: `sb` is the live superblock the work was started for
        // (function contract); the shim runs the walk only while it can take
        // `s_umount` shared and the superblock is active, and pins each
        // inode it visits.
        let done = unsafe { shim::marufs_shim_unmap_sb(sb) };
        T::revoked(d, done);
    }
}

/// The shim's work function for filesystem `T`'s background work.
///
/// # Safety
///
/// `data` must be the pointer given to `PeriodicWork::start_background::<T>`,
/// whose value has not been dropped (the shim calls this only while the item
/// is not stopped).
unsafe extern "C" fn background_cb<T: Periodic>(data: *mut c_void, _sb: *mut bindings::super_block) {
    // SAFETY: `data` is a live `T::Data` (function contract); only shared
    // access is made, as by every other user of the mount's state.
    let d = unsafe { &*data.cast::<T::Data>() };
    T::background(d);
}
