//! Builds every guest component (the example operators and the test guests)
//! for `wasm32-wasip2` with the `guest` profile, and writes their paths into
//! `$OUT_DIR/guests.rs` for `src/lib.rs` to include.
//!
//! The guests get a target folder of their own (`<target>/weir-guests`)
//! because the outer cargo holds the lock on its own folder while this runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (constant name, package name) of each guest.
const GUESTS: &[(&str, &str)] = &[
    ("TOKENIZE", "tokenize"),
    ("COUNT", "count"),
    ("WINDOW_SUM", "window-sum"),
    ("FILTER", "filter"),
    ("ENRICH", "enrich"),
    ("HOSTILE", "hostile"),
    ("MISSING_EXPORT", "missing-export"),
    ("STATE_KINDS", "state-kinds"),
    ("SLEEPER", "sleeper"),
    ("SUBTASK_COUNT", "subtask-count"),
];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("tests/guests lies two levels below the workspace root")
        .to_path_buf();
    for dir in [
        "wit",
        "wire",
        "guest-sdk",
        "operators",
        "tests/guests/hostile",
        "tests/guests/missing-export",
        "tests/guests/state-kinds",
        "tests/guests/sleeper",
        "tests/guests/subtask-count",
    ] {
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
    for (_, package) in GUESTS {
        cmd.args(["-p", package]);
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
    for (name, package) in GUESTS {
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
