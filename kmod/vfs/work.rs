// SPDX-License-Identifier: GPL-2.0

//! Periodic work of a mount (`struct delayed_work`, in the shim): the host's
//! heartbeat, peer checks and orphan reclaim run from it.

use super::{
    fs_context::{FileSystem, Fs},
    shim,
};
use kernel::{ffi::c_void, prelude::*};

/// Periodic work of a filesystem's mount.
pub trait Periodic: FileSystem {
    /// The period of the mount's work in milliseconds (`None`: no work),
    /// asked once when the superblock takes the mount's state.
    fn period_ms(d: &Self::Data) -> Option<u32>;
    /// Runs every period while mounted (process context, may sleep).
    fn tick(d: &Self::Data);
}

/// A running periodic work item for one mount.
///
/// # Invariants
///
/// `p` was returned by `marufs_shim_periodic_start` for a `Data` that
/// outlives this value; it is stopped (and freed) exactly once, in `drop`.
pub struct PeriodicWork {
    p: *mut shim::Periodic,
}

// SAFETY: the work item may be stopped from any thread.
unsafe impl Send for PeriodicWork {}
// SAFETY: no `&self` methods.
unsafe impl Sync for PeriodicWork {}

impl PeriodicWork {
    /// Starts calling `Fs::tick(data)` every `period_ms`.
    ///
    /// # Safety
    ///
    /// `data` must stay valid (not moved or dropped) until the returned value
    /// is dropped.
    pub(crate) unsafe fn start(data: &<Fs as FileSystem>::Data, period_ms: u32) -> Result<Self> {
        let ptr = core::ptr::from_ref(data).cast_mut().cast::<c_void>();
        // SAFETY: `ptr` stays valid while the work runs (function contract).
        let p = unsafe { shim::marufs_shim_periodic_start(ptr, period_ms) };
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

/// Called by the shim's work function.
///
/// # Safety
///
/// `data` is the pointer given to `PeriodicWork::start`, still valid.
#[no_mangle]
pub unsafe extern "C" fn marufs_rs_periodic(data: *mut c_void) {
    // SAFETY: function contract; only shared access is made.
    let d = unsafe { &*data.cast::<<Fs as FileSystem>::Data>() };
    <Fs as Periodic>::tick(d);
}
