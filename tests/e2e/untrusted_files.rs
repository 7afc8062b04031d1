//! Files a server or a restore is handed are not trusted: a `_metadata`
//! naming files outside its folder, a state file swapped for a link to a
//! device, a sink state naming a file elsewhere, and a token file others
//! can read are each refused with a message, with nothing read or moved
//! outside the folder; and `weir serve` keeps its data folder private.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use weir::CheckpointMetadata;

use crate::checkpoints::copy_tree;
use crate::common::{entries, q, tempdir, weir};

/// The version-1 fixture copied into `d` (a keyed count into a file sink,
/// `chk-5`), with its component path resolved; returns the spec's path.
fn fixture(d: &Path) -> std::path::PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoint-v1");
    copy_tree(&fixture, d);
    let spec = d.join("job.yaml");
    let yaml = std::fs::read_to_string(&spec)
        .expect("fixture job")
        .replace(
            "wasm: count.wasm",
            &format!("wasm: {}", q(weir_test_guests::COUNT)),
        );
    std::fs::write(&spec, yaml).expect("spec");
    spec
}

/// Rewrites `chk`'s `_metadata` through `change`, with a valid checksum
/// (anyone can recompute it: it is no defence).
fn rewrite(chk: &Path, change: impl FnOnce(&mut CheckpointMetadata)) {
    let path = chk.join("_metadata");
    let mut m = CheckpointMetadata::decode(&std::fs::read(&path).expect("read")).expect("decode");
    change(&mut m);
    std::fs::write(&path, m.encode().expect("encode")).expect("write");
}

/// `weir run -s CHK SPEC`: must fail, saying `says`.
fn refused(chk: &Path, spec: &Path, says: &str) {
    let out = weir()
        .args(["run", "-q", "-s"])
        .arg(chk)
        .arg(spec)
        .output()
        .expect("weir run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(says), "expected {says:?} in: {err}");
}

#[test]
fn a_metadata_naming_files_outside_its_folder_or_a_device_is_refused() {
    for name in ["/dev/zero", "../../outside.keyed", "sub/1-count-0.keyed"] {
        let dir = tempdir();
        let d = dir.path();
        let spec = fixture(d);
        let chk = d.join("chk-5");
        rewrite(&chk, |m| {
            let count = m.operators.iter_mut().find(|o| o.uid == "count");
            let h = count
                .and_then(|o| o.subtasks[0].keyed.as_mut())
                .expect("keyed");
            h.file = name.to_owned();
            h.size = u64::MAX;
        });
        let before = entries(&d.join("out"));
        refused(&chk, &spec, "outside the checkpoint folder");
        assert_eq!(entries(&d.join("out")), before, "{name}");
    }
}

#[test]
fn a_state_file_swapped_for_a_link_to_a_device_is_not_followed() {
    let dir = tempdir();
    let d = dir.path();
    let spec = fixture(d);
    let chk = d.join("chk-5");
    let keyed = chk.join("1-count-0.keyed");
    std::fs::remove_file(&keyed).expect("remove");
    std::os::unix::fs::symlink("/dev/zero", &keyed).expect("symlink");
    refused(&chk, &spec, "not a regular file");
}

#[test]
fn a_sink_state_naming_a_file_elsewhere_is_refused_and_nothing_moves() {
    let dir = tempdir();
    let d = dir.path();
    let spec = fixture(d);
    let chk = d.join("chk-5");
    let bait = d.join("bait");
    std::fs::write(&bait, "mine").expect("bait");
    let hostile = format!(
        r#"{{"subtask":0,"next_part":5,"pending":[{:?}]}}"#,
        bait.display().to_string()
    );
    rewrite(&chk, |m| {
        let out = m
            .operators
            .iter_mut()
            .find(|o| o.uid == "out")
            .expect("out");
        out.subtasks[0].operator_state = vec![hostile.into_bytes()];
    });
    let before = entries(&d.join("out"));
    refused(&chk, &spec, "not a part file of the sink's folder");
    assert_eq!(std::fs::read_to_string(&bait).expect("bait"), "mine");
    assert_eq!(entries(&d.join("out")), before);
}

#[test]
fn a_token_file_others_can_read_is_refused_and_a_new_data_folder_is_private() {
    let dir = tempdir();
    let d = dir.path();
    let data = d.join("data");
    std::fs::create_dir_all(&data).expect("data");
    std::fs::write(data.join("token"), "0123456789abcdef").expect("token");
    std::fs::set_permissions(data.join("token"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let cfg = d.join("weir.yaml");
    std::fs::write(
        &cfg,
        format!(
            "rest.port: 0\nweir.server.data-dir: {}\n",
            q(&data.display().to_string())
        ),
    )
    .expect("config");
    let err = crate::api::serve_refused(&cfg);
    assert!(
        err.contains("mode 644") && err.contains("chmod 600"),
        "{err}"
    );

    // A fresh server: its data folder is private, and so are the files
    // it writes there.
    let fresh = tempdir();
    let (_server, port) = crate::api::start_server(fresh.path());
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&fresh.path().join("data")), 0o700);
    let count = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = crate::api::http(port, "POST", "/api/v1/bundles?name=count.wasm", &count);
    assert_eq!(s, 201, "{v}");
    let bundles = fresh.path().join("data/bundles");
    assert_eq!(mode(&bundles), 0o700);
    for f in std::fs::read_dir(&bundles).expect("bundles").flatten() {
        assert_eq!(mode(&f.path()) & 0o077, 0, "{}", f.path().display());
    }
}

/// A server job's sink folder swapped for a symlink to a folder outside
/// the files root after the job started: nothing is written, committed or
/// moved outside (the sink holds a `cap-std` handle of its folder, and
/// opening the path again beneath the root refuses the link).
#[test]
fn a_symlink_swapped_in_after_submission_is_not_followed() {
    use crate::api::{http, start_server};
    let dir = tempdir();
    let outside = tempdir();
    let (_server, port) = start_server(dir.path());
    let wasm = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=count", &wasm);
    assert_eq!(s, 201, "{v}");
    let job = crate::nothing_lost::count_job("swapped", 1_000_000_000, 20_000, "out");
    let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    assert_eq!(s, 202, "{v}");
    let id = v["jobid"].as_str().expect("jobid").to_owned();
    let completed = || {
        let (_, c) = http(port, "GET", &format!("/api/v1/jobs/{id}/checkpoints"), b"");
        c["counts"]["completed"].as_u64().unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while completed() < 2 {
        assert!(std::time::Instant::now() < deadline, "no checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let files = dir.path().join("data/files");
    std::fs::rename(files.join("out"), files.join("out-moved")).expect("move");
    std::os::unix::fs::symlink(outside.path(), files.join("out")).expect("link");
    // Checkpoints go on (and commits try the path again) for a while.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        entries(outside.path()),
        Vec::<String>::new(),
        "nothing reached the folder outside"
    );
    assert!(
        !entries(&files.join("out-moved")).is_empty(),
        "the sink kept its own folder"
    );
}
