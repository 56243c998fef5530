//! Thin safe wrappers over the system calls the library needs. Every path
//! operation is relative to a directory descriptor (`*at` calls), so a store
//! keeps working on the directory it opened even if the mount point's path
//! changes, and no path is resolved twice.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `statfs` magic of a mounted marufs (`'MARU'`, kmod/fs.rs).
pub const MARUFS_MAGIC: i64 = 0x4d41_5255;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A name as a C string. Names are validated (no NUL) before they get here;
/// a NUL still yields `EINVAL` rather than a panic.
pub fn cname(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `openat(2)`; `O_CLOEXEC` is always added.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `name` is a valid C string and `dir` a live descriptor for
        // the duration of the call.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                libc::c_uint::from(mode),
            )
        };
        match cvt(fd) {
            // SAFETY: a fresh descriptor returned by openat is ours alone.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `open(2)` of an absolute or relative path.
pub fn open_path(path: &std::path::Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid C string; the returned descriptor is checked.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: a fresh descriptor is ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstat(2)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is a writable stat buffer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded and filled it (it was zeroed anyway).
    Ok(unsafe { st.assume_init() })
}

/// `fstatat(2)` without following a final symlink.
pub fn fstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: valid C string and writable stat buffer.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat succeeded (and the buffer was zeroed).
    Ok(unsafe { st.assume_init() })
}

/// `mkdirat(2)`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid C string.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// `unlinkat(2)`; `flags` may be `AT_REMOVEDIR`.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid C string.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// `linkat(AT_FDCWD, from, dir, name, AT_SYMLINK_FOLLOW)`.
pub fn linkat_follow(from: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings and a live directory descriptor.
    cvt(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(drop)
}

/// Names the unnamed file open as `fd` (an `O_TMPFILE`) `name` in `dir`.
/// `linkat(AT_EMPTY_PATH)` needs CAP_DAC_READ_SEARCH; the `/proc` link of the
/// descriptor is how an unprivileged process names its `O_TMPFILE`.
pub fn link_unnamed(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let from = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    linkat_follow(&from, dir, name)
}

/// `ftruncate(2)`.
pub fn ftruncate(fd: BorrowedFd<'_>, len: i64) -> io::Result<()> {
    loop {
        // SAFETY: plain system call on a live descriptor.
        match cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(drop),
        }
    }
}

/// `fstatfs(2)`.
pub fn fstatfs(fd: BorrowedFd<'_>) -> io::Result<libc::statfs> {
    let mut st = MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: writable statfs buffer.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatfs succeeded (and the buffer was zeroed).
    Ok(unsafe { st.assume_init() })
}

/// The soft `RLIMIT_FSIZE` (`None`: unlimited). A size above it raises
/// `SIGXFSZ` on `ftruncate`.
pub fn fsize_limit() -> Option<u64> {
    let mut r = MaybeUninit::<libc::rlimit>::zeroed();
    // SAFETY: writable rlimit buffer.
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, r.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: getrlimit succeeded.
    let r = unsafe { r.assume_init() };
    (r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur)
}

/// One directory entry.
pub struct DirEnt {
    /// The name (bytes; not necessarily UTF-8).
    pub name: Vec<u8>,
    /// `d_type` (`DT_UNKNOWN` when the filesystem does not say).
    pub kind: u8,
}

/// Reads every entry of directory `dir` except `.` and `..`. The directory is
/// reopened (`openat(dir, ".")`) so that `dir`'s own offset is untouched and
/// concurrent readers do not interfere.
pub fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<DirEnt>> {
    let fd = openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    // SAFETY: fdopendir takes ownership of the descriptor on success.
    let d = unsafe { libc::fdopendir(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        return Err(e);
    }
    struct Closer(*mut libc::DIR);
    impl Drop for Closer {
        fn drop(&mut self) {
            // SAFETY: the DIR stream is ours and closed once.
            unsafe { libc::closedir(self.0) };
        }
    }
    let d = Closer(d);
    let mut out = Vec::new();
    loop {
        // readdir reports errors through errno only: clear it first.
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: a valid open DIR stream, used by this thread only.
        let e = unsafe { libc::readdir(d.0) };
        if e.is_null() {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(0) {
                break;
            }
            return Err(err);
        }
        // SAFETY: readdir returned a valid entry that lives until the next
        // call on this stream; d_name is NUL-terminated.
        let (name, kind) = unsafe {
            (
                CStr::from_ptr((*e).d_name.as_ptr()).to_bytes().to_vec(),
                (*e).d_type,
            )
        };
        if name == b"." || name == b".." {
            continue;
        }
        out.push(DirEnt { name, kind });
    }
    Ok(out)
}

/// Whether an `ioctl` error means "this filesystem does not know the request".
pub fn is_unsupported_ioctl(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTTY) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
    )
}

/// `ioctl(fd, req, arg)` with a pointer argument.
///
/// # Safety
///
/// `arg` must be what the request `req` expects on `fd` (for marufs'
/// `IOC_LOOKUP`: a request whose pointers are valid for the lengths it gives).
pub unsafe fn ioctl_ptr(fd: BorrowedFd<'_>, req: u32, arg: *mut u8) -> io::Result<libc::c_int> {
    loop {
        // SAFETY: caller contract.
        match cvt(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// marufs' `IOC_DISCARD` on the creating descriptor of an unpublished key.
pub fn ioctl_discard(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: IOC_DISCARD takes no argument; the null pointer is ignored.
    unsafe { ioctl_ptr(fd, marufs_core::abi::IOC_DISCARD, std::ptr::null_mut()) }.map(|_| ())
}

/// Shared mapping of `len` bytes of `fd` from offset 0.
pub fn mmap_shared(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<*mut u8> {
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    // SAFETY: a fresh mapping at an address the kernel chooses; the caller
    // owns it and unmaps it exactly once.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

/// Replaces the pages at `ptr..ptr+len` (a mapping of ours) by `fd`'s first
/// `len` bytes, read-only (`MAP_FIXED`: atomically, the address stays
/// mapped throughout), or, with `fd` `None`, by an inaccessible placeholder
/// (`PROT_NONE`, no memory): a stale pointer into it faults instead of
/// reading whatever the address would be reused for.
///
/// # Safety
///
/// `ptr`/`len` must be exactly one live mapping of ours, and nothing may
/// write through it any more (reads see the new pages).
pub unsafe fn remap_fixed(ptr: *mut u8, len: usize, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let (prot, flags, raw) = match fd {
        Some(fd) => (libc::PROT_READ, libc::MAP_SHARED, fd.as_raw_fd()),
        None => (
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
        ),
    };
    // SAFETY: caller contract: the range is ours, so MAP_FIXED replaces
    // nothing anybody else owns.
    let p = unsafe { libc::mmap(ptr.cast(), len, prot, flags | libc::MAP_FIXED, raw, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes a mapping of ours read-only and inherited by `fork` again (an
/// allocation's, once its key is published: it is immutable, and a child
/// may read it like any other published key's mapping).
pub fn seal_published(ptr: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: advisory and protection changes on our own mapping; no write
    // through it may follow (the key is published), failures are harmless
    // (marufs refuses writes to a published key by itself).
    unsafe {
        libc::mprotect(ptr.cast(), len, libc::PROT_READ);
        libc::madvise(ptr.cast(), len, libc::MADV_DOFORK);
    }
}

/// Unmaps a mapping made by [`mmap_shared`].
///
/// # Safety
///
/// `ptr`/`len` must be exactly one live mapping of ours, and nothing may use it
/// afterwards.
pub unsafe fn munmap(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract.
    unsafe { libc::munmap(ptr.cast(), len) };
}

/// `madvise(MADV_DONTFORK)`: a child created by `fork` does not inherit the
/// mapping (a writable mapping of an unpublished key inherited by a child
/// would delay its publication until the child exits).
pub fn dont_fork(ptr: *mut u8, len: usize) {
    // SAFETY: advisory call on our own mapping; failure is harmless.
    unsafe { libc::madvise(ptr.cast(), len, libc::MADV_DONTFORK) };
}

/// Whether `st` describes a regular file.
pub fn is_reg(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

/// Whether `st` describes a directory.
pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Modification time of `st` in nanoseconds since the epoch.
pub fn mtime_ns(st: &libc::stat) -> i64 {
    // 64-bit Linux: time_t and its nanoseconds are i64.
    st.st_mtime
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_mtime_nsec)
}
