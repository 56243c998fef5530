// SPDX-License-Identifier: GPL-2.0

//! The kernel's implementation of the core's media and environment traits,
//! over a kernel mapping of the device-dax range.

use crate::marufs_core::{Env, Media, MediaError};
use crate::vfs::{dax::DaxMapping, sys};
use kernel::{pr_err, pr_info, sync::Arc};

/// The pool as this host's kernel sees it.
pub struct KMedia {
    map: Arc<DaxMapping>,
}

impl KMedia {
    /// Wraps a mapping of the whole pool (shared with the data path).
    pub fn new(map: Arc<DaxMapping>) -> Self {
        Self { map }
    }
}

impl Media for KMedia {
    fn size(&self) -> u64 {
        self.map.size()
    }
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        self.map.read(off, buf).map_err(|_| MediaError::OutOfBounds)
    }
    fn store(&self, off: u64, buf: &[u8]) -> Result<(), MediaError> {
        self.map.write(off, buf).map_err(|_| MediaError::OutOfBounds)
    }
    fn flush(&self, off: u64, len: u64) -> Result<(), MediaError> {
        self.map.flush(off, len).map_err(|_| MediaError::OutOfBounds)
    }
    fn invalidate(&self, off: u64, len: u64) -> Result<(), MediaError> {
        // clflush writes back and invalidates: the next load reads memory.
        self.map.flush(off, len).map_err(|_| MediaError::OutOfBounds)
    }
}

/// Kernel clocks and waiting.
pub struct KEnv;

impl Env for KEnv {
    fn now_ns(&self) -> u64 {
        sys::ktime_ns()
    }
    fn wall_ns(&self) -> u64 {
        sys::real_ns()
    }
    fn relax(&self) {
        sys::cond_resched();
    }
    fn pause(&self, ns: u64) -> bool {
        // Killable: a mount waiting on a node's slot can be given up.
        let ms = u32::try_from(ns / 1_000_000).unwrap_or(u32::MAX).max(1);
        !sys::sleep_killable(ms)
    }
    fn fence_host(&self, node: u32, epoch: u64) -> bool {
        match sys::fence_host(node, epoch) {
            sys::FenceHook::None => true,
            sys::FenceHook::Done => {
                pr_info!("fence helper cut node {} (epoch {}) off the pool\n", node, epoch);
                true
            }
            sys::FenceHook::Failed(rc) => {
                pr_err!(
                    "fence helper failed for node {} (epoch {}, status {}): its takeover is postponed\n",
                    node,
                    epoch,
                    rc
                );
                false
            }
        }
    }
}
