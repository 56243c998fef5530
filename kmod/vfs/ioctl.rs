// SPDX-License-Identifier: GPL-2.0

//! `file_operations.unlocked_ioctl` of directories: the batched interface of
//! `marufs_core::abi` (one call looks up many keys). The directory's change
//! counter is read once per call; names the filesystem answered under that
//! counter value before (its table of answers, [`Ioctls::with_answers`])
//! cost no further lookup. Every other name is looked up the way a path walk
//! would: through the dcache, whose entries the filesystem's `d_revalidate`
//! vouches for, else the filesystem's lookup, which caches the answer; those
//! answers are then kept in the table.

use super::{
    file::{self, Keys},
    fs_context::Fs,
    inode::{self, Namespace},
    shim,
};
use crate::marufs_core::{
    abi::{self, LookupReq, LookupRes, PackedNames, LOOKUP_REQ_SIZE, LOOKUP_RES_SIZE},
    names::{Answer, Attrs as NameAttrs, NameTable},
};
use kernel::{
    alloc::{KVVec, KVec},
    bindings,
    ffi::{c_int, c_long, c_uint, c_ulong},
    prelude::*,
};

const MAY_EXEC: c_int = 1;

/// Batched operations of a filesystem.
pub trait Ioctls: Namespace {
    /// Whether directory `dir` takes batched lookups (an error otherwise).
    fn batch_dir(d: &Self::Data, dir: u64) -> Result;
    /// Runs `f` on the filesystem's table of lookup answers (held locked
    /// meanwhile; `None` if it has none, and has none to make unless
    /// `make`).
    fn with_answers<R>(d: &Self::Data, make: bool, f: impl FnOnce(Option<&mut NameTable<'_>>) -> R) -> R;
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

/// Looks `name` up in the open directory `file` the way a path walk would:
/// the dcache entry when the directory's change counter (`tag`) vouches for
/// it, else the filesystem's lookup (which caches its answer in the dcache).
///
/// # Safety
///
/// `file` must be an open marufs directory.
unsafe fn lookup_name(file: *mut bindings::file, name: &[u8], tag: usize) -> Result<Answer> {
    let mut st = shim::Stat::default();
    // SAFETY: `file` is an open directory (contract); `name` is `len`
    // readable bytes; `st` is writable.
    let mut r = unsafe { shim::marufs_shim_dcache_peek(file, name.as_ptr(), name.len() as u32, tag, &mut st) };
    if r == EAGAIN.to_errno() {
        // SAFETY: as above.
        r = unsafe { shim::marufs_shim_dcache_lookup(file, name.as_ptr(), name.len() as u32, &mut st) };
    }
    match r {
        1 => Ok(Answer::Present(NameAttrs {
            ino: st.ino,
            size: st.size,
            mtime_ns: st.mtime_ns,
            mode: st.mode,
            uid: st.uid,
            gid: st.gid,
        })),
        0 => Ok(Answer::Absent),
        e => Err(Error::from_errno(e)),
    }
}

/// Writes the result of name `i` into `out`, counting present keys in `n`.
/// With `exists_only`, a failed lookup fails the call.
fn put_result(out: &mut [u8], i: usize, answer: &Result<Answer>, exists_only: bool, n: &mut u32) -> Result {
    if exists_only {
        if answer.as_ref().map_err(|e| *e)?.is_key() {
            mark_key(out, i, n)?;
        }
        return Ok(());
    }
    let res = match answer {
        Ok(Answer::Present(a)) => {
            *n += 1;
            LookupRes {
                status: 0,
                mode: a.mode,
                size: a.size,
                ino: a.ino,
                uid: a.uid,
                gid: a.gid,
                mtime_ns: a.mtime_ns,
            }
        }
        Ok(Answer::Absent) => LookupRes {
            status: ENOENT.to_errno().unsigned_abs(),
            ..LookupRes::default()
        },
        Err(e) => LookupRes {
            status: e.to_errno().unsigned_abs(),
            ..LookupRes::default()
        },
    };
    let at = i * LOOKUP_RES_SIZE;
    out.get_mut(at..at + LOOKUP_RES_SIZE).ok_or(EINVAL)?.copy_from_slice(&res.encode());
    Ok(())
}

/// Presence-only result: name `i` is a key.
fn mark_key(out: &mut [u8], i: usize, n: &mut u32) -> Result {
    *out.get_mut(i).ok_or(EINVAL)? = 1;
    *n += 1;
    Ok(())
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
    if req.flags & !abi::LOOKUP_FLAGS != 0 || req.count > abi::LOOKUP_MAX || u64::from(req.names_len) > max_names {
        return Err(EINVAL);
    }
    let exists_only = req.flags & abi::LOOKUP_EXISTS != 0;
    // SAFETY: `file` is open (function contract).
    let inode = unsafe { shim::marufs_shim_file_inode(file) };
    // A batched lookup is a path walk: it needs search permission.
    // SAFETY: `file` is open.
    let p = unsafe { shim::marufs_shim_permission(file, MAY_EXEC) };
    if p != 0 {
        return Err(Error::from_errno(p));
    }
    let packed = copy_in(req.names, req.names_len as usize)?;
    if !abi::validate_packed(&packed, req.count) {
        return Err(EINVAL);
    }
    // SAFETY: `inode` is live while the file is open.
    let (d, ino) = unsafe { (inode::data_of(inode)?, (*inode).i_ino) };
    <Fs as Ioctls>::batch_dir(d, ino)?;
    // One counter read vouches for every answer of the batch (as
    // d_revalidate would for each name): the answers hold as of this read.
    let tag = <Fs as Namespace>::changes(d, ino, None).unwrap_or(0);
    let out_len = abi::lookup_results_len(req.count, req.flags);
    let mut out = KVVec::from_elem(0u8, out_len, GFP_KERNEL)?;
    let mut n = 0u32;
    // Answers kept from earlier batches under this counter value...
    let mut misses: KVec<(usize, &[u8])> = KVec::new();
    <Fs as Ioctls>::with_answers(d, false, |t| -> Result {
        for (i, name) in PackedNames::new(&packed).enumerate() {
            let name = name.map_err(|()| EINVAL)?;
            match t.as_ref().and_then(|t| t.kept(ino, name, tag)) {
                Some(k) if exists_only => {
                    if k.is_key() {
                        mark_key(&mut out, i, &mut n)?;
                    }
                }
                Some(k) => put_result(&mut out, i, &Ok(k.answer()), false, &mut n)?,
                None => misses.push((i, name), GFP_KERNEL)?,
            }
        }
        Ok(())
    })?;
    // ... then the others looked up, and kept for the next batch.
    let mut fresh: KVec<(&[u8], Answer)> = KVec::new();
    for (k, &(i, name)) in misses.iter().enumerate() {
        if k % 64 == 63 {
            // Long batches let others in.
            crate::vfs::sys::cond_resched();
        }
        let a = if walkable(name) {
            // SAFETY: `file` is an open marufs directory (contract).
            let a = unsafe { lookup_name(file, name, tag as usize) };
            if let Ok(x) = &a {
                fresh.push((name, *x), GFP_KERNEL)?;
            }
            a
        } else {
            Ok(Answer::Absent)
        };
        put_result(&mut out, i, &a, exists_only, &mut n)?;
    }
    if tag != 0 && !fresh.is_empty() {
        <Fs as Ioctls>::with_answers(d, true, |t| {
            if let Some(t) = t {
                for (name, a) in fresh.iter() {
                    t.put(ino, name, tag, *a);
                }
            }
        });
    }
    // SAFETY: `out` holds `out_len` initialised bytes; the user address is
    // checked by copy_to_user.
    let left = unsafe { shim::marufs_shim_copy_to_user(req.results, out.as_ptr().cast(), out_len) };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(n)
}
