// SPDX-License-Identifier: GPL-2.0

//! `struct super_block` and `struct super_operations`.

use super::{
    fs_context, inode,
    inode::Attrs,
    shim,
    work::{Periodic, PeriodicWork},
};
use core::marker::PhantomData;
use kernel::{bindings, ffi::c_int, prelude::*, seq_file::SeqFile};

/// What `statfs(2)` reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatFs {
    /// Block (allocation unit) size in bytes.
    pub bsize: u32,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Total inodes (key slots).
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Longest name.
    pub namelen: u32,
    /// Filesystem id (from the pool UUID).
    pub fsid: u64,
}

/// A superblock being set up by `fill_super`.
///
/// # Invariants
///
/// `ptr` is a new superblock, locked by the VFS, for the lifetime `'a`.
pub struct NewSuperBlock<'a> {
    ptr: *mut bindings::super_block,
    _p: PhantomData<&'a mut bindings::super_block>,
}

impl NewSuperBlock<'_> {
    /// # Safety
    ///
    /// `ptr` must be a new superblock passed to `fill_super`, valid and
    /// exclusively ours for the returned lifetime.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::super_block) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            ptr,
            _p: PhantomData,
        }
    }

    /// Sets the superblock's constants: magic, block size (a power of two),
    /// maximum file size, and the operation table.
    pub fn setup(&mut self, magic: u64, blocksize_bits: u8, max_bytes: i64) {
        // SAFETY: `ptr` is a new superblock we own during fill_super (type
        // invariant); these plain fields are ours to set.
        unsafe {
            (*self.ptr).s_magic = magic as usize;
            (*self.ptr).s_blocksize_bits = blocksize_bits;
            (*self.ptr).s_blocksize = 1 << blocksize_bits;
            (*self.ptr).s_maxbytes = max_bytes;
            (*self.ptr).s_time_gran = 1;
            (*self.ptr).s_op = &SUPER_OPS;
        }
    }

    /// Creates the root directory inode and dentry, and installs the dentry
    /// operations that revalidate names against the shared media.
    pub fn make_root(&mut self, attrs: &Attrs) -> Result {
        // SAFETY: `ptr` is a valid new superblock (type invariant);
        // DENTRY_OPS is a static table.
        unsafe { bindings::set_default_d_op(self.ptr, &inode::DENTRY_OPS) };
        // SAFETY: `ptr` is valid (type invariant).
        let inode = unsafe { inode::get_inode(self.ptr, attrs)? };
        // SAFETY: `inode` is a referenced inode; d_make_root consumes it
        // (iput on failure).
        let root = unsafe { bindings::d_make_root(inode) };
        if root.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `ptr` is valid (type invariant); the VFS owns s_root from here.
        unsafe { (*self.ptr).s_root = root };
        Ok(())
    }

    /// Hands the per-mount state to the superblock and starts its periodic
    /// work (`Periodic::period_ms`); both are dropped by `kill_sb` after the
    /// VFS shut the superblock down, the work first. On error (no memory
    /// for the work) nothing is installed and the state is dropped.
    pub(crate) fn set_fs_info(&mut self, data: KBox<<fs_context::Fs as fs_context::FileSystem>::Data>) -> Result {
        let data = KBox::into_inner(data);
        let period = <fs_context::Fs as Periodic>::period_ms(&data);
        let mut m = KBox::new(Mounted { work: None, data }, GFP_KERNEL)?;
        if let Some(ms) = period {
            // The box keeps `m.data` in place until `kill_sb`, which drops
            // (stops) `work`, the first field, before `data`.
            // SAFETY: `m.data` outlives the work, as just argued.
            m.work = Some(unsafe { PeriodicWork::start(&m.data, ms)? });
        }
        // SAFETY: `ptr` is valid (type invariant). Ownership passes to the
        // superblock; `kill_sb` takes it back exactly once.
        unsafe { (*self.ptr).s_fs_info = KBox::into_raw(m).cast() };
        Ok(())
    }
}

/// What a superblock owns (`s_fs_info`): the filesystem's per-mount state
/// and the periodic work running on it.
///
/// # Invariants
///
/// `work`, if any, was started for `data` and is declared first, so it is
/// stopped before `data` is dropped.
pub(crate) struct Mounted<T> {
    work: Option<PeriodicWork>,
    data: T,
}

/// A live superblock of this filesystem.
///
/// # Invariants
///
/// `ptr` is a live marufs superblock for `'a`; its `s_fs_info` is either NULL
/// or a `KBox<Mounted<Data>>` of the filesystem installed by `fill_super`.
pub struct SuperBlock<'a> {
    ptr: *mut bindings::super_block,
    _p: PhantomData<&'a bindings::super_block>,
}

impl<'a> SuperBlock<'a> {
    /// # Safety
    ///
    /// `ptr` must be a live marufs superblock for `'a` whose `s_fs_info` is
    /// NULL or was installed by [`NewSuperBlock::set_fs_info`].
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::super_block) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            ptr,
            _p: PhantomData,
        }
    }

    /// The per-mount state of filesystem type `T`.
    pub(crate) fn data<T: fs_context::FileSystem>(&self) -> Option<&'a T::Data> {
        // SAFETY: `ptr` is live (type invariant).
        let p = unsafe { (*self.ptr).s_fs_info };
        if p.is_null() {
            None
        } else {
            // Type invariant: a non-NULL s_fs_info is a live box from
            // `set_fs_info` (one filesystem type), freed in kill_sb after `'a`.
            // SAFETY: so `p` is a live `Mounted<T::Data>` for `'a`.
            Some(unsafe { &(*p.cast::<Mounted<T::Data>>()).data })
        }
    }
}

/// The superblock operation table.
static SUPER_OPS: bindings::super_operations = {
    // SAFETY: all-zero is a valid `super_operations` (every hook optional).
    let mut ops: bindings::super_operations = unsafe { core::mem::zeroed() };
    ops.statfs = Some(statfs_callback);
    ops.evict_inode = Some(super::file::evict_cb);
    ops.show_options = Some(show_options_callback);
    ops
};

/// `super_operations.statfs`.
///
/// # Safety
///
/// `dentry` and `buf` must be valid, as the VFS passes them.
unsafe extern "C" fn statfs_callback(
    dentry: *mut bindings::dentry,
    buf: *mut bindings::kstatfs,
) -> c_int {
    // SAFETY: `dentry` is a live dentry of a mounted marufs (function contract),
    // so `d_sb` is a live marufs superblock.
    let sb = unsafe { SuperBlock::from_raw((*dentry).d_sb) };
    match fs_context::statfs(&sb) {
        Ok(s) => {
            // SAFETY: `buf` is valid for writes (function contract).
            unsafe {
                shim::marufs_shim_fill_statfs(
                    buf, s.bsize, s.blocks, s.bfree, s.files, s.ffree, s.namelen, s.fsid,
                )
            };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `super_operations.show_options`.
///
/// # Safety
///
/// `m` and `root` must be valid, as the VFS passes them.
unsafe extern "C" fn show_options_callback(
    m: *mut bindings::seq_file,
    root: *mut bindings::dentry,
) -> c_int {
    // SAFETY: `root` is the root of a mounted marufs (function contract).
    let sb = unsafe { SuperBlock::from_raw((*root).d_sb) };
    // SAFETY: `m` is valid and used only by this thread during the callback.
    let seq = unsafe { SeqFile::from_raw(m) };
    fs_context::show_options(&sb, seq);
    0
}

/// `file_system_type.kill_sb`: shuts the superblock down, then drops the
/// per-mount state (also when `fill_super` failed after installing it).
///
/// # Safety
///
/// `sb` must be a marufs superblock being destroyed by the VFS.
pub(crate) unsafe extern "C" fn kill_sb(sb: *mut bindings::super_block) {
    // SAFETY: `sb` is valid (function contract).
    let info = unsafe { (*sb).s_fs_info };
    // SAFETY: `sb` is an anonymous-device superblock (get_tree_nodev).
    unsafe { bindings::kill_anon_super(sb) };
    if !info.is_null() {
        // SAFETY: `info` came from `set_fs_info` (`KBox::into_raw`) and the
        // superblock is gone, so this is the last reference; freed once.
        let m = unsafe { KBox::from_raw(info.cast::<Mounted<<fs_context::Fs as fs_context::FileSystem>::Data>>()) };
        // The periodic work still runs during shutdown (it may wait).
        <fs_context::Fs as fs_context::FileSystem>::shutdown(&m.data);
        // Fields in order: the work stops, then the state goes.
        drop(m);
    }
}
