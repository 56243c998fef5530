//! The `maru` binary against a temporary directory standing in for a mount.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn maru(mount: &Path, args: &[&str]) -> Output {
    maru_stdin(mount, args, None)
}

fn maru_stdin(mount: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_maru"));
    c.args(args)
        .env("MARU_MOUNT", mount)
        .env_remove("MARU_APP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run maru");
    {
        let mut i = child.stdin.take().unwrap();
        if let Some(d) = stdin {
            i.write_all(d).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).expect("valid JSON")
}

fn blob(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn put_get_round_trip_and_dedup() {
    let t = tempfile::tempdir().unwrap();
    let m = t.path();
    let src = m.join("src.bin");
    let data = blob(3 << 20);
    std::fs::write(&src, &data).unwrap();
    let mnt = m.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    ok(&maru(&mnt, &["put", "app/k", src.to_str().unwrap()]));
    let out = maru(&mnt, &["get", "app/k"]);
    assert_eq!(out.stdout, data);
    // -o FILE.
    let dst = m.join("dst.bin");
    ok(&maru(&mnt, &["get", "app/k", "-o", dst.to_str().unwrap()]));
    assert_eq!(std::fs::read(&dst).unwrap(), data);
    // Again: a no-op, exit 0, said on stderr; -x makes it an error.
    let again = maru(&mnt, &["put", "app/k", "-"]);
    assert_eq!(code(&again), 0);
    assert!(stderr(&again).contains("key exists, not stored"));
    let excl = maru(&mnt, &["put", "-x", "app/k", src.to_str().unwrap()]);
    assert_eq!(code(&excl), 1);
    assert!(stderr(&excl).contains("maru: app/k: key exists"));
    let v = json(&maru(
        &mnt,
        &["--json", "put", "app/k", src.to_str().unwrap()],
    ));
    assert_eq!(v["stored"], false);
    assert_eq!(maru(&mnt, &["get", "app/k"]).stdout, data, "unchanged");
}

#[test]
fn stdin_and_app_option() {
    let t = tempfile::tempdir().unwrap();
    let m = t.path();
    let o = maru_stdin(
        m,
        &["--app", "a", "--json", "put", "k", "-"],
        Some(b"from stdin"),
    );
    let v = json(&o);
    assert_eq!(
        (v["stored"].as_bool(), v["size"].as_u64()),
        (Some(true), Some(10))
    );
    assert_eq!(v["key"], "a/k");
    assert_eq!(maru(m, &["get", "a/k"]).stdout, b"from stdin");
    // A pipe given by name: its size is unknown until read.
    ok(&maru_stdin(
        m,
        &["put", "a/piped", "/dev/stdin"],
        Some(b"through a pipe"),
    ));
    assert_eq!(maru(m, &["get", "a/piped"]).stdout, b"through a pipe");
    // MARU_APP works like --app.
    let out = Command::new(env!("CARGO_BIN_EXE_maru"))
        .args(["get", "k"])
        .env("MARU_MOUNT", m)
        .env("MARU_APP", "a")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"from stdin");
}

#[test]
fn missing_keys_exit_1() {
    let t = tempfile::tempdir().unwrap();
    let m = t.path();
    for args in [["get", "app/nope"], ["stat", "app/nope"]] {
        let o = maru(m, &args);
        assert_eq!(code(&o), 1, "{args:?}");
        assert_eq!(stderr(&o), "maru: app/nope: no such key\n");
    }
    maru_stdin(m, &["put", "app/k", "-"], Some(b"x"));
    let o = maru(m, &["get", "app/other"]);
    assert_eq!(stderr(&o), "maru: app/other: no such key\n");
    let o = maru(m, &["ls", "nosuchapp"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no such application"));
}

#[test]
fn usage_errors_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let m = t.path();
    for args in [
        vec!["get", "keywithoutapp"],
        vec!["get", "app/"],
        vec!["bogus"],
        vec!["rm"],
        vec!["put", "app/k"],
        vec!["put", "--mode", "999", "app/k", "-"],
        vec!["--json", "get", "app/k"],
        vec!["top", "--interval", "0"],
    ] {
        let o = maru(m, &args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn ls_stat_rm_df() {
    let t = tempfile::tempdir().unwrap();
    let m = t.path();
    maru_stdin(m, &["put", "app1/a", "-"], Some(&[1; 100]));
    maru_stdin(m, &["put", "--mode", "600", "app1/b", "-"], Some(&[2; 50]));
    maru_stdin(m, &["put", "app2/c", "-"], Some(&[3; 7]));
    // Root listing.
    let text = ok(&maru(m, &["ls"]));
    assert!(text.lines().next().unwrap().starts_with("MODE"));
    assert!(text.contains("app1") && text.contains("app2"));
    let v = json(&maru(m, &["--json", "ls"]));
    let apps = v.as_array().unwrap();
    assert_eq!(apps.len(), 2);
    assert_eq!(
        (apps[0]["app"].as_str(), apps[0]["keys"].as_u64()),
        (Some("app1"), Some(2))
    );
    assert_eq!(apps[0]["bytes"], 150);
    // App listing.
    let text = ok(&maru(m, &["ls", "app1"]));
    assert!(
        text.contains("-rw-------") && text.contains(" b\n"),
        "{text}"
    );
    let v = json(&maru(m, &["--json", "ls", "app1"]));
    assert_eq!(v[1]["name"], "b");
    assert_eq!(v[1]["mode"], "0600");
    assert_eq!(v[1]["size"], 50);
    // stat.
    let text = ok(&maru(m, &["stat", "app1/a"]));
    assert!(text.contains("size:      100"), "{text}");
    let v = json(&maru(m, &["--json", "stat", "app1/a"]));
    assert_eq!(v["size"], 100);
    assert_eq!(v["key"], "app1/a");
    assert!(v["mtime"].as_str().unwrap().ends_with('Z'));
    // df.
    let text = ok(&maru(m, &["df"]));
    assert!(
        text.contains("(not marufs)") && text.contains("app2"),
        "{text}"
    );
    let v = json(&maru(m, &["--json", "df"]));
    assert!(v["total"].as_u64().unwrap() >= v["used"].as_u64().unwrap());
    assert_eq!(v["apps"][1]["keys"], 1);
    assert_eq!(v["marufs"], false);
    // rm: one missing -> exit 1 after removing the rest.
    let o = maru(m, &["--json", "rm", "app1/a", "app1/zz", "app2/c"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("maru: app1/zz: no such key"));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["removed"], serde_json::json!(["app1/a", "app2/c"]));
    assert_eq!(v["missing"], serde_json::json!(["app1/zz"]));
    ok(&maru(m, &["rm", "app1/b"]));
    let v = json(&maru(m, &["--json", "ls", "app1"]));
    assert!(v.as_array().unwrap().is_empty());
}

#[test]
fn top_once_and_rates() {
    let t = tempfile::tempdir().unwrap();
    let m = t.path();
    maru_stdin(m, &["put", "app/a", "-"], Some(b"abc"));
    let text = ok(&maru(m, &["top", "--once"]));
    assert!(
        text.contains("maru top") && text.contains("hosts: n/a"),
        "{text}"
    );
    let v = json(&maru(m, &["--json", "top", "--once"]));
    assert_eq!(v["apps"][0]["name"], "app");
    assert_eq!(v["apps"][0]["keys"], 1);
    assert!(v["rates"].is_null() && v["hosts"].is_null());
    // Two refreshes: JSON lines, the second with rates.
    let o = maru(m, &["--json", "top", "-n", "2", "-d", "0.1"]);
    let lines: Vec<serde_json::Value> = ok(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1]["rates"]["created_per_s"].is_number());
    // CSV: header plus a pool row and an app row per refresh.
    let csv = ok(&maru(m, &["top", "--csv", "-n", "2", "-d", "0.1"]));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 5);
    assert!(rows[0].starts_with("time,scope,name,keys"));
    assert_eq!(rows[2].split(',').nth(2), Some("app"));
    assert_eq!(rows[0].split(',').count(), rows[4].split(',').count());
}

#[test]
fn top_counts_created_keys() {
    let t = tempfile::tempdir().unwrap();
    let m = t.path().to_path_buf();
    maru_stdin(&m, &["put", "app/first", "-"], Some(b"x"));
    let child = Command::new(env!("CARGO_BIN_EXE_maru"))
        .args(["--json", "top", "-n", "2", "-d", "1"])
        .env("MARU_MOUNT", &m)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for i in 0..4 {
        maru_stdin(&m, &["put", &format!("app/k{i}"), "-"], Some(&[0; 1000]));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let created = last["rates"]["created_per_s"].as_f64().unwrap();
    assert!(created > 0.0, "{last}");
    assert!(last["rates"]["bytes_in_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(last["apps"][0]["keys"], 5);
}

#[test]
fn completions_and_man() {
    let t = tempfile::tempdir().unwrap();
    let o = ok(&maru(t.path(), &["completions", "bash"]));
    assert!(o.contains("complete") && o.contains("maru"));
    let o = ok(&maru(t.path(), &["man"]));
    assert!(o.contains(".TH maru 1"));
    assert!(o.contains("completions"));
    let o = maru(t.path(), &["completions", "nosh"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn help_and_version() {
    let t = tempfile::tempdir().unwrap();
    let o = ok(&maru(t.path(), &["--help"]));
    for c in [
        "put",
        "get",
        "ls",
        "rm",
        "stat",
        "df",
        "top",
        "completions",
        "man",
        "--mount",
    ] {
        assert!(o.contains(c), "{c} missing from --help");
    }
    assert!(ok(&maru(t.path(), &["--version"])).starts_with("maru "));
}

#[test]
fn missing_mount_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let o = maru(&t.path().join("nowhere"), &["df"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).starts_with("maru: "), "{}", stderr(&o));
}

/// Every tool message names each cause once and in words: no repeated OS
/// error, no Rust type or variant names.
#[test]
fn error_messages_name_the_cause_once() {
    let t = tempfile::tempdir().unwrap();
    let nowhere = t.path().join("nonexistent");
    for args in [&["ls"][..], &["df"], &["get", "a/k"], &["put", "a/k", "-"]] {
        let o = maru(&nowhere, args);
        assert_eq!(code(&o), 1, "{args:?}");
        let e = stderr(&o);
        assert_eq!(
            e.matches("No such file or directory").count(),
            1,
            "{args:?}: the cause must appear once: {e}"
        );
        assert!(!e.contains("os error 2): No such"), "{args:?}: {e}");
        assert!(!e.contains("Io {") && !e.contains("Os {"), "{args:?}: {e}");
    }
    // The --mount spelling the issue was reported with.
    let o = maru(t.path(), &["--mount", nowhere.to_str().unwrap(), "ls"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o).matches("No such file or directory").count(),
        1,
        "{}",
        stderr(&o)
    );
}

#[test]
fn df_and_top_show_a_recorded_quota() {
    use maru::{EvictionPolicy, Store, StoreOptions};
    let t = tempfile::tempdir().unwrap();
    let m = t.path();
    let opts = StoreOptions::default().eviction(EvictionPolicy {
        quota: Some(1 << 20),
        high_pct: 90,
        low_pct: 60,
    });
    let s = Store::open_with(m, "llm", &opts).unwrap();
    assert!(s.store_bytes("k", &[1; 4096]).unwrap());
    // The marker is not a key: listings and eviction skip it.
    assert_eq!(s.list().unwrap().len(), 1);
    let v = json(&maru(m, &["--json", "df"]));
    let app = &v["apps"][0];
    assert_eq!(app["keys"], 1);
    assert_eq!(app["quota"]["bytes"], 1 << 20);
    assert_eq!(
        (
            app["quota"]["high_pct"].as_u64(),
            app["quota"]["low_pct"].as_u64()
        ),
        (Some(90), Some(60))
    );
    let text = ok(&maru(m, &["df"]));
    assert!(text.contains("1.00 MiB 0% (90/60)"), "{text}");
    let text = ok(&maru(m, &["top", "--once"]));
    assert!(text.contains("QUOTA") && text.contains("(90/60)"), "{text}");
    // Another policy replaces the record; an application without a quota
    // shows none.
    drop(s);
    let opts = StoreOptions::default().eviction(EvictionPolicy {
        quota: Some(2 << 20),
        high_pct: 95,
        low_pct: 85,
    });
    let _s = Store::open_with(m, "llm", &opts).unwrap();
    let _t = Store::open(m, "other").unwrap();
    let v = json(&maru(m, &["--json", "df"]));
    let apps = v["apps"].as_array().unwrap();
    let llm = apps.iter().find(|a| a["app"] == "llm").unwrap();
    assert_eq!(llm["quota"]["bytes"], 2 << 20);
    let other = apps.iter().find(|a| a["app"] == "other").unwrap();
    assert!(other["quota"].is_null());
    assert_eq!(std::fs::read_dir(m.join("llm")).unwrap().count(), 2);
}
