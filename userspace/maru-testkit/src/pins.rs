//! Pages of a key referenced past its last mapping and file: `pin-hold`
//! keeps some of a key's pages in a pipe (vmsplice takes get_user_pages
//! references, as a DMA registration takes pins), closes everything else,
//! and later checks that the pipe still shows the key's bytes — that the
//! key's units were not handed to another key meanwhile. `uring-register`
//! tries to register a key's mapping as io_uring fixed buffers (a writable
//! long-term pin) and reports the errno.

use anyhow::{bail, Context, Result};
use memmap2::MmapOptions;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes of the key kept in the pipe (the pipe is sized for them).
pub const PIN_LEN: usize = 1 << 20;

fn pipe() -> Result<(File, File)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: both descriptors are fresh and ours.
    let (r, w) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: plain fcntl on our descriptor.
    if unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIN_LEN as i32) } < 0 {
        return Err(std::io::Error::last_os_error()).context("F_SETPIPE_SZ");
    }
    Ok((r, w))
}

fn wait_for(path: &Path, secs: u64) -> Result<()> {
    let t = Instant::now();
    while !path.exists() {
        if t.elapsed() > Duration::from_secs(secs) {
            bail!("timed out waiting for {}", path.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// `create`: the key is created (`len` bytes, pattern `seed`) through a
/// writable mapping, which a truncate must not shrink while its pages are
/// in the pipe (EBUSY); else an existing key is opened read-only.
pub fn pin_hold(
    key: &str,
    create: Option<usize>,
    truncate: bool,
    seed: u64,
    ready: &Path,
    until: &Path,
) -> Result<()> {
    let (pr, pw) = pipe()?;
    let f = match create {
        Some(len) => crate::new_key(key, len)?,
        None => File::open(key).with_context(|| format!("open {key}"))?,
    };
    let len = f.metadata()?.len() as usize;
    if len < PIN_LEN {
        bail!("{key}: {len} bytes, need at least {PIN_LEN}");
    }
    if create.is_some() {
        // SAFETY: the key is ours (unpublished, visible only through `f`).
        let mut m = unsafe { MmapOptions::new().len(len).map_mut(&f) }.context("mmap")?;
        crate::fill(&mut m, seed);
        let p = m.as_ptr();
        splice_in(&pw, p)?;
        drop(m);
        // The units past 0 hold pages in the pipe: not given up.
        if truncate {
            match f.set_len(0) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    println!("pin-hold: {key}: truncate while its pages are in a pipe: EBUSY")
                }
                Err(e) => bail!("{key}: truncate while pinned: want EBUSY, got {e}"),
                Ok(()) => bail!(
                    "{key}: truncate while pinned succeeded: its units would be reused under the pipe"
                ),
            }
            if f.metadata()?.len() as usize != len {
                bail!("{key}: the refused truncate changed the size");
            }
        }
    } else {
        // SAFETY: published keys are immutable.
        let m = unsafe { MmapOptions::new().len(len).map(&f) }.context("mmap")?;
        crate::check(&m[..PIN_LEN], seed, key)?;
        splice_in(&pw, m.as_ptr())?;
        drop(m);
    }
    drop(f);
    println!("pin-hold: {key}: {PIN_LEN} bytes in a pipe; mapping and file closed");
    std::fs::write(ready, b"")?;
    wait_for(until, 900)?;
    let mut buf = vec![0u8; PIN_LEN];
    let mut pr = pr;
    drop(pw);
    pr.read_exact(&mut buf).context("read the pipe")?;
    crate::check(&buf, seed, &format!("{key} (its pages in the pipe)"))?;
    println!("pin-hold: {key}: the pipe still shows the key's own bytes");
    Ok(())
}

fn splice_in(pw: &File, p: *const u8) -> Result<()> {
    let mut done = 0usize;
    while done < PIN_LEN {
        let iov = libc::iovec {
            // SAFETY: inside the mapping (`PIN_LEN <= len`).
            iov_base: unsafe { p.add(done) } as *mut libc::c_void,
            iov_len: PIN_LEN - done,
        };
        // SAFETY: `iov` describes mapped memory; the pipe is ours.
        let n = unsafe { libc::vmsplice(pw.as_raw_fd(), &iov, 1, 0) };
        if n <= 0 {
            return Err(std::io::Error::last_os_error()).context("vmsplice");
        }
        done += n as usize;
    }
    Ok(())
}

fn register(p: *mut u8, len: usize) -> std::io::Result<()> {
    let ring = io_uring::IoUring::new(4)?;
    let iov = libc::iovec {
        iov_base: p.cast(),
        iov_len: len,
    };
    // SAFETY: the buffer stays mapped until the ring (and the registration)
    // is dropped at the end of this function.
    unsafe { ring.submitter().register_buffers(&[iov]) }
}

/// Registers the mapping of `key` (created with `create` bytes through a
/// writable mapping, else opened read-only) as an io_uring fixed buffer,
/// after checking that registering anonymous memory works; succeeds when
/// the key's registration fails with `expect` (an errno).
pub fn uring_register(key: &str, create: Option<usize>, expect: i32) -> Result<()> {
    let len = create.unwrap_or(0).max(2 << 20);
    let mut anon = MmapOptions::new()
        .len(len)
        .map_anon()
        .context("anonymous mmap")?;
    register(anon.as_mut_ptr(), len).context("registering anonymous memory (io_uring itself)")?;
    let r = match create {
        Some(len) => {
            let f = crate::new_key(key, len)?;
            // SAFETY: the key is ours (unpublished).
            let mut m = unsafe { MmapOptions::new().len(len).map_mut(&f) }.context("mmap")?;
            crate::fill(&mut m, 7);
            register(m.as_mut_ptr(), len)
        }
        None => {
            let f = File::open(key).with_context(|| format!("open {key}"))?;
            let len = f.metadata()?.len() as usize;
            // SAFETY: published keys are immutable.
            let m = unsafe { MmapOptions::new().len(len).map(&f) }.context("mmap")?;
            register(m.as_ptr().cast_mut(), len)
        }
    };
    match r {
        Err(e) if e.raw_os_error() == Some(expect) => {
            println!("uring-register: {key}: refused with errno {expect} ({e})");
            Ok(())
        }
        Err(e) => bail!("{key}: io_uring registration: want errno {expect}, got {e}"),
        Ok(()) => bail!("{key}: io_uring registration succeeded: want errno {expect}"),
    }
}
