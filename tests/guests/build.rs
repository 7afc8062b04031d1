//! Builds every guest component (the example operators and the test guests)
//! for `wasm32-wasip2` with the `guest` profile, and writes their paths into
//! `$OUT_DIR/guests.rs` for `src/lib.rs` to include.
//!
//! The guests get a target folder of their own (`<target>/weir-guests`)
//! because the outer cargo holds the lock on its own folder while this runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The guests of `guests.txt` (one workspace folder per line): their
/// folders, checked against the crates found under `operators/` and
/// `tests/guests/`, so that the list and the workspace cannot drift apart.
fn guests(root: &Path) -> Vec<String> {
    let list = root.join("guests.txt");
    let text = std::fs::read_to_string(&list).expect("cannot read guests.txt");
    let listed: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let mut found = Vec::new();
    for parent in ["operators", "tests/guests"] {
        for e in std::fs::read_dir(root.join(parent))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.path().join("Cargo.toml").is_file() {
                found.push(format!("{parent}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    let mut sorted = listed.clone();
    sorted.sort();
    found.sort();
    assert_eq!(
        sorted, found,
        "guests.txt must list exactly the guest crates under operators/ and tests/guests/"
    );
    listed
}

/// The package name of a guest folder, and the constant naming its path.
fn names(dir: &str) -> (String, String) {
    let package = dir.rsplit('/').next().unwrap_or(dir).to_owned();
    let constant = package.to_ascii_uppercase().replace('-', "_");
    (package, constant)
}

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("tests/guests lies two levels below the workspace root")
        .to_path_buf();
    let guests = guests(&root);
    for dir in ["wit", "wire", "guest-sdk", "operators", "guests.txt"]
        .into_iter()
        .chain(guests.iter().map(String::as_str))
    {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    let out_dir = PathBuf::from(env("OUT_DIR"));
    let target_dir = guest_target_dir(&out_dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--profile", "guest", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target_dir);
    for dir in &guests {
        cmd.args(["-p", &names(dir).0]);
    }
    // The outer build's settings must not leak into the guest build.
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cannot run cargo to build the guests");
    assert!(
        status.success(),
        "building the wasm guests failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );

    let wasm_dir = target_dir.join("wasm32-wasip2").join("guest");
    let mut code = String::new();
    for dir in &guests {
        let (package, name) = names(dir);
        let file = wasm_dir.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(
            file.exists(),
            "guest {package} was not built at {}",
            file.display()
        );
        code.push_str(&format!(
            "/// Path of the `{package}` guest component.\npub const {name}: &str = {:?};\n",
            file.display().to_string()
        ));
    }
    std::fs::write(out_dir.join("guests.rs"), code).expect("cannot write guests.rs");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"))
}

/// `<target>/weir-guests`, found from `OUT_DIR` (`<target>/<profile>/build/<pkg>/out`).
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent())
        .map(|target| target.join("weir-guests"))
        .unwrap_or_else(|| out_dir.join("weir-guests"))
}
