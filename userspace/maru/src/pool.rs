//! A mounted pool: its root directory, space and application directories.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::counters::AtomicCounters;
use crate::error::{Error, Result};
use crate::lookup::{self, BatchedLookup, KeyInfo, LookupMode, LookupState};
use crate::names::validate_name;
use crate::store::{Store, StoreOptions};
use crate::sys;

pub(crate) struct PoolInner {
    pub(crate) root: OwnedFd,
    pub(crate) path: PathBuf,
    pub(crate) marufs: bool,
    pub(crate) lookup: LookupState,
    pub(crate) counters: AtomicCounters,
}

/// A mounted pool (or, for tests and development, any directory laid out
/// the same way: application directories holding key files).
///
/// Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Pool {
    pub(crate) inner: Arc<PoolInner>,
}

/// Space of the pool, from `statfs` (the same numbers as `df`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    /// Bytes in the pool's data area.
    pub total: u64,
    /// Bytes allocated to keys (`total - free`).
    pub used: u64,
    /// Bytes free.
    pub free: u64,
    /// Bytes free for unprivileged users.
    pub available: u64,
    /// Allocation unit (2 MiB on marufs).
    pub block_size: u64,
    /// Key entries in the pool (`f_files`).
    pub entries_total: u64,
    /// Free key entries (`f_ffree`).
    pub entries_free: u64,
    /// Whether the filesystem is marufs.
    pub marufs: bool,
}

/// An application directory and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppUsage {
    /// Directory name.
    pub name: String,
    /// Inode number.
    pub ino: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Mode bits (file type included).
    pub mode: u32,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Number of keys: `None` if unknown (directory not readable, and not
    /// on marufs, whose directory size is its key count).
    pub keys: Option<u64>,
    /// Total size of its keys (`None`: directory not readable, or not
    /// scanned).
    pub bytes: Option<u64>,
    /// Pool space its keys occupy (`None` as for `bytes`).
    pub allocated: Option<u64>,
    /// The eviction policy its stores record (a quota'd [`Store`](crate::Store)
    /// does), if any and readable.
    pub policy: Option<crate::EvictionPolicy>,
}

impl Pool {
    /// Opens the pool mounted at `mount` (its root directory).
    pub fn open(mount: impl AsRef<Path>) -> Result<Pool> {
        let path = mount.as_ref().to_path_buf();
        let root = sys::open_path(&path, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| Error::io("open", path.display().to_string(), e))?;
        let fs = sys::fstatfs(root.as_fd())
            .map_err(|e| Error::io("statfs", path.display().to_string(), e))?;
        Ok(Pool {
            inner: Arc::new(PoolInner {
                root,
                path,
                marufs: fs.f_type as i64 == sys::MARUFS_MAGIC,
                lookup: LookupState::default(),
                counters: AtomicCounters::default(),
            }),
        })
    }

    /// The mount point it was opened at.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the filesystem is marufs (rather than a stand-in directory).
    pub fn is_marufs(&self) -> bool {
        self.inner.marufs
    }

    /// How batched lookups are done on this pool (decided on first use).
    pub fn lookup_mode(&self) -> LookupMode {
        self.inner.lookup.mode()
    }

    /// Opens application `app` with default options (created if missing
    /// and permitted).
    pub fn store(&self, app: &str) -> Result<Store> {
        Store::with_pool(self.clone(), app, &StoreOptions::default())
    }

    /// Opens application `app` with `opts`.
    pub fn store_with(&self, app: &str, opts: &StoreOptions) -> Result<Store> {
        Store::with_pool(self.clone(), app, opts)
    }

    /// Pool space (`statfs`).
    pub fn usage(&self) -> Result<PoolUsage> {
        let s = sys::fstatfs(self.inner.root.as_fd())
            .map_err(|e| Error::io("statfs", self.inner.path.display().to_string(), e))?;
        let bs = if s.f_frsize > 0 {
            s.f_frsize as u64
        } else {
            s.f_bsize as u64
        };
        let total = (s.f_blocks as u64).saturating_mul(bs);
        let free = (s.f_bfree as u64).saturating_mul(bs);
        Ok(PoolUsage {
            total,
            used: total.saturating_sub(free),
            free,
            available: (s.f_bavail as u64).saturating_mul(bs),
            block_size: bs,
            entries_total: s.f_files as u64,
            entries_free: s.f_ffree as u64,
            marufs: self.inner.marufs,
        })
    }

    /// Creates application directory `app` with `mode` (the umask applies);
    /// `Ok(false)` if it exists already.
    pub fn create_app(&self, app: &str, mode: u32) -> Result<bool> {
        validate_name(app)?;
        let c = sys::cname(app).map_err(|e| Error::io("mkdir", app, e))?;
        match sys::mkdirat(self.inner.root.as_fd(), &c, mode as libc::mode_t) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(Error::io("mkdir", app, e)),
        }
    }

    /// Removes the application directory `app`, which must hold no keys
    /// (the library's own entries, such as an eviction policy marker, go
    /// with it); `Ok(false)` if it does not exist.
    pub fn remove_app(&self, app: &str) -> Result<bool> {
        validate_name(app)?;
        let c = sys::cname(app).map_err(|e| Error::io("rmdir", app, e))?;
        let root = self.inner.root.as_fd();
        let rmdir = || sys::unlinkat(root, &c, libc::AT_REMOVEDIR);
        let r = match rmdir() {
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                // Only the library's entries left? Then they go, and the
                // directory after them (a key stored meanwhile keeps it).
                let dir = self.open_app(app)?;
                let ents = sys::read_dir(dir.as_fd()).map_err(|e| Error::io("read", app, e))?;
                let ours = |n: &[u8]| n.starts_with(crate::evict::RESERVED_PREFIX.as_bytes());
                if !ents.iter().all(|e| ours(&e.name)) {
                    return Err(Error::io("rmdir", app, e));
                }
                let mut gone = Vec::new();
                for e in &ents {
                    if let Ok(n) = std::ffi::CString::new(e.name.clone()) {
                        match sys::unlinkat(dir.as_fd(), &n, 0) {
                            Ok(()) => gone.push(n),
                            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                            Err(e) => return Err(Error::io("unlink", app, e)),
                        }
                    }
                }
                let r = rmdir();
                if r.is_err() {
                    // A key was stored meanwhile: the application lives on,
                    // with its entries (best effort).
                    for n in &gone {
                        let fl = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW;
                        let _ = sys::openat(dir.as_fd(), n, fl, 0o444);
                    }
                }
                r
            }
            r => r,
        };
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(Error::io("rmdir", app, e)),
        }
    }

    /// The application directories, sorted by name, with their attributes
    /// (cheap: no key is looked at; `keys` is known on marufs only, `bytes`
    /// is `None`). Entries of the root that are not directories are skipped.
    pub fn apps(&self) -> Result<Vec<AppUsage>> {
        let root = self.inner.root.as_fd();
        let ents = sys::read_dir(root)
            .map_err(|e| Error::io("read", self.inner.path.display().to_string(), e))?;
        let mut out = Vec::new();
        for e in ents {
            if e.kind != libc::DT_DIR && e.kind != libc::DT_UNKNOWN {
                continue;
            }
            let name = String::from_utf8_lossy(&e.name).into_owned();
            let c = match std::ffi::CString::new(e.name) {
                Ok(c) => c,
                Err(_) => continue,
            };
            let st = match sys::fstatat(root, &c) {
                Ok(st) => st,
                // Removed meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(Error::io("stat", name, e)),
            };
            if !sys::is_dir(&st) {
                continue;
            }
            out.push(AppUsage {
                name,
                ino: st.st_ino,
                uid: st.st_uid,
                gid: st.st_gid,
                mode: st.st_mode,
                mtime_ns: sys::mtime_ns(&st),
                // marufs reports a directory's key count as its size.
                keys: self.inner.marufs.then_some(st.st_size as u64),
                bytes: None,
                allocated: None,
                policy: None,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The keys of application `app`, sorted by name (readdir, then one
    /// batched lookup).
    pub fn list(&self, app: &str) -> Result<Vec<KeyInfo>> {
        let dir = self.open_app(app)?;
        self.list_fd(dir.as_fd(), app, BatchedLookup::Auto, &self.inner.counters)
    }

    /// Every application with its key count and bytes (scans every
    /// readable directory). Unreadable directories keep `bytes: None`.
    pub fn usage_by_app(&self) -> Result<Vec<AppUsage>> {
        let mut apps = self.apps()?;
        for a in &mut apps {
            match self.list(&a.name) {
                Ok(keys) => fill_usage(a, &keys),
                Err(e) if e.is_permission_denied() || e.errno() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            a.policy = self.app_policy(&a.name).unwrap_or(None);
        }
        Ok(apps)
    }

    /// The eviction policy recorded in application `app` (the newest, if
    /// stores with different ones left several), or `None`.
    pub fn app_policy(&self, app: &str) -> Result<Option<crate::EvictionPolicy>> {
        let dir = self.open_app(app)?;
        Ok(policy_markers(dir.as_fd(), app)?
            .into_iter()
            .max_by_key(|m| m.1)
            .map(|m| m.0))
    }

    pub(crate) fn open_app(&self, app: &str) -> Result<OwnedFd> {
        validate_name(app)?;
        let c = sys::cname(app).map_err(|e| Error::io("open", app, e))?;
        match sys::openat(
            self.inner.root.as_fd(),
            &c,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(Error::NoApp(app.to_string())),
            Err(e) => Err(Error::io("open", app, e)),
        }
    }

    pub(crate) fn list_fd(
        &self,
        dir: std::os::fd::BorrowedFd<'_>,
        app: &str,
        policy: BatchedLookup,
        counters: &AtomicCounters,
    ) -> Result<Vec<KeyInfo>> {
        let ents = sys::read_dir(dir).map_err(|e| Error::io("read", app, e))?;
        let mut names: Vec<String> = ents
            .into_iter()
            .filter(|e| e.kind == libc::DT_REG || e.kind == libc::DT_UNKNOWN)
            .filter_map(|e| String::from_utf8(e.name).ok())
            .filter(|n| !n.starts_with(crate::evict::RESERVED_PREFIX))
            .collect();
        names.sort();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let found = self.batch(dir, app, policy, counters).lookup(&refs)?;
        Ok(found
            .into_iter()
            .zip(names)
            .filter_map(|(f, n)| f.map(|f| f.named(n)))
            .collect())
    }

    /// Batched lookups in the open directory `dir` (application `app`).
    pub(crate) fn batch<'a>(
        &'a self,
        dir: std::os::fd::BorrowedFd<'a>,
        app: &'a str,
        policy: BatchedLookup,
        counters: &'a AtomicCounters,
    ) -> lookup::How<'a> {
        lookup::How {
            dir,
            dir_name: app,
            policy,
            marufs: self.inner.marufs,
            state: &self.inner.lookup,
            counters,
        }
    }
}

pub(crate) fn fill_usage(a: &mut AppUsage, keys: &[KeyInfo]) {
    a.keys = Some(keys.len() as u64);
    a.bytes = Some(keys.iter().map(|k| k.size).sum());
    a.allocated = Some(keys.iter().map(|k| k.allocated).sum());
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("path", &self.inner.path)
            .field("marufs", &self.inner.marufs)
            .finish()
    }
}

/// The policy markers of an application directory: each policy, its entry's
/// mtime and name.
pub(crate) fn policy_markers(
    dir: std::os::fd::BorrowedFd<'_>,
    app: &str,
) -> Result<Vec<(crate::EvictionPolicy, i64, String)>> {
    let ents = sys::read_dir(dir).map_err(|e| Error::io("read", app, e))?;
    let mut out = Vec::new();
    for e in ents {
        let Ok(name) = String::from_utf8(e.name) else {
            continue;
        };
        let Some(p) = crate::EvictionPolicy::from_marker_name(&name) else {
            continue;
        };
        let Ok(c) = sys::cname(&name) else { continue };
        if let Ok(st) = sys::fstatat(dir, &c) {
            out.push((p, sys::mtime_ns(&st), name));
        }
    }
    Ok(out)
}
