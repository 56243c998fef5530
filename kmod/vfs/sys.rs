// SPDX-License-Identifier: GPL-2.0

//! Small kernel services: clocks and rescheduling.

use super::shim;

/// Monotonic time in nanoseconds that advances through suspend
/// (`ktime_get_boottime_ns`): leases are timed on it.
pub fn ktime_ns() -> u64 {
    // SAFETY: no preconditions.
    unsafe { shim::marufs_shim_ktime_ns() }
}

/// Wall-clock time in nanoseconds since the Unix epoch (`ktime_get_real_ns`).
pub fn real_ns() -> u64 {
    // SAFETY: no preconditions.
    unsafe { shim::marufs_shim_real_ns() }
}

/// Yields the CPU if a reschedule is due (`cond_resched`); may sleep.
pub fn cond_resched() {
    // SAFETY: called only from process context without spinlocks held (all
    // callers are filesystem operations in process context).
    unsafe { shim::marufs_shim_cond_resched() }
}

/// Sleeps `ms` milliseconds unless the task is killed; returns whether a
/// fatal signal is pending. May sleep.
pub fn sleep_killable(ms: u32) -> bool {
    // SAFETY: called from process context without spinlocks held (the
    // unmount path, join's watch of a node's slot at mount, and the
    // test-only pause in a growing key's zeroing, which runs after the
    // mount mutex is dropped).
    unsafe { shim::marufs_shim_sleep_killable(ms) }
}

/// The outcome of the fabric-fencing hook (module parameter `fence_helper`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceHook {
    /// No helper is set: software fencing only.
    None,
    /// The helper exited 0: the host is cut off.
    Done,
    /// The helper could not be run or exited non-zero (its wait status).
    Failed(i32),
}

/// `MARUFS_FENCE_NONE` of `shim.h`: no helper is set.
const FENCE_NONE: i32 = 0x10000;

/// Runs the fence helper for host `node`'s incarnation `epoch`, waiting for
/// it to exit (process context; may sleep).
pub fn fence_host(node: u32, epoch: u64) -> FenceHook {
    // SAFETY: no preconditions beyond process context, which every caller
    // of the core's lock acquisition is in.
    match unsafe { shim::marufs_shim_fence_host(node, epoch) } {
        FENCE_NONE => FenceHook::None,
        0 => FenceHook::Done,
        rc => FenceHook::Failed(rc),
    }
}
