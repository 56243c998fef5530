//! Looking many key names up at once: one `MARUFS_IOC_LOOKUP` call per
//! [`LOOKUP_MAX`] names on marufs, `fstatat` per name elsewhere (or on a
//! module without the ioctl; detected on first use and remembered).

use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use marufs_core::abi::{
    lookup_results_len, LookupReq, LookupRes, IOC_LOOKUP, LOOKUP_EXISTS, LOOKUP_MAX,
    LOOKUP_RES_SIZE,
};
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

impl LookupMode {
    /// A short lower-case name for messages and `--json` (`unknown`, `ioctl`,
    /// `fallback`).
    pub fn name(&self) -> &'static str {
        match self {
            LookupMode::Unknown => "unknown",
            LookupMode::Ioctl => "ioctl",
            LookupMode::Fallback => "fallback",
        }
    }
}

impl std::fmt::Display for LookupMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// 0: not decided yet.
const IOCTL: u8 = 1;
const FALLBACK: u8 = 2;

/// Per-filesystem memory of whether the ioctl works (and whether the module
/// predates [`LOOKUP_EXISTS`]).
#[derive(Default)]
pub(crate) struct LookupState(AtomicU8, AtomicBool);

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

/// Batched lookups in one directory, the way its filesystem takes them.
pub(crate) struct How<'a> {
    pub(crate) dir: BorrowedFd<'a>,
    pub(crate) dir_name: &'a str,
    pub(crate) policy: BatchedLookup,
    pub(crate) marufs: bool,
    pub(crate) state: &'a LookupState,
    pub(crate) counters: &'a AtomicCounters,
}

impl How<'_> {
    /// Looks `names` (validated by the caller) up: `None` for an absent
    /// name (or one that is not a regular file).
    pub(crate) fn lookup(&self, names: &[&str]) -> Result<Vec<Option<Found>>> {
        self.run(
            names,
            |names| lookup_ioctl(self.dir, names, self.counters),
            stat_one,
        )
    }

    /// Which of `names` (validated by the caller) are keys: like
    /// [`lookup`](Self::lookup), but the kernel copies no attributes
    /// ([`LOOKUP_EXISTS`]; a module without that flag is asked for
    /// attributes).
    pub(crate) fn exists(&self, names: &[&str]) -> Result<Vec<bool>> {
        let (dir, counters, older) = (self.dir, self.counters, &self.state.1);
        self.run(
            names,
            |names| {
                if !older.load(Ordering::Acquire) {
                    match exists_ioctl(dir, names, counters) {
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                            // A module older than the flag (names were validated).
                            older.store(true, Ordering::Release);
                        }
                        r => return r,
                    }
                }
                Ok(lookup_ioctl(dir, names, counters)?
                    .into_iter()
                    .map(|f| f.is_some())
                    .collect())
            },
            |dir, n| Ok(stat_one(dir, n)?.is_some()),
        )
    }

    /// `ioctl` for the whole batch when the filesystem takes it, else `one`
    /// per name.
    fn run<T>(
        &self,
        names: &[&str],
        ioctl: impl FnOnce(&[&str]) -> std::io::Result<Vec<T>>,
        one: impl Fn(BorrowedFd<'_>, &str) -> Result<T>,
    ) -> Result<Vec<T>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let state = &self.state.0;
        if self.policy == BatchedLookup::Auto && !self.marufs {
            // Not marufs: never try its ioctl (the number may mean something
            // else to another filesystem).
            state.store(FALLBACK, Ordering::Release);
        } else if want_ioctl(self.policy, self.marufs, self.state) {
            match ioctl(names) {
                Ok(v) => {
                    state.store(IOCTL, Ordering::Release);
                    return Ok(v);
                }
                Err(e)
                    if state.load(Ordering::Acquire) != IOCTL && sys::is_unsupported_ioctl(&e) =>
                {
                    state.store(FALLBACK, Ordering::Release);
                }
                Err(e) => return Err(Error::io("lookup in", self.dir_name, e)),
            }
        }
        self.counters
            .stat_lookups
            .fetch_add(names.len() as u64, Relaxed);
        names.iter().map(|n| one(self.dir, n)).collect()
    }
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

/// One `MARUFS_IOC_LOOKUP` per [`LOOKUP_MAX`] names with `flags`; `each`
/// takes every call's result buffer.
fn ioctl_chunks(
    dir: BorrowedFd<'_>,
    names: &[&str],
    flags: u64,
    counters: &AtomicCounters,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let einval = || std::io::Error::from_raw_os_error(libc::EINVAL);
    let mut packed = Vec::new();
    let mut res = Vec::new();
    for chunk in names.chunks(LOOKUP_MAX as usize) {
        // Packed in one pass over the names (callers validated them).
        packed.clear();
        for n in chunk {
            let len = u8::try_from(n.len()).map_err(|_| einval())?;
            if len == 0 {
                return Err(einval());
            }
            packed.push(len);
            packed.extend_from_slice(n.as_bytes());
        }
        let total = packed.len();
        res.clear();
        res.resize(lookup_results_len(chunk.len() as u32, flags), 0u8);
        let req = LookupReq {
            names: packed.as_ptr() as u64,
            names_len: u32::try_from(total).map_err(|_| einval())?,
            count: chunk.len() as u32,
            results: res.as_mut_ptr() as u64,
            flags,
        };
        let mut wire = req.encode();
        // SAFETY: `wire` points at `packed` and `res`, live buffers of the
        // lengths it states (lookup_results_len), outliving the call.
        unsafe { sys::ioctl_ptr(dir, IOC_LOOKUP, wire.as_mut_ptr()) }?;
        counters.ioctl_lookups.fetch_add(1, Relaxed);
        each(&res)?;
    }
    Ok(())
}

fn lookup_ioctl(
    dir: BorrowedFd<'_>,
    names: &[&str],
    counters: &AtomicCounters,
) -> std::io::Result<Vec<Option<Found>>> {
    let mut out = Vec::with_capacity(names.len());
    ioctl_chunks(dir, names, 0, counters, |res| {
        for r in res.chunks_exact(LOOKUP_RES_SIZE) {
            let r = LookupRes::decode(
                r.try_into()
                    .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?,
            );
            out.push(match r.status as i32 {
                0 if r.mode & libc::S_IFMT == libc::S_IFREG => Some(Found::from_res(&r)),
                0 | libc::ENOENT | libc::EINVAL => None,
                e => return Err(std::io::Error::from_raw_os_error(e)),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

fn exists_ioctl(
    dir: BorrowedFd<'_>,
    names: &[&str],
    counters: &AtomicCounters,
) -> std::io::Result<Vec<bool>> {
    let mut out = Vec::with_capacity(names.len());
    ioctl_chunks(dir, names, LOOKUP_EXISTS, counters, |res| {
        out.extend(res.iter().map(|&b| b == 1));
        Ok(())
    })?;
    Ok(out)
}
