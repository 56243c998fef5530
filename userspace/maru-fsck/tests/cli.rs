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
