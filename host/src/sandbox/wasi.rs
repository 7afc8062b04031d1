//! The WASI a guest gets: what Rust's standard library needs and nothing
//! that can wait.
//!
//! An epoch deadline interrupts running guest code, but not a host call
//! that blocks, so a guest that could sleep (`std::thread::sleep` waits on a
//! `wasi:clocks/monotonic-clock` pollable) could hang its task past any
//! timeout. So the monotonic clock, sockets and the filesystem are not
//! linked at all: a component that imports them is refused when it is
//! loaded, with the name of the import. What is linked cannot block for
//! long: stdin is empty and stdout/stderr are sinks (no stdio is
//! inherited), the wall clock only reads the time, random only returns
//! bytes. Operators read time through the world's `timers` interface.

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::{cli, clocks, random, sync};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};

use super::guest::GuestState;

/// The resource table, which the `wasi:io` interfaces work on.
struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// The WASI interfaces [`add_to_linker`] links, without their versions
/// (any 0.2.x import is linked to wasmtime-wasi's 0.2 definitions): what
/// a component may import besides its world, checked before compiling.
pub(super) const LINKED: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/exit",
    "wasi:cli/environment",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// Adds the allowed WASI preview 2 interfaces to `linker` (those named in
/// [`LINKED`]).
pub(super) fn add_to_linker(l: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    type T = GuestState;
    sync::io::error::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    sync::io::poll::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    sync::io::streams::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, <T as WasiClocksView>::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, <T as WasiRandomView>::random)?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, <T as WasiRandomView>::random)?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, <T as WasiRandomView>::random)?;
    cli::exit::add_to_linker::<T, WasiCli>(l, <T as WasiCliView>::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, <T as WasiCliView>::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, <T as WasiCliView>::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, <T as WasiCliView>::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, <T as WasiCliView>::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, <T as WasiCliView>::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, <T as WasiCliView>::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, <T as WasiCliView>::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, <T as WasiCliView>::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, <T as WasiCliView>::cli)?;
    Ok(())
}
