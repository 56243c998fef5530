// SPDX-License-Identifier: GPL-2.0

//! `struct file_operations` for keys (regular files), key creation/removal and
//! attribute changes (`inode_operations.create/unlink/setattr`), and inode
//! eviction (`super_operations.evict_inode`).

use super::{
    dax::DaxMapping,
    fs_context::{FileSystem, Fs},
    inode::{self, Attrs, Namespace},
    shim,
    super_block::SuperBlock,
    Table,
};
use kernel::{bindings, ffi::c_int, prelude::*};

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
    /// the directory (inode number) and the change counter its dentry is
    /// tagged with ([`inode::Namespace::changes`]), if any.
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

type KeyState = <Fs as Keys>::KeyState;
type OpenKey = <Fs as Keys>::OpenKey;

/// Installs the key state of a new key inode.
///
/// # Safety
///
/// `inode` must be a new (I_NEW) key inode.
pub(crate) unsafe fn init_key_inode(inode: *mut bindings::inode, a: &Attrs, creating: bool) -> Result {
    let ks = KBox::new(<Fs as Keys>::key_state(a, creating), GFP_KERNEL)?;
    // SAFETY: a new inode is ours; ownership of the box passes to the inode
    // and is taken back in `evict_cb`.
    unsafe { (*inode).i_private = KBox::into_raw(ks).cast() };
    Ok(())
}

/// The key state of a key inode.
///
/// # Safety
///
/// `inode` must be a live marufs inode.
unsafe fn key_of<'a>(inode: *mut bindings::inode) -> Option<&'a KeyState> {
    // SAFETY: live inode (function contract).
    let p = unsafe { (*inode).i_private };
    // SAFETY: a non-NULL i_private of a marufs inode is a live `KBox<KeyState>`
    // freed only at eviction, after the last user.
    (!p.is_null()).then(|| unsafe { &*p.cast::<KeyState>() })
}

/// # Safety
///
/// `inode` must be a live marufs inode.
unsafe fn data_of<'a>(inode: *mut bindings::inode) -> Result<&'a <Fs as FileSystem>::Data> {
    // SAFETY: a live inode's superblock is a live marufs superblock.
    let sb = unsafe { SuperBlock::from_raw((*inode).i_sb) };
    sb.data::<Fs>().ok_or(EINVAL)
}

pub(crate) static KEY_FOPS: Table<bindings::file_operations> = Table({
    // SAFETY: all-zero is a valid table (every hook optional).
    let mut o: bindings::file_operations = unsafe { core::mem::zeroed() };
    o.open = Some(open_cb);
    o.release = Some(release_cb);
    o.read_iter = Some(read_iter_cb);
    o.write_iter = Some(write_iter_cb);
    o.llseek = Some(bindings::generic_file_llseek);
    o.fsync = Some(fsync_cb);
    o.fallocate = Some(fallocate_cb);
    o.unlocked_ioctl = Some(super::ioctl::key_ioctl_cb);
    o.compat_ioctl = bindings::compat_ptr_ioctl;
    o.mmap_prepare = Some(super::mm::mmap_prepare_cb);
    o.get_unmapped_area = Some(super::mm::get_unmapped_area_cb);
    o
});

/// The data and key state of an open key file.
///
/// # Safety
///
/// `file` must be an open marufs key (kept open for `'a`).
pub(crate) unsafe fn key_args_of_file<'a>(
    file: *mut bindings::file,
) -> Result<(&'a <Fs as FileSystem>::Data, &'a KeyState)> {
    // SAFETY: function contract: an open file has a live inode.
    let inode = unsafe { (*file).f_inode };
    // SAFETY: as above.
    unsafe { Ok((data_of(inode)?, key_of(inode).ok_or(EINVAL)?)) }
}

/// `file_operations.open`.
///
/// # Safety
///
/// VFS contract: `inode` is the key's inode, `file` the file being opened.
unsafe extern "C" fn open_cb(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: VFS contract.
    let (d, k) = match unsafe { (data_of(inode), key_of(inode)) } {
        (Ok(d), Some(k)) => (d, k),
        _ => return EINVAL.to_errno(),
    };
    // SAFETY: `file` is being opened (VFS contract).
    let write = unsafe { shim::marufs_shim_file_writable(file) };
    let mut dir = 0u64;
    // SAFETY: `file` is being opened: its dentry is positive and pinned.
    let tag = unsafe { shim::marufs_shim_file_vouch(file, &mut dir) } as u64;
    let vouch = (tag != 0 && dir != 0).then_some((dir, tag));
    match Fs::open(d, k, write, vouch) {
        Ok(of) => match KBox::new(of, GFP_KERNEL) {
            Ok(b) => {
                // SAFETY: `file` is ours to set up; the box is taken back in
                // `release_cb`.
                unsafe { (*file).private_data = KBox::into_raw(b).cast() };
                0
            }
            Err(_) => ENOMEM.to_errno(),
        },
        Err(e) => e.to_errno(),
    }
}

/// `file_operations.release`: the last reference to the file is gone (all
/// descriptors closed and all mappings unmapped).
///
/// # Safety
///
/// VFS contract: `file` was opened by `open_cb` on `inode`.
unsafe extern "C" fn release_cb(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `private_data` was set by `open_cb` and is released only here.
    let of = unsafe { KBox::from_raw((*file).private_data.cast::<OpenKey>()) };
    // SAFETY: VFS contract.
    if let (Ok(d), Some(k)) = unsafe { (data_of(inode), key_of(inode)) } {
        Fs::release(d, k, KBox::into_inner(of));
    }
    0
}

/// The data, key and open-file state behind a `kiocb`.
///
/// # Safety
///
/// `iocb` must be a live kiocb of an open marufs key.
unsafe fn iocb_args<'a>(
    iocb: *mut bindings::kiocb,
) -> Result<(&'a <Fs as FileSystem>::Data, &'a KeyState, &'a OpenKey, *mut bindings::inode)> {
    // SAFETY: function contract: the file is open, its inode live.
    let file = unsafe { (*iocb).ki_filp };
    // SAFETY: as above.
    let inode = unsafe { (*file).f_inode };
    // SAFETY: as above; `private_data` lives until release.
    let of = unsafe { &*(*file).private_data.cast::<OpenKey>() };
    // SAFETY: as above.
    let (d, k) = unsafe { (data_of(inode)?, key_of(inode).ok_or(EINVAL)?) };
    Ok((d, k, of, inode))
}

/// `file_operations.read_iter`: copies straight from device memory.
///
/// # Safety
///
/// VFS contract: live `iocb` of an open key and its destination `iter`.
unsafe extern "C" fn read_iter_cb(iocb: *mut bindings::kiocb, iter: *mut bindings::iov_iter) -> isize {
    // SAFETY: VFS contract.
    let (d, k, _of, _inode) = match unsafe { iocb_args(iocb) } {
        Ok(v) => v,
        Err(e) => return e.to_errno() as isize,
    };
    // SAFETY: `iter` is live (VFS contract).
    let mut want = unsafe { shim::marufs_shim_iov_count(iter) };
    // SAFETY: `iocb` is live.
    let mut pos = unsafe { (*iocb).ki_pos } as u64;
    let map = Fs::mapping(d);
    let mut done = 0usize;
    while want > 0 {
        let seg = match Fs::segment(d, k, pos) {
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
        // SAFETY: `iter` is live (VFS contract).
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
    // SAFETY: `iocb` is live.
    unsafe { (*iocb).ki_pos = pos as i64 };
    done as isize
}

/// `file_operations.write_iter`: only the creator of an unpublished key
/// writes; the key grows as needed.
///
/// # Safety
///
/// VFS contract: live `iocb` of an open key and its source `iter`.
unsafe extern "C" fn write_iter_cb(iocb: *mut bindings::kiocb, iter: *mut bindings::iov_iter) -> isize {
    // SAFETY: VFS contract.
    let (d, k, of, inode) = match unsafe { iocb_args(iocb) } {
        Ok(v) => v,
        Err(e) => return e.to_errno() as isize,
    };
    // SAFETY: `inode` is live. The lock serialises writers of the file (its
    // size) and orders writes against `link_cb`, which publishes the key
    // under the same lock.
    unsafe { shim::marufs_shim_inode_lock(inode) };
    // O_APPEND (the position becomes the size), RLIMIT_FSIZE (SIGXFSZ and
    // EFBIG) and s_maxbytes: the iterator is cut to what may be written.
    // SAFETY: `iocb` and `iter` are live (VFS contract), the inode locked.
    let checked = unsafe { bindings::generic_write_checks(iocb, iter) };
    let r = if checked <= 0 {
        checked
    } else {
        // SAFETY: `iter` and `iocb` are live (VFS contract).
        let (count, pos) = unsafe { (shim::marufs_shim_iov_count(iter), (*iocb).ki_pos as u64) };
        match pos.checked_add(count as u64) {
            None => EFBIG.to_errno() as isize,
            // SAFETY: as above, the inode lock is held.
            Some(end) => unsafe { write_locked(d, k, of, inode, iocb, iter, pos, end) },
        }
    };
    // SAFETY: locked above.
    unsafe { shim::marufs_shim_inode_unlock(inode) };
    r
}

/// The body of [`write_iter_cb`], under the inode lock.
///
/// # Safety
///
/// As for [`write_iter_cb`]; the inode lock is held.
#[allow(clippy::too_many_arguments)]
unsafe fn write_locked(
    d: &<Fs as FileSystem>::Data,
    k: &KeyState,
    of: &OpenKey,
    inode: *mut bindings::inode,
    iocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
    mut pos: u64,
    end: u64,
) -> isize {
    if let Err(e) = Fs::grow(d, k, of, end) {
        return e.to_errno() as isize;
    }
    let map = Fs::mapping(d);
    let mut done = 0usize;
    while pos < end {
        let seg = match Fs::segment(d, k, pos) {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) => return e.to_errno() as isize,
        };
        let n = core::cmp::min(seg.len, end - pos) as usize;
        // SAFETY: `iter` is live (VFS contract).
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
    // SAFETY: `iocb` and `inode` are live; the size only grows here, under
    // the inode lock.
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
/// VFS contract: `file` is an open key.
unsafe extern "C" fn fallocate_cb(file: *mut bindings::file, mode: c_int, offset: i64, len: i64) -> isize {
    if mode != 0 {
        return EOPNOTSUPP.to_errno() as isize;
    }
    let (Ok(off), Ok(n)) = (u64::try_from(offset), u64::try_from(len)) else {
        return EINVAL.to_errno() as isize;
    };
    let Some(end) = off.checked_add(n) else {
        return EFBIG.to_errno() as isize;
    };
    // SAFETY: VFS contract: the file is open; `private_data` set by `open_cb`.
    let (inode, of) = unsafe { ((*file).f_inode, &*(*file).private_data.cast::<OpenKey>()) };
    // SAFETY: as above.
    let (d, k) = match unsafe { key_args_of_file(file) } {
        Ok(v) => v,
        Err(e) => return e.to_errno() as isize,
    };
    // SAFETY: the inode is live; its lock serialises size changes and orders
    // them against `link_cb`.
    unsafe { shim::marufs_shim_inode_lock(inode) };
    let r = Fs::grow(d, k, of, end);
    if r.is_ok() {
        // SAFETY: the inode is live and locked.
        unsafe {
            if end > (*inode).i_size as u64 {
                shim::marufs_shim_inode_set_size(inode, end, (*inode).i_blocks);
            }
        }
    }
    // SAFETY: locked above.
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
/// Called by the VFS with a live, open key file.
unsafe extern "C" fn fsync_cb(f: *mut bindings::file, _s: i64, _e: i64, _datasync: c_int) -> c_int {
    // SAFETY: VFS contract: `f` is an open marufs key file, open for the call.
    let Ok((d, k)) = (unsafe { key_args_of_file(f) }) else {
        return EINVAL.to_errno();
    };
    match Fs::fsync(d, k) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `inode_operations.create` (`open(O_CREAT)`).
///
/// # Safety
///
/// VFS contract: `dir` is locked, `dentry` is negative.
pub(crate) unsafe extern "C" fn create_cb(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> c_int {
    // SAFETY: VFS contract.
    let (d, name, dino) = match unsafe { inode::dir_args(dir, dentry) } {
        Ok(v) => v,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: reading the caller's credentials.
    let (uid, gid) = unsafe { (shim::marufs_shim_current_fsuid(), shim::marufs_shim_current_fsgid()) };
    let a = match Fs::create(d, dino, name, mode & 0o7777, uid, gid) {
        Ok(a) => a,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `dir`'s superblock is live.
    match unsafe { inode::get_key_inode((*dir).i_sb, &a, true) } {
        Ok(i) => {
            // SAFETY: `dentry` is negative and locked; it takes our reference.
            // An unpublished key is never vouched for by a counter.
            unsafe {
                inode::set_vouched(dentry, None);
                bindings::d_instantiate(dentry, i);
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `inode_operations.unlink`.
///
/// # Safety
///
/// VFS contract: `dir` and the victim are locked; `dentry` is positive.
pub(crate) unsafe extern "C" fn unlink_cb(dir: *mut bindings::inode, dentry: *mut bindings::dentry) -> c_int {
    // SAFETY: VFS contract.
    let (d, name, dino) = match unsafe { inode::dir_args(dir, dentry) } {
        Ok(v) => v,
        Err(e) => return e.to_errno(),
    };
    match Fs::unlink(d, dino, name) {
        Ok(()) => {
            // SAFETY: the victim is live and locked by the VFS.
            unsafe {
                let victim = (*dentry).d_inode;
                if !victim.is_null() {
                    bindings::drop_nlink(victim);
                }
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
/// VFS contract: `dir` is a live directory, `file` the file being opened.
pub(crate) unsafe extern "C" fn tmpfile_cb(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    file: *mut bindings::file,
    mode: bindings::umode_t,
) -> c_int {
    // SAFETY: VFS contract.
    let (d, dino) = match unsafe { data_of(dir) } {
        // SAFETY: `dir` is live.
        Ok(d) => (d, unsafe { (*dir).i_ino }),
        Err(e) => return e.to_errno(),
    };
    // SAFETY: reading the caller's credentials.
    let (uid, gid) = unsafe { (shim::marufs_shim_current_fsuid(), shim::marufs_shim_current_fsgid()) };
    let a = match Fs::create_tmp(d, dino, mode & 0o7777, uid, gid) {
        Ok(a) => a,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `dir`'s superblock is live.
    match unsafe { inode::get_key_inode((*dir).i_sb, &a, true) } {
        // SAFETY: `file` is being opened with a dentry for the new inode,
        // which takes our reference; on failure the VFS drops the dentry and
        // eviction discards the unopened key.
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
/// VFS contract: `old` is the key's dentry (its inode locked), `dir` the
/// locked target directory, `new` a negative dentry in it.
pub(crate) unsafe extern "C" fn link_cb(
    old: *mut bindings::dentry,
    dir: *mut bindings::inode,
    new: *mut bindings::dentry,
) -> c_int {
    // SAFETY: VFS contract.
    let (d, name, dino) = match unsafe { inode::dir_args(dir, new) } {
        Ok(v) => v,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `old` is positive (VFS contract).
    let inode = unsafe { (*old).d_inode };
    // SAFETY: a live marufs inode.
    let Some(k) = (unsafe { key_of(inode) }) else {
        return EPERM.to_errno();
    };
    // SAFETY: `inode` is live; the invalidate lock orders this against
    // faults (taken shared there), after the inode lock as in truncate.
    unsafe { shim::marufs_shim_invalidate_lock(inode) };
    // Mappings go first: no store through the creator's writable mapping
    // may land after the key's units are written back and it is published
    // (faults wait on the invalidate lock, then see it published). A failed
    // link only costs the creator refaults.
    // SAFETY: as above.
    unsafe { shim::marufs_shim_unmap_all(inode) };
    let r = Fs::link(d, dino, k, name);
    // SAFETY: taken above.
    unsafe { shim::marufs_shim_invalidate_unlock(inode) };
    match r {
        Ok(()) => {
            // SAFETY: `new` is negative and locked; `inode` is live.
            unsafe {
                inode::set_vouched(new, None);
                shim::marufs_shim_link_instantiate(inode, new);
            }
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
/// VFS contract: both directories and dentries are locked and live.
pub(crate) unsafe extern "C" fn rename_cb(
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
    // SAFETY: VFS contract.
    if !unsafe { (*new_dentry).d_inode }.is_null() {
        // Keys are immutable: replacing one by rename is refused.
        return EEXIST.to_errno();
    }
    // SAFETY: VFS contract.
    let (d, old, dino) = match unsafe { inode::dir_args(old_dir, old_dentry) } {
        Ok(v) => v,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: VFS contract: the new dentry's name is stable while locked.
    let new = match unsafe { inode::dir_args(new_dir, new_dentry) } {
        Ok((_, n, _)) => n,
        Err(e) => return e.to_errno(),
    };
    match Fs::rename(d, dino, old, new) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `inode_operations.setattr`: chmod, chown, truncate.
///
/// # Safety
///
/// VFS contract: `dentry` is positive and its inode locked; `attr` valid.
pub(crate) unsafe extern "C" fn setattr_cb(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    attr: *mut bindings::iattr,
) -> c_int {
    // Permission checks (owner or capable, group membership...) first.
    // SAFETY: VFS contract.
    let r = unsafe { bindings::setattr_prepare(idmap, dentry, attr) };
    if r != 0 {
        return r;
    }
    // SAFETY: VFS contract.
    let (inode, v) = unsafe { ((*dentry).d_inode, &*attr) };
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
    // SAFETY: live inode (VFS contract).
    let (d, k, ino) = match unsafe { (data_of(inode), key_of(inode), (*inode).i_ino) } {
        (Ok(d), k, ino) => (d, k, ino),
        (Err(e), _, _) => return e.to_errno(),
    };
    // A truncate zaps mappings past the new size first (under the
    // invalidate lock, so no fault maps them again before the units are
    // gone): no process may keep reaching units the key gives up.
    let trunc = s.size.filter(|_| k.is_some());
    if let Some(size) = trunc {
        // SAFETY: `inode` is live and locked; lock order as in `link_cb`.
        unsafe {
            shim::marufs_shim_invalidate_lock(inode);
            shim::marufs_shim_unmap_from(inode, size);
        }
    }
    let r = Fs::setattr(d, ino, k, &s);
    if trunc.is_some() {
        // SAFETY: taken above.
        unsafe { shim::marufs_shim_invalidate_unlock(inode) };
    }
    match r {
        Ok(a) => {
            // SAFETY: the inode is locked by the VFS.
            unsafe { inode::apply(inode, &a) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `super_operations.evict_inode`.
///
/// # Safety
///
/// VFS contract: `inode` is being evicted; no other users remain.
pub(crate) unsafe extern "C" fn evict_cb(inode: *mut bindings::inode) {
    // SAFETY: VFS contract.
    unsafe {
        bindings::truncate_inode_pages_final(&mut (*inode).i_data);
        bindings::clear_inode(inode);
    }
    // SAFETY: VFS contract.
    let p = unsafe { (*inode).i_private };
    if !p.is_null() {
        // SAFETY: set by `init_key_inode`, freed only here.
        let k = unsafe { KBox::from_raw(p.cast::<KeyState>()) };
        // SAFETY: the superblock outlives its inodes.
        if let Ok(d) = unsafe { data_of(inode) } {
            Fs::evict(d, &k);
        }
        // SAFETY: as above.
        unsafe { (*inode).i_private = core::ptr::null_mut() };
    }
}
