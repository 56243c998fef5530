//! maru-kvdemo on a scratch directory standing in for a mount: the check,
//! a stored set fetched and verified (and a corrupted one refused), the
//! benchmark's table.

use std::path::Path;
use std::process::{Command, Output};

fn kvdemo(mount: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maru-kvdemo"))
        .args(args)
        .env("MARU_MOUNT", mount)
        .env_remove("MARUFS_ACCEL")
        .output()
        .expect("run maru-kvdemo")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_with_and_without_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(&kvdemo(tmp.path(), &["--keys", "3", "--size", "5000"]));
    assert!(out.ends_with("kvdemo: ok\n"), "{out}");
    let out = ok(&kvdemo(
        tmp.path(),
        &["check", "--keys", "2", "--size", "100"],
    ));
    assert!(out.ends_with("kvdemo: ok\n"), "{out}");
}

#[test]
fn store_set_then_fetch_set() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path();
    let out = ok(&kvdemo(
        m,
        &[
            "store-set",
            "--app",
            "kv",
            "--count",
            "3",
            "--size",
            "300001",
            "--seed",
            "9",
        ],
    ));
    assert!(out.contains("chunk-002: 300001 bytes crc32 "), "{out}");
    assert!(out.contains("GB/s"), "{out}");
    let manifest = std::fs::read_to_string(m.join("kv/manifest")).unwrap();
    assert!(manifest.starts_with("# maru-kvdemo manifest v1 seed 9 count 3\n"));
    assert_eq!(manifest.lines().count(), 4);

    let out = ok(&kvdemo(
        m,
        &["fetch-set", "--app", "kv", "--wait-secs", "1"],
    ));
    assert!(out.contains("fetch-set: ok: 3 chunks verified"), "{out}");
    assert!(out.contains("p50"), "{out}");
    assert!(out.contains("counters: mmaps 7 "), "{out}");

    // A second store-set refuses to overwrite; --replace does.
    let o = kvdemo(
        m,
        &["store-set", "--app", "kv", "--count", "3", "--size", "10"],
    );
    assert_eq!(o.status.code(), Some(1));
    ok(&kvdemo(
        m,
        &[
            "store-set",
            "--app",
            "kv",
            "--count",
            "2",
            "--size",
            "70000",
            "--replace",
        ],
    ));
    ok(&kvdemo(
        m,
        &["fetch-set", "--app", "kv", "--wait-secs", "1"],
    ));

    // One flipped byte (possible outside marufs, where keys stay writable).
    let p = m.join("kv/chunk-001");
    let mut b = std::fs::read(&p).unwrap();
    b[4242] ^= 1;
    std::fs::write(&p, b).unwrap();
    let o = kvdemo(m, &["fetch-set", "--app", "kv", "--wait-secs", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("chunk-001: 70000 bytes crc32 ") && out.contains(" MISMATCH:"),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 failed check(s) over 2 chunks"));
}

#[test]
fn fetch_set_times_out_without_a_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let o = kvdemo(
        tmp.path(),
        &["fetch-set", "--app", "none", "--wait-secs", "0"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no application none"));
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let o = kvdemo(
        tmp.path(),
        &["fetch-set", "--app", "empty", "--wait-secs", "0"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no manifest in empty"));
}

#[test]
fn bench_prints_the_table_and_the_ratio() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(&kvdemo(
        tmp.path(),
        &[
            "bench",
            "--keys",
            "16",
            "--batches",
            "1,4,16",
            "--lookups",
            "64",
            "--rounds",
            "1",
            "--json",
        ],
    ));
    for op in [
        "exists",
        "batch_exists",
        "retrieve cold",
        "retrieve warm",
        "batch_retrieve cold",
    ] {
        assert!(out.contains(&format!("kvbench: {op} ")), "{op}: {out}");
    }
    assert!(out.contains("one batch_exists of 16"), "{out}");
    assert!(out.contains("accelerator: see guest log"), "{out}");
    assert!(out.contains("~20 us/key"), "{out}");
    let last = out.lines().rev().nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["keys"], 16);
    assert_eq!(v["rows"].as_array().unwrap().len(), 1 + 3 + 2 + 3 * 2);
    // The keys are removed afterwards.
    assert_eq!(
        std::fs::read_dir(tmp.path().join("kvbench"))
            .unwrap()
            .count(),
        0
    );
}
