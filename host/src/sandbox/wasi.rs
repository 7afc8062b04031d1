//! The WASI a guest gets: every WASI 0.2 interface a language runtime
//! imports, with nothing behind it.
//!
//! A component built by componentize-py or componentize-js imports all of
//! WASI 0.2, so all of it is linked, and none of it reaches outside the
//! operator or waits:
//! - no preopened directories, so opening a file fails with an error the
//!   guest sees;
//! - no network: creating a socket and looking up a name are denied;
//! - no environment and no arguments; stdin is empty;
//! - stdout and stderr are lines in the job's log (`stdio`), rate-limited
//!   with the world's `log` import;
//! - the wall clock reads the time, random returns bytes;
//! - the monotonic clock reads the time, and its pollables are ready at
//!   once (`clock`): an epoch deadline interrupts running guest code but
//!   not a host call that blocks, so nothing a guest can call may block;
//! - `exit` ends the call with an error, which fails the task as a trap.
//!
//! Operators read time through the world's `timers` interface.

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets, sync};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

use super::clock::HasClock;
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
    "wasi:clocks/monotonic-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
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
    clocks::monotonic_clock::add_to_linker::<T, HasClock>(l, GuestState::clock)?;
    sync::filesystem::types::add_to_linker::<T, WasiFilesystem>(
        l,
        <T as WasiFilesystemView>::filesystem,
    )?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(
        l,
        <T as WasiFilesystemView>::filesystem,
    )?;
    let sockets = <T as WasiSocketsView>::sockets;
    sockets::network::add_to_linker::<T, WasiSockets>(l, &Default::default(), sockets)?;
    sockets::instance_network::add_to_linker::<T, WasiSockets>(l, sockets)?;
    sync::sockets::tcp::add_to_linker::<T, WasiSockets>(l, sockets)?;
    sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, sockets)?;
    sync::sockets::udp::add_to_linker::<T, WasiSockets>(l, sockets)?;
    sync::sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, sockets)?;
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, sockets)?;
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
