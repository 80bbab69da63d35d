//! A TCP proxy on a free local port in front of a server, which can drop a connection in
//! the middle of what the client is sending: how a connection lost mid-upload looks to
//! both ends (a NAT box forgetting it, a Wi-Fi link going, a server restarted).
//!
//! The stream is TLS, so the proxy cannot see IMAP commands; it reads the client's bytes
//! as TLS records instead (a 5-byte header with the length, then the record) and cuts
//! right after a record of full size: only a long run of data, such as a message body,
//! fills a record, so the cut falls inside one. Every other connection, and the same one
//! until [`Proxy::cut`] is called, is passed on untouched.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A TLS record at least this long is full (16 KiB of data, its header and tag).
const FULL_RECORD: usize = 16 * 1024;

/// The running proxy; stopped on drop.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// A cut is asked for: the next full record from a client is the last passed on.
    cut_asked: AtomicBool,
    /// Connections cut so far.
    cuts: AtomicUsize,
    /// The client's bytes passed to the server on the connection that was cut.
    cut_at: Mutex<Option<u64>>,
    /// Failures of the proxy itself (not of the connections it carries).
    errors: Mutex<Vec<String>>,
}

impl Proxy {
    /// Starts a proxy to 127.0.0.1:`target`.
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let shared2 = shared.clone();
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared2.stop.load(Ordering::SeqCst) {
                    break;
                }
                let client = match client {
                    Ok(c) => c,
                    Err(e) => {
                        shared2.errors.lock().unwrap().push(format!("accept: {e}"));
                        continue;
                    }
                };
                let server = match TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], target))) {
                    Ok(s) => s,
                    Err(e) => {
                        shared2.errors.lock().unwrap().push(format!("connecting to port {target}: {e}"));
                        continue;
                    }
                };
                let shared = shared2.clone();
                std::thread::spawn(move || carry(client, server, &shared));
            }
        });
        Proxy { port, shared, thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Asks for the connection the client is sending on to be dropped right after its next
    /// full-size TLS record; waits (up to `within`) for that to happen and returns how many
    /// of the client's bytes the server got on that connection.
    #[track_caller]
    pub fn cut(&self, within: Duration) -> u64 {
        self.shared.cut_asked.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + within;
        while self.shared.cuts.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "no full TLS record came from the client within {within:?} to cut after"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        self.shared.cut_at.lock().unwrap().expect("set with the cut")
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if !std::thread::panicking() {
            let errors = self.shared.errors.lock().unwrap();
            assert!(errors.is_empty(), "the proxy failed: {}", errors.join("; "));
        }
    }
}

/// Passes one connection on both ways until either end closes it, or a cut asked for
/// falls on it.
fn carry(client: TcpStream, server: TcpStream, shared: &Shared) {
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else { return };
    let back = std::thread::spawn(move || {
        let (mut from, mut to) = (server2, client2);
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
    let cut = forward_records(&client, &server, shared);
    match cut {
        Ok(Some(passed)) => {
            *shared.cut_at.lock().unwrap() = Some(passed);
            // Both ends at once: what either end sends from now on is lost, as on a dead link.
            let _ = server.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            shared.cuts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(None) | Err(_) => {
            let _ = server.shutdown(Shutdown::Write);
        }
    }
    let _ = back.join();
}

/// Passes the client's records to the server; `Some(bytes passed)` when a cut was made
/// after a full record, `None` when the client closed.
fn forward_records(mut client: &TcpStream, mut server: &TcpStream, shared: &Shared) -> io::Result<Option<u64>> {
    let mut passed = 0u64;
    let mut header = [0u8; 5];
    loop {
        match client.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut record = vec![0u8; len];
        client.read_exact(&mut record)?;
        server.write_all(&header)?;
        server.write_all(&record)?;
        passed += (header.len() + len) as u64;
        if len >= FULL_RECORD && shared.cut_asked.swap(false, Ordering::SeqCst) {
            return Ok(Some(passed));
        }
    }
}
