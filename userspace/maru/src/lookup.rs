//! Looking many key names up at once: one `MARUFS_IOC_LOOKUP` call per
//! [`LOOKUP_MAX`] names on marufs, `fstatat` per name elsewhere (or on a
//! module without the ioctl; detected on first use and remembered).

use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use marufs_core::abi::{pack_name, LookupReq, LookupRes, IOC_LOOKUP, LOOKUP_MAX, LOOKUP_RES_SIZE};
use marufs_core::layout::UNIT;

use crate::counters::AtomicCounters;
use crate::error::{Error, Result};
use crate::sys;

/// Whether to use marufs' batched lookup ioctl.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BatchedLookup {
    /// On marufs (`statfs` magic): try the ioctl once; if the module does not
    /// know it, fall back to `fstatat` for good. Elsewhere: `fstatat`.
    #[default]
    Auto,
    /// Try the ioctl on any filesystem (detects lack of support the same
    /// way; for tests).
    Always,
    /// Never: one `fstatat` per name.
    Never,
}

/// How batched lookups are being done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupMode {
    /// No batched lookup yet (or not decided).
    Unknown,
    /// One `MARUFS_IOC_LOOKUP` call per batch.
    Ioctl,
    /// `fstatat` per name.
    Fallback,
}

// 0: not decided yet.
const IOCTL: u8 = 1;
const FALLBACK: u8 = 2;

/// Per-filesystem memory of whether the ioctl works.
#[derive(Default)]
pub(crate) struct LookupState(AtomicU8);

impl LookupState {
    pub(crate) fn mode(&self) -> LookupMode {
        match self.0.load(Ordering::Acquire) {
            IOCTL => LookupMode::Ioctl,
            FALLBACK => LookupMode::Fallback,
            _ => LookupMode::Unknown,
        }
    }
}

/// Attributes of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's name (listings skip names that are not UTF-8).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Pool space it occupies (whole 2 MiB units on marufs).
    pub allocated: u64,
    /// Mode bits, file type included (`S_IFREG | 0644`...).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (publication time on marufs), ns since the epoch.
    pub mtime_ns: i64,
    /// Inode number: identifies this incarnation of the name.
    pub ino: u64,
}

impl KeyInfo {
    /// Permission bits only (`mode & 0o7777`).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }

    /// Modification time.
    pub fn mtime(&self) -> SystemTime {
        if self.mtime_ns >= 0 {
            UNIX_EPOCH + Duration::from_nanos(self.mtime_ns as u64)
        } else {
            UNIX_EPOCH - Duration::from_nanos(self.mtime_ns.unsigned_abs())
        }
    }

    pub(crate) fn from_stat(name: String, st: &libc::stat) -> Self {
        Found::from_stat(st).named(name)
    }
}

/// What a lookup found: a key's attributes, without its name (which the
/// caller has; `exists` and the batched lookups don't copy it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) size: u64,
    pub(crate) allocated: u64,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime_ns: i64,
    pub(crate) ino: u64,
}

impl Found {
    /// The [`KeyInfo`] of this key, named `name`.
    pub(crate) fn named(self, name: String) -> KeyInfo {
        KeyInfo {
            name,
            size: self.size,
            allocated: self.allocated,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: self.mtime_ns,
            ino: self.ino,
        }
    }

    fn from_stat(st: &libc::stat) -> Self {
        Self {
            size: st.st_size as u64,
            allocated: (st.st_blocks as u64).saturating_mul(512),
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime_ns: sys::mtime_ns(st),
            ino: st.st_ino,
        }
    }

    fn from_res(r: &LookupRes) -> Self {
        Self {
            size: r.size,
            // Keys are made of whole 2 MiB units.
            allocated: r.size.div_ceil(UNIT).saturating_mul(UNIT),
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            mtime_ns: i64::try_from(r.mtime_ns).unwrap_or(i64::MAX),
            ino: r.ino,
        }
    }
}

/// Whether the ioctl is worth trying now.
fn want_ioctl(policy: BatchedLookup, marufs: bool, state: &LookupState) -> bool {
    let st = state.0.load(Ordering::Acquire);
    match policy {
        BatchedLookup::Never => false,
        BatchedLookup::Auto => marufs && st != FALLBACK,
        BatchedLookup::Always => st != FALLBACK,
    }
}

/// Looks `names` (validated by the caller) up in directory `dir`: `None` for
/// an absent name (or one that is not a regular file).
pub(crate) fn lookup_many(
    dir: BorrowedFd<'_>,
    dir_name: &str,
    names: &[&str],
    policy: BatchedLookup,
    marufs: bool,
    state: &LookupState,
    counters: &AtomicCounters,
) -> Result<Vec<Option<Found>>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    if policy == BatchedLookup::Auto && !marufs {
        // Not marufs: never try its ioctl (the number may mean something
        // else to another filesystem).
        state.0.store(FALLBACK, Ordering::Release);
    } else if want_ioctl(policy, marufs, state) {
        match lookup_ioctl(dir, names, counters) {
            Ok(v) => {
                state.0.store(IOCTL, Ordering::Release);
                return Ok(v);
            }
            Err(e) if state.0.load(Ordering::Acquire) != IOCTL && sys::is_unsupported_ioctl(&e) => {
                state.0.store(FALLBACK, Ordering::Release);
            }
            Err(e) => return Err(Error::io("lookup in", dir_name, e)),
        }
    }
    counters.stat_lookups.fetch_add(names.len() as u64, Relaxed);
    names.iter().map(|n| stat_one(dir, n)).collect()
}

/// One name with `fstatat`.
pub(crate) fn stat_one(dir: BorrowedFd<'_>, name: &str) -> Result<Option<Found>> {
    let c = sys::cname(name).map_err(|e| Error::io("stat", name, e))?;
    match sys::fstatat(dir, &c) {
        Ok(st) if sys::is_reg(&st) => Ok(Some(Found::from_stat(&st))),
        Ok(_) => Ok(None),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(Error::io("stat", name, e)),
    }
}

fn lookup_ioctl(
    dir: BorrowedFd<'_>,
    names: &[&str],
    counters: &AtomicCounters,
) -> std::io::Result<Vec<Option<Found>>> {
    let einval = || std::io::Error::from_raw_os_error(libc::EINVAL);
    let mut out = Vec::with_capacity(names.len());
    for chunk in names.chunks(LOOKUP_MAX as usize) {
        let total: usize = chunk.iter().map(|n| 1 + n.len()).sum();
        let mut packed = vec![0u8; total];
        let mut at = 0;
        for n in chunk {
            at = pack_name(&mut packed, at, n.as_bytes()).ok_or_else(einval)?;
        }
        let mut res = vec![0u8; chunk.len() * LOOKUP_RES_SIZE];
        let req = LookupReq {
            names: packed.as_ptr() as u64,
            names_len: u32::try_from(total).map_err(|_| einval())?,
            count: chunk.len() as u32,
            results: res.as_mut_ptr() as u64,
            flags: 0,
        };
        let mut wire = req.encode();
        // SAFETY: `wire` is a LookupReq whose pointers are live buffers of
        // exactly the lengths it states (`packed`: names_len bytes; `res`:
        // count result records), all outliving the call.
        unsafe { sys::ioctl_ptr(dir, IOC_LOOKUP, wire.as_mut_ptr()) }?;
        counters.ioctl_lookups.fetch_add(1, Relaxed);
        for r in res.chunks_exact(LOOKUP_RES_SIZE) {
            let r = LookupRes::decode(r.try_into().map_err(|_| einval())?);
            out.push(match r.status as i32 {
                0 if r.mode & libc::S_IFMT == libc::S_IFREG => Some(Found::from_res(&r)),
                0 | libc::ENOENT | libc::EINVAL => None,
                e => return Err(std::io::Error::from_raw_os_error(e)),
            });
        }
    }
    Ok(out)
}
