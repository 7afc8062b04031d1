//! Builds the web dashboard (`web/`) into `$OUT_DIR/web`, which the
//! binary embeds (`server/dashboard.rs`): `npm ci` when its packages are
//! missing or its lock file changed, then `npm run build`. Without Node.js
//! and npm (or with `WEIR_SKIP_WEB=1`) the binary embeds a page that says
//! how to get the dashboard; everything else works the same.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    // Read when the script runs, not when it is compiled: a build folder
    // shared by two checkouts keeps the script but must build each one's web/.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let web = Path::new(&manifest).join("../web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("web");
    for input in [
        "src",
        "build.mjs",
        "package.json",
        "package-lock.json",
        "index.html",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=WEIR_SKIP_WEB");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("create the dashboard folder");
    let skip = std::env::var_os("WEIR_SKIP_WEB").is_some_and(|v| v != "0");
    if skip || !web.join("package.json").is_file() {
        return fallback(&out, "the dashboard was not built (WEIR_SKIP_WEB)");
    }
    if let Err(why) = build(&web, &out) {
        println!("cargo:warning=the web dashboard was not built: {why}");
        fallback(&out, &why);
    }
}

/// `npm ci` if needed, then `npm run build` into `out`.
fn build(web: &Path, out: &Path) -> Result<(), String> {
    let installed = web.join("node_modules/.package-lock.json");
    let stale = match (
        modified(&installed),
        modified(&web.join("package-lock.json")),
    ) {
        (Some(i), Some(l)) => i < l,
        _ => true,
    };
    if stale {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(web))?;
    }
    run(Command::new("npm")
        .args(["run", "build", "--silent"])
        .env("WEIR_WEB_OUT", out)
        .current_dir(web))
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// A page in place of the dashboard, saying why it is missing.
fn fallback(out: &Path, why: &str) {
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>Weir</title>\
         <p>The Weir dashboard is not in this build: {why}. Build with Node.js and npm \
         on the PATH to get it; the REST API works without it.</p>"
    );
    std::fs::write(out.join("index.html"), page).expect("write the fallback page");
}
