//! A TCP proxy on 127.0.0.1 that stalls or cuts connections at random points, for
//! uploads over a bad link (the ideas of tests/bench/delay_proxy.py, with faults).
//!
//! Each connection is forwarded to the target port by two threads, one per direction. A
//! connection gets at most one fault, at a random byte of one direction (the seeded
//! generator makes a failing run repeatable):
//! - a cut: both sides closed at once (what the client sees as a reset or a hang-up; the
//!   server drops what it had not got whole);
//! - a short stall: nothing forwarded for a while shorter than the client's timeout,
//!   then everything, as if the link had hiccupped;
//! - a long stall: nothing forwarded for longer than the client's timeout; meanwhile the
//!   client gives up and closes its side, and then what it had sent reaches the server
//!   anyway, late, as a stalled link delivers it (the server stores the APPENDs it
//!   finds whole, after the client thought them lost);
//! - a stall then a cut: what the client sent before giving up never arrives.
//!
//! A connection is done once both of its sides are closed: [`FaultProxy::wait_idle`]
//! waits for that, as a rerun from cron comes once the server is done with the last run.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

#[derive(Clone, Copy, Debug)]
enum Kind {
    Cut,
    Stall(Duration),
    StallThenCut(Duration),
}

#[derive(Clone, Copy, Debug)]
struct Fault {
    /// Client to server (else server to client).
    upstream: bool,
    at: u64,
    kind: Kind,
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
    events: Arc<Mutex<Vec<String>>>,
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

/// The running proxy; stopped on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    faults_on: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    events: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Forwards a free local port to `target` (a port on 127.0.0.1).
    pub fn start(target: u16, plan: Plan) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let faults_on = Arc::new(AtomicBool::new(true));
        let open = Arc::new(AtomicUsize::new(0));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (stop2, faults2, open2, events2) = (stop.clone(), faults_on.clone(), open.clone(), events.clone());
        let thread = std::thread::spawn(move || {
            let mut rng = Rng::new(plan.seed);
            for (n, client) in listener.incoming().enumerate() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let fault = faults2.load(Ordering::SeqCst).then(|| choose(&mut rng, &plan)).flatten();
                events2.lock().unwrap().push(format!("connection {n}: {fault:?}"));
                open2.fetch_add(1, Ordering::SeqCst);
                let (open3, events3) = (open2.clone(), events2.clone());
                std::thread::spawn(move || {
                    serve(client, server, fault, events3, n);
                    open3.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        FaultProxy { addr, stop, faults_on, open, events, thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Turns faults on or off for the connections to come.
    pub fn faults(&self, on: bool) {
        self.faults_on.store(on, Ordering::SeqCst);
    }

    /// The fault each connection got so far, and those that struck (`struck`), for
    /// failure messages.
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until every connection is closed on both sides (at most `limit`).
    pub fn wait_idle(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.open.load(Ordering::SeqCst) > 0 {
            assert!(Instant::now() < until, "proxy connections still open after {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn choose(rng: &mut Rng, plan: &Plan) -> Option<Fault> {
    if rng.below(100) >= plan.chance {
        return None;
    }
    let t = plan.timeout;
    let kind = match rng.below(10) {
        0..=3 => Kind::Cut,
        4..=5 => Kind::Stall(rng.between(t / 10, t * 3 / 4)),
        6..=8 => Kind::Stall(rng.between(t * 5 / 4, t * 3 / 2)),
        _ => Kind::StallThenCut(rng.between(t * 5 / 4, t * 3 / 2)),
    };
    // Mostly in what the client sends (the APPENDs), sometimes in the answers.
    let upstream = rng.below(5) > 0;
    let within = if upstream { plan.within } else { plan.within / 10 };
    Some(Fault { upstream, at: rng.below(within), kind })
}

fn serve(client: TcpStream, server: TcpStream, fault: Option<Fault>, events: Arc<Mutex<Vec<String>>>, n: usize) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let link = Arc::new(Link {
        client: client.try_clone().unwrap(),
        server: server.try_clone().unwrap(),
        stalled_until: Mutex::new(None),
        woken: Condvar::new(),
        cut: AtomicBool::new(false),
        events,
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
            link.events.lock().unwrap().push(format!("connection {}: struck {:?} at byte {}", link.n, f.kind, f.at));
            match f.kind {
                Kind::Cut => {
                    link.cut();
                    return;
                }
                Kind::Stall(d) => {
                    *link.stalled_until.lock().unwrap() = Some(Instant::now() + d);
                }
                Kind::StallThenCut(d) => {
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
            let _ = std::io::copy(&mut from, &mut std::io::sink());
            return;
        }
    }
}
