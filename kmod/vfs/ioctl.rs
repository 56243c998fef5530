// SPDX-License-Identifier: GPL-2.0

//! `file_operations.unlocked_ioctl` of directories: the batched interface of
//! `marufs_core::abi` (one call looks up many keys). Each name is looked up
//! the way a path walk would: through the dcache, whose entries the
//! filesystem's `d_revalidate` vouches for (one change-counter read when
//! nothing changed), else the filesystem's lookup, which caches the answer.

use super::{
    file::{self, Keys},
    fs_context::Fs,
    inode::{self, Namespace},
    shim,
};
use crate::marufs_core::abi::{self, LookupReq, LookupRes, PackedNames, LOOKUP_REQ_SIZE, LOOKUP_RES_SIZE};
use kernel::{
    alloc::KVVec,
    bindings,
    ffi::{c_int, c_long, c_uint, c_ulong},
    prelude::*,
};

const MAY_EXEC: c_int = 1;

/// Batched operations of a filesystem.
pub trait Ioctls: Namespace {
    /// Whether directory `dir` takes batched lookups (an error otherwise).
    fn batch_dir(d: &Self::Data, dir: u64) -> Result;
}

/// Whether a path walk could look `name` up at all (else: absent).
fn walkable(name: &[u8]) -> bool {
    !matches!(name, b"." | b"..") && !name.iter().any(|&c| c == b'/' || c == 0)
}

/// `file_operations.unlocked_ioctl` for directories.
///
/// # Safety
///
/// VFS contract: `file` is an open marufs directory.
pub(crate) unsafe extern "C" fn dir_ioctl_cb(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
    let r = match cmd {
        // SAFETY: VFS contract.
        abi::IOC_LOOKUP => unsafe { lookup(file, arg as u64) },
        _ => Err(ENOTTY),
    };
    match r {
        Ok(n) => n as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}

/// `file_operations.unlocked_ioctl` for keys.
///
/// # Safety
///
/// VFS contract: `file` is an open marufs key.
pub(crate) unsafe extern "C" fn key_ioctl_cb(file: *mut bindings::file, cmd: c_uint, _arg: c_ulong) -> c_long {
    let r = match cmd {
        abi::IOC_DISCARD => {
            // SAFETY: VFS contract: an open key; `private_data` was set by
            // its open and lives until release.
            match unsafe { file::key_args_of_file(file) } {
                Ok((d, k)) => {
                    // SAFETY: as above.
                    let of = unsafe { &*(*file).private_data.cast::<<Fs as Keys>::OpenKey>() };
                    <Fs as Keys>::discard(d, k, of)
                }
                Err(e) => Err(e),
            }
        }
        _ => Err(ENOTTY),
    };
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

/// Copies `len` bytes from user address `src`.
fn copy_in(src: u64, len: usize) -> Result<KVVec<u8>> {
    let mut v = KVVec::from_elem(0u8, len, GFP_KERNEL)?;
    // SAFETY: `v` has `len` writable bytes; the user address is checked by
    // copy_from_user.
    let left = unsafe { shim::marufs_shim_copy_from_user(v.as_mut_ptr().cast(), src, len) };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(v)
}

/// # Safety
///
/// `file` must be an open marufs directory.
unsafe fn lookup(file: *mut bindings::file, arg: u64) -> Result<u32> {
    let mut b = [0u8; LOOKUP_REQ_SIZE];
    // SAFETY: `b` has `LOOKUP_REQ_SIZE` writable bytes; the user address is
    // checked by copy_from_user.
    if unsafe { shim::marufs_shim_copy_from_user(b.as_mut_ptr().cast(), arg, b.len()) } != 0 {
        return Err(EFAULT);
    }
    let req = LookupReq::decode(&b);
    let max_names = u64::from(req.count) * 256;
    if req.flags != 0 || req.count > abi::LOOKUP_MAX || u64::from(req.names_len) > max_names {
        return Err(EINVAL);
    }
    // SAFETY: `file` is open (function contract).
    let inode = unsafe { shim::marufs_shim_file_inode(file) };
    // A batched lookup is a path walk: it needs search permission.
    // SAFETY: `file` is open.
    let p = unsafe { shim::marufs_shim_permission(file, MAY_EXEC) };
    if p != 0 {
        return Err(Error::from_errno(p));
    }
    let names = copy_in(req.names, req.names_len as usize)?;
    if !abi::validate_packed(&names, req.count) {
        return Err(EINVAL);
    }
    let out_len = req.count as usize * LOOKUP_RES_SIZE;
    let mut out = KVVec::from_elem(0u8, out_len, GFP_KERNEL)?;
    // SAFETY: `inode` is live while the file is open.
    let (d, ino) = unsafe { (inode::data_of(inode)?, (*inode).i_ino) };
    <Fs as Ioctls>::batch_dir(d, ino)?;
    // One counter read vouches for every cached name of the batch (as
    // d_revalidate would for each): the answers hold as of this read.
    let tag = <Fs as Namespace>::changes(d, ino, None).unwrap_or(0) as usize;
    let mut n = 0u32;
    for (i, (name, slot)) in PackedNames::new(&names)
        .zip(out.chunks_exact_mut(LOOKUP_RES_SIZE))
        .enumerate()
    {
        let name = name.map_err(|()| EINVAL)?;
        let mut st = shim::Stat::default();
        let r = if !walkable(name) {
            0
        } else {
            // SAFETY: `file` is an open directory; `name` is `len` readable
            // bytes; `st` is writable.
            match unsafe { shim::marufs_shim_dcache_peek(file, name.as_ptr(), name.len() as u32, tag, &mut st) } {
                // SAFETY: as above.
                r if r == EAGAIN.to_errno() => unsafe {
                    shim::marufs_shim_dcache_lookup(file, name.as_ptr(), name.len() as u32, &mut st)
                },
                r => r,
            }
        };
        let res = match r {
            1 => {
                n += 1;
                LookupRes {
                    status: 0,
                    mode: st.mode,
                    size: st.size,
                    ino: st.ino,
                    uid: st.uid,
                    gid: st.gid,
                    mtime_ns: st.mtime_ns,
                }
            }
            0 => LookupRes {
                status: ENOENT.to_errno().unsigned_abs(),
                ..LookupRes::default()
            },
            e => LookupRes {
                status: e.unsigned_abs(),
                ..LookupRes::default()
            },
        };
        slot.copy_from_slice(&res.encode());
        if i % 64 == 63 {
            // Long batches let others in.
            crate::vfs::sys::cond_resched();
        }
    }
    // SAFETY: `out` holds `out_len` initialised bytes; the user address is
    // checked by copy_to_user.
    let left = unsafe { shim::marufs_shim_copy_to_user(req.results, out.as_ptr().cast(), out_len) };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(n)
}
