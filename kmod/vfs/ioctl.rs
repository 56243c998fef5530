// SPDX-License-Identifier: GPL-2.0

//! `file_operations.unlocked_ioctl` of directories and keys. The commands
//! and their protocol are the filesystem's ([`Ioctls`]; marufs: the batched
//! lookup of `marufs_core::abi`, in `kmod/batch.rs`); this layer hands it the
//! open file, typed ([`DirFile`], [`File`]), with what a protocol needs of
//! the kernel: permission checks and path-walk lookups through the dcache.
//! User memory is reached through the kernel's `uaccess::UserSlice`.

use super::{
    file::{File, Keys},
    inode::INode,
    shim, FsOps,
};
use core::marker::PhantomData;
use kernel::{
    bindings,
    ffi::{c_int, c_long, c_uint, c_ulong},
    prelude::*,
    types::Opaque,
};

/// Ioctls of a filesystem.
pub trait Ioctls: Keys {
    /// `ioctl(cmd, arg)` on an open directory; the result is returned to
    /// the caller (`ENOTTY` for unknown commands).
    fn dir_ioctl(d: &Self::Data, dir: &DirFile<Self>, cmd: u32, arg: usize) -> Result<u32>;
    /// `ioctl(cmd, arg)` on an open key.
    fn key_ioctl(d: &Self::Data, f: &File<Self>, cmd: u32, arg: usize) -> Result<u32>;
}

/// What the dcache holds for a present name.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cached {
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (ns since the epoch).
    pub mtime_ns: u64,
    /// Type and permission bits (`i_mode`).
    pub mode: u32,
    /// Owner (kernel-global uid).
    pub uid: u32,
    /// Group (kernel-global gid).
    pub gid: u32,
}

impl From<&shim::Stat> for Cached {
    fn from(st: &shim::Stat) -> Self {
        Self {
            ino: st.ino,
            size: st.size,
            mtime_ns: st.mtime_ns,
            mode: st.mode,
            uid: st.uid,
            gid: st.gid,
        }
    }
}

/// An open directory of filesystem `T`.
///
/// # Invariants
///
/// The wrapped file is open for as long as a reference to this value
/// exists and its inode is a directory of `T`.
#[repr(transparent)]
pub struct DirFile<T>(Opaque<bindings::file>, PhantomData<T>);

const MAY_EXEC: c_int = 1;

impl<T: FsOps> DirFile<T> {
    /// # Safety
    ///
    /// `ptr` must be an open directory of `T`, kept open for `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::file) -> &'a Self {
        // SAFETY: transparent wrapper; open for `'a` (function contract).
        unsafe { &*ptr.cast() }
    }

    /// The directory's inode.
    pub fn inode(&self) -> &INode<T> {
        // SAFETY: an open file holds its inode (type invariant), one of `T`.
        unsafe { INode::from_raw((*self.0.get()).f_inode) }
    }

    /// Whether the caller may search the directory (`MAY_EXEC`), as a path
    /// walk through it would check.
    pub fn may_search(&self) -> Result {
        // SAFETY: the file is open (type invariant).
        let p = unsafe { shim::marufs_shim_permission(self.0.get(), MAY_EXEC) };
        if p != 0 {
            return Err(Error::from_errno(p));
        }
        Ok(())
    }

    /// The dcache's entry for `name` without looking anything up: `None`
    /// if it has none, else its tag ([`super::inode::Lookup::tag`]) and
    /// what it holds (`None`: a negative entry).
    pub fn dcache_peek(&self, name: &[u8]) -> Option<(u64, Option<Cached>)> {
        let mut st = shim::Stat::default();
        let mut tag = 0usize;
        // SAFETY: the file is open (type invariant); `name` is `len`
        // readable bytes; `tag` and `st` are locals the shim writes.
        let r = unsafe {
            shim::marufs_shim_dcache_peek(self.0.get(), name.as_ptr(), name.len() as u32, &mut tag, &mut st)
        };
        match r {
            1 => Some((tag as u64, Some(Cached::from(&st)))),
            0 => Some((tag as u64, None)),
            _ => None,
        }
    }

    /// Looks `name` up the way a path walk would: through the dcache, whose
    /// entries `d_revalidate` checks, else the filesystem's lookup, whose
    /// answer the dcache then keeps. `name` must be one path component.
    pub fn lookup(&self, name: &[u8]) -> Result<Option<Cached>> {
        let mut st = shim::Stat::default();
        // SAFETY: the file is open (type invariant); `name` is `len`
        // readable bytes; `st` is a local the shim writes.
        let r = unsafe { shim::marufs_shim_dcache_lookup(self.0.get(), name.as_ptr(), name.len() as u32, &mut st) };
        match r {
            1 => Ok(Some(Cached::from(&st))),
            0 => Ok(None),
            e => Err(Error::from_errno(e)),
        }
    }
}

/// `file_operations.unlocked_ioctl` for directories.
///
/// # Safety
///
/// `file` must be an open directory of `T`, as `do_vfs_ioctl` passes it.
pub(crate) unsafe extern "C" fn dir_ioctl_cb<T: FsOps>(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: `file` is an open directory of `T` for the call (function
    // contract).
    let dir = unsafe { DirFile::<T>::from_raw(file) };
    let r = dir.inode().data().and_then(|d| T::dir_ioctl(d, dir, cmd, arg));
    match r {
        Ok(n) => n as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}

/// `file_operations.unlocked_ioctl` for keys.
///
/// # Safety
///
/// `file` must be an open key of `T`, as `do_vfs_ioctl` passes it.
pub(crate) unsafe extern "C" fn key_ioctl_cb<T: FsOps>(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: `file` is an open key of `T` for the call (function contract),
    // opened by `open_cb::<T>`.
    let f = unsafe { File::<T>::from_raw(file) };
    let r = f.inode().data().and_then(|d| T::key_ioctl(d, f, cmd, arg));
    match r {
        Ok(n) => n as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}
