//! A TCP proxy in front of a test server, which a test can cut: the
//! server looks unreachable to the job while it stays up, or its clients
//! lose their connections before the server itself is stopped, or hold
//! one request back for a while (a store that stalls on one write).

use std::io::{Read, Write, copy};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Which requests a stall holds back: those whose bytes it matches.
type Matcher = Box<dyn Fn(&[u8]) -> bool + Send>;

/// Which request to hold back, and for how long.
struct Stall {
    matches: Matcher,
    hold: Duration,
}

/// The armed stall (taken by the request it holds), and whether one has
/// been held.
#[derive(Default)]
struct Stalls {
    armed: Mutex<Option<Stall>>,
    held: AtomicBool,
}

/// A proxy on a free loopback port to a target set once, with
/// [`Proxy::forward_to`]. While it is down, every new connection is
/// closed at once, and the connections it carried were shut down.
pub(crate) struct Proxy {
    /// `127.0.0.1:<port>`.
    pub(crate) addr: String,
    target: Arc<OnceLock<String>>,
    down: Arc<AtomicBool>,
    /// Both ends of every connection carried, to shut them down.
    open: Arc<Mutex<Vec<TcpStream>>>,
    stalls: Arc<Stalls>,
}

impl Proxy {
    /// A proxy listening now and forwarding to `to` (`host:port`).
    pub(crate) fn start(to: &str) -> Self {
        let proxy = Self::listen();
        proxy.forward_to(to);
        proxy
    }

    /// A proxy listening now, whose target is set later: a server that
    /// must know the proxy's address (to advertise it) starts after it.
    /// Connections before then are closed at once.
    pub(crate) fn listen() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let proxy = Proxy {
            addr,
            target: Default::default(),
            down: Default::default(),
            open: Default::default(),
            stalls: Default::default(),
        };
        let (target, down, open) = (proxy.target.clone(), proxy.down.clone(), proxy.open.clone());
        let stalls = proxy.stalls.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Some(server) = target.get().and_then(|t| TcpStream::connect(t).ok()) else {
                    continue;
                };
                // Decided under the lock `set_down` takes, so that a
                // connection is either cut by it or never forwarded.
                let Ok(mut held) = open.lock() else {
                    continue;
                };
                if down.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                ) else {
                    continue;
                };
                held.retain(|s| s.peer_addr().is_ok());
                held.extend([c3, s3]);
                drop(held);
                let (mut c, mut s, mut c2, mut s2) = (client, server, c2, s2);
                let stalls = stalls.clone();
                std::thread::spawn(move || {
                    forward_requests(&mut c, &mut s2, &stalls);
                    let _ = s2.shutdown(Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = copy(&mut s, &mut c2);
                    let _ = c2.shutdown(Shutdown::Both);
                });
            }
        });
        proxy
    }

    /// Sets the target (`host:port`) of the connections from now on.
    pub(crate) fn forward_to(&self, to: &str) {
        let _ = self.target.set(to.trim_start_matches("http://").to_owned());
    }

    /// `http://127.0.0.1:<port>`, for a server spoken to over HTTP.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Holds the next request whose bytes (as read in one piece) satisfy
    /// `matches` for `hold` before it goes on; once.
    pub(crate) fn stall_next(
        &self,
        matches: impl Fn(&[u8]) -> bool + Send + 'static,
        hold: Duration,
    ) {
        let mut armed = self.stalls.armed.lock().unwrap_or_else(|p| p.into_inner());
        *armed = Some(Stall {
            matches: Box::new(matches),
            hold,
        });
    }

    /// Whether a request has been held by [`Proxy::stall_next`].
    pub(crate) fn stalled(&self) -> bool {
        self.stalls.held.load(Ordering::SeqCst)
    }

    /// Cuts the proxy (new connections are closed at once, open ones are
    /// shut down on both sides), or lets connections through again.
    pub(crate) fn set_down(&self, down: bool) {
        let mut held = self.open.lock().unwrap_or_else(|p| p.into_inner());
        self.down.store(down, Ordering::SeqCst);
        if down {
            for stream in held.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Copies a client's bytes to the server, holding back the piece the armed
/// stall matches.
fn forward_requests(from: &mut TcpStream, to: &mut TcpStream, stalls: &Stalls) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let stall = {
            let mut armed = stalls.armed.lock().unwrap_or_else(|p| p.into_inner());
            match armed.as_ref() {
                Some(s) if (s.matches)(&buf[..n]) => armed.take(),
                _ => None,
            }
        };
        if let Some(s) = stall {
            stalls.held.store(true, Ordering::SeqCst);
            std::thread::sleep(s.hold);
        }
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
