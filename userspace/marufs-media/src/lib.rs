//! std implementations of [`marufs_core::Media`] and [`marufs_core::Env`]:
//! - [`MapMedia`]: an mmap'd regular file (pool image) or a `/dev/daxX.Y` device;
//! - [`MemMedia`]: a coherent in-memory pool (tests, tools' self tests).
//!
//! These are for tools that run on one host while the pool is offline (mkfs,
//! fsck) and for a userspace client. On one host the CPU caches are coherent, so
//! `flush`/`invalidate` only need ordering: a sequentially consistent fence. A
//! userspace client sharing a pool with other hosts would need `clwb`/`clflushopt`;
//! that is the kernel module's job (it owns the cross-host path).
#![warn(missing_docs)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use marufs_core::{Env, Media, MediaError};
use memmap2::{MmapMut, MmapOptions};

/// Errors opening a device or image.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Permission denied.
    #[error("{0}: permission denied")]
    Permission(PathBuf),
    /// Not found.
    #[error("{0}: no such file or device")]
    NotFound(PathBuf),
    /// A character device that is not a DAX device, or another file type.
    #[error("{0}: not a DAX character device (/dev/daxX.Y) or a regular file")]
    NotDaxOrFile(PathBuf),
    /// Size could not be determined.
    #[error("{0}: cannot determine the size: {1}")]
    Size(PathBuf, String),
    /// Any other I/O error.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

fn io_err(p: &Path, e: std::io::Error) -> OpenError {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => OpenError::Permission(p.to_path_buf()),
        std::io::ErrorKind::NotFound => OpenError::NotFound(p.to_path_buf()),
        _ => OpenError::Io(p.to_path_buf(), e),
    }
}

/// What kind of target was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (pool image).
    File,
    /// A device-DAX character device.
    Dax,
}

/// Size of a DAX character device from sysfs.
pub fn dax_size(path: &Path, rdev: u64) -> Result<u64, OpenError> {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    let sys = format!("/sys/dev/char/{major}:{minor}");
    let subsystem = std::fs::read_link(format!("{sys}/subsystem")).ok();
    let is_dax = subsystem
        .as_ref()
        .and_then(|s| s.file_name())
        .map(|n| n == "dax")
        .unwrap_or(false);
    if !is_dax {
        return Err(OpenError::NotDaxOrFile(path.to_path_buf()));
    }
    let txt = std::fs::read_to_string(format!("{sys}/size"))
        .map_err(|e| OpenError::Size(path.to_path_buf(), e.to_string()))?;
    txt.trim()
        .parse::<u64>()
        .map_err(|e| OpenError::Size(path.to_path_buf(), e.to_string()))
}

/// A pool mapped from a file or a DAX device.
pub struct MapMedia {
    map: Mutex<MmapMut>,
    size: u64,
    kind: Kind,
    /// Write back and drop cache lines for real on flush/invalidate.
    lines: bool,
    _file: File,
}

impl MapMedia {
    /// Opens and maps `path` read-write (DAX devices: 2 MiB-aligned mapping).
    pub fn open(path: &Path) -> Result<MapMedia, OpenError> {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
        let ft = md.file_type();
        let (kind, size) = if ft.is_file() {
            (Kind::File, md.len())
        } else if ft.is_char_device() {
            (Kind::Dax, dax_size(path, md.rdev())?)
        } else {
            return Err(OpenError::NotDaxOrFile(path.to_path_buf()));
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        if size == 0 {
            return Err(OpenError::Size(path.to_path_buf(), "size is 0".into()));
        }
        let len = usize::try_from(size)
            .map_err(|e| OpenError::Size(path.to_path_buf(), e.to_string()))?;
        let mut opts = MmapOptions::new();
        opts.len(len);
        if kind == Kind::Dax {
            // device-dax requires mappings aligned to its alignment (2 MiB here).
            opts.huge(Some(21));
        }
        // SAFETY: the file stays open for the life of the map; the pool is only
        // accessed through this object's copies (no references escape).
        let map = unsafe { opts.map_mut(&file) }.map_err(|e| io_err(path, e))?;
        Ok(MapMedia {
            map: Mutex::new(map),
            size,
            kind,
            lines: false,
            _file: file,
        })
    }

    /// File or DAX.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Writes dirty pages of a file image back to the file (msync).
    pub fn sync(&self) -> std::io::Result<()> {
        self.map
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .flush()
    }
}

fn range(off: u64, len: usize, size: u64) -> Result<std::ops::Range<usize>, MediaError> {
    let end = off.checked_add(len as u64).ok_or(MediaError::OutOfBounds)?;
    if end > size {
        return Err(MediaError::OutOfBounds);
    }
    Ok(off as usize..end as usize)
}

impl Media for MapMedia {
    fn size(&self) -> u64 {
        self.size
    }
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        let r = range(off, buf.len(), self.size)?;
        let m = self.map.lock().map_err(|_| MediaError::Io)?;
        buf.copy_from_slice(&m[r]);
        Ok(())
    }
    fn store(&self, off: u64, buf: &[u8]) -> Result<(), MediaError> {
        let r = range(off, buf.len(), self.size)?;
        let mut m = self.map.lock().map_err(|_| MediaError::Io)?;
        m[r].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self, off: u64, len: u64) -> Result<(), MediaError> {
        let r = range(off, len as usize, self.size)?;
        self.lines_out(r)
    }
    fn invalidate(&self, off: u64, len: u64) -> Result<(), MediaError> {
        let r = range(off, len as usize, self.size)?;
        self.lines_out(r)
    }
}

impl MapMedia {
    /// With `on`, `flush` and `invalidate` write back and drop the CPU cache
    /// lines of the range (`clflush`), as a host sharing the pool with other
    /// hosts over non-coherent memory must (the kernel module always does);
    /// without, they are only fences (one host, or coherent memory).
    pub fn with_cache_flush(mut self, on: bool) -> MapMedia {
        self.lines = on;
        self
    }

    fn lines_out(&self, r: std::ops::Range<usize>) -> Result<(), MediaError> {
        fence(Ordering::SeqCst);
        if !self.lines {
            return Ok(());
        }
        let m = self.map.lock().map_err(|_| MediaError::Io)?;
        let base = m.as_ptr() as usize;
        let mut a = (base + r.start) & !63;
        while a < base + r.end {
            clflush(a as *const u8);
            a += 64;
        }
        fence(Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
fn clflush(p: *const u8) {
    // SAFETY: `p` lies inside our live mapping (callers pass addresses of
    // its lines); clflush has no other requirement (SSE2 is baseline on
    // x86_64).
    unsafe { core::arch::x86_64::_mm_clflush(p) }
}

#[cfg(not(target_arch = "x86_64"))]
fn clflush(_p: *const u8) {}

/// A coherent in-memory pool.
pub struct MemMedia {
    data: Mutex<Vec<u8>>,
    size: u64,
}

impl MemMedia {
    /// A zeroed pool of `size` bytes.
    pub fn new(size: u64) -> MemMedia {
        MemMedia {
            data: Mutex::new(vec![0; size as usize]),
            size,
        }
    }
    /// A pool holding a copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> MemMedia {
        MemMedia {
            data: Mutex::new(bytes.to_vec()),
            size: bytes.len() as u64,
        }
    }
    /// A copy of the pool's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.data.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

impl Media for MemMedia {
    fn size(&self) -> u64 {
        self.size
    }
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        let r = range(off, buf.len(), self.size)?;
        buf.copy_from_slice(&self.data.lock().map_err(|_| MediaError::Io)?[r]);
        Ok(())
    }
    fn store(&self, off: u64, buf: &[u8]) -> Result<(), MediaError> {
        let r = range(off, buf.len(), self.size)?;
        self.data.lock().map_err(|_| MediaError::Io)?[r].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self, off: u64, len: u64) -> Result<(), MediaError> {
        range(off, len as usize, self.size).map(|_| ())
    }
    fn invalidate(&self, off: u64, len: u64) -> Result<(), MediaError> {
        range(off, len as usize, self.size).map(|_| ())
    }
}

/// Real clocks; `relax` yields the thread.
pub struct StdEnv {
    start: Instant,
}

impl Default for StdEnv {
    fn default() -> Self {
        StdEnv {
            start: Instant::now(),
        }
    }
}

impl Env for StdEnv {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64 + 1
    }
    fn wall_ns(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
    fn relax(&self) {
        std::thread::yield_now();
    }
    fn pause(&self, ns: u64) -> bool {
        std::thread::sleep(std::time::Duration::from_nanos(ns));
        true
    }
}

/// Formats a pool UUID as the tools print and accept it (8-4-4-4-12, lower
/// case hex).
pub fn uuid_str(u: &[u8; 16]) -> String {
    use std::fmt::Write as _;
    let mut h = String::with_capacity(32);
    for b in u {
        // Writing to a String cannot fail.
        let _ = write!(h, "{b:02x}");
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
