// SPDX-License-Identifier: GPL-2.0

//! `struct fs_context` and `struct fs_context_operations`: the mount API.
//!
//! The context operations of filesystem `T` are `T`'s trampolines below;
//! the shim builds the C table from them at registration (the struct is not
//! in the generated bindings) and holds the mount parameter table (its
//! `fsparam_*` macros have no Rust form).

use super::{
    shim,
    super_block::{NewSuperBlock, StatFs, SuperBlock},
    FsOps,
};
use kernel::{bindings, ffi::c_int, prelude::*, seq_file::SeqFile, str::CStr};

/// A mount option, as parsed by the kernel's `fs_parse()` against the shim's
/// parameter table.
#[derive(Clone, Copy, Debug)]
pub enum Param {
    /// `node=N`: this host's node id.
    Node(u32),
    /// `uid=N`: owner of the root directory (kernel-global uid).
    Uid(u32),
    /// `gid=N`: group of the root directory (kernel-global gid).
    Gid(u32),
    /// `mode=OCTAL`: permission bits of the root directory.
    Mode(u32),
    /// `lease_ms=N`: lease duration for this host in milliseconds.
    LeaseMs(u32),
    /// `coherent`: the hosts' caches are coherent with each other.
    Coherent,
}

/// A filesystem implementation, as seen by the mount API and the superblock
/// operations.
pub trait FileSystem: Sized {
    /// Name shown in `/proc/filesystems` and used with `mount -t`.
    const NAME: &'static CStr;
    /// Parsed mount options (owned by the fs_context).
    type Options: Default;
    /// Per-mount state (owned by the superblock, dropped at unmount).
    type Data: Send + Sync;

    /// Applies one mount option.
    fn parse_param(opts: &mut Self::Options, p: Param) -> Result;
    /// Builds the per-mount state for `source` and sets up the superblock and
    /// its root directory.
    fn fill_super(
        source: Option<&CStr>,
        opts: &Self::Options,
        read_only: bool,
        sb: &mut NewSuperBlock<'_, Self>,
    ) -> Result<KBox<Self::Data>>;
    /// `mount -o remount`: `read_only` is the requested state.
    fn reconfigure(data: &Self::Data, opts: &Self::Options, read_only: bool) -> Result;
    /// `statfs(2)`.
    fn statfs(data: &Self::Data) -> Result<StatFs>;
    /// Prints the mount options for `/proc/mounts`.
    fn show_options(data: &Self::Data, m: &SeqFile);
    /// Unmount, after every inode of the superblock is gone and before the
    /// per-mount state is dropped (its periodic work still runs).
    fn shutdown(data: &Self::Data);
}

/// The trampolines of `T`'s `struct fs_context_operations` (free,
/// parse_param, get_tree, reconfigure), for the shim to build the table
/// from (the struct is not in the generated bindings).
pub(crate) fn context_ops<T: FsOps>() -> (shim::FcFreeFn, shim::FcParseFn, shim::FcTreeFn, shim::FcTreeFn) {
    (fc_free_cb::<T>, parse_param_cb::<T>, get_tree_cb::<T>, reconfigure_cb::<T>)
}

/// `file_system_type.init_fs_context`: installs `T`'s context operations
/// and allocates its options.
///
/// # Safety
///
/// `fc` must be a `struct fs_context` being initialised by
/// `alloc_fs_context` (not yet shared) for a filesystem type registered by
/// [`Registration::new::<T>`](super::fs_type::Registration::new).
pub(crate) unsafe extern "C" fn init_fs_context_cb<T: FsOps>(fc: *mut bindings::fs_context) -> c_int {
    match KBox::new(T::Options::default(), GFP_KERNEL) {
        Ok(b) => {
            // SAFETY: `fc->fs_type` is the type `alloc_fs_context` is
            // initialising for: one registered by `Registration::new::<T>`
            // (function contract), the `fs` field of that live registration.
            let ops = unsafe { super::fs_type::Registration::context_ops_of(shim::marufs_shim_fc_fs_type(fc)) };
            // SAFETY: `fc` is valid and not yet shared (function contract).
            // `ops` is `T`'s table, which outlives every context of the type.
            // Ownership of the box passes to the context and is taken back
            // in `fc_free_cb::<T>`, which the VFS calls for every context
            // whose init succeeded, with these operations installed.
            unsafe {
                shim::marufs_shim_fc_set_ops(fc, ops);
                shim::marufs_shim_fc_set_private(fc, KBox::into_raw(b).cast());
            }
            0
        }
        Err(_) => ENOMEM.to_errno(),
    }
}

/// Borrows `T`'s options stored in `fc->fs_private`.
///
/// # Safety
///
/// `fc` must be a context initialised by `init_fs_context_cb::<T>` and not
/// yet freed, and the caller one of its operations (the VFS runs them one
/// at a time, under `uapi_mutex` or before the context is shared); the
/// returned reference must not outlive that call.
unsafe fn options<'a, T: FileSystem>(fc: *mut bindings::fs_context) -> &'a mut T::Options {
    // SAFETY: `fs_private` is the live `KBox<T::Options>` installed at init
    // and freed only by `fc_free_cb::<T>`; no other operation of the context
    // runs concurrently, so the exclusive borrow is unique (function contract).
    unsafe { &mut *shim::marufs_shim_fc_private(fc).cast::<T::Options>() }
}

/// `fs_context_operations.parse_param`.
///
/// # Safety
///
/// `fc` must be a context of `T` and `param` a valid parameter, as
/// `vfs_parse_fs_param` passes them.
unsafe extern "C" fn parse_param_cb<T: FsOps>(
    fc: *mut bindings::fs_context,
    param: *mut bindings::fs_parameter,
) -> c_int {
    let mut v = shim::ParamValue::default();
    // SAFETY: `fc` and `param` are valid (function contract); `v` is a local
    // the shim writes.
    let r = unsafe { shim::marufs_shim_parse_param(fc, param, &mut v) };
    if r < 0 {
        // -ENOPARAM lets the VFS handle "source" and the generic sb flags.
        return r;
    }
    let p = match v.opt {
        shim::OPT_NODE => Param::Node(v.value),
        shim::OPT_UID => Param::Uid(v.value),
        shim::OPT_GID => Param::Gid(v.value),
        shim::OPT_MODE => Param::Mode(v.value),
        shim::OPT_LEASE_MS => Param::LeaseMs(v.value),
        shim::OPT_COHERENT => Param::Coherent,
        _ => return EINVAL.to_errno(),
    };
    // SAFETY: `fc` was initialised by `init_fs_context_cb::<T>` (only `T`'s
    // table points here) and this is one of its operations.
    let opts = unsafe { options::<T>(fc) };
    match T::parse_param(opts, p) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `fs_context_operations.get_tree`: a new superblock per mount.
///
/// # Safety
///
/// `fc` must be a context of `T`, as `vfs_get_tree` passes it.
unsafe extern "C" fn get_tree_cb<T: FsOps>(fc: *mut bindings::fs_context) -> c_int {
    // SAFETY: `fc` is valid (function contract); `fill_super_cb::<T>` is
    // the callback `get_tree_nodev` expects, and is handed `fc` back.
    unsafe { shim::marufs_shim_get_tree_nodev(fc, Some(fill_super_cb::<T>)) }
}

/// `fill_super` callback of `get_tree_nodev()`.
///
/// # Safety
///
/// `sb` must be a new, locked superblock being set up for context `fc` of
/// `T` (`sget_fc` made it with `T`'s filesystem type).
unsafe extern "C" fn fill_super_cb<T: FsOps>(sb: *mut bindings::super_block, fc: *mut bindings::fs_context) -> c_int {
    // SAFETY: `fc` is valid (function contract).
    let src = unsafe { shim::marufs_shim_fc_source(fc) };
    let source = if src.is_null() {
        None
    } else {
        // SAFETY: a non-NULL `fc->source` is a NUL-terminated string owned
        // by `fc`, which outlives this call.
        Some(unsafe { CStr::from_char_ptr(src) })
    };
    // SAFETY: `fc` is valid (function contract).
    let ro = unsafe { shim::marufs_shim_fc_read_only(fc) };
    // SAFETY: `fc` is a context of `T` and `get_tree`, one of its
    // operations, is running (this is called from it).
    let opts = unsafe { options::<T>(fc) };
    // SAFETY: `sb` is a new superblock of `T`, ours until fill_super returns
    // (function contract).
    let mut nsb = unsafe { NewSuperBlock::<T>::from_raw(sb) };
    match T::fill_super(source, opts, ro, &mut nsb) {
        Ok(data) => match nsb.set_fs_info(data) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        },
        Err(e) => e.to_errno(),
    }
}

/// `fs_context_operations.reconfigure` (`mount -o remount,...`).
///
/// # Safety
///
/// `fc` must be a reconfiguration context of `T` with `fc->root` set, as
/// `reconfigure_super` passes it (the superblock's `s_umount` held).
unsafe extern "C" fn reconfigure_cb<T: FsOps>(fc: *mut bindings::fs_context) -> c_int {
    // SAFETY: `fc` is valid (function contract).
    let sbp = unsafe { shim::marufs_shim_fc_root_sb(fc) };
    if sbp.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: `fc->root` pins the mounted superblock being reconfigured,
    // made by `T`'s get_tree (this context's type is `T`'s).
    let sb = unsafe { SuperBlock::<T>::from_raw(sbp) };
    // SAFETY: `fc` is valid (function contract).
    let ro = unsafe { shim::marufs_shim_fc_read_only(fc) };
    // SAFETY: `fc` is a context of `T` and this is one of its operations.
    let opts = unsafe { options::<T>(fc) };
    match sb.data() {
        Some(d) => match T::reconfigure(d, opts, ro) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        },
        None => EINVAL.to_errno(),
    }
}

/// `fs_context_operations.free`: drops the options.
///
/// # Safety
///
/// `fc` must be a context of `T` being freed by `put_fs_context` (its last
/// operation).
unsafe extern "C" fn fc_free_cb<T: FsOps>(fc: *mut bindings::fs_context) {
    // SAFETY: `fc` is valid (function contract).
    let p = unsafe { shim::marufs_shim_fc_private(fc) };
    if !p.is_null() {
        // SAFETY: `p` came from `KBox::into_raw` in `init_fs_context_cb::<T>`
        // and this, the context's last operation, is the only place it is
        // freed.
        drop(unsafe { KBox::from_raw(p.cast::<T::Options>()) });
    }
}
