// SPDX-License-Identifier: GPL-2.0

//! `struct inode_operations`, directory `struct file_operations` and
//! `struct dentry_operations`: the namespace.
//!
//! Every name lives on shared media and may change under us (other hosts).
//! A dentry is trusted only while the change counter that vouches for it
//! ([`Namespace::changes`], read before the dentry was last looked up or
//! revalidated and kept in `d_time`) still reads the same: one invalidated
//! line per path component, in RCU walk. Otherwise positive dentries are
//! revalidated against the media and negative ones looked up again.

use super::{
    file,
    fs_context::{FileSystem, Fs},
    shim,
    super_block::SuperBlock,
    Table,
};
use core::ptr::null_mut;
use kernel::{bindings, ffi::c_int, ffi::c_uint, prelude::*};

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

/// Namespace operations of a filesystem. Directories are named by inode number.
pub trait Namespace: FileSystem {
    /// Looks `name` up in directory `dir`; `Ok(None)` if absent.
    fn lookup(d: &Self::Data, dir: u64, name: &[u8]) -> Result<Option<Attrs>>;
    /// Creates directory `name` in `dir`, owned by `uid`/`gid`.
    fn mkdir(d: &Self::Data, dir: u64, name: &[u8], mode: u16, uid: u32, gid: u32)
        -> Result<Attrs>;
    /// Removes the empty directory `name` from `dir`.
    fn rmdir(d: &Self::Data, dir: u64, name: &[u8]) -> Result;
    /// The entry at or after `cursor` in `dir` and the cursor after it.
    fn readdir(d: &Self::Data, dir: u64, cursor: u64) -> Result<Option<(DirEntry, u64)>>;
    /// Current attributes of inode `ino` named `name` in `dir`, or `None` if
    /// that incarnation is gone.
    fn revalidate(d: &Self::Data, dir: u64, name: &[u8], ino: u64) -> Result<Option<Attrs>>;
    /// The change counter vouching for a name in directory `dir` (`child`:
    /// the name's inode, `None` for an absent name), if the filesystem keeps
    /// one: a dentry looked up or revalidated after reading value `c` stays
    /// valid while this returns `Some(c)`. Never 0. Must not sleep (called
    /// in RCU walk).
    fn changes(d: &Self::Data, dir: u64, child: Option<u64>) -> Option<u64>;
}

/// Marks `dentry` as vouched for by change counter `c` (0: by none).
///
/// # Safety
///
/// `dentry` must be live and not in RCU walk (the VFS allows a filesystem to
/// store `d_time` then).
pub(crate) unsafe fn set_vouched(dentry: *mut bindings::dentry, c: Option<u64>) {
    // SAFETY: function contract; `d_time` belongs to the filesystem.
    unsafe { core::ptr::write_volatile(&raw mut (*dentry).d_time, c.unwrap_or(0) as usize) };
}

/// The superblock's data, from an inode of it.
///
/// # Safety
///
/// `inode` must be a live marufs inode.
pub(crate) unsafe fn data_of<'a>(inode: *mut bindings::inode) -> Result<&'a <Fs as FileSystem>::Data> {
    // SAFETY: a live inode's superblock is live and is a marufs superblock
    // (function contract); its data outlives all of its inodes.
    let sb = unsafe { SuperBlock::from_raw((*inode).i_sb) };
    sb.data::<Fs>().ok_or(EINVAL)
}

/// The name of a dentry.
///
/// # Safety
///
/// `dentry` must be live with a stable name for `'a` (the VFS holds the
/// parent's lock or the dentry is being looked up/created).
unsafe fn name_of<'a>(dentry: *mut bindings::dentry) -> &'a [u8] {
    let mut len = 0u32;
    // SAFETY: `dentry` is live (function contract).
    let p = unsafe { shim::marufs_shim_dentry_name(dentry, &mut len) };
    // SAFETY: `d_name` points to `len` bytes, stable for `'a` (function contract).
    unsafe { core::slice::from_raw_parts(p, len as usize) }
}

/// The per-mount data, the dentry's name and the directory's inode number.
///
/// # Safety
///
/// `dir` must be a live marufs directory inode, locked by the VFS, and
/// `dentry` a dentry in it with a stable name for `'a`.
pub(crate) unsafe fn dir_args<'a>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> Result<(&'a <Fs as FileSystem>::Data, &'a [u8], u64)> {
    // SAFETY: function contract.
    let d = unsafe { data_of(dir)? };
    // SAFETY: function contract.
    let name = unsafe { name_of(dentry) };
    // SAFETY: `dir` is live (function contract).
    let ino = unsafe { (*dir).i_ino };
    Ok((d, name, ino))
}

/// Writes `a` into `inode`'s attributes.
///
/// # Safety
///
/// `inode` must be live and either new (I_NEW) or one whose attributes we
/// may refresh (they are plain values the VFS reads racily by design).
pub(crate) unsafe fn apply(inode: *mut bindings::inode, a: &Attrs) {
    let ty = match a.kind {
        Kind::Root | Kind::Dir => bindings::S_IFDIR,
        Kind::Key => bindings::S_IFREG,
    } as u16;
    // SAFETY: `inode` is live (function contract).
    unsafe {
        (*inode).i_mode = ty | (a.mode & 0o7777);
        (*inode).i_uid = bindings::kuid_t { val: a.uid };
        (*inode).i_gid = bindings::kgid_t { val: a.gid };
        shim::marufs_shim_inode_set_size(inode, a.size, a.blocks);
        shim::marufs_shim_inode_set_times(inode, a.mtime_ns, a.ctime_ns);
        (*inode).i_generation = a.generation as u32;
    }
}

/// Finds or creates the in-memory inode for `a` (one per incarnation: the
/// inode number encodes the generation).
///
/// # Safety
///
/// `sb` must be a live marufs superblock.
pub(crate) unsafe fn get_inode(sb: *mut bindings::super_block, a: &Attrs) -> Result<*mut bindings::inode> {
    // SAFETY: function contract.
    unsafe { get_key_inode(sb, a, false) }
}

/// [`get_inode`], for a key: `creating` when this host just created it.
///
/// # Safety
///
/// `sb` must be a live marufs superblock.
pub(crate) unsafe fn get_key_inode(
    sb: *mut bindings::super_block,
    a: &Attrs,
    creating: bool,
) -> Result<*mut bindings::inode> {
    // SAFETY: `sb` is live (function contract).
    let inode = unsafe { bindings::iget_locked(sb, a.ino) };
    if inode.is_null() {
        return Err(ENOMEM);
    }
    // SAFETY: `inode` is a live, referenced inode of `sb`.
    if unsafe { shim::marufs_shim_inode_is_new(inode) } {
        // SAFETY: a new inode is ours to fill until unlock_new_inode; the
        // operation tables are statics.
        unsafe {
            apply(inode, a);
            match a.kind {
                Kind::Root => {
                    (*inode).i_op = &ROOT_IOPS;
                    (*inode).__bindgen_anon_3.i_fop = &DIR_FOPS.0;
                    bindings::set_nlink(inode, 2);
                }
                Kind::Dir => {
                    (*inode).i_op = &DIR_IOPS;
                    (*inode).__bindgen_anon_3.i_fop = &DIR_FOPS.0;
                    bindings::set_nlink(inode, 2);
                }
                Kind::Key => {
                    (*inode).i_op = &KEY_IOPS;
                    (*inode).__bindgen_anon_3.i_fop = &file::KEY_FOPS.0;
                    bindings::set_nlink(inode, 1);
                    if let Err(e) = file::init_key_inode(inode, a, creating) {
                        bindings::iget_failed(inode);
                        return Err(e);
                    }
                }
            }
            bindings::unlock_new_inode(inode);
        }
    } else {
        // SAFETY: refreshing plain attributes of a live inode.
        unsafe { apply(inode, a) };
    }
    Ok(inode)
}

static ROOT_IOPS: bindings::inode_operations = {
    // SAFETY: all-zero is a valid table (every hook optional).
    let mut o: bindings::inode_operations = unsafe { core::mem::zeroed() };
    o.lookup = Some(lookup_cb);
    o.mkdir = Some(mkdir_cb);
    o.rmdir = Some(rmdir_cb);
    o.setattr = Some(file::setattr_cb);
    o
};

static DIR_IOPS: bindings::inode_operations = {
    // SAFETY: all-zero is a valid table (every hook optional).
    let mut o: bindings::inode_operations = unsafe { core::mem::zeroed() };
    o.lookup = Some(lookup_cb);
    o.create = Some(file::create_cb);
    o.tmpfile = Some(file::tmpfile_cb);
    o.link = Some(file::link_cb);
    o.unlink = Some(file::unlink_cb);
    o.rename = Some(file::rename_cb);
    o.setattr = Some(file::setattr_cb);
    o
};

static KEY_IOPS: bindings::inode_operations = {
    // SAFETY: all-zero is a valid table (every hook optional).
    let mut o: bindings::inode_operations = unsafe { core::mem::zeroed() };
    o.setattr = Some(file::setattr_cb);
    o
};

static DIR_FOPS: Table<bindings::file_operations> = Table({
    // SAFETY: all-zero is a valid table (every hook optional).
    let mut o: bindings::file_operations = unsafe { core::mem::zeroed() };
    o.iterate_shared = Some(iterate_cb);
    o.unlocked_ioctl = Some(super::ioctl::dir_ioctl_cb);
    o.compat_ioctl = bindings::compat_ptr_ioctl;
    o.read = Some(bindings::generic_read_dir);
    o.llseek = Some(bindings::generic_file_llseek);
    o
});

/// Installed as the superblock's default dentry operations.
pub(crate) static DENTRY_OPS: bindings::dentry_operations = {
    // SAFETY: all-zero is a valid table (every hook optional).
    let mut o: bindings::dentry_operations = unsafe { core::mem::zeroed() };
    o.d_revalidate = Some(revalidate_cb);
    o
};

fn err_ptr<T>(e: Error) -> *mut T {
    e.to_errno() as isize as *mut T
}

/// `inode_operations.lookup`.
///
/// # Safety
///
/// VFS contract: `dir` is a locked marufs directory, `dentry` a new dentry in it.
unsafe extern "C" fn lookup_cb(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    _flags: c_uint,
) -> *mut bindings::dentry {
    // SAFETY: VFS contract: `dir` is a live, locked marufs directory and
    // `dentry` a dentry in it.
    let (d, name, dino) = match unsafe { dir_args(dir, dentry) } {
        Ok(v) => v,
        Err(e) => return err_ptr(e),
    };
    // Read before the lookup: a change after it makes the counter differ.
    let vouch = Fs::changes(d, dino, None);
    let inode = match Fs::lookup(d, dino, name) {
        Ok(Some(a)) => {
            // SAFETY: `dir`'s superblock is live.
            match unsafe { get_inode((*dir).i_sb, &a) } {
                Ok(i) => i,
                Err(e) => return err_ptr(e),
            }
        }
        Ok(None) => null_mut(),
        Err(e) => return err_ptr(e),
    };
    // SAFETY: `dentry` is the new dentry (not visible to RCU walkers yet).
    unsafe { set_vouched(dentry, vouch) };
    // SAFETY: `dentry` is the new dentry; d_splice_alias consumes our inode
    // reference (NULL makes it negative).
    unsafe { bindings::d_splice_alias(inode, dentry) }
}

/// `inode_operations.mkdir`.
///
/// # Safety
///
/// VFS contract: `dir` is locked, `dentry` is negative.
unsafe extern "C" fn mkdir_cb(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> *mut bindings::dentry {
    // SAFETY: VFS contract: `dir` is a live, locked marufs directory and
    // `dentry` a dentry in it.
    let (d, name, dino) = match unsafe { dir_args(dir, dentry) } {
        Ok(v) => v,
        Err(e) => return err_ptr(e),
    };
    // SAFETY: reading the caller's credentials.
    let (uid, gid) = unsafe { (shim::marufs_shim_current_fsuid(), shim::marufs_shim_current_fsgid()) };
    match Fs::mkdir(d, dino, name, mode & 0o7777, uid, gid) {
        Ok(a) => {
            // SAFETY: `dir`'s superblock is live.
            match unsafe { get_inode((*dir).i_sb, &a) } {
                Ok(inode) => {
                    // SAFETY: `dentry` is negative and locked; it takes our reference.
                    unsafe {
                        bindings::inc_nlink(dir);
                        set_vouched(dentry, None);
                        bindings::d_instantiate(dentry, inode);
                    }
                    null_mut()
                }
                Err(e) => err_ptr(e),
            }
        }
        Err(e) => err_ptr(e),
    }
}

/// `inode_operations.rmdir`.
///
/// # Safety
///
/// VFS contract: `dir` and the victim are locked; `dentry` is positive.
unsafe extern "C" fn rmdir_cb(dir: *mut bindings::inode, dentry: *mut bindings::dentry) -> c_int {
    // SAFETY: VFS contract: `dir` is a live, locked marufs directory and
    // `dentry` a dentry in it.
    let (d, name, dino) = match unsafe { dir_args(dir, dentry) } {
        Ok(v) => v,
        Err(e) => return e.to_errno(),
    };
    match Fs::rmdir(d, dino, name) {
        Ok(()) => {
            // SAFETY: the victim inode is live and locked by the VFS.
            unsafe {
                let victim = (*dentry).d_inode;
                if !victim.is_null() {
                    bindings::clear_nlink(victim);
                }
                bindings::drop_nlink(dir);
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `file_operations.iterate_shared` for directories.
///
/// # Safety
///
/// VFS contract: `file` is an open marufs directory, `ctx` its context.
unsafe extern "C" fn iterate_cb(file: *mut bindings::file, ctx: *mut bindings::dir_context) -> c_int {
    // SAFETY: VFS contract: an open file has a live inode.
    let inode = unsafe { (*file).f_inode };
    // SAFETY: as above.
    let d = match unsafe { data_of(inode) } {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: as above.
    let dino = unsafe { (*inode).i_ino };
    // SAFETY: `file`/`ctx` valid (VFS contract).
    if !unsafe { shim::marufs_shim_dir_emit_dots(file, ctx) } {
        return 0;
    }
    loop {
        // Positions: 0 and 1 are the dots, then 2 + the namespace cursor.
        // SAFETY: `ctx` valid.
        let pos = unsafe { shim::marufs_shim_dir_pos(ctx) };
        let cursor = (pos.max(2) - 2) as u64;
        match Fs::readdir(d, dino, cursor) {
            Ok(Some((e, next))) => {
                let ty = match e.kind {
                    Kind::Key => bindings::DT_REG,
                    _ => bindings::DT_DIR,
                };
                let name = e.name.get(..e.len as usize).unwrap_or(&[]);
                // SAFETY: `ctx` valid; `name` is a local buffer.
                let more = unsafe {
                    shim::marufs_shim_dir_emit(ctx, name.as_ptr().cast(), name.len() as c_int, e.ino, ty)
                };
                if !more {
                    return 0;
                }
                // SAFETY: `ctx` valid.
                unsafe { shim::marufs_shim_dir_set_pos(ctx, next as i64 + 2) };
            }
            Ok(None) => return 0,
            Err(e) => return e.to_errno(),
        }
    }
}

/// `dentry_operations.d_revalidate`: names can change on other hosts.
///
/// # Safety
///
/// VFS contract: `dir` is the parent inode, `dentry` the dentry (its name is
/// `name`, stable for the call); in RCU walk (`LOOKUP_RCU`) `dir` is stable
/// but `dentry->d_inode` may change under us and nothing may be stored.
unsafe extern "C" fn revalidate_cb(
    dir: *mut bindings::inode,
    name: *const bindings::qstr,
    dentry: *mut bindings::dentry,
    flags: c_uint,
) -> c_int {
    let rcu = flags & LOOKUP_RCU != 0;
    // SAFETY: `dir` is a live marufs inode (VFS contract).
    let d = match unsafe { data_of(dir) } {
        Ok(d) => d,
        Err(_) => return if rcu { -(bindings::ECHILD as c_int) } else { 0 },
    };
    // SAFETY: `dentry` is live; in RCU walk its inode pointer is read once
    // and the inode itself is freed only after an RCU grace period.
    let inode = unsafe { core::ptr::read_volatile(&raw const (*dentry).d_inode) };
    // SAFETY: as above (a non-null inode is readable under RCU).
    let child = (!inode.is_null()).then(|| unsafe { (*inode).i_ino });
    // SAFETY: live inode.
    let dino = unsafe { (*dir).i_ino };
    // SAFETY: `dentry` is live; `d_time` is ours (a plain word).
    let vouched = unsafe { core::ptr::read_volatile(&raw const (*dentry).d_time) } as u64;
    let now = Fs::changes(d, dino, child);
    if vouched != 0 && now == Some(vouched) {
        // Nothing in the directory changed since the dentry was checked.
        return 1;
    }
    if rcu {
        // Checking against the media may sleep: leave RCU walk.
        return -(bindings::ECHILD as c_int);
    }
    let Some(ino) = child else {
        // A stale negative dentry: look the name up again.
        return 0;
    };
    let mut len = 0u32;
    // SAFETY: VFS contract: `name` is the dentry's name, stable for the call.
    let p = unsafe { shim::marufs_shim_qstr_name(name, &mut len) };
    // SAFETY: `p` points to `len` bytes valid for the call.
    let nm = unsafe { core::slice::from_raw_parts(p, len as usize) };
    match Fs::revalidate(d, dino, nm, ino) {
        Ok(Some(a)) => {
            // SAFETY: refreshing the plain attributes of a live inode; not in
            // RCU walk, so the dentry may be marked.
            unsafe {
                apply(inode, &a);
                set_vouched(dentry, now);
            }
            1
        }
        Ok(None) => 0,
        Err(e) => e.to_errno(),
    }
}
