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
    // unmount path, and join's watch of a node's slot at mount).
    unsafe { shim::marufs_shim_sleep_killable(ms) }
}
