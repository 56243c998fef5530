// SPDX-License-Identifier: GPL-2.0

//! `struct file_operations` for keys (regular files), key creation/removal and
//! attribute changes (`inode_operations.create/unlink/setattr`), and inode
//! eviction (`super_operations.evict_inode`).

use super::{
    dax::DaxMapping,
    inode::{self, Attrs, INode, Namespace},
    shim, FsOps, Tables,
};
use core::marker::PhantomData;
use kernel::{bindings, ffi::c_int, prelude::*, types::Opaque};

/// A contiguous run of a key's bytes on the device.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    /// Device offset of the byte at the requested file position.
    pub dev_off: u64,
    /// Bytes available from there (within the file size and the extent).
    pub len: u64,
}

/// Requested attribute changes (`setattr`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u16>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (keys only).
    pub size: Option<u64>,
}

/// Key operations of a filesystem.
pub trait Keys: Namespace {
    /// Per-inode state of a key (stored in `i_private`).
    type KeyState: Send + Sync;
    /// Per-open-file state (stored in `file->private_data`).
    type OpenKey: Send + Sync;

    /// State for a key inode: `creating` for one just created by this host.
    fn key_state(a: &Attrs, creating: bool) -> Self::KeyState;
    /// Creates an unpublished key `name` in directory `dir`.
    fn create(d: &Self::Data, dir: u64, name: &[u8], mode: u16, uid: u32, gid: u32) -> Result<Attrs>;
    /// Creates an unpublished key without a name in `dir` (`O_TMPFILE`).
    fn create_tmp(d: &Self::Data, dir: u64, mode: u16, uid: u32, gid: u32) -> Result<Attrs>;
    /// Names and publishes the unnamed key `k` as `name` in `dir` (`linkat`
    /// of an `O_TMPFILE`).
    fn link(d: &Self::Data, dir: u64, k: &Self::KeyState, name: &[u8]) -> Result;
    /// Removes key `name` from `dir`.
    fn unlink(d: &Self::Data, dir: u64, name: &[u8]) -> Result;
    /// Renames key `old` to `new` within directory `dir` (`new` must not exist).
    fn rename(d: &Self::Data, dir: u64, old: &[u8], new: &[u8]) -> Result;
    /// Opens a key; `write` if the file is opened for writing. `vouch`:
    /// the directory (inode number) and the tag of the dentry it is opened
    /// through ([`inode::Lookup::tag`]), if it has one.
    fn open(
        d: &Self::Data,
        k: &Self::KeyState,
        write: bool,
        vouch: Option<(u64, u64)>,
    ) -> Result<Self::OpenKey>;
    /// The last reference to an open file went away (publishes a key the
    /// file created).
    fn release(d: &Self::Data, k: &Self::KeyState, f: Self::OpenKey);
    /// The inode is being evicted.
    fn evict(d: &Self::Data, k: &Self::KeyState);
    /// Whether the key's bytes and extents can no longer change (published):
    /// once true, true for good. Reads of such a key take no lock.
    fn immutable(k: &Self::KeyState) -> bool;
    /// Where the byte at `pos` lives, or `None` at/after end of file.
    fn segment(d: &Self::Data, k: &Self::KeyState, pos: u64) -> Result<Option<Segment>>;
    /// The creator gives up its unpublished key: discarded at release.
    fn discard(d: &Self::Data, k: &Self::KeyState, f: &Self::OpenKey) -> Result;
    /// `fsync`/`msync` of the key: what its writers stored reaches memory.
    fn fsync(d: &Self::Data, k: &Self::KeyState) -> Result;
    /// Grows an unpublished key this file created to at least `size`.
    fn grow(d: &Self::Data, k: &Self::KeyState, f: &Self::OpenKey, size: u64) -> Result;
    /// Changes attributes of `ino` (a directory or key); returns the new ones.
    fn setattr(d: &Self::Data, ino: u64, k: Option<&Self::KeyState>, a: &SetAttr) -> Result<Attrs>;
    /// The kernel mapping of the pool.
    fn mapping(d: &Self::Data) -> &DaxMapping;
}

impl<T: Keys> INode<T> {
    /// The key state, if this is a key.
    pub fn key(&self) -> Option<&T::KeyState> {
        // SAFETY: the inode is live (type invariant of `INode`); `i_private`
        // is written only while the inode is I_NEW (`init_key_inode`) and at
        // eviction, when no other user remains.
        let p = unsafe { (*self.as_ptr()).i_private };
        // SAFETY: a non-NULL `i_private` of an inode of `T` is a live
        // `KBox<T::KeyState>` (type invariant of `INode`), freed only at
        // eviction, after every borrow of the inode has ended.
        (!p.is_null()).then(|| unsafe { &*p.cast::<T::KeyState>() })
    }
}

/// Installs the key state of a new key inode.
///
/// # Safety
///
/// `inode` must be new (I_NEW), so not yet visible to anyone else.
pub(crate) unsafe fn init_key_inode<T: Keys>(inode: &INode<T>, a: &Attrs, creating: bool) -> Result {
    let ks = KBox::new(T::key_state(a, creating), GFP_KERNEL)?;
    // SAFETY: an I_NEW inode's fields are ours (function contract).
    // Ownership of the box passes to the inode and is taken back in
    // `evict_cb::<T>`, once.
    unsafe { (*inode.as_ptr()).i_private = KBox::into_raw(ks).cast() };
    Ok(())
}

/// An open key of filesystem `T`.
///
/// # Invariants
///
/// The wrapped file is open for as long as a reference to this value
/// exists, its inode is a key of `T`, and it was opened by `open_cb::<T>`:
/// `private_data` is a live `KBox<T::OpenKey>` until `release_cb::<T>`,
/// which runs after the last user of the file.
#[repr(transparent)]
pub struct File<T>(Opaque<bindings::file>, PhantomData<T>);

impl<T: Keys> File<T> {
    /// # Safety
    ///
    /// `ptr` must be a file opened by `open_cb::<T>` (any file with `T`'s key
    /// file operations, once open), kept open for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::file) -> &'a Self {
        // SAFETY: transparent wrapper; open for `'a` (function contract).
        unsafe { &*ptr.cast() }
    }

    /// The key's inode.
    pub fn inode(&self) -> &INode<T> {
        // SAFETY: an open file holds its inode (type invariant), a key of `T`.
        unsafe { INode::from_raw((*self.0.get()).f_inode) }
    }

    /// The per-open-file state.
    pub fn open_key(&self) -> &T::OpenKey {
        // SAFETY: by the type invariant `private_data` is a live
        // `T::OpenKey`, freed only after the file's last user.
        unsafe { &*(*self.0.get()).private_data.cast::<T::OpenKey>() }
    }

    /// The per-mount data, the key state and the open-file state.
    pub fn args(&self) -> Result<(&T::Data, &T::KeyState, &T::OpenKey)> {
        let inode = self.inode();
        Ok((inode.data()?, inode.key().ok_or(EINVAL)?, self.open_key()))
    }
}

impl<T: FsOps> Tables<T> {
    /// File operations of `T`'s keys.
    pub(crate) const KEY_FOPS: bindings::file_operations = {
        // SAFETY: all-zero is a valid table (every hook optional).
        let mut o: bindings::file_operations = unsafe { core::mem::zeroed() };
        o.open = Some(open_cb::<T>);
        o.release = Some(release_cb::<T>);
        o.read_iter = Some(read_iter_cb::<T>);
        o.write_iter = Some(write_iter_cb::<T>);
        o.llseek = Some(bindings::generic_file_llseek);
        o.fsync = Some(fsync_cb::<T>);
        o.fallocate = Some(fallocate_cb::<T>);
        o.unlocked_ioctl = Some(super::ioctl::key_ioctl_cb::<T>);
        o.compat_ioctl = bindings::compat_ptr_ioctl;
        o.mmap_prepare = Some(super::mm::mmap_prepare_cb::<T>);
        o.get_unmapped_area = Some(super::mm::get_unmapped_area_cb);
        o
    };
}

/// `file_operations.open`.
///
/// # Safety
///
/// `inode` must be a key inode of `T` and `file` a file being opened on it
/// (not yet visible to others), as `do_dentry_open` passes them.
unsafe extern "C" fn open_cb<T: FsOps>(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `inode` is live for the call, a key of `T` (function contract).
    let inode = unsafe { INode::<T>::from_raw(inode) };
    let (Ok(d), Some(k)) = (inode.data(), inode.key()) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `file` is valid for the call (function contract).
    let write = unsafe { shim::marufs_shim_file_writable(file) };
    let mut dir = 0u64;
    // SAFETY: `file` is being opened: its path's dentry is positive and
    // pinned; `dir` is a local.
    let tag = unsafe { shim::marufs_shim_file_vouch(file, &mut dir) } as u64;
    let vouch = (tag != 0 && dir != 0).then_some((dir, tag));
    // The memory first: an open that succeeded (a hold taken) is always
    // released.
    let Ok(slot) = KBox::<T::OpenKey>::new_uninit(GFP_KERNEL) else {
        return ENOMEM.to_errno();
    };
    match T::open(d, k, write, vouch) {
        Ok(of) => {
            let b = KBox::write(slot, of);
            // SAFETY: `file` is not yet visible to others (function
            // contract), so `private_data` is ours to set; the box is taken
            // back in `release_cb::<T>`.
            unsafe { (*file).private_data = KBox::into_raw(b).cast() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `file_operations.release`: the last reference to the file is gone (all
/// descriptors closed and all mappings unmapped).
///
/// # Safety
///
/// `file` must have been opened by `open_cb::<T>` on `inode` and have no
/// users left, as `__fput` passes them.
unsafe extern "C" fn release_cb<T: FsOps>(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `private_data` was set by `open_cb::<T>` (function contract)
    // and, the file having no users left, nothing borrows it: it is taken
    // back here, once.
    let of = unsafe { KBox::from_raw((*file).private_data.cast::<T::OpenKey>()) };
    // SAFETY: the file holds `inode`, a key of `T`, until this returns.
    let inode = unsafe { INode::<T>::from_raw(inode) };
    if let (Ok(d), Some(k)) = (inode.data(), inode.key()) {
        T::release(d, k, KBox::into_inner(of));
    }
    0
}

/// The open key behind a `kiocb`.
///
/// # Safety
///
/// `iocb` must be a live kiocb of a key file of `T` open for `'a`.
unsafe fn iocb_file<'a, T: FsOps>(iocb: *mut bindings::kiocb) -> &'a File<T> {
    // SAFETY: the kiocb's file is an open key of `T` for `'a` (function
    // contract): a file with `T`'s key operations, opened by `open_cb::<T>`.
    unsafe { File::from_raw((*iocb).ki_filp) }
}

/// `file_operations.read_iter`: copies straight from device memory. A key
/// that may still change ([`Keys::immutable`]) is read under the shared
/// inode lock: a shrinking truncate (which holds it exclusively) cannot give
/// up units a read is copying from (another key could get them meanwhile),
/// as in the kernel's own DAX read paths. Immutable keys need no lock, so a
/// chmod waiting on the cross-host lock never holds their readers up.
///
/// # Safety
///
/// `iocb` must be a live kiocb of an open key of `T` and `iter` its
/// destination, as `vfs_read`/`io_read` pass them.
unsafe extern "C" fn read_iter_cb<T: FsOps>(iocb: *mut bindings::kiocb, iter: *mut bindings::iov_iter) -> isize {
    // SAFETY: function contract; the file stays open for the call.
    let file = unsafe { iocb_file::<T>(iocb) };
    let (d, k, _of) = match file.args() {
        Ok(v) => v,
        Err(e) => return e.to_errno() as isize,
    };
    if T::immutable(k) {
        // SAFETY: `iocb`/`iter` are live (function contract); an immutable
        // key's extents never change while its file is open.
        return unsafe { read_locked::<T>(d, k, iocb, iter) };
    }
    let inode = file.inode().as_ptr();
    // SAFETY: the inode is live while the file is open and `iocb` is live
    // (function contract). Lock order: the inode lock before the mm's lock
    // (faults on the destination while copying), as in `write_iter_cb`.
    if !unsafe { shim::marufs_shim_inode_lock_shared_iocb(inode, iocb) } {
        return EAGAIN.to_errno() as isize;
    }
    // SAFETY: `iocb`/`iter` are live (function contract) and the shared
    // inode lock is held.
    let r = unsafe { read_locked::<T>(d, k, iocb, iter) };
    // SAFETY: taken above by this thread.
    unsafe { shim::marufs_shim_inode_unlock_shared(inode) };
    r
}

/// The body of [`read_iter_cb`].
///
/// # Safety
///
/// `iocb` and `iter` must be live as for [`read_iter_cb`]; the key is
/// immutable or the shared inode lock held.
unsafe fn read_locked<T: FsOps>(
    d: &T::Data,
    k: &T::KeyState,
    iocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: `iter` is live for the call (function contract).
    let mut want = unsafe { shim::marufs_shim_iov_count(iter) };
    // SAFETY: `iocb` is live (function contract); the position is ours
    // to read and advance during the call.
    let mut pos = unsafe { (*iocb).ki_pos } as u64;
    let map = T::mapping(d);
    let mut done = 0usize;
    while want > 0 {
        let seg = match T::segment(d, k, pos) {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) => {
                if done == 0 {
                    return e.to_errno() as isize;
                }
                break;
            }
        };
        let n = core::cmp::min(seg.len, want as u64) as usize;
        // SAFETY: `iter` is live (function contract); the segment's range
        // is checked against the mapping by `copy_to_iter`.
        let c = match unsafe { map.copy_to_iter(seg.dev_off, n, iter) } {
            Ok(c) => c,
            Err(e) => return e.to_errno() as isize,
        };
        done += c;
        pos += c as u64;
        want -= c;
        if c < n {
            if done == 0 {
                return EFAULT.to_errno() as isize;
            }
            break;
        }
    }
    // SAFETY: `iocb` is live (function contract).
    unsafe { (*iocb).ki_pos = pos as i64 };
    done as isize
}

/// `file_operations.write_iter`: only the creator of an unpublished key
/// writes; the key grows as needed.
///
/// # Safety
///
/// `iocb` must be a live kiocb of an open key of `T` and `iter` its source,
/// as `vfs_write`/`io_write` pass them.
unsafe extern "C" fn write_iter_cb<T: FsOps>(iocb: *mut bindings::kiocb, iter: *mut bindings::iov_iter) -> isize {
    // SAFETY: function contract; the file stays open for the call.
    let file = unsafe { iocb_file::<T>(iocb) };
    let args = match file.args() {
        Ok(v) => v,
        Err(e) => return e.to_errno() as isize,
    };
    let inode = file.inode().as_ptr();
    // SAFETY: `inode` is live while the file is open. The lock serialises
    // writers of the file (its size) and orders writes against `link_cb`,
    // which publishes the key under the same lock.
    unsafe { shim::marufs_shim_inode_lock(inode) };
    // O_APPEND (the position becomes the size), RLIMIT_FSIZE (SIGXFSZ and
    // EFBIG) and s_maxbytes: the iterator is cut to what may be written.
    // SAFETY: `iocb` and `iter` are live (function contract) and the inode
    // is locked, as `generic_write_checks` requires.
    let checked = unsafe { bindings::generic_write_checks(iocb, iter) };
    let r = if checked <= 0 {
        checked
    } else {
        // SAFETY: `iter` and `iocb` are live (function contract).
        let (count, pos) = unsafe { (shim::marufs_shim_iov_count(iter), (*iocb).ki_pos as u64) };
        match pos.checked_add(count as u64) {
            None => EFBIG.to_errno() as isize,
            // SAFETY: `iocb`/`iter` are live (function contract), the inode
            // lock is held.
            Some(end) => unsafe { write_locked::<T>(args, inode, iocb, iter, pos, end) },
        }
    };
    // SAFETY: locked above by this thread.
    unsafe { shim::marufs_shim_inode_unlock(inode) };
    r
}

/// The body of [`write_iter_cb`], under the inode lock.
///
/// # Safety
///
/// `iocb` and `iter` must be live as for [`write_iter_cb`], `inode` the
/// file's inode, locked by this thread.
unsafe fn write_locked<T: FsOps>(
    (d, k, of): (&T::Data, &T::KeyState, &T::OpenKey),
    inode: *mut bindings::inode,
    iocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
    mut pos: u64,
    end: u64,
) -> isize {
    if let Err(e) = T::grow(d, k, of, end) {
        return e.to_errno() as isize;
    }
    let map = T::mapping(d);
    let mut done = 0usize;
    while pos < end {
        let seg = match T::segment(d, k, pos) {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) => return e.to_errno() as isize,
        };
        let n = core::cmp::min(seg.len, end - pos) as usize;
        // SAFETY: `iter` is live (function contract); the range is checked
        // against the mapping by `copy_from_iter`.
        let c = match unsafe { map.copy_from_iter(seg.dev_off, n, iter) } {
            Ok(c) => c,
            Err(e) => return e.to_errno() as isize,
        };
        done += c;
        pos += c as u64;
        if c < n {
            break;
        }
    }
    if done == 0 {
        return EFAULT.to_errno() as isize;
    }
    // SAFETY: `iocb` and `inode` are live (function contract); the size
    // only grows here and in `fallocate_cb`, both under the inode lock,
    // which this thread holds.
    unsafe {
        (*iocb).ki_pos = pos as i64;
        if pos > (*inode).i_size as u64 {
            shim::marufs_shim_inode_set_size(inode, pos, (*inode).i_blocks);
        }
    }
    done as isize
}

/// `file_operations.fallocate`: mode 0 only (allocate and extend), by the
/// creator of an unpublished key; other modes are `EOPNOTSUPP`.
///
/// # Safety
///
/// `file` must be an open key of `T`, as `vfs_fallocate` passes it.
unsafe extern "C" fn fallocate_cb<T: FsOps>(file: *mut bindings::file, mode: c_int, offset: i64, len: i64) -> isize {
    if mode != 0 {
        return EOPNOTSUPP.to_errno() as isize;
    }
    let (Ok(off), Ok(n)) = (u64::try_from(offset), u64::try_from(len)) else {
        return EINVAL.to_errno() as isize;
    };
    let Some(end) = off.checked_add(n) else {
        return EFBIG.to_errno() as isize;
    };
    // SAFETY: `file` is an open key of `T` for the call (function contract).
    let file = unsafe { File::<T>::from_raw(file) };
    let (d, k, of) = match file.args() {
        Ok(v) => v,
        Err(e) => return e.to_errno() as isize,
    };
    let inode = file.inode().as_ptr();
    // SAFETY: the inode is live while the file is open; its lock serialises
    // size changes and orders them against `link_cb`.
    unsafe { shim::marufs_shim_inode_lock(inode) };
    let r = T::grow(d, k, of, end);
    if r.is_ok() {
        // SAFETY: the inode is live and locked by this thread (size changes
        // happen only under that lock).
        unsafe {
            if end > (*inode).i_size as u64 {
                shim::marufs_shim_inode_set_size(inode, end, (*inode).i_blocks);
            }
        }
    }
    // SAFETY: locked above by this thread.
    unsafe { shim::marufs_shim_inode_unlock(inode) };
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno() as isize,
    }
}

/// `file_operations.fsync` (and `msync(MS_SYNC)` of a shared mapping).
///
/// # Safety
///
/// `f` must be an open key of `T`, as `vfs_fsync_range` passes it.
unsafe extern "C" fn fsync_cb<T: FsOps>(f: *mut bindings::file, _s: i64, _e: i64, _datasync: c_int) -> c_int {
    // SAFETY: `f` is an open key of `T` for the call (function contract).
    let file = unsafe { File::<T>::from_raw(f) };
    let Ok((d, k, _)) = file.args() else {
        return EINVAL.to_errno();
    };
    if T::immutable(k) {
        // Nothing can publish it again: no lock (a chmod waiting on the
        // cross-host lock holds the inode lock, and must not hold fsync up).
        return match T::fsync(d, k) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        };
    }
    let inode = file.inode().as_ptr();
    // SAFETY: the inode is live while the file is open. The lock orders the
    // write-back against `link_cb`, which publishes under the same lock (no
    // fsync sees the key half published). `vfs_fsync_range` holds no inode
    // lock, and msync calls it after dropping the mmap lock.
    unsafe { shim::marufs_shim_inode_lock(inode) };
    let r = T::fsync(d, k);
    // SAFETY: locked above by this thread.
    unsafe { shim::marufs_shim_inode_unlock(inode) };
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `inode_operations.create` (`open(O_CREAT)`).
///
/// # Safety
///
/// `dir` must be a locked directory of `T` and `dentry` a negative dentry in
/// it, as `lookup_open` passes them.
pub(crate) unsafe extern "C" fn create_cb<T: FsOps>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> c_int {
    // SAFETY: the arguments of a directory operation (function contract).
    let (dir, dentry) = match unsafe { inode::dir_args::<T>(dir, dentry) } {
        Ok(v) => v,
        Err(e) => return e.to_errno(),
    };
    let d = match dir.data() {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    let (uid, gid) = inode::current_fs_ids();
    let a = match T::create(d, dir.ino(), dentry.name(), mode & 0o7777, uid, gid) {
        Ok(a) => a,
        Err(e) => return e.to_errno(),
    };
    match inode::get_key_inode(dir.super_block(), &a, true) {
        Ok(i) => {
            dentry.set_tag(0);
            // SAFETY: `dentry` is negative and its parent locked (function
            // contract); it takes our inode reference.
            unsafe { bindings::d_instantiate(dentry.as_ptr(), i) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `inode_operations.unlink`.
///
/// # Safety
///
/// `dir` and the victim must be locked and `dentry` a positive dentry of
/// `T` in `dir`, as `vfs_unlink` passes them.
pub(crate) unsafe extern "C" fn unlink_cb<T: FsOps>(dir: *mut bindings::inode, dentry: *mut bindings::dentry) -> c_int {
    // SAFETY: the arguments of a directory operation (function contract).
    let (dir, dentry) = match unsafe { inode::dir_args::<T>(dir, dentry) } {
        Ok(v) => v,
        Err(e) => return e.to_errno(),
    };
    let d = match dir.data() {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    match T::unlink(d, dir.ino(), dentry.name()) {
        Ok(()) => {
            if let Some(victim) = dentry.inode() {
                // SAFETY: the victim is locked by the VFS (function
                // contract): its link count is ours to change.
                unsafe { bindings::drop_nlink(victim.as_ptr()) };
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `inode_operations.tmpfile`: `open(dir, O_TMPFILE)` creates an unnamed,
/// unpublished key; `linkat` names and publishes it (`link_cb`), a release
/// without a name discards it.
///
/// # Safety
///
/// `dir` must be a directory of `T` and `file` the file being opened in it,
/// as `vfs_tmpfile` passes them.
pub(crate) unsafe extern "C" fn tmpfile_cb<T: FsOps>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    file: *mut bindings::file,
    mode: bindings::umode_t,
) -> c_int {
    // SAFETY: `dir` is live for the call, an inode of `T` (function contract).
    let dir = unsafe { INode::<T>::from_raw(dir) };
    let d = match dir.data() {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    let (uid, gid) = inode::current_fs_ids();
    let a = match T::create_tmp(d, dir.ino(), mode & 0o7777, uid, gid) {
        Ok(a) => a,
        Err(e) => return e.to_errno(),
    };
    match inode::get_key_inode(dir.super_block(), &a, true) {
        // SAFETY: `file` is being opened with a new dentry for the inode,
        // which takes our reference (`d_tmpfile`), and then opened through
        // `open_cb::<T>`; on failure the VFS drops the dentry and eviction
        // discards the unopened key.
        Ok(i) => unsafe { shim::marufs_shim_tmpfile_open(file, i) },
        Err(e) => e.to_errno(),
    }
}

/// `inode_operations.link`: only an unnamed key (`O_TMPFILE`) may be linked,
/// which publishes it. Mappings of it are zapped under the invalidate lock so
/// that a writable mapping the creator still holds faults again and can no
/// longer change the bytes (write faults get SIGBUS).
///
/// # Safety
///
/// `old` must be a positive dentry of `T` (its inode locked), `dir` the
/// locked target directory of `T` and `new` a negative dentry in it, as
/// `vfs_link` passes them.
pub(crate) unsafe extern "C" fn link_cb<T: FsOps>(
    old: *mut bindings::dentry,
    dir: *mut bindings::inode,
    new: *mut bindings::dentry,
) -> c_int {
    // SAFETY: `dir`/`new` are the arguments of a directory operation
    // (function contract).
    let (dir, new) = match unsafe { inode::dir_args::<T>(dir, new) } {
        Ok(v) => v,
        Err(e) => return e.to_errno(),
    };
    let d = match dir.data() {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `old` is positive and its inode locked by the VFS (function
    // contract), which keeps the inode live for the call.
    let inode = unsafe { INode::<T>::from_raw((*old).d_inode) };
    let Some(k) = inode.key() else {
        return EPERM.to_errno();
    };
    let ip = inode.as_ptr();
    // SAFETY: `ip` is live; the invalidate lock orders this against faults
    // (taken shared there), after the inode lock as in truncate.
    unsafe { shim::marufs_shim_invalidate_lock(ip) };
    // Mappings go first: no store through the creator's writable mapping
    // may land after the key's units are written back and it is published
    // (faults wait on the invalidate lock, then see it published). A failed
    // link only costs the creator refaults.
    // SAFETY: `ip` is live and its invalidate lock held.
    unsafe { shim::marufs_shim_unmap_all(ip) };
    let r = T::link(d, dir.ino(), k, new.name());
    // SAFETY: taken above by this thread.
    unsafe { shim::marufs_shim_invalidate_unlock(ip) };
    match r {
        Ok(()) => {
            new.set_tag(0);
            // SAFETY: `new` is negative with its parent locked and `ip` live
            // and locked (function contract): it gains a link and a dentry.
            unsafe { shim::marufs_shim_link_instantiate(ip, new.as_ptr()) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

const RENAME_NOREPLACE: u32 = 1;

/// `inode_operations.rename`: keys, within one directory.
///
/// # Safety
///
/// Both directories (of `T`) and both dentries must be locked and live, as
/// `vfs_rename` passes them.
pub(crate) unsafe extern "C" fn rename_cb<T: FsOps>(
    _idmap: *mut bindings::mnt_idmap,
    old_dir: *mut bindings::inode,
    old_dentry: *mut bindings::dentry,
    new_dir: *mut bindings::inode,
    new_dentry: *mut bindings::dentry,
    flags: u32,
) -> c_int {
    if flags & !RENAME_NOREPLACE != 0 {
        return EINVAL.to_errno();
    }
    if old_dir != new_dir {
        // Keys move only within their application directory.
        return EXDEV.to_errno();
    }
    // SAFETY: the arguments of a directory operation (function contract).
    let (dir, old) = match unsafe { inode::dir_args::<T>(old_dir, old_dentry) } {
        Ok(v) => v,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `new_dir` is `old_dir` (checked above), a live locked
    // directory of `T`, and `new_dentry` a locked dentry in it with a
    // stable name (function contract).
    let new = match unsafe { inode::dir_args::<T>(new_dir, new_dentry) } {
        Ok((_, n)) => n,
        Err(e) => return e.to_errno(),
    };
    if new.inode().is_some() {
        // Keys are immutable: replacing one by rename is refused.
        return EEXIST.to_errno();
    }
    let d = match dir.data() {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    match T::rename(d, dir.ino(), old.name(), new.name()) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `inode_operations.setattr`: chmod, chown, truncate.
///
/// # Safety
///
/// `dentry` must be a positive dentry of `T` with its inode locked and
/// `attr` valid, as `notify_change` passes them.
pub(crate) unsafe extern "C" fn setattr_cb<T: FsOps>(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    attr: *mut bindings::iattr,
) -> c_int {
    // Permission checks (owner or capable, group membership...) first.
    // SAFETY: the arguments are those `notify_change` passed (function
    // contract), which is what `setattr_prepare` takes.
    let r = unsafe { bindings::setattr_prepare(idmap, dentry, attr) };
    if r != 0 {
        return r;
    }
    // SAFETY: `attr` is valid for reads for the call (function contract).
    let v = unsafe { &*attr };
    let mut s = SetAttr::default();
    if v.ia_valid & bindings::ATTR_MODE != 0 {
        s.mode = Some(v.ia_mode & 0o7777);
    }
    if v.ia_valid & bindings::ATTR_UID != 0 {
        // SAFETY: with ATTR_UID the uid member is the one set.
        s.uid = Some(unsafe { v.__bindgen_anon_1.ia_uid.val });
    }
    if v.ia_valid & bindings::ATTR_GID != 0 {
        // SAFETY: with ATTR_GID the gid member is the one set.
        s.gid = Some(unsafe { v.__bindgen_anon_2.ia_gid.val });
    }
    if v.ia_valid & bindings::ATTR_SIZE != 0 {
        s.size = Some(v.ia_size.max(0) as u64);
    }
    if s.mode.is_none() && s.uid.is_none() && s.gid.is_none() && s.size.is_none() {
        return 0;
    }
    // SAFETY: `dentry` is positive and its inode locked (function contract),
    // which keeps the inode live for the call; it is one of `T`.
    let inode = unsafe { INode::<T>::from_raw((*dentry).d_inode) };
    let d = match inode.data() {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    let k = inode.key();
    let ip = inode.as_ptr();
    // A truncate zaps mappings past the new size first (under the
    // invalidate lock, so no fault maps them again before the units are
    // gone): no process may keep reaching units the key gives up.
    let trunc = s.size.filter(|_| k.is_some());
    if let Some(size) = trunc {
        // SAFETY: `ip` is live and locked; lock order as in `link_cb`.
        unsafe {
            shim::marufs_shim_invalidate_lock(ip);
            shim::marufs_shim_unmap_from(ip, size);
        }
    }
    let r = T::setattr(d, inode.ino(), k, &s);
    if trunc.is_some() {
        // SAFETY: taken above by this thread.
        unsafe { shim::marufs_shim_invalidate_unlock(ip) };
    }
    match r {
        Ok(a) => {
            inode::apply(inode, &a);
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `super_operations.evict_inode`.
///
/// # Safety
///
/// `inode` must be an inode of `T` being evicted (no other user remains),
/// as `evict` passes it.
pub(crate) unsafe extern "C" fn evict_cb<T: FsOps>(inode: *mut bindings::inode) {
    // SAFETY: the inode is being evicted (function contract): what
    // `evict_inode` must do before returning.
    unsafe {
        bindings::truncate_inode_pages_final(&mut (*inode).i_data);
        bindings::clear_inode(inode);
    }
    // SAFETY: nobody else uses the inode any more (function contract).
    let p = unsafe { (*inode).i_private };
    if !p.is_null() {
        // SAFETY: set by `init_key_inode::<T>` from `KBox::into_raw`; with
        // no user left, it is taken back here, once.
        let k = unsafe { KBox::from_raw(p.cast::<T::KeyState>()) };
        // SAFETY: the inode stays allocated until this returns; its
        // superblock outlives it.
        let i = unsafe { INode::<T>::from_raw(inode) };
        if let Ok(d) = i.data() {
            T::evict(d, &k);
        }
        // SAFETY: the inode is being evicted, so no other user remains
        // (function contract): its `i_private` is ours to clear.
        unsafe { (*inode).i_private = core::ptr::null_mut() };
    }
}
