// SPDX-License-Identifier: GPL-2.0

//! `struct fs_context` and `struct fs_context_operations`: the mount API.
//!
//! The C operation table lives in the shim (`shim.c`); it calls the
//! `marufs_rs_*` entry points below, which dispatch to [`FileSystem`].

use super::shim;
use kernel::{bindings, ffi::c_int, prelude::*, str::CStr};

/// A filesystem implementation, as seen by the mount API.
pub trait FileSystem {
    /// Name shown in `/proc/filesystems` and used with `mount -t`.
    const NAME: &'static CStr;
    /// `file_system_type.fs_flags` (for example `FS_REQUIRES_DEV`).
    const FS_FLAGS: c_int;
    /// Creates the superblock and root for a mount of `source` (`get_tree`).
    fn get_tree(fc: &mut FsContext) -> Result;
}

/// A mount being set up (`struct fs_context`).
///
/// # Invariants
///
/// `ptr` points to a live `struct fs_context` for the duration of the
/// callback that created this wrapper.
pub struct FsContext {
    ptr: *mut bindings::fs_context,
}

impl FsContext {
    /// The mount source (`fc->source`), if one was given.
    pub fn source(&self) -> Option<&CStr> {
        // SAFETY: `self.ptr` is live (type invariant).
        let p = unsafe { shim::marufs_shim_fc_source(self.ptr) };
        if p.is_null() {
            None
        } else {
            // SAFETY: `fc->source` is a NUL-terminated string owned by the
            // fs_context, which outlives `&self`.
            Some(unsafe { CStr::from_char_ptr(p) })
        }
    }
}

/// Dispatches the shim's callbacks to the filesystem type `T`.
///
/// Kept generic-free at the FFI boundary: the module has exactly one
/// filesystem type, named here.
type Fs = crate::fs::Marufs;

/// `init_fs_context` tail, called by the shim after it set `fc->ops`.
///
/// # Safety
///
/// `fc` must be a valid `struct fs_context` being initialised by the VFS.
#[no_mangle]
pub unsafe extern "C" fn marufs_rs_init_fs_context(fc: *mut bindings::fs_context) -> c_int {
    // SAFETY: `fc` is valid (function contract). No private state yet.
    unsafe { shim::marufs_shim_fc_set_private(fc, core::ptr::null_mut()) };
    0
}

/// `fs_context_operations.get_tree`.
///
/// # Safety
///
/// `fc` must be a valid `struct fs_context`, as the VFS passes it.
#[no_mangle]
pub unsafe extern "C" fn marufs_rs_get_tree(fc: *mut bindings::fs_context) -> c_int {
    // INVARIANT: `fc` is live for this callback (function contract).
    let mut ctx = FsContext { ptr: fc };
    match <Fs as FileSystem>::get_tree(&mut ctx) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `fs_context_operations.free`.
///
/// # Safety
///
/// `fc` must be a valid `struct fs_context` being freed by the VFS.
#[no_mangle]
pub unsafe extern "C" fn marufs_rs_fc_free(fc: *mut bindings::fs_context) {
    // SAFETY: `fc` is valid (function contract).
    let p = unsafe { shim::marufs_shim_fc_private(fc) };
    // Nothing is allocated into fs_private yet.
    debug_assert!(p.is_null());
}
