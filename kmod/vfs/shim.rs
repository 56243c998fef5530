// SPDX-License-Identifier: GPL-2.0

//! Declarations of the C shim (`kmod/shim.c`): what `kernel::bindings` lacks.

use kernel::{bindings, ffi::c_char, ffi::c_int, ffi::c_void};

extern "C" {
    /// `init_fs_context` for the file_system_type: installs the shim's
    /// `fs_context_operations` table, then calls `marufs_rs_init_fs_context`.
    pub(crate) fn marufs_shim_init_fs_context(fc: *mut bindings::fs_context) -> c_int;
    /// Returns `fc->fs_private`.
    pub(crate) fn marufs_shim_fc_private(fc: *mut bindings::fs_context) -> *mut c_void;
    /// Sets `fc->fs_private`.
    pub(crate) fn marufs_shim_fc_set_private(fc: *mut bindings::fs_context, p: *mut c_void);
    /// Returns `fc->source` (may be NULL).
    pub(crate) fn marufs_shim_fc_source(fc: *mut bindings::fs_context) -> *const c_char;
}
