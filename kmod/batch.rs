// SPDX-License-Identifier: GPL-2.0

//! The batched lookup of `marufs_core::abi` (`MARUFS_IOC_LOOKUP` on an
//! application directory: one call looks up many keys). The directory's
//! change counter is read once per call; names answered under that counter
//! value before (the mount's table of answers) cost no further lookup.
//! Every other name is looked up the way a path walk would: the dcache
//! entry when its tag is that counter value, else through the dcache
//! (whose entries `d_revalidate` checks) or the filesystem's lookup, which
//! caches its answer; those answers are then kept in the table.

use crate::fs::{Marufs, MountData};
use crate::marufs_core::{
    abi::{self, LookupReq, LookupRes, PackedNames, LOOKUP_REQ_SIZE, LOOKUP_RES_SIZE},
    names::{Answer, Attrs as NameAttrs},
};
use crate::vfs::ioctl::{Cached, DirFile};
use kernel::{
    alloc::{KVVec, KVec},
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

/// Whether a path walk could look `name` up at all (else: absent).
fn walkable(name: &[u8]) -> bool {
    !matches!(name, b"." | b"..") && !name.iter().any(|&c| c == b'/' || c == 0)
}

fn present(c: &Cached) -> Answer {
    Answer::Present(NameAttrs {
        ino: c.ino,
        size: c.size,
        mtime_ns: c.mtime_ns,
        mode: c.mode,
        uid: c.uid,
        gid: c.gid,
    })
}

/// Looks `name` up in `dir` as a path walk would: the dcache entry when its
/// tag is the directory's counter value `tag` (non-zero), else through the
/// dcache and the filesystem's lookup.
fn lookup_name(dir: &DirFile<Marufs>, name: &[u8], tag: u64) -> Result<Answer> {
    if tag != 0 {
        if let Some((t, c)) = dir.dcache_peek(name) {
            if t == tag {
                return Ok(c.as_ref().map_or(Answer::Absent, present));
            }
        }
    }
    Ok(dir.lookup(name)?.as_ref().map_or(Answer::Absent, present))
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

/// `MARUFS_IOC_LOOKUP` on directory `dir`; `arg` is the user address of the
/// request. Returns how many names are keys.
pub(crate) fn lookup(d: &MountData, dir: &DirFile<Marufs>, arg: usize) -> Result<u32> {
    let mut b = [0u8; LOOKUP_REQ_SIZE];
    UserSlice::new(UserPtr::from_addr(arg), b.len()).reader().read_slice(&mut b)?;
    let req = LookupReq::decode(&b);
    let max_names = u64::from(req.count) * 256;
    if req.flags & !abi::LOOKUP_FLAGS != 0 || req.count > abi::LOOKUP_MAX || u64::from(req.names_len) > max_names {
        return Err(EINVAL);
    }
    let exists_only = req.flags & abi::LOOKUP_EXISTS != 0;
    // A batched lookup is a path walk: it needs search permission.
    dir.may_search()?;
    let mut packed = KVVec::from_elem(0u8, req.names_len as usize, GFP_KERNEL)?;
    UserSlice::new(UserPtr::from_addr(req.names as usize), packed.len())
        .reader()
        .read_slice(&mut packed)?;
    if !abi::validate_packed(&packed, req.count) {
        return Err(EINVAL);
    }
    let ino = dir.inode().ino();
    Marufs::batch_dir(ino)?;
    // One counter read vouches for every answer of the batch (as
    // d_revalidate would for each name): the answers hold as of this read.
    let tag = Marufs::changes(d, ino, None).unwrap_or(0);
    let out_len = abi::lookup_results_len(req.count, req.flags);
    let mut out = KVVec::from_elem(0u8, out_len, GFP_KERNEL)?;
    let mut n = 0u32;
    // Answers kept from earlier batches under this counter value...
    let mut misses: KVec<(usize, &[u8])> = KVec::new();
    Marufs::with_answers(d, false, |t| -> Result {
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
            let a = lookup_name(dir, name, tag);
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
        Marufs::with_answers(d, true, |t| {
            if let Some(t) = t {
                for (name, a) in fresh.iter() {
                    t.put(ino, name, tag, *a);
                }
            }
        });
    }
    UserSlice::new(UserPtr::from_addr(req.results as usize), out_len)
        .writer()
        .write_slice(&out)?;
    Ok(n)
}
