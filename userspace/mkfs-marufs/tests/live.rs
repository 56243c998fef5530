//! mkfs.marufs on a pool that a host is using: refused even with -f (the
//! host's heartbeat advances), formatted with --force; a pool whose hosts
//! all left is formatted with -f at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use marufs_core::fs::{Fs, Tunables};
use marufs_media::{MapMedia, StdEnv};

fn mkfs(args: &[&str], img: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkfs-marufs"))
        .args(args)
        .arg(img)
        .output()
        .expect("run mkfs")
}

fn image(dir: &Path) -> PathBuf {
    let p = dir.join("pool.img");
    std::fs::File::create(&p)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    p
}

/// A host (node 1, lease 300 ms) that renews until `stop`, then leaves.
fn live_host(
    img: &Path,
    stop: Arc<AtomicBool>,
    joined: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let img = img.to_path_buf();
    std::thread::spawn(move || {
        let m = MapMedia::open(&img).unwrap();
        let mut fs = Fs::open(&m, StdEnv::default(), 1, Tunables::for_lease(300_000_000)).unwrap();
        fs.join().unwrap();
        joined.store(true, Ordering::SeqCst);
        while !stop.load(Ordering::SeqCst) {
            if fs.heartbeat().is_err() {
                return; // formatted away under it (--force)
            }
            std::thread::sleep(Duration::from_millis(40));
        }
        let _ = fs.leave();
    })
}

#[test]
fn a_pool_in_use_is_refused_even_with_f() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    assert!(mkfs(
        &["-q", "--max-hosts", "4", "--dirs", "8", "-N", "256"],
        &img
    )
    .status
    .success());
    let (stop, joined) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let h = live_host(&img, stop.clone(), joined.clone());
    while !joined.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = mkfs(&["-q", "-f"], &img);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "formatted a pool in use: {e}");
    assert!(e.contains("in use by node 1"), "{e}");
    assert!(e.contains("--force"), "{e}");
    // --force formats it anyway.
    let o = mkfs(
        &[
            "-q",
            "--force",
            "--max-hosts",
            "4",
            "--dirs",
            "8",
            "-N",
            "256",
        ],
        &img,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stop.store(true, Ordering::SeqCst);
    h.join().unwrap();
}

#[test]
fn a_pool_whose_hosts_left_is_formatted_at_once() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    assert!(mkfs(
        &["-q", "--max-hosts", "4", "--dirs", "8", "-N", "256"],
        &img
    )
    .status
    .success());
    let (stop, joined) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    stop.store(true, Ordering::SeqCst);
    live_host(&img, stop, joined).join().unwrap();
    let t0 = std::time::Instant::now();
    let o = mkfs(&["-q", "-f"], &img);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        t0.elapsed()
    );
}
