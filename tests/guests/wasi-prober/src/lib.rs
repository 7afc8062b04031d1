//! Reaches for what WASI offers a language runtime, chosen by config
//! `mode`, once per element, and emits what it found as the element's
//! new value (`<value> <finding>`), so a test reads the guest's view:
//!
//! - `read-file`: reads `/etc/passwd` (there are no preopened folders, so
//!   this fails with an error the guest catches);
//! - `write-file`: creates `out.txt` in the current folder;
//! - `connect`: connects a TCP socket to config `addr` (denied);
//! - `lookup`: looks up config `host` (denied);
//! - `sleep`: sleeps an hour (the clock's pollables are ready at once, so
//!   it returns at once) and emits how long it took by the monotonic clock;
//! - `sleep-loop`: sleeps 10 ms at a time until an hour has passed by the
//!   monotonic clock (it never has: the call times out);
//! - `env`: counts the environment's variables and the arguments;
//! - `stdin`: reads stdin to its end;
//! - `print`: writes a line to stdout and one to stderr;
//! - `exit`: calls `std::process::exit(3)` (WASI 0.2 passes on only
//!   whether the status is 0).

use std::io::Read;
use std::time::{Duration, Instant};

use weir_sdk::prelude::*;

struct Prober {
    mode: String,
    addr: String,
    host: String,
}

impl Operator for Prober {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        Ok(Prober {
            mode: ctx.get("mode").unwrap_or("sleep").to_owned(),
            addr: ctx.get("addr").unwrap_or("127.0.0.1:9").to_owned(),
            host: ctx.get("host").unwrap_or("localhost").to_owned(),
        })
    }

    fn process(&mut self, e: Element<'_>, ctx: &mut Context) {
        let finding = self.probe();
        let value = format!("{} {finding}", e.value_str().unwrap_or("?"));
        ctx.emit(e.key, value.as_bytes(), e.timestamp);
    }
}

impl Prober {
    fn probe(&self) -> String {
        match self.mode.as_str() {
            "read-file" => match std::fs::read("/etc/passwd") {
                Ok(b) => format!("read {} bytes", b.len()),
                Err(e) => format!("error: {e}"),
            },
            "write-file" => match std::fs::write("out.txt", b"x") {
                Ok(()) => "wrote".to_owned(),
                Err(e) => format!("error: {e}"),
            },
            "connect" => match std::net::TcpStream::connect(&self.addr) {
                Ok(_) => "connected".to_owned(),
                Err(e) => format!("error: {e}"),
            },
            "lookup" => {
                use std::net::ToSocketAddrs;
                match (self.host.as_str(), 80).to_socket_addrs() {
                    Ok(a) => format!("resolved {}", a.count()),
                    Err(e) => format!("error: {e}"),
                }
            }
            "sleep" => {
                let start = Instant::now();
                std::thread::sleep(Duration::from_secs(3600));
                format!("slept {} ms", start.elapsed().as_millis())
            }
            "sleep-loop" => {
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(3600) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                "an hour passed".to_owned()
            }
            "env" => format!(
                "{} variables, {} arguments",
                std::env::vars_os().count(),
                std::env::args_os().count()
            ),
            "stdin" => {
                let mut buf = Vec::new();
                match std::io::stdin().read_to_end(&mut buf) {
                    Ok(n) => format!("stdin gave {n} bytes"),
                    Err(e) => format!("error: {e}"),
                }
            }
            "print" => {
                println!("prober says hello on stdout");
                eprintln!("prober says hello on stderr");
                "printed".to_owned()
            }
            "exit" => std::process::exit(3),
            other => format!("unknown mode {other}"),
        }
    }
}

export_operator!(Prober);
