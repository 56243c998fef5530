// SPDX-License-Identifier: GPL-2.0

//! `struct super_block` and `struct super_operations`.

use super::{
    fs_context::FileSystem,
    inode::{self, Attrs},
    shim,
    work::{Periodic, PeriodicWork},
    FsOps, Tables,
};
use core::marker::PhantomData;
use kernel::{bindings, ffi::c_int, prelude::*, seq_file::SeqFile, types::Opaque};

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

/// A superblock being set up by `fill_super` of filesystem `T`.
///
/// # Invariants
///
/// `ptr` is a new superblock of `T`, locked by the VFS and not yet visible
/// to any other thread, for the lifetime `'a`.
pub struct NewSuperBlock<'a, T> {
    ptr: *mut bindings::super_block,
    _p: PhantomData<(&'a mut bindings::super_block, T)>,
}

impl<T: FsOps> NewSuperBlock<'_, T> {
    /// # Safety
    ///
    /// `ptr` must be a new superblock passed to `T`'s `fill_super`, valid and
    /// exclusively ours for the returned lifetime.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::super_block) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            ptr,
            _p: PhantomData,
        }
    }

    /// Sets the superblock's constants: magic, block size (a power of two),
    /// maximum file size, and `T`'s operation table.
    pub fn setup(&mut self, magic: u64, blocksize_bits: u8, max_bytes: i64) {
        // SAFETY: `ptr` is a new superblock only this thread sees (type
        // invariant), so plain stores to its fields race with nothing; the
        // operation table is a promoted constant, so `'static`.
        unsafe {
            (*self.ptr).s_magic = magic as usize;
            (*self.ptr).s_blocksize_bits = blocksize_bits;
            (*self.ptr).s_blocksize = 1 << blocksize_bits;
            (*self.ptr).s_maxbytes = max_bytes;
            (*self.ptr).s_time_gran = 1;
            (*self.ptr).s_op = &Tables::<T>::SUPER_OPS;
        }
    }

    /// Creates the root directory inode and dentry, and installs the dentry
    /// operations that revalidate names against the shared media.
    pub fn make_root(&mut self, attrs: &Attrs) -> Result {
        // SAFETY: `ptr` is a new superblock no dentry of which exists yet
        // (type invariant), so setting its default dentry operations races
        // with no lookup; the table is a promoted constant (`'static`).
        unsafe { bindings::set_default_d_op(self.ptr, &Tables::<T>::DENTRY_OPS) };
        // SAFETY: `ptr` is a live superblock of `T` (type invariant).
        let sb = unsafe { SuperBlock::<T>::from_raw(self.ptr) };
        let inode = inode::get_inode(sb, attrs)?;
        // SAFETY: `inode` is a referenced inode of this superblock;
        // `d_make_root` consumes the reference (iput on failure).
        let root = unsafe { bindings::d_make_root(inode) };
        if root.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `ptr` is ours during fill_super (type invariant); the VFS
        // owns `s_root` from here and drops it at unmount.
        unsafe { (*self.ptr).s_root = root };
        Ok(())
    }

    /// Hands the per-mount state to the superblock and starts its periodic
    /// work (`Periodic::period_ms`); both are dropped by `kill_sb` after the
    /// VFS shut the superblock down, the work first. On error (no memory
    /// for the work) nothing is installed and the state is dropped.
    pub(crate) fn set_fs_info(&mut self, data: KBox<T::Data>) -> Result {
        let data = KBox::into_inner(data);
        let period = <T as Periodic>::period_ms(&data);
        let background = <T as Periodic>::background_period_ms(&data);
        let m = KBox::new(
            Mounted::<T> {
                work: None,
                background: None,
                data,
            },
            GFP_KERNEL,
        )?;
        // From here on the state is reached through this raw pointer only:
        // once the work runs it shares `data`, so no `&mut Mounted` (which a
        // write through the box would make) may cover it again.
        let p = KBox::into_raw(m);
        if let Some(ms) = period {
            // SAFETY: `p` is the live allocation just made; `(*p).data` stays
            // in place until `kill_sb::<T>` frees it, after stopping the work
            // (`Mounted`'s invariant); the superblock `self.ptr` outlives
            // `kill_sb::<T>`, which stops the work.
            match unsafe { PeriodicWork::start::<T>(&(*p).data, self.ptr, ms) } {
                // SAFETY: `p` is live and `work` a field no one else reads
                // or writes yet: written in place, without a reference to
                // the whole `Mounted` (the work may already read `data`).
                Ok(w) => unsafe { core::ptr::addr_of_mut!((*p).work).write(Some(w)) },
                Err(e) => {
                    // SAFETY: `p` came from `KBox::into_raw` above and the
                    // work did not start: nothing shares it; freed once.
                    drop(unsafe { KBox::from_raw(p) });
                    return Err(e);
                }
            }
        }
        if let Some(ms) = background {
            // SAFETY: as for the tick's work above.
            match unsafe { PeriodicWork::start_background::<T>(&(*p).data, self.ptr, ms) } {
                // SAFETY: `p` is live and `background` a field no one else
                // reads or writes: written in place, as `work` above.
                Ok(w) => unsafe { core::ptr::addr_of_mut!((*p).background).write(Some(w)) },
                Err(e) => {
                    // SAFETY: `p` came from `KBox::into_raw` above and the
                    // superblock does not own it yet. The tick's work, if it
                    // started, shares `data`: it is taken out in place and
                    // stopped (waiting for a running tick) first; then
                    // nothing shares the allocation, freed once.
                    unsafe {
                        drop(core::ptr::addr_of_mut!((*p).work).replace(None));
                        drop(KBox::from_raw(p));
                    }
                    return Err(e);
                }
            }
        }
        // SAFETY: `ptr` is ours during fill_super (type invariant), and
        // `s_fs_info` is NULL until here. Ownership of the allocation passes
        // to the superblock; `kill_sb::<T>` takes it back exactly once.
        unsafe { (*self.ptr).s_fs_info = p.cast() };
        Ok(())
    }
}

/// What a superblock of `T` owns (`s_fs_info`): the filesystem's per-mount
/// state and the periodic work (tick and background) running on it.
///
/// # Invariants
///
/// `work` and `background`, if any, were started for `data`; `kill_sb::<T>`
/// stops them before `data` is dropped (and they are declared first, so a
/// drop of the whole value would stop them first too). While either runs,
/// `data` is only reached through shared references made from the raw
/// allocation.
pub(crate) struct Mounted<T: FileSystem> {
    work: Option<PeriodicWork>,
    background: Option<PeriodicWork>,
    data: T::Data,
}

/// A live superblock of filesystem `T`.
///
/// # Invariants
///
/// The wrapped superblock is live for as long as a reference to this value
/// exists, was created through `T`'s `get_tree`, and its `s_fs_info` is
/// either NULL or a `KBox<Mounted<T>>` installed by
/// [`NewSuperBlock::set_fs_info`] and freed only by `kill_sb::<T>`.
#[repr(transparent)]
pub struct SuperBlock<T>(Opaque<bindings::super_block>, PhantomData<T>);

impl<T: FileSystem> SuperBlock<T> {
    /// # Safety
    ///
    /// `ptr` must be a superblock of filesystem `T` (made by `T`'s
    /// `get_tree`), live for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::super_block) -> &'a Self {
        // SAFETY: `SuperBlock<T>` is a transparent wrapper of the C struct;
        // the pointee is live for `'a` (function contract).
        // INVARIANT: a superblock of `T` only ever gets `T`'s `s_fs_info`.
        unsafe { &*ptr.cast() }
    }

    /// The C superblock.
    pub(crate) fn as_ptr(&self) -> *mut bindings::super_block {
        self.0.get()
    }

    /// The per-mount state, for as long as the superblock is borrowed; `None`
    /// while `fill_super` has not installed it (or failed).
    pub fn data(&self) -> Option<&T::Data> {
        // SAFETY: the superblock is live (type invariant); `s_fs_info` is
        // written only by `set_fs_info` during fill_super, before any other
        // thread can reach the superblock.
        let p = unsafe { (*self.0.get()).s_fs_info };
        if p.is_null() {
            return None;
        }
        // SAFETY: by the type invariant a non-NULL `s_fs_info` is a live
        // `Mounted<T>`, freed by `kill_sb::<T>` only after the VFS shut the
        // superblock down, i.e. after every callback that could hold `&self`.
        Some(unsafe { &(*p.cast::<Mounted<T>>()).data })
    }
}

impl<T: FsOps> Tables<T> {
    /// `T`'s superblock operation table.
    pub(crate) const SUPER_OPS: bindings::super_operations = {
        // SAFETY: all-zero is a valid `super_operations` (every hook optional).
        let mut ops: bindings::super_operations = unsafe { core::mem::zeroed() };
        ops.statfs = Some(statfs_cb::<T>);
        ops.evict_inode = Some(super::file::evict_cb::<T>);
        ops.show_options = Some(show_options_cb::<T>);
        ops
    };
}

/// `super_operations.statfs`.
///
/// # Safety
///
/// `dentry` must be a live dentry of a mounted `T` and `buf` valid for
/// writes, as `vfs_statfs` passes them.
unsafe extern "C" fn statfs_cb<T: FsOps>(dentry: *mut bindings::dentry, buf: *mut bindings::kstatfs) -> c_int {
    // SAFETY: a live dentry's `d_sb` is fixed and live while the dentry is
    // (function contract); `T`'s tables are only installed on `T`'s
    // superblocks, so this is one of `T`.
    let sb = unsafe { SuperBlock::<T>::from_raw((*dentry).d_sb) };
    let Some(d) = sb.data() else {
        return EINVAL.to_errno();
    };
    match T::statfs(d) {
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
/// `m` must be a valid seq_file being filled by this thread and `root` the
/// root dentry of a mounted `T`, as `show_vfsmnt` passes them.
unsafe extern "C" fn show_options_cb<T: FsOps>(m: *mut bindings::seq_file, root: *mut bindings::dentry) -> c_int {
    // SAFETY: the root dentry of a mount pins its superblock, one of `T`
    // (function contract).
    let sb = unsafe { SuperBlock::<T>::from_raw((*root).d_sb) };
    // SAFETY: `m` is valid and used only by this thread for the call
    // (function contract).
    let seq = unsafe { SeqFile::from_raw(m) };
    if let Some(d) = sb.data() {
        T::show_options(d, seq);
    }
    0
}

/// `file_system_type.kill_sb`: shuts the superblock down, then drops the
/// per-mount state (also when `fill_super` failed after installing it).
///
/// # Safety
///
/// `sb` must be a superblock of `T` being destroyed by the VFS (its last
/// active reference gone), as `deactivate_locked_super` passes it.
pub(crate) unsafe extern "C" fn kill_sb<T: FsOps>(sb: *mut bindings::super_block) {
    // SAFETY: `sb` is valid until `kill_anon_super` returns (function
    // contract); `s_fs_info` is no longer written by anyone.
    let info = unsafe { (*sb).s_fs_info };
    // SAFETY: `sb` is an anonymous-device superblock (made by
    // `get_tree_nodev`) being destroyed (function contract): this evicts
    // every inode and frees the anonymous device.
    unsafe { bindings::kill_anon_super(sb) };
    if !info.is_null() {
        let p = info.cast::<Mounted<T>>();
        // The periodic work still runs during shutdown (it may wait) and
        // reads `data` meanwhile: shared access only.
        // SAFETY: `info` is the live `Mounted<T>` from `set_fs_info::<T>`;
        // the superblock and its inodes are gone, so besides the work
        // (which only reads `data`) nothing reaches it any more.
        T::shutdown(unsafe { &(*p).data });
        // SAFETY: `p` is live (just argued); the `work` field is taken out
        // in place, without a reference to `data`, which the work may be
        // reading.
        let work = unsafe { core::ptr::addr_of_mut!((*p).work).replace(None) };
        // SAFETY: as for `work`.
        let background = unsafe { core::ptr::addr_of_mut!((*p).background).replace(None) };
        // Stops both items, each waiting for a running instance.
        drop(work);
        drop(background);
        // SAFETY: with the work stopped nothing shares the allocation, which
        // came from `KBox::into_raw` in `set_fs_info::<T>` and is freed only
        // here, once.
        drop(unsafe { KBox::from_raw(p) });
    }
}
