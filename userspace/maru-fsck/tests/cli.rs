//! The `maru-fsck` binary's messages and exit codes on image files.

use std::path::Path;
use std::process::{Command, Output};

use marufs_core::format::{format, FormatOptions};
use marufs_core::Media;
use marufs_media::MapMedia;

fn fsck(args: &[&str], img: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maru-fsck"))
        .args(args)
        .arg(img)
        .output()
        .expect("run maru-fsck")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn image(dir: &Path, size: u64) -> std::path::PathBuf {
    let p = dir.join("pool.img");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(size).unwrap();
    p
}

#[test]
fn unformatted_image_says_what_to_do() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), 64 << 20);
    let o = fsck(&["-n"], &img);
    assert_eq!(o.status.code(), Some(8), "operational error");
    let e = text(&o.stderr);
    assert!(e.contains("run mkfs.marufs"), "{e}");
    assert!(!e.contains("NotFormatted"), "a Rust name in a message: {e}");
    let j = fsck(&["-n", "--json"], &img);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("run mkfs.marufs"),
        "{v}"
    );
}

#[test]
fn findings_are_sentences_and_json_kinds_are_stable() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), 64 << 20);
    {
        let m = MapMedia::open(&img).unwrap();
        format(
            &m,
            &FormatOptions::small(64 << 20, 4, 256, 8),
            &mut |_, _| {},
        )
        .unwrap();
        // Damage the primary superblock's checksummed body: the backup is used.
        m.store(64, &[0xA5; 16]).unwrap();
        m.sync().unwrap();
    }
    let o = fsck(&["-n", "-v"], &img);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("primary superblock bad; the backup was used"),
        "{out}"
    );
    assert!(
        !out.contains("PrimarySuperblock"),
        "a Rust name in the report: {out}"
    );
    let j = fsck(&["-n", "--json"], &img);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    let p = &v["problems"][0];
    assert_eq!(p["kind"], "PrimarySuperblock", "{v}");
    assert_eq!(
        p["message"], "primary superblock bad; the backup was used",
        "{v}"
    );
}

/// A host (node 1, lease 300 ms) that renews until `stop`, then leaves.
fn live_host(
    img: &Path,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    joined: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::sync::atomic::Ordering::SeqCst;
    let img = img.to_path_buf();
    std::thread::spawn(move || {
        let m = MapMedia::open(&img).unwrap();
        let mut fs = marufs_core::fs::Fs::open(
            &m,
            marufs_media::StdEnv::default(),
            1,
            marufs_core::fs::Tunables::for_lease(300_000_000),
        )
        .unwrap();
        fs.join().unwrap();
        joined.store(true, SeqCst);
        while !stop.load(SeqCst) {
            fs.heartbeat().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
        fs.leave().unwrap();
    })
}

#[test]
fn a_live_pool_is_reported_and_not_repaired() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), 64 << 20);
    {
        let m = MapMedia::open(&img).unwrap();
        format(
            &m,
            &FormatOptions::small(64 << 20, 4, 256, 8),
            &mut |_, _| {},
        )
        .unwrap();
        m.sync().unwrap();
    }
    let (stop, joined) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let h = live_host(&img, stop.clone(), joined.clone());
    while !joined.load(SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // -y is refused (fsck(8): operational error), naming the live node.
    let o = fsck(&["-y"], &img);
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(8), "{e}");
    assert!(e.contains("node 1 is using the pool"), "{e}");
    // -n reports the live host as such, not as a problem, and suggests no -y.
    let o = fsck(&["-n"], &img);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("in use by node 1"), "{out}");
    assert!(!out.contains("-y"), "{out}");
    let j = fsck(&["-n", "--json"], &img);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v["live_nodes"], serde_json::json!([1]), "{v}");
    assert_eq!(v["clean"], serde_json::json!(true), "{v}");
    stop.store(true, SeqCst);
    h.join().unwrap();
    // Once it left: repairable, and nothing to repair.
    let o = fsck(&["-y"], &img);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
}

#[test]
fn a_crashed_host_is_reported_after_its_lease() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), 64 << 20);
    {
        let m = MapMedia::open(&img).unwrap();
        format(
            &m,
            &FormatOptions::small(64 << 20, 4, 256, 8),
            &mut |_, _| {},
        )
        .unwrap();
        let mut fs = marufs_core::fs::Fs::open(
            &m,
            marufs_media::StdEnv::default(),
            2,
            marufs_core::fs::Tunables::for_lease(200_000_000),
        )
        .unwrap();
        fs.join().unwrap();
        // Dies: no leave.
        m.sync().unwrap();
    }
    let t0 = std::time::Instant::now();
    let j = fsck(&["-n", "--json"], &img);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v["crashed_nodes"], serde_json::json!([2]), "{v}");
    assert_eq!(v["live_nodes"], serde_json::json!([]), "{v}");
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
}
