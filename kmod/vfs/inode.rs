// SPDX-License-Identifier: GPL-2.0

//! `struct inode_operations`, directory `struct file_operations` and
//! `struct dentry_operations`: the namespace.
//!
//! Every name lives on shared media and may change under us (other hosts).
//! Each dentry carries a tag the filesystem chose when it looked the name
//! up or revalidated it (kept in `d_time`; 0 for dentries made by a
//! create); `d_revalidate` hands it back with the name, and the
//! filesystem's [`Namespace::d_revalidate`] decides (marufs: the tag is the
//! change counter that vouches for the dentry; see `kmod/fs.rs`).

use super::{err_ptr, file, fs_context::FileSystem, shim, super_block::SuperBlock, FsOps, Tables};
use core::{marker::PhantomData, ptr::null_mut};
use kernel::{bindings, ffi::c_int, ffi::c_uint, prelude::*, types::Opaque};

/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;
const LOOKUP_RCU: c_uint = 1 << 8;

/// What an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The root directory (lists application directories).
    Root,
    /// An application directory (holds keys).
    Dir,
    /// A key (regular file).
    Key,
}

/// Attributes of an inode, as read from the media.
#[derive(Clone, Copy, Debug)]
pub struct Attrs {
    /// Inode number (unique per incarnation of a directory or key).
    pub ino: u64,
    /// What it is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u16,
    /// Owner (kernel-global uid).
    pub uid: u32,
    /// Group (kernel-global gid).
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Modification time (ns since the epoch).
    pub mtime_ns: u64,
    /// Change time (ns since the epoch).
    pub ctime_ns: u64,
    /// Generation of the slot (NFS-style `i_generation`; full width).
    pub generation: u64,
}

/// One directory entry for `readdir`.
pub struct DirEntry {
    /// Name bytes (first `len` valid).
    pub name: [u8; 255],
    /// Name length.
    pub len: u8,
    /// Inode number.
    pub ino: u64,
    /// What it is.
    pub kind: Kind,
}

/// A lookup's answer.
#[derive(Clone, Copy, Debug)]
pub struct Lookup {
    /// The name's attributes; `None` if absent (a negative dentry).
    pub attrs: Option<Attrs>,
    /// The tag the dentry keeps (handed back at revalidation); 0: none.
    pub tag: u64,
}

/// A dentry being revalidated, as `d_revalidate` sees it.
#[derive(Clone, Copy, Debug)]
pub struct Revalidating<'a> {
    /// The parent directory's inode number.
    pub dir: u64,
    /// The dentry's name.
    pub name: &'a [u8],
    /// Its inode number; `None` for a negative dentry.
    pub child: Option<u64>,
    /// The tag it keeps (from its lookup or last revalidation; 0: none).
    pub tag: u64,
    /// In RCU walk: nothing may sleep, and the dentry cannot take a new
    /// tag or attributes (answer [`Revalidate::NeedsBlocking`] instead).
    pub rcu: bool,
}

/// What `d_revalidate` is to answer.
#[derive(Clone, Copy, Debug)]
pub enum Revalidate {
    /// The dentry is valid as it is.
    Valid,
    /// Valid, with fresh attributes and a new tag (not in RCU walk).
    Refreshed(Attrs, u64),
    /// Stale: the VFS drops it and looks the name up again.
    Invalid,
    /// Undecidable in RCU walk: the VFS retries out of it.
    NeedsBlocking,
}

/// Namespace operations of a filesystem. Directories are named by inode number.
pub trait Namespace: FileSystem {
    /// Looks `name` up in directory `dir`.
    fn lookup(d: &Self::Data, dir: u64, name: &[u8]) -> Result<Lookup>;
    /// Creates directory `name` in `dir`, owned by `uid`/`gid`.
    fn mkdir(d: &Self::Data, dir: u64, name: &[u8], mode: u16, uid: u32, gid: u32)
        -> Result<Attrs>;
    /// Removes the empty directory `name` from `dir`.
    fn rmdir(d: &Self::Data, dir: u64, name: &[u8]) -> Result;
    /// The entry at or after `cursor` in `dir` and the cursor after it.
    fn readdir(d: &Self::Data, dir: u64, cursor: u64) -> Result<Option<(DirEntry, u64)>>;
    /// `d_revalidate`: whether a dentry still names what it did (names
    /// change on other hosts). Must not sleep when `r.rcu`.
    fn d_revalidate(d: &Self::Data, r: &Revalidating<'_>) -> Result<Revalidate>;
}


/// A live inode of filesystem `T`.
///
/// # Invariants
///
/// The wrapped inode is live for as long as a reference to this value
/// exists and belongs to a superblock of `T` (so its `i_private` is NULL or,
/// for a key, `T`'s key state installed by `file::init_key_inode::<T>`).
#[repr(transparent)]
pub struct INode<T>(Opaque<bindings::inode>, PhantomData<T>);

impl<T: FileSystem> INode<T> {
    /// # Safety
    ///
    /// `ptr` must be an inode of a superblock of `T`, live for `'a` (the VFS
    /// holds a reference, or the caller one of its operations that does).
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::inode) -> &'a Self {
        // SAFETY: `INode<T>` is a transparent wrapper of the C struct; the
        // pointee is live for `'a` (function contract).
        unsafe { &*ptr.cast() }
    }

    /// The C inode.
    pub(crate) fn as_ptr(&self) -> *mut bindings::inode {
        self.0.get()
    }

    /// The inode number.
    pub fn ino(&self) -> u64 {
        // SAFETY: the inode is live (type invariant); `i_ino` is set before
        // the inode is hashed and never changes after.
        unsafe { (*self.0.get()).i_ino }
    }

    /// The superblock the inode belongs to.
    pub fn super_block(&self) -> &SuperBlock<T> {
        // SAFETY: a live inode's `i_sb` is fixed and outlives it (type
        // invariant), and it is a superblock of `T`.
        unsafe { SuperBlock::from_raw((*self.0.get()).i_sb) }
    }

    /// The per-mount state (`EINVAL` before `fill_super` installed it).
    pub fn data(&self) -> Result<&T::Data> {
        self.super_block().data().ok_or(EINVAL)
    }
}

/// A dentry of filesystem `T` whose name is stable and which the caller
/// may tag.
///
/// # Invariants
///
/// The wrapped dentry is live for as long as a reference to this value
/// exists, in a directory of `T`, its name does not change meanwhile (the
/// VFS holds the parent locked, or the dentry is new), and the caller is not
/// in RCU walk.
#[repr(transparent)]
pub(crate) struct DEntry<T>(Opaque<bindings::dentry>, PhantomData<T>);

impl<T: FileSystem> DEntry<T> {
    /// # Safety
    ///
    /// `ptr` must be a dentry of `T` meeting the type invariant for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::dentry) -> &'a Self {
        // SAFETY: transparent wrapper; live for `'a` (function contract).
        unsafe { &*ptr.cast() }
    }

    /// The C dentry.
    pub(crate) fn as_ptr(&self) -> *mut bindings::dentry {
        self.0.get()
    }

    /// The dentry's name.
    pub(crate) fn name(&self) -> &[u8] {
        let mut len = 0u32;
        // SAFETY: the dentry is live (type invariant); `len` is a local.
        let p = unsafe { shim::marufs_shim_dentry_name(self.0.get(), &mut len) };
        // SAFETY: `d_name` points to `len` bytes that do not change while
        // the name is stable, i.e. for the borrow of `self` (type invariant).
        unsafe { core::slice::from_raw_parts(p, len as usize) }
    }

    /// Stores the filesystem's tag for the dentry (`d_time`).
    pub(crate) fn set_tag(&self, tag: u64) {
        // SAFETY: the dentry is live and not in RCU walk (type invariant).
        unsafe { store_tag(self.0.get(), tag) };
    }

    /// The dentry's inode, if positive.
    pub(crate) fn inode(&self) -> Option<&INode<T>> {
        // SAFETY: the dentry is live and, not in RCU walk with its name
        // stable, its `d_inode` only changes under the parent's lock, which
        // the VFS holds or which is not needed (type invariant).
        let i = unsafe { (*self.0.get()).d_inode };
        // SAFETY: a positive dentry holds a reference to its inode, one of
        // `T`'s superblock.
        (!i.is_null()).then(|| unsafe { INode::from_raw(i) })
    }
}

/// Stores the filesystem's tag `tag` in `dentry->d_time`.
///
/// # Safety
///
/// `dentry` must be live and the caller not in RCU walk.
unsafe fn store_tag(dentry: *mut bindings::dentry, tag: u64) {
    // SAFETY: `d_time` is the filesystem's word in a live dentry (function
    // contract); outside RCU walk the VFS lets the filesystem store it, and
    // RCU-walk readers read it with READ_ONCE (a racy plain word by design),
    // so a volatile store is what they expect.
    unsafe { core::ptr::write_volatile(&raw mut (*dentry).d_time, tag as usize) };
}

/// Writes `a` into `inode`'s attributes.
pub(crate) fn apply<T: FileSystem>(inode: &INode<T>, a: &Attrs) {
    let ty = match a.kind {
        Kind::Root | Kind::Dir => bindings::S_IFDIR,
        Kind::Key => bindings::S_IFREG,
    } as u16;
    let i = inode.as_ptr();
    // SAFETY: the inode is live (type invariant of `INode`). These are
    // plain attribute words the VFS reads without locks by design (stat,
    // permission checks); the size is stored through `i_size_write`.
    unsafe {
        (*i).i_mode = ty | (a.mode & 0o7777);
        (*i).i_uid = bindings::kuid_t { val: a.uid };
        (*i).i_gid = bindings::kgid_t { val: a.gid };
        shim::marufs_shim_inode_set_size(i, a.size, a.blocks);
        shim::marufs_shim_inode_set_times(i, a.mtime_ns, a.ctime_ns);
        (*i).i_generation = a.generation as u32;
    }
}

/// Finds or creates the in-memory inode for `a` (one per incarnation: the
/// inode number encodes the generation); returns a new reference.
pub(crate) fn get_inode<T: FsOps>(sb: &SuperBlock<T>, a: &Attrs) -> Result<*mut bindings::inode> {
    get_key_inode(sb, a, false)
}

/// [`get_inode`], for a key: `creating` when this host just created it.
pub(crate) fn get_key_inode<T: FsOps>(sb: &SuperBlock<T>, a: &Attrs, creating: bool) -> Result<*mut bindings::inode> {
    // SAFETY: `sb` is a live superblock (type invariant of `SuperBlock`).
    let ip = unsafe { bindings::iget_locked(sb.as_ptr(), a.ino) };
    if ip.is_null() {
        return Err(ENOMEM);
    }
    // SAFETY: `iget_locked` returned a referenced inode of `sb`, one of `T`.
    let inode = unsafe { INode::<T>::from_raw(ip) };
    // SAFETY: `ip` is a live, referenced inode.
    if unsafe { shim::marufs_shim_inode_is_new(ip) } {
        apply(inode, a);
        // SAFETY: an I_NEW inode is invisible to everyone else until
        // `unlock_new_inode`, so its fields are ours to set; the tables are
        // promoted constants (`'static`) of `T`, whose inode this is.
        unsafe {
            match a.kind {
                Kind::Root => {
                    (*ip).i_op = &Tables::<T>::ROOT_IOPS;
                    (*ip).__bindgen_anon_3.i_fop = &Tables::<T>::DIR_FOPS;
                    bindings::set_nlink(ip, 2);
                }
                Kind::Dir => {
                    (*ip).i_op = &Tables::<T>::DIR_IOPS;
                    (*ip).__bindgen_anon_3.i_fop = &Tables::<T>::DIR_FOPS;
                    bindings::set_nlink(ip, 2);
                }
                Kind::Key => {
                    (*ip).i_op = &Tables::<T>::KEY_IOPS;
                    (*ip).__bindgen_anon_3.i_fop = &Tables::<T>::KEY_FOPS;
                    bindings::set_nlink(ip, 1);
                }
            }
        }
        if a.kind == Kind::Key {
            // SAFETY: `ip` is still I_NEW (unlocked below), so no one else
            // can see it.
            if let Err(e) = unsafe { file::init_key_inode(inode, a, creating) } {
                // SAFETY: `ip` is still I_NEW and referenced by us:
                // `iget_failed` unhashes it and drops our reference.
                unsafe { bindings::iget_failed(ip) };
                return Err(e);
            }
        }
        // SAFETY: the new inode is fully set up; this makes it visible.
        unsafe { bindings::unlock_new_inode(ip) };
    } else {
        apply(inode, a);
    }
    Ok(ip)
}

impl<T: FsOps> Tables<T> {
    /// Inode operations of `T`'s root directory.
    pub(crate) const ROOT_IOPS: bindings::inode_operations = {
        // SAFETY: all-zero is a valid table (every hook optional).
        let mut o: bindings::inode_operations = unsafe { core::mem::zeroed() };
        o.lookup = Some(lookup_cb::<T>);
        o.mkdir = Some(mkdir_cb::<T>);
        o.rmdir = Some(rmdir_cb::<T>);
        o.setattr = Some(file::setattr_cb::<T>);
        o
    };

    /// Inode operations of `T`'s directories (below the root).
    pub(crate) const DIR_IOPS: bindings::inode_operations = {
        // SAFETY: all-zero is a valid table (every hook optional).
        let mut o: bindings::inode_operations = unsafe { core::mem::zeroed() };
        o.lookup = Some(lookup_cb::<T>);
        o.create = Some(file::create_cb::<T>);
        o.tmpfile = Some(file::tmpfile_cb::<T>);
        o.link = Some(file::link_cb::<T>);
        o.unlink = Some(file::unlink_cb::<T>);
        o.rename = Some(file::rename_cb::<T>);
        o.setattr = Some(file::setattr_cb::<T>);
        o
    };

    /// Inode operations of `T`'s keys.
    pub(crate) const KEY_IOPS: bindings::inode_operations = {
        // SAFETY: all-zero is a valid table (every hook optional).
        let mut o: bindings::inode_operations = unsafe { core::mem::zeroed() };
        o.setattr = Some(file::setattr_cb::<T>);
        o
    };

    /// File operations of `T`'s directories.
    pub(crate) const DIR_FOPS: bindings::file_operations = {
        // SAFETY: all-zero is a valid table (every hook optional).
        let mut o: bindings::file_operations = unsafe { core::mem::zeroed() };
        o.iterate_shared = Some(iterate_cb::<T>);
        o.unlocked_ioctl = Some(super::ioctl::dir_ioctl_cb::<T>);
        o.compat_ioctl = bindings::compat_ptr_ioctl;
        o.read = Some(bindings::generic_read_dir);
        o.llseek = Some(bindings::generic_file_llseek);
        o
    };

    /// `T`'s dentry operations (the superblock's default).
    pub(crate) const DENTRY_OPS: bindings::dentry_operations = {
        // SAFETY: all-zero is a valid table (every hook optional).
        let mut o: bindings::dentry_operations = unsafe { core::mem::zeroed() };
        o.d_revalidate = Some(revalidate_cb::<T>);
        o
    };
}

/// The per-mount state, the directory's inode number and the dentry of a
/// directory operation.
///
/// # Safety
///
/// `dir` must be a live directory inode of `T` and `dentry` a dentry in it
/// with a stable name for `'a`, outside RCU walk (as the VFS passes them to
/// `lookup`, `create`, `mkdir`, `link`, `unlink`, `rmdir` and `rename`,
/// with `dir` locked).
pub(crate) unsafe fn dir_args<'a, T: FileSystem>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> Result<(&'a INode<T>, &'a DEntry<T>)> {
    // SAFETY: `dir` is a live inode of `T` for `'a` (function contract).
    let dir = unsafe { INode::<T>::from_raw(dir) };
    // SAFETY: `dentry` meets `DEntry`'s invariant for `'a` (function contract).
    let dentry = unsafe { DEntry::<T>::from_raw(dentry) };
    Ok((dir, dentry))
}

/// The caller's filesystem uid and gid.
pub(crate) fn current_fs_ids() -> (u32, u32) {
    // SAFETY: reading the current task's credentials has no precondition
    // in process context, where every inode operation runs.
    unsafe { (shim::marufs_shim_current_fsuid(), shim::marufs_shim_current_fsgid()) }
}

/// `inode_operations.lookup`.
///
/// # Safety
///
/// `dir` must be a locked directory of `T` and `dentry` a new dentry in it,
/// as `lookup_slow`/`lookup_one_qstr_excl` pass them.
unsafe extern "C" fn lookup_cb<T: FsOps>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    _flags: c_uint,
) -> *mut bindings::dentry {
    // SAFETY: `dir` is live and locked, `dentry` new in it (function
    // contract): the arguments of a directory operation.
    let (dir, dentry) = match unsafe { dir_args::<T>(dir, dentry) } {
        Ok(v) => v,
        Err(e) => return err_ptr(e),
    };
    let d = match dir.data() {
        Ok(d) => d,
        Err(e) => return err_ptr(e),
    };
    let l = match T::lookup(d, dir.ino(), dentry.name()) {
        Ok(l) => l,
        Err(e) => return err_ptr(e),
    };
    let inode = match l.attrs {
        Some(a) => match get_inode(dir.super_block(), &a) {
            Ok(i) => i,
            Err(e) => return err_ptr(e),
        },
        None => null_mut(),
    };
    dentry.set_tag(l.tag);
    // SAFETY: `dentry` is the new, unhashed dentry of the lookup;
    // `d_splice_alias` consumes our inode reference (NULL: negative).
    unsafe { bindings::d_splice_alias(inode, dentry.as_ptr()) }
}

/// `inode_operations.mkdir`.
///
/// # Safety
///
/// `dir` must be a locked directory of `T` and `dentry` a negative dentry in
/// it, as `vfs_mkdir` passes them.
unsafe extern "C" fn mkdir_cb<T: FsOps>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> *mut bindings::dentry {
    // SAFETY: the arguments of a directory operation (function contract).
    let (dir, dentry) = match unsafe { dir_args::<T>(dir, dentry) } {
        Ok(v) => v,
        Err(e) => return err_ptr(e),
    };
    let d = match dir.data() {
        Ok(d) => d,
        Err(e) => return err_ptr(e),
    };
    let (uid, gid) = current_fs_ids();
    let a = match T::mkdir(d, dir.ino(), dentry.name(), mode & 0o7777, uid, gid) {
        Ok(a) => a,
        Err(e) => return err_ptr(e),
    };
    match get_inode(dir.super_block(), &a) {
        Ok(inode) => {
            dentry.set_tag(0);
            // SAFETY: `dir` is locked by the VFS (function contract), so its
            // link count is ours to change; `dentry` is negative and takes
            // our inode reference.
            unsafe {
                bindings::inc_nlink(dir.as_ptr());
                bindings::d_instantiate(dentry.as_ptr(), inode);
            }
            null_mut()
        }
        Err(e) => err_ptr(e),
    }
}

/// `inode_operations.rmdir`.
///
/// # Safety
///
/// `dir` and the victim must be locked and `dentry` a positive dentry in
/// `dir` of `T`, as `vfs_rmdir` passes them.
unsafe extern "C" fn rmdir_cb<T: FsOps>(dir: *mut bindings::inode, dentry: *mut bindings::dentry) -> c_int {
    // SAFETY: the arguments of a directory operation (function contract).
    let (dir, dentry) = match unsafe { dir_args::<T>(dir, dentry) } {
        Ok(v) => v,
        Err(e) => return e.to_errno(),
    };
    let d = match dir.data() {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    match T::rmdir(d, dir.ino(), dentry.name()) {
        Ok(()) => {
            if let Some(victim) = dentry.inode() {
                // SAFETY: the victim is locked by the VFS (function
                // contract): its link count is ours to change.
                unsafe { bindings::clear_nlink(victim.as_ptr()) };
            }
            // SAFETY: `dir` is locked by the VFS (function contract).
            unsafe { bindings::drop_nlink(dir.as_ptr()) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `file_operations.iterate_shared` for directories.
///
/// # Safety
///
/// `file` must be an open directory of `T` and `ctx` its directory context,
/// as `iterate_dir` passes them.
unsafe extern "C" fn iterate_cb<T: FsOps>(file: *mut bindings::file, ctx: *mut bindings::dir_context) -> c_int {
    // SAFETY: an open file holds its inode (function contract), one of `T`.
    let inode = unsafe { INode::<T>::from_raw((*file).f_inode) };
    let d = match inode.data() {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    let dino = inode.ino();
    // SAFETY: `file` and `ctx` are valid for the call (function contract).
    if !unsafe { shim::marufs_shim_dir_emit_dots(file, ctx) } {
        return 0;
    }
    loop {
        // Positions: 0 and 1 are the dots, then 2 + the namespace cursor.
        // SAFETY: `ctx` is valid for the call (function contract).
        let pos = unsafe { shim::marufs_shim_dir_pos(ctx) };
        let cursor = (pos.max(2) - 2) as u64;
        match T::readdir(d, dino, cursor) {
            Ok(Some((e, next))) => {
                let ty = match e.kind {
                    Kind::Key => bindings::DT_REG,
                    _ => bindings::DT_DIR,
                };
                let name = e.name.get(..e.len as usize).unwrap_or(&[]);
                // SAFETY: `ctx` is valid (function contract); `name` is a
                // local buffer of `name.len()` bytes.
                let more = unsafe {
                    shim::marufs_shim_dir_emit(ctx, name.as_ptr().cast(), name.len() as c_int, e.ino, ty)
                };
                if !more {
                    return 0;
                }
                // SAFETY: `ctx` is valid (function contract).
                unsafe { shim::marufs_shim_dir_set_pos(ctx, next as i64 + 2) };
            }
            Ok(None) => return 0,
            Err(e) => return e.to_errno(),
        }
    }
}

/// `dentry_operations.d_revalidate`: asks the filesystem
/// ([`Namespace::d_revalidate`]) and carries its answer out.
///
/// # Safety
///
/// As `d_revalidate` is called: `dir` is the parent's inode (stable for the
/// call, one of `T`), `name` the dentry's name (a stable snapshot for the
/// call), `dentry` a live dentry of `T`; in RCU walk (`LOOKUP_RCU`) its
/// `d_inode` may change under us and nothing may be stored or slept on.
unsafe extern "C" fn revalidate_cb<T: FsOps>(
    dir: *mut bindings::inode,
    name: *const bindings::qstr,
    dentry: *mut bindings::dentry,
    flags: c_uint,
) -> c_int {
    let rcu = flags & LOOKUP_RCU != 0;
    let echild = -(bindings::ECHILD as c_int);
    // SAFETY: `dir` is live for the call and an inode of `T` (function
    // contract).
    let dir = unsafe { INode::<T>::from_raw(dir) };
    let Ok(d) = dir.data() else {
        return if rcu { echild } else { 0 };
    };
    // SAFETY: `dentry` is live (function contract); in RCU walk its inode
    // pointer may change, so it is read once, and an inode it pointed to is
    // freed only after an RCU grace period, which this walk holds off.
    let ip = unsafe { core::ptr::read_volatile(&raw const (*dentry).d_inode) };
    // SAFETY: a non-NULL `ip` is readable for the call (just argued) and an
    // inode of `T`.
    let child = (!ip.is_null()).then(|| unsafe { INode::<T>::from_raw(ip) });
    // SAFETY: `d_time` is a plain word of a live dentry, stored by
    // `DEntry::set_tag` (volatile) outside RCU walk: read it the same way.
    let tag = unsafe { core::ptr::read_volatile(&raw const (*dentry).d_time) } as u64;
    let mut len = 0u32;
    // SAFETY: `name` is the dentry's name snapshot, valid for the call
    // (function contract); `len` is a local.
    let p = unsafe { shim::marufs_shim_qstr_name(name, &mut len) };
    // SAFETY: `p` points to `len` bytes valid for the call.
    let nm = unsafe { core::slice::from_raw_parts(p, len as usize) };
    let r = Revalidating {
        dir: dir.ino(),
        name: nm,
        child: child.map(|c| c.ino()),
        tag,
        rcu,
    };
    match T::d_revalidate(d, &r) {
        Ok(Revalidate::Valid) => 1,
        Ok(Revalidate::Invalid) => 0,
        Ok(Revalidate::NeedsBlocking) if rcu => echild,
        // Out of RCU walk there is nothing to retry in: look it up again.
        Ok(Revalidate::NeedsBlocking) => 0,
        // Nothing may be stored in RCU walk: retry out of it.
        Ok(Revalidate::Refreshed(..)) | Err(_) if rcu => echild,
        Ok(Revalidate::Refreshed(a, new_tag)) => {
            if let Some(c) = child {
                apply(c, &a);
            }
            // SAFETY: out of RCU walk, `dentry` is live and the VFS lets
            // `d_revalidate` store its `d_time` (its name may change under
            // a concurrent rename, so no `DEntry` is made here).
            unsafe { store_tag(dentry, new_tag) };
            1
        }
        Err(e) => e.to_errno(),
    }
}
