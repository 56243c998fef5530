//! `O_TMPFILE` + `linkat` publishing and marufs' ioctls (batched lookup,
//! discard), through the real syscalls.

use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::io::Error as IoError;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(p: &Path) -> Result<CString> {
    Ok(CString::new(p.as_os_str().as_bytes())?)
}

fn errno_of(r: i64) -> Option<i32> {
    (r < 0).then(|| IoError::last_os_error().raw_os_error().unwrap_or(0))
}

/// An unnamed key of `len` bytes in `dir`, mapped writable and filled.
struct Tmp {
    fd: i32,
    map: *mut u8,
    len: usize,
}

impl Tmp {
    fn new(dir: &Path, len: usize, seed: u64) -> Result<Tmp> {
        let d = cstr(dir)?;
        // SAFETY: plain syscalls on our own descriptors and mapping.
        unsafe {
            let fd = libc::open(d.as_ptr(), libc::O_TMPFILE | libc::O_RDWR, 0o644);
            if fd < 0 {
                bail!(
                    "open({}, O_TMPFILE): {}",
                    dir.display(),
                    IoError::last_os_error()
                );
            }
            if libc::ftruncate(fd, len as i64) != 0 {
                bail!("ftruncate: {}", IoError::last_os_error());
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            if p == libc::MAP_FAILED {
                bail!("mmap: {}", IoError::last_os_error());
            }
            let s = std::slice::from_raw_parts_mut(p.cast::<u8>(), len);
            crate::fill(s, seed);
            Ok(Tmp {
                fd,
                map: p.cast(),
                len,
            })
        }
    }

    /// `linkat` through /proc/self/fd (what an unprivileged process does).
    fn link(&self, to: &Path) -> Result<(), i32> {
        let from = CString::new(format!("/proc/self/fd/{}", self.fd)).unwrap_or_default();
        let to = cstr(to).map_err(|_| libc::EINVAL)?;
        // SAFETY: plain syscall.
        let r = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        match errno_of(r.into()) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: our live mapping of `len` bytes.
        unsafe { std::slice::from_raw_parts(self.map, self.len) }
    }

    /// Writes one byte through the mapping in a forked child; returns the
    /// signal that ended it (None: the write went through).
    fn child_write(&self, at: usize) -> Result<Option<i32>> {
        // SAFETY: the child only stores through the inherited mapping and
        // exits; the parent waits for it.
        unsafe {
            let pid = libc::fork();
            if pid < 0 {
                bail!("fork: {}", IoError::last_os_error());
            }
            if pid == 0 {
                std::ptr::write_volatile(self.map.add(at), 0xEE);
                libc::_exit(0);
            }
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            Ok(libc::WIFSIGNALED(st).then(|| libc::WTERMSIG(st)))
        }
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        // SAFETY: our mapping and descriptor.
        unsafe {
            libc::munmap(self.map.cast(), self.len);
            libc::close(self.fd);
        }
    }
}

fn free_blocks(dir: &Path) -> Result<u64> {
    let d = cstr(dir)?;
    // SAFETY: statvfs fills the struct.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(d.as_ptr(), &mut s) != 0 {
            bail!("statvfs: {}", IoError::last_os_error());
        }
        Ok(s.f_bfree * s.f_frsize)
    }
}

/// The whole O_TMPFILE scenario (see `tests/guest/tmpfile.sh`).
pub fn run(dir: &Path, name: &str, len: usize, seed: u64) -> Result<()> {
    let target = dir.join(name);
    let free0 = free_blocks(dir)?;
    let t = Tmp::new(dir, len, seed)?;
    if target.exists() {
        bail!("{}: visible before linkat", target.display());
    }
    if std::fs::read_dir(dir)?.count() != 0 {
        bail!("the unnamed key shows in readdir");
    }
    // Linking to a taken name fails and leaves the key unnamed.
    std::fs::write(dir.join("taken"), b"x")?;
    match t.link(&dir.join("taken")) {
        Err(libc::EEXIST) => {}
        r => bail!("linkat onto an existing key: {r:?}, want EEXIST"),
    }
    t.link(&target)
        .map_err(|e| anyhow::anyhow!("linkat: {}", IoError::from_raw_os_error(e)))?;
    // Published: others see the bytes.
    let got = std::fs::read(&target).context("read after linkat")?;
    crate::check(&got, seed, "read after linkat")?;
    // The creator's writable mapping can no longer change them.
    for at in [0, len / 2, len - 1] {
        match t.child_write(at)? {
            Some(libc::SIGBUS) => {}
            s => bail!(
                "write through the creator's mapping at {at} after linkat: {s:?}, want SIGBUS"
            ),
        }
    }
    // Reads through it still work (read-only again).
    crate::check(t.bytes(), seed, "creator's mapping after linkat")?;
    // write(2), ftruncate and a second name are refused.
    // SAFETY: plain syscalls on our descriptor.
    let (w, tr) = unsafe {
        let w = libc::pwrite(t.fd, b"zz".as_ptr().cast(), 2, 0);
        let we = errno_of(w as i64);
        let tr = libc::ftruncate(t.fd, 1);
        (we, errno_of(tr.into()))
    };
    if w != Some(libc::EPERM) || tr != Some(libc::EPERM) {
        bail!("write/ftruncate after linkat: {w:?}/{tr:?}, want EPERM");
    }
    match t.link(&dir.join("second")) {
        Err(libc::EPERM) => {}
        r => bail!("second link: {r:?}, want EPERM"),
    }
    let got = std::fs::read(&target)?;
    crate::check(&got, seed, "read after refused writes")?;
    drop(t);
    // An unnamed key that is never linked is discarded: its space returns.
    {
        let u = Tmp::new(dir, 2 << 20, seed + 1)?;
        drop(u);
    }
    std::fs::remove_file(dir.join("taken"))?;
    let used_now = free0.saturating_sub(free_blocks(dir)?);
    let want = len.div_ceil(2 << 20) as u64 * (2 << 20);
    if used_now != want {
        bail!("space used after the run: {used_now} bytes, want {want} (the linked key only)");
    }
    println!(
        "tmpfile: {}: invisible until linkat, EEXIST on a taken name, published by linkat; creator's writes SIGBUS, write/ftruncate/link EPERM; an unlinked tmpfile is discarded",
        target.display()
    );
    Ok(())
}

/// One batched lookup; prints `name status size` per name.
/// Issues `MARUFS_IOC_LOOKUP` on `dir`; the ioctl's return value or errno.
fn lookup_raw(dir: &std::fs::File, req: &marufs_core::abi::LookupReq) -> Result<i32, i32> {
    use std::os::fd::AsRawFd;
    let wire = req.encode();
    // SAFETY: the kernel reads the request and checks every user address in
    // it; callers point them at live buffers of the stated sizes, or on
    // purpose at none (the kernel must answer EFAULT).
    let r = unsafe {
        libc::ioctl(
            dir.as_raw_fd(),
            marufs_core::abi::IOC_LOOKUP as _,
            wire.as_ptr(),
        )
    };
    match errno_of(r.into()) {
        None => Ok(r),
        Some(e) => Err(e),
    }
}

fn pack(names: &[String]) -> Result<Vec<u8>> {
    let mut packed = vec![0u8; names.iter().map(|n| n.len() + 1).sum()];
    let mut at = 0;
    for n in names {
        at = marufs_core::abi::pack_name(&mut packed, at, n.as_bytes())
            .with_context(|| format!("bad name {n:?}"))?;
    }
    Ok(packed)
}

/// Batched lookup ioctl: prints `name status size mode uid` per name (with
/// `exists`: `name 1|0`, the presence-only flag), then `present N`.
pub fn lookup(dir: &Path, names: &[String], exists: bool) -> Result<()> {
    use marufs_core::abi;
    let d = std::fs::File::open(dir).with_context(|| dir.display().to_string())?;
    let packed = pack(names)?;
    let flags = if exists { abi::LOOKUP_EXISTS } else { 0 };
    let mut out = vec![0u8; abi::lookup_results_len(names.len() as u32, flags)];
    let req = abi::LookupReq {
        names: packed.as_ptr() as u64,
        names_len: packed.len() as u32,
        count: names.len() as u32,
        results: out.as_mut_ptr() as u64,
        flags,
    };
    let r = lookup_raw(&d, &req)
        .map_err(|e| anyhow::anyhow!("ioctl(IOC_LOOKUP): {}", IoError::from_raw_os_error(e)))?;
    if exists {
        for (n, b) in names.iter().zip(&out) {
            println!("{n} {b}");
        }
    } else {
        for (n, c) in names.iter().zip(out.chunks_exact(abi::LOOKUP_RES_SIZE)) {
            let mut b = [0u8; abi::LOOKUP_RES_SIZE];
            b.copy_from_slice(c);
            let x = abi::LookupRes::decode(&b);
            println!("{n} {} {} {:o} {}", x.status, x.size, x.mode, x.uid);
        }
    }
    println!("present {r}");
    Ok(())
}

/// Hostile `MARUFS_IOC_LOOKUP` requests on `dir` (which holds `key`): each
/// gets its precise errno and leaves the result buffer alone; a good request
/// afterwards still works.
pub fn lookup_hostile(dir: &Path, key: &str) -> Result<()> {
    use marufs_core::abi::{self, LookupReq, LOOKUP_EXISTS, LOOKUP_MAX};
    let d = std::fs::File::open(dir).with_context(|| dir.display().to_string())?;
    let names = [key.to_string(), "absent".to_string()];
    let packed = pack(&names)?;
    let mut out = vec![0xa5u8; 2 * abi::LOOKUP_RES_SIZE];
    let good = LookupReq {
        names: packed.as_ptr() as u64,
        names_len: packed.len() as u32,
        count: 2,
        results: out.as_mut_ptr() as u64,
        flags: LOOKUP_EXISTS,
    };
    let bad_end = usize::MAX as u64 - 7;
    let mut zero_len = packed.clone();
    zero_len[0] = 0;
    let zl = zero_len.as_ptr() as u64;
    let cases: [(&str, LookupReq, i32); 9] = [
        (
            "unknown flag",
            LookupReq {
                flags: 1 << 7,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "every flag bit",
            LookupReq {
                flags: u64::MAX,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "count above the maximum",
            LookupReq {
                count: LOOKUP_MAX + 1,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "count too small for the names",
            LookupReq { count: 1, ..good },
            libc::EINVAL,
        ),
        (
            "names_len too long for count",
            LookupReq {
                names_len: 3 * 256,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "zero-length record",
            LookupReq { names: zl, ..good },
            libc::EINVAL,
        ),
        (
            "names at address 0",
            LookupReq { names: 0, ..good },
            libc::EFAULT,
        ),
        (
            "names in kernel space",
            LookupReq {
                names: bad_end,
                ..good
            },
            libc::EFAULT,
        ),
        (
            "results in kernel space",
            LookupReq {
                results: bad_end,
                ..good
            },
            libc::EFAULT,
        ),
    ];
    for (what, req, want) in cases {
        match lookup_raw(&d, &req) {
            Err(e) if e == want => {}
            r => bail!("{what}: {r:?}, want errno {want}"),
        }
        if out.iter().any(|&b| b != 0xa5) {
            bail!("{what}: the result buffer was written");
        }
    }
    // Results read-only in this process: EFAULT, nothing else harmed.
    let ro = unsafe_ro_page()?;
    match lookup_raw(
        &d,
        &LookupReq {
            results: ro as u64,
            ..good
        },
    ) {
        Err(libc::EFAULT) => {}
        r => bail!("read-only result buffer: {r:?}, want EFAULT"),
    }
    match lookup_raw(&d, &good) {
        Ok(1) if out[..2] == [1, 0] => {}
        r => bail!(
            "good request after the hostile ones: {r:?}, results {:?}",
            &out[..2]
        ),
    }
    println!(
        "lookup-hostile: {} hostile requests refused with their errno; results intact",
        10
    );
    Ok(())
}

/// A fresh read-only anonymous page.
fn unsafe_ro_page() -> Result<*mut libc::c_void> {
    // SAFETY: an anonymous private mapping of one page; never unmapped (the
    // process is short-lived).
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        bail!("mmap: {}", IoError::last_os_error());
    }
    Ok(p)
}

fn discard_ioctl(fd: i32) -> Result<(), i32> {
    // SAFETY: an argument-less ioctl on our descriptor.
    let r = unsafe { libc::ioctl(fd, marufs_core::abi::IOC_DISCARD as _) };
    match errno_of(r.into()) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// `MARUFS_IOC_DISCARD`: the creator gives up its unpublished key (named or
/// unnamed); it is never published and its space returns; other files get
/// EPERM.
pub fn discard(dir: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let free0 = free_blocks(dir)?;
    // A named key being written.
    let p = dir.join("discarded");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)?;
    f.write_all(&[3u8; 3 << 20])?;
    discard_ioctl(f.as_raw_fd())
        .map_err(|e| anyhow::anyhow!("discard: {}", IoError::from_raw_os_error(e)))?;
    drop(f);
    if p.exists() {
        bail!("{}: published although discarded", p.display());
    }
    // The name is free again, and a published key refuses the ioctl.
    std::fs::write(&p, b"kept")?;
    let r = std::fs::File::open(&p)?;
    match discard_ioctl(r.as_raw_fd()) {
        Err(libc::EPERM) => {}
        x => bail!("discard of a published key: {x:?}, want EPERM"),
    }
    drop(r);
    if std::fs::read(&p)? != b"kept" {
        bail!("published key changed by a refused discard");
    }
    // An unnamed key: discarded, then linkat fails.
    let t = Tmp::new(dir, 2 << 20, 5)?;
    discard_ioctl(t.fd).map_err(|e| anyhow::anyhow!("discard tmpfile: {e}"))?;
    match t.link(&dir.join("late")) {
        Err(libc::EIO) => {}
        x => bail!("linkat of a discarded key: {x:?}, want EIO"),
    }
    drop(t);
    std::fs::remove_file(&p)?;
    let leaked = free0.saturating_sub(free_blocks(dir)?);
    if leaked != 0 {
        bail!("{leaked} bytes not returned after discards");
    }
    println!("discard: named and unnamed keys discarded (space back, name free), EPERM on a published key, EIO on linkat after discard");
    Ok(())
}
