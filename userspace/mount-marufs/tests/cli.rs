//! The helper as mount(8) runs it: exit codes and messages of the checks that
//! need no device-dax device and no root.

use std::path::PathBuf;
use std::process::{Command, Output};

fn helper(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mount-marufs"))
        .args(args)
        .output()
        .expect("run mount-marufs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mount-marufs-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn usage_errors_exit_1() {
    let o = helper(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let d = tmp("usage");
    let dir = d.to_str().unwrap();
    let o = helper(&["/dev/null", dir, "-o", "node=64"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("node=64 is out of range"),
        "{}",
        stderr(&o)
    );
    let o = helper(&["-o", "bogus", "/dev/null", dir]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown option 'bogus'"),
        "{}",
        stderr(&o)
    );
    let o = helper(&["-t", "ext4", "/dev/null", dir]);
    assert_eq!(o.status.code(), Some(1));
    let o = helper(&["UUID=12", dir]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a UUID"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn mount_failures_exit_32() {
    let d = tmp("fail");
    let dir = d.to_str().unwrap();
    // Not a device-dax device: says what it is.
    let o = helper(&["-f", "/dev/null", dir, "-o", "node=1"]);
    assert_eq!(o.status.code(), Some(32));
    let e = stderr(&o);
    assert!(
        e.starts_with("mount.marufs: /dev/null: is a character device (1:3"),
        "{e}"
    );
    assert!(e.contains("not a device-dax character device"), "{e}");
    let img = d.join("pool.img");
    std::fs::write(&img, b"x").unwrap();
    let o = helper(&["-f", img.to_str().unwrap(), dir]);
    assert_eq!(o.status.code(), Some(32));
    assert!(stderr(&o).contains("is a regular file"), "{}", stderr(&o));
    let o = helper(&["-sfnv", "/nonexistent/dax9.9", dir]);
    assert_eq!(o.status.code(), Some(32));
    assert!(
        stderr(&o).contains("/nonexistent/dax9.9: no such device"),
        "{}",
        stderr(&o)
    );
    // The mount point.
    let o = helper(&["/dev/null", "/nonexistent-mount-point"]);
    assert_eq!(o.status.code(), Some(32));
    assert!(
        stderr(&o).contains("mount point does not exist"),
        "{}",
        stderr(&o)
    );
    // A tag nothing matches (on a machine with no dax device, or none with it).
    let o = helper(&["-f", "LABEL=no-such-marufs-label", dir]);
    assert_eq!(o.status.code(), Some(32));
    assert!(
        stderr(&o).contains("no marufs device with LABEL=no-such-marufs-label"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn fake_remount_needs_no_device() {
    let d = tmp("remount");
    let dir = d.to_str().unwrap();
    let o = helper(&["-f", "-v", "/dev/dax0.0", dir, "-o", "remount,ro"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("MS_RDONLY | MS_REMOUNT"), "{out}");
    assert!(out.contains("(fake: not done)"), "{out}");
    let _ = std::fs::remove_dir_all(&d);
}
