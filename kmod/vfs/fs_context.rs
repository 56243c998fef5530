// SPDX-License-Identifier: GPL-2.0

//! `struct fs_context` and `struct fs_context_operations`: the mount API.
//!
//! The C operation table lives in the shim (`shim.c`); it calls the
//! `marufs_rs_*` entry points below, which dispatch to [`FileSystem`].

use super::{
    shim,
    super_block::{NewSuperBlock, StatFs, SuperBlock},
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
pub trait FileSystem {
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
        sb: &mut NewSuperBlock<'_>,
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

/// The module's one filesystem type: the C tables dispatch to it.
pub(crate) type Fs = crate::fs::Marufs;

type Options = <Fs as FileSystem>::Options;

/// `init_fs_context` tail, called by the shim after it set `fc->ops`:
/// allocates the options.
///
/// # Safety
///
/// `fc` must be a valid `struct fs_context` being initialised by the VFS.
#[no_mangle]
pub unsafe extern "C" fn marufs_rs_init_fs_context(fc: *mut bindings::fs_context) -> c_int {
    match KBox::new(Options::default(), GFP_KERNEL) {
        Ok(b) => {
            // SAFETY: `fc` is valid (function contract); ownership of the box
            // passes to the fs_context and is taken back in `marufs_rs_fc_free`.
            unsafe { shim::marufs_shim_fc_set_private(fc, KBox::into_raw(b).cast()) };
            0
        }
        Err(_) => ENOMEM.to_errno(),
    }
}

/// Borrows the options stored in `fc->fs_private`.
///
/// # Safety
///
/// `fc` must be valid and its `fs_private` set by `marufs_rs_init_fs_context`;
/// the returned reference must not outlive the callback.
unsafe fn options<'a>(fc: *mut bindings::fs_context) -> &'a mut Options {
    // SAFETY: per the function contract `fs_private` is a live `KBox<Options>`
    // and the VFS serialises fs_context callbacks (uapi_mutex).
    unsafe { &mut *shim::marufs_shim_fc_private(fc).cast::<Options>() }
}

/// `fs_context_operations.parse_param`.
///
/// # Safety
///
/// `fc` and `param` must be valid, as the VFS passes them.
#[no_mangle]
pub unsafe extern "C" fn marufs_rs_parse_param(
    fc: *mut bindings::fs_context,
    param: *mut bindings::fs_parameter,
) -> c_int {
    let mut v = shim::ParamValue::default();
    // SAFETY: `fc`, `param` are valid (function contract); `v` is a local.
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
    // SAFETY: `fc` is valid with options installed at init (function contract).
    let opts = unsafe { options(fc) };
    match Fs::parse_param(opts, p) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `fs_context_operations.get_tree`: a new superblock per mount.
///
/// # Safety
///
/// `fc` must be a valid `struct fs_context`, as the VFS passes it.
#[no_mangle]
pub unsafe extern "C" fn marufs_rs_get_tree(fc: *mut bindings::fs_context) -> c_int {
    // SAFETY: `fc` is valid (function contract).
    unsafe { shim::marufs_shim_get_tree_nodev(fc) }
}

/// `fill_super` callback of `get_tree_nodev()`.
///
/// # Safety
///
/// `sb` must be a new, locked superblock and `fc` its fs_context.
#[no_mangle]
pub unsafe extern "C" fn marufs_rs_fill_super(
    sb: *mut bindings::super_block,
    fc: *mut bindings::fs_context,
) -> c_int {
    // SAFETY: `fc` is valid (function contract).
    let src = unsafe { shim::marufs_shim_fc_source(fc) };
    let source = if src.is_null() {
        None
    } else {
        // SAFETY: `fc->source` is a NUL-terminated string owned by `fc`.
        Some(unsafe { CStr::from_char_ptr(src) })
    };
    // SAFETY: `fc` is valid (function contract).
    let ro = unsafe { shim::marufs_shim_fc_read_only(fc) };
    // SAFETY: `fc` is valid with options installed at init (function contract).
    let opts = unsafe { options(fc) };
    // SAFETY: `sb` is a new superblock being set up (function contract).
    let mut nsb = unsafe { NewSuperBlock::from_raw(sb) };
    match Fs::fill_super(source, opts, ro, &mut nsb) {
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
/// `fc` must be a valid reconfiguration context with `fc->root` set.
#[no_mangle]
pub unsafe extern "C" fn marufs_rs_reconfigure(fc: *mut bindings::fs_context) -> c_int {
    // SAFETY: `fc` is valid (function contract).
    let sbp = unsafe { shim::marufs_shim_fc_root_sb(fc) };
    if sbp.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: `sbp` is the live superblock being reconfigured; its s_fs_info was
    // set by a successful fill_super (or the VFS would not reconfigure it).
    let sb = unsafe { SuperBlock::from_raw(sbp) };
    // SAFETY: `fc` is valid (function contract).
    let ro = unsafe { shim::marufs_shim_fc_read_only(fc) };
    // SAFETY: `fc` is valid with options installed at init (function contract).
    let opts = unsafe { options(fc) };
    match sb.data::<Fs>() {
        Some(d) => match Fs::reconfigure(d, opts, ro) {
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
/// `fc` must be a valid `struct fs_context` being freed by the VFS.
#[no_mangle]
pub unsafe extern "C" fn marufs_rs_fc_free(fc: *mut bindings::fs_context) {
    // SAFETY: `fc` is valid (function contract).
    let p = unsafe { shim::marufs_shim_fc_private(fc) };
    if !p.is_null() {
        // SAFETY: `p` came from `KBox::into_raw` in `marufs_rs_init_fs_context`
        // and is freed only here, once.
        drop(unsafe { KBox::from_raw(p.cast::<Options>()) });
    }
}

/// Adapter used by [`super::super_block`] to call [`FileSystem::statfs`].
pub(crate) fn statfs(sb: &SuperBlock<'_>) -> Result<StatFs> {
    Fs::statfs(sb.data::<Fs>().ok_or(EINVAL)?)
}

/// Adapter used by [`super::super_block`] to call [`FileSystem::show_options`].
pub(crate) fn show_options(sb: &SuperBlock<'_>, m: &SeqFile) {
    if let Some(d) = sb.data::<Fs>() {
        Fs::show_options(d, m);
    }
}
