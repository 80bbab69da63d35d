//! A TCP proxy on a free port of 127.0.0.1 in front of a server, for links that fail, in
//! one of two ways:
//!
//! - [`Proxy::start`] passes everything on until [`Proxy::cut`] asks it to drop the
//!   connection the client is sending on in the middle of what it sends: how a connection
//!   lost mid-upload looks to both ends (a NAT box forgetting it, a Wi-Fi link going, a
//!   server restarted). The stream is TLS, so the proxy cannot see IMAP commands; it reads
//!   the client's bytes as TLS records instead (a 5-byte header with the length, then the
//!   record) and cuts right after a record of full size: only a long run of data, such as
//!   a message body, fills a record, so the cut falls inside one.
//! - [`Proxy::with_faults`] stalls or cuts connections at random points, for uploads over
//!   a bad link (the ideas of tests/bench/delay_proxy.py, with faults). A connection gets
//!   at most one fault, at a random byte of one direction (the seeded generator makes a
//!   failing run repeatable):
//!   - a cut: both sides closed at once (what the client sees as a reset or a hang-up; the
//!     server drops what it had not got whole);
//!   - a short stall: nothing forwarded for a while shorter than the client's timeout,
//!     then everything, as if the link had hiccupped;
//!   - a long stall: nothing forwarded for longer than the client's timeout; meanwhile the
//!     client gives up and closes its side, and then what it had sent reaches the server
//!     anyway, late, as a stalled link delivers it (the server stores the APPENDs it
//!     finds whole, after the client thought them lost);
//!   - a stall then a cut: what the client sent before giving up never arrives.
//!
//! Each connection is forwarded to the target port by two threads, one per direction. A
//! connection is done once both of its sides are closed: [`Proxy::wait_idle`] waits for
//! that, as a rerun from cron comes once the server is done with the last run.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A TLS record at least this long is full (16 KiB of data, its header and tag).
const FULL_RECORD: usize = 16 * 1024;
/// How long the server side of a cut connection hears nothing before its end: ample for
/// the server to take in the records passed before the cut.
const HOLD_AFTER_CUT: Duration = Duration::from_secs(1);

/// How faults are chosen.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Seed of the generator.
    pub seed: u64,
    /// Chance (in percent) that a connection gets a fault.
    pub chance: u64,
    /// A fault strikes within this many bytes of its direction.
    pub within: u64,
    /// The client's timeout: stalls are chosen shorter, or up to half again longer.
    pub timeout: Duration,
}

/// A small, seeded generator (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A duration between `low` and `high`.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = (high - low).as_millis() as u64;
        low + Duration::from_millis(self.below(span + 1))
    }
}

/// The running proxy; stopped on drop.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What the proxy and the connections it carries share.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Connections not yet closed on both sides.
    open: AtomicUsize,
    /// Failures of the proxy itself (not of the connections it carries).
    errors: Mutex<Vec<String>>,
    /// A cut is asked for: the next full record from a client is the last passed on.
    cut_asked: AtomicBool,
    /// Connections cut so far by [`Proxy::cut`].
    cuts: AtomicUsize,
    /// The client's bytes passed to the server on the connection that was cut.
    cut_at: Mutex<Option<u64>>,
    /// Random faults are off for the connections to come.
    faults_off: AtomicBool,
    /// The fault each connection got, and those that struck.
    events: Mutex<Vec<String>>,
}

impl Proxy {
    /// Starts a proxy to 127.0.0.1:`target` that passes everything on until [`Proxy::cut`].
    pub fn start(target: u16) -> Proxy {
        Proxy::listen(target, None)
    }

    /// Starts a proxy to 127.0.0.1:`target` that strikes faults chosen by `plan`.
    pub fn with_faults(target: u16, plan: Plan) -> Proxy {
        Proxy::listen(target, Some(plan))
    }

    fn listen(target: u16, plan: Option<Plan>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let shared2 = shared.clone();
        let thread = std::thread::spawn(move || {
            let mut rng = Rng::new(plan.map_or(1, |p| p.seed));
            for (n, client) in listener.incoming().enumerate() {
                if shared2.stop.load(Ordering::SeqCst) {
                    break;
                }
                let client = match client {
                    Ok(c) => c,
                    Err(_) if plan.is_some() => continue,
                    Err(e) => {
                        shared2.errors.lock().unwrap().push(format!("accept: {e}"));
                        continue;
                    }
                };
                let server = match TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], target))) {
                    Ok(s) => s,
                    // On a faulty link a connection that goes nowhere is one more fault.
                    Err(_) if plan.is_some() => continue,
                    Err(e) => {
                        shared2.errors.lock().unwrap().push(format!("connecting to port {target}: {e}"));
                        continue;
                    }
                };
                shared2.open.fetch_add(1, Ordering::SeqCst);
                let shared = shared2.clone();
                match plan {
                    None => {
                        std::thread::spawn(move || {
                            carry(client, server, &shared);
                            shared.open.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Some(plan) => {
                        let faults_on = !shared2.faults_off.load(Ordering::SeqCst);
                        let fault = faults_on.then(|| choose(&mut rng, &plan)).flatten();
                        shared2.events.lock().unwrap().push(format!("connection {n}: {fault:?}"));
                        std::thread::spawn(move || {
                            serve(client, server, fault, shared.clone(), n);
                            shared.open.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                }
            }
        });
        Proxy { addr, shared, thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
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

    /// Connections cut so far by [`Proxy::cut`].
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Turns random faults on or off for the connections to come.
    pub fn faults(&self, on: bool) {
        self.shared.faults_off.store(!on, Ordering::SeqCst);
    }

    /// The fault each connection got so far, and those that struck (`struck`), for
    /// failure messages.
    pub fn events(&self) -> Vec<String> {
        self.shared.events.lock().unwrap().clone()
    }

    /// Waits until every connection is closed on both sides (at most `limit`).
    pub fn wait_idle(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.shared.open.load(Ordering::SeqCst) > 0 {
            assert!(Instant::now() < until, "proxy connections still open after {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
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
        if io::copy(&mut from, &mut to).is_err() {
            // The client's side was cut: the server's answers go nowhere, but are read
            // until the server hangs up, so that closing this socket with answers unread
            // cannot reset the connection before the server has read what was passed to
            // it (a reset made it drop up to two records and end between APPENDs).
            let _ = io::copy(&mut from, &mut io::sink());
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let cut = forward_records(&client, &server, shared);
    match cut {
        Ok(Some(passed)) => {
            *shared.cut_at.lock().unwrap() = Some(passed);
            // The client loses the link at once: what it sends from now on is lost. The
            // server hears nothing more for a while, as on a dead link, then the end of the
            // stream: Dovecot's TLS front (imap-login) drops what it had not yet handed to
            // the IMAP process when it sees the end, so an end right behind the last record
            // could make the server forget up to two records and end between APPENDs.
            let _ = client.shutdown(Shutdown::Both);
            std::thread::sleep(HOLD_AFTER_CUT);
            let _ = server.shutdown(Shutdown::Write);
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

#[derive(Clone, Copy, Debug)]
enum FaultKind {
    Cut,
    Stall(Duration),
    StallThenCut(Duration),
}

#[derive(Clone, Copy, Debug)]
struct Fault {
    /// Client to server (else server to client).
    upstream: bool,
    at: u64,
    kind: FaultKind,
}

/// What the two directions of one connection share.
struct Link {
    client: TcpStream,
    server: TcpStream,
    /// Forwarding waits until then.
    stalled_until: Mutex<Option<Instant>>,
    woken: Condvar,
    cut: AtomicBool,
    /// Where a fault that strikes is told, with the connection's number.
    shared: Arc<Shared>,
    n: usize,
}

impl Link {
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
        self.woken.notify_all();
    }

    /// Waits while the link is stalled; false once it was cut.
    fn wait_open(&self) -> bool {
        let mut until = self.stalled_until.lock().unwrap();
        while let Some(t) = *until {
            let now = Instant::now();
            if now >= t || self.cut.load(Ordering::SeqCst) {
                *until = None;
                break;
            }
            until = self.woken.wait_timeout(until, t - now).unwrap().0;
        }
        !self.cut.load(Ordering::SeqCst)
    }
}

fn choose(rng: &mut Rng, plan: &Plan) -> Option<Fault> {
    if rng.below(100) >= plan.chance {
        return None;
    }
    let t = plan.timeout;
    let kind = match rng.below(10) {
        0..=3 => FaultKind::Cut,
        4..=5 => FaultKind::Stall(rng.between(t / 10, t * 3 / 4)),
        6..=8 => FaultKind::Stall(rng.between(t * 5 / 4, t * 3 / 2)),
        _ => FaultKind::StallThenCut(rng.between(t * 5 / 4, t * 3 / 2)),
    };
    // Mostly in what the client sends (the APPENDs), sometimes in the answers.
    let upstream = rng.below(5) > 0;
    let within = if upstream { plan.within } else { plan.within / 10 };
    Some(Fault { upstream, at: rng.below(within), kind })
}

/// Passes one connection on both ways, striking `fault` on the way.
fn serve(client: TcpStream, server: TcpStream, fault: Option<Fault>, shared: Arc<Shared>, n: usize) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let link = Arc::new(Link {
        client: client.try_clone().unwrap(),
        server: server.try_clone().unwrap(),
        stalled_until: Mutex::new(None),
        woken: Condvar::new(),
        cut: AtomicBool::new(false),
        shared,
        n,
    });
    let up_fault = fault.filter(|f| f.upstream);
    let down_fault = fault.filter(|f| !f.upstream);
    let link2 = link.clone();
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = std::thread::spawn(move || pump(c2, s2, &link2, up_fault, true));
    pump(server, client, &link, down_fault, false);
    let _ = up.join();
}

/// Forwards `from` to `to` until one side ends, striking `fault` on the way.
fn pump(mut from: TcpStream, mut to: TcpStream, link: &Link, mut fault: Option<Fault>, upstream: bool) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut count = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                if link.cut.load(Ordering::SeqCst) {
                    return;
                }
                // The end of what this side sends goes through, after any stall.
                link.wait_open();
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        if let Some(f) = fault.filter(|f| count + n as u64 > f.at) {
            fault = None;
            let before = (f.at - count) as usize;
            if !link.wait_open() || to.write_all(&chunk[..before]).is_err() {
                return;
            }
            chunk = &chunk[before..];
            link.shared
                .events
                .lock()
                .unwrap()
                .push(format!("connection {}: struck {:?} at byte {}", link.n, f.kind, f.at));
            match f.kind {
                FaultKind::Cut => {
                    link.cut();
                    return;
                }
                FaultKind::Stall(d) => {
                    *link.stalled_until.lock().unwrap() = Some(Instant::now() + d);
                }
                FaultKind::StallThenCut(d) => {
                    *link.stalled_until.lock().unwrap() = Some(Instant::now() + d);
                    link.wait_open();
                    link.cut();
                    return;
                }
            }
        }
        count += n as u64;
        if !link.wait_open() {
            return;
        }
        if to.write_all(chunk).is_err() {
            if upstream {
                link.cut();
                return;
            }
            // The client is gone: the server's answers are read to the end, so it is
            // never held up writing them.
            let _ = io::copy(&mut from, &mut io::sink());
            return;
        }
    }
}
