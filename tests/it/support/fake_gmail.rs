//! A scripted Gmail: the folders, capabilities and answers of Google's IMAP service as its
//! documentation ("IMAP Extensions", developers.google.com/gmail/imap/imap-extensions;
//! "Gmail bandwidth limits", support.google.com/a/answer/1071518) and reported sessions
//! show them, for the tests of Gmail mode.
//!
//! - One message store; folders are views of it. `[Gmail]/All Mail` (`\All`) holds every
//!   message but those in Trash and Spam; INBOX, Sent Mail, Drafts, Starred and Important
//!   hold the messages with the system labels `\Inbox`, `\Sent`, `\Draft`, `\Starred`,
//!   `\Important`; each user label is a folder of its name (modified UTF-7 on the wire).
//!   Every folder numbers its messages with UIDs of its own; a label added between runs
//!   gives the message the folder's next UID, a label removed takes it out.
//! - `X-GM-EXT-1`: `X-GM-MSGID`, `X-GM-THRID` and `X-GM-LABELS` in FETCH,
//!   `UID STORE +X-GM-LABELS`; SPECIAL-USE attributes on LIST; `CONDSTORE`, `LIST-STATUS`,
//!   `LITERAL-`, `UIDPLUS` as the capability line after login says.
//! - Folder names in English (`[Gmail]/...`) or German (`[Google Mail]/Alle Nachrichten`).
//! - The download cap: once the body bytes served have reached it, a body fetch is answered
//!   `* BYE [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)` and the
//!   connection closed, on this and every later connection (the command that passes it is
//!   still answered whole).
//! - At most 15 connections at once; the 16th is turned away
//!   (`* BYE [ALERT] Too many simultaneous connections. (Failure)`).
//!
//! It counts the body bytes it serves ([`FakeGmail::served`]). A command it does not know
//! fails the test when the server is dropped, as with [`super::fake_imap`].

use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::{ServerConnection, StreamOwned};

use super::fake_imap::{args, client_left, header_fields, in_set, lock, send, tls_config, Tls};
use super::TempDir;

/// Gmail's limit of simultaneous IMAP connections per account.
pub const MAX_CONNECTIONS: usize = 15;

/// The capabilities before login (a real session's greeting-time CAPABILITY).
const CAPS_BEFORE: &str = "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 XYZZY SASL-IR \
                           AUTH=XOAUTH2 AUTH=PLAIN AUTH=PLAIN-CLIENTTOKEN AUTH=OAUTHBEARER";
/// The capabilities after login.
const CAPS_AFTER: &str = "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS \
                          COMPRESS=DEFLATE ENABLE MOVE CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED LIST-STATUS \
                          LITERAL- SPECIAL-USE APPENDLIMIT=35651584";
/// What Gmail says past the download cap.
pub const OVER_CAP: &str = "[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)";

/// The language of the system folders' names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    English,
    German,
}

/// One message of the store.
#[derive(Clone, Debug)]
pub struct Message {
    pub msgid: u64,
    pub thrid: u64,
    pub body: Vec<u8>,
    /// Its labels as Gmail names them on the wire: `\Inbox`, `\Sent`, `\Draft`,
    /// `\Starred`, `\Important`, `\Trash`, `\Spam`, or a user label (modified UTF-7).
    pub labels: Vec<String>,
    pub flags: Vec<String>,
    modseq: u64,
}

impl Message {
    pub fn new(msgid: u64, thrid: u64, body: Vec<u8>, labels: &[&str]) -> Message {
        Message { msgid, thrid, body, labels: labels.iter().map(|l| l.to_string()).collect(), flags: vec![], modseq: 1 }
    }

    fn has(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l == label)
    }
}

/// Which messages a folder shows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    All,
    Label(String),
    Trash,
    Spam,
}

/// A folder: a numbered view of the store.
#[derive(Clone, Debug)]
struct View {
    name: String,
    attrs: &'static str,
    kind: Kind,
    uidvalidity: u32,
    /// `(uid, index in the store)`, ascending by UID.
    uids: Vec<(u32, usize)>,
    uidnext: u32,
}

impl View {
    fn shows(&self, m: &Message) -> bool {
        let (trash, spam) = (m.has("\\Trash"), m.has("\\Spam"));
        match &self.kind {
            Kind::All => !trash && !spam,
            Kind::Trash => trash,
            Kind::Spam => spam && !trash,
            Kind::Label(l) => !trash && !spam && m.has(l),
        }
    }
}

struct Store {
    lang: Lang,
    messages: Vec<Message>,
    views: Vec<View>,
    modseq: u64,
}

impl Store {
    /// The system folders, then one per user label; each view brought up to date.
    fn sync(&mut self) {
        let (prefix, names) = match self.lang {
            Lang::English => ("[Gmail]", ["All Mail", "Sent Mail", "Drafts", "Starred", "Important", "Trash", "Spam"]),
            Lang::German => (
                "[Google Mail]",
                ["Alle Nachrichten", "Gesendet", "Entw&APw-rfe", "Markiert", "Wichtig", "Papierkorb", "Spam"],
            ),
        };
        let system: [(&str, &'static str, Kind); 7] = [
            (names[0], "\\All \\HasNoChildren", Kind::All),
            (names[1], "\\HasNoChildren \\Sent", Kind::Label("\\Sent".into())),
            (names[2], "\\Drafts \\HasNoChildren", Kind::Label("\\Draft".into())),
            (names[3], "\\Flagged \\HasNoChildren", Kind::Label("\\Starred".into())),
            (names[4], "\\HasNoChildren \\Important", Kind::Label("\\Important".into())),
            (names[5], "\\HasNoChildren \\Trash", Kind::Trash),
            (names[6], "\\HasNoChildren \\Junk", Kind::Spam),
        ];
        let mut wanted: Vec<(String, &'static str, Kind)> =
            vec![("INBOX".into(), "\\HasNoChildren", Kind::Label("\\Inbox".into()))];
        wanted.extend(system.into_iter().map(|(n, a, k)| (format!("{prefix}/{n}"), a, k)));
        let mut user: Vec<String> =
            self.messages.iter().flat_map(|m| m.labels.iter()).filter(|l| !l.starts_with('\\')).cloned().collect();
        user.sort();
        user.dedup();
        wanted.extend(user.into_iter().map(|l| (l.clone(), "\\HasNoChildren", Kind::Label(l))));
        for (name, attrs, kind) in wanted {
            if !self.views.iter().any(|v| v.name == name) {
                let uidvalidity = 600_000 + self.views.len() as u32;
                self.views.push(View { name, attrs, kind, uidvalidity, uids: vec![], uidnext: 1 });
            }
        }
        let messages = &self.messages;
        for v in &mut self.views {
            let shown: Vec<bool> = messages.iter().map(|m| v.shows(m)).collect();
            v.uids.retain(|&(_, i)| shown[i]);
            for (i, &show) in shown.iter().enumerate() {
                if show && !v.uids.iter().any(|&(_, k)| k == i) {
                    v.uids.push((v.uidnext, i));
                    v.uidnext += 1;
                }
            }
        }
    }

    fn view(&self, name: &str) -> Option<&View> {
        self.views.iter().find(|v| v.name == name)
    }

    fn highest_modseq(&self, v: &View) -> u64 {
        v.uids.iter().map(|&(_, i)| self.messages[i].modseq).max().unwrap_or(1)
    }

    fn status(&self, v: &View) -> String {
        format!(
            "* STATUS \"{}\" (UIDVALIDITY {} UIDNEXT {} MESSAGES {} HIGHESTMODSEQ {})\r\n",
            v.name,
            v.uidvalidity,
            v.uidnext,
            v.uids.len(),
            self.highest_modseq(v)
        )
    }
}

/// The running persona; stopped on drop.
pub struct FakeGmail {
    addr: SocketAddr,
    dir: TempDir,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    user: String,
    password: String,
    store: Mutex<Store>,
    /// Body bytes served (whole and partial bodies).
    served: AtomicU64,
    /// Header bytes served alone (`HEADER.FIELDS`, `HEADER`): the client's evidence of
    /// the mailstore, a rebase's comparison; not mail downloaded.
    headers: AtomicU64,
    /// The download cap, in body bytes; past it every body fetch is refused.
    cap: Mutex<Option<u64>>,
    over_cap: AtomicBool,
    active: AtomicUsize,
    most_active: AtomicUsize,
    refused: AtomicUsize,
    log: Mutex<Vec<Vec<String>>>,
    errors: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl FakeGmail {
    /// Starts a Gmail for `user`/`password` (an app password) holding `messages`.
    pub fn start(user: &str, password: &str, lang: Lang, messages: Vec<Message>) -> FakeGmail {
        let dir = TempDir::new("fake-gmail");
        let tls = tls_config(&dir);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut store = Store { lang, messages, views: vec![], modseq: 1 };
        store.sync();
        let shared = Arc::new(Shared {
            user: user.into(),
            password: password.into(),
            store: Mutex::new(store),
            served: AtomicU64::new(0),
            headers: AtomicU64::new(0),
            cap: Mutex::new(None),
            over_cap: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            most_active: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            log: Mutex::new(vec![]),
            errors: Mutex::new(vec![]),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let thread = std::thread::spawn(move || {
            std::thread::scope(|scope| {
                for tcp in listener.incoming() {
                    if sh.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(tcp) = tcp else { continue };
                    let n = {
                        let mut log = lock(&sh.log);
                        log.push(vec![]);
                        log.len() - 1
                    };
                    let (sh, tls) = (&sh, &tls);
                    scope.spawn(move || {
                        let now = sh.active.fetch_add(1, Ordering::SeqCst) + 1;
                        sh.most_active.fetch_max(now, Ordering::SeqCst);
                        let Ok(conn) = ServerConnection::new(tls.clone()) else { return };
                        let mut s: Tls = BufReader::new(StreamOwned::new(conn, tcp));
                        if now > MAX_CONNECTIONS {
                            sh.refused.fetch_add(1, Ordering::SeqCst);
                            let _ = send(&mut s, b"* BYE [ALERT] Too many simultaneous connections. (Failure)\r\n");
                        } else if let Err(e) = serve(sh, &mut s, n) {
                            lock(&sh.errors).push(format!("connection {n}: {e}"));
                        }
                        s.get_mut().conn.send_close_notify();
                        let _ = io::Write::flush(s.get_mut());
                        sh.active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
        });
        FakeGmail { addr, dir, shared, thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The PEM file of the server's certificate, for `--ca-file`.
    pub fn ca_file(&self) -> String {
        self.dir.join("cert.pem").to_string_lossy().into_owned()
    }

    /// Body bytes served so far.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::SeqCst)
    }

    /// Header bytes served alone so far (`HEADER.FIELDS`, `HEADER`).
    pub fn headers_served(&self) -> u64 {
        self.shared.headers.load(Ordering::SeqCst)
    }

    /// Sets the download cap: body bytes served from now on before every body fetch is
    /// refused (`None`: no cap).
    pub fn set_cap(&self, bytes: Option<u64>) {
        *lock(&self.shared.cap) = bytes.map(|b| b + self.served());
        self.shared.over_cap.store(false, Ordering::SeqCst);
    }

    /// The most connections served at once, and how many were turned away.
    pub fn connections(&self) -> (usize, usize) {
        (self.shared.most_active.load(Ordering::SeqCst), self.shared.refused.load(Ordering::SeqCst))
    }

    /// The commands received (tags left out), one list per connection.
    pub fn commands(&self) -> Vec<Vec<String>> {
        lock(&self.shared.log).clone()
    }

    /// Gives the message `msgid` the labels `labels` (as a user does in the web interface).
    pub fn set_labels(&self, msgid: u64, labels: &[&str]) {
        let mut st = lock(&self.shared.store);
        st.modseq += 1;
        let modseq = st.modseq;
        let m = st.messages.iter_mut().find(|m| m.msgid == msgid).expect("no such message");
        m.labels = labels.iter().map(|l| l.to_string()).collect();
        m.modseq = modseq;
        st.sync();
    }

    /// The store's messages as they are now.
    pub fn messages(&self) -> Vec<Message> {
        lock(&self.shared.store).messages.clone()
    }

    /// Each folder's name and its messages' `(uid, msgid)`.
    pub fn folders(&self) -> Vec<(String, Vec<(u32, u64)>)> {
        let st = lock(&self.shared.store);
        st.views
            .iter()
            .map(|v| (v.name.clone(), v.uids.iter().map(|&(u, i)| (u, st.messages[i].msgid)).collect()))
            .collect()
    }

    /// Fails the test if serving went wrong so far.
    #[track_caller]
    pub fn assert_no_errors(&self) {
        let errors = lock(&self.shared.errors);
        assert!(errors.is_empty(), "the fake Gmail failed:\n{}", errors.join("\n"));
    }
}

impl Drop for FakeGmail {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        let joined = self.thread.take().map_or(Ok(()), JoinHandle::join);
        if std::thread::panicking() {
            return;
        }
        assert!(joined.is_ok(), "the fake Gmail's thread panicked");
        self.assert_no_errors();
    }
}

/// What one connection has open.
#[derive(Default)]
struct Conn {
    logged_in: bool,
    selected: Option<String>,
}

fn serve(sh: &Shared, s: &mut Tls, n: usize) -> io::Result<()> {
    s.get_ref().sock.set_read_timeout(Some(Duration::from_secs(90)))?;
    send(s, format!("* OK Gimap ready for requests from 127.0.0.1 x{n}\r\n").as_bytes())?;
    let mut conn = Conn::default();
    loop {
        let mut line = String::new();
        match s.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if line.is_empty() && client_left(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
        let line = line.trim_end().to_string();
        let (tag, cmd) = line.split_once(' ').unwrap_or((&line, ""));
        lock(&sh.log)[n].push(cmd.to_string());
        let (verb, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
        let verb = verb.to_ascii_uppercase();
        if verb == "APPEND" {
            append(sh, s, &conn, tag, rest)?;
            continue;
        }
        let mut out = Vec::new();
        let go_on = answer(sh, &mut conn, tag, &verb, rest, &mut out);
        send(s, &out)?;
        if !go_on {
            // Closed with the client's pipelined commands unread, the socket would send a
            // reset and the client's kernel drop the BYE unread: stop sending, then take
            // what the client sends until it leaves.
            s.get_mut().conn.send_close_notify();
            let _ = io::Write::flush(s.get_mut());
            let tcp = &mut s.get_mut().sock;
            let _ = tcp.shutdown(std::net::Shutdown::Write);
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = io::copy(tcp, &mut io::sink());
            return Ok(());
        }
    }
}

/// Answers one command into `out`; false when the connection ends after it.
fn answer(sh: &Shared, conn: &mut Conn, tag: &str, verb: &str, rest: &str, out: &mut Vec<u8>) -> bool {
    let mut put = |s: String| out.extend_from_slice(s.as_bytes());
    match verb {
        "CAPABILITY" => {
            put(format!("* CAPABILITY {}\r\n", if conn.logged_in { CAPS_AFTER } else { CAPS_BEFORE }));
            put(format!("{tag} OK Thats all she wrote! x\r\n"));
        }
        "LOGIN" => match args(rest).as_slice() {
            [u, p] if *u == sh.user && *p == sh.password => {
                conn.logged_in = true;
                put(format!("* CAPABILITY {CAPS_AFTER}\r\n{tag} OK {u} authenticated (Success)\r\n"));
            }
            _ => put(format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n")),
        },
        "LOGOUT" => {
            put(format!("* BYE LOGOUT Requested\r\n{tag} OK 73 good day (Success)\r\n"));
            return false;
        }
        "NOOP" | "CHECK" => put(format!("{tag} OK Success\r\n")),
        _ if !conn.logged_in => put(format!("{tag} BAD Unknown command\r\n")),
        "ID" => put(format!(
            "* ID (\"name\" \"GImap\" \"vendor\" \"Google, Inc.\" \"support-url\" \"https://support.google.com/mail\")\r\n{tag} OK Success\r\n"
        )),
        "NAMESPACE" => put(format!("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n{tag} OK Success\r\n")),
        "ENABLE" => put(format!("{tag} OK Success\r\n")),
        "LIST" | "XLIST" => {
            let st = lock(&sh.store);
            let pattern = args(rest.split(" RETURN").next().unwrap_or("")).get(1).cloned().unwrap_or_default();
            let with_status = rest.to_ascii_uppercase().contains("RETURN (STATUS");
            let prefix = if st.lang == Lang::English { "[Gmail]" } else { "[Google Mail]" };
            let matches = |name: &str| pattern == "*" || pattern == name;
            if matches(prefix) {
                put(format!("* LIST (\\HasChildren \\Noselect) \"/\" \"{prefix}\"\r\n"));
            }
            for v in st.views.iter().filter(|v| matches(&v.name)) {
                put(format!("* LIST ({}) \"/\" \"{}\"\r\n", v.attrs, v.name));
                if with_status {
                    put(st.status(v));
                }
            }
            put(format!("{tag} OK Success\r\n"));
        }
        "STATUS" => {
            let st = lock(&sh.store);
            let name = args(rest).into_iter().next().unwrap_or_default();
            match st.view(&name) {
                Some(v) => put(format!("{}{tag} OK Success\r\n", st.status(v))),
                None => put(format!("{tag} NO [NONEXISTENT] Unknown Mailbox: {name} (Failure)\r\n")),
            }
        }
        "CREATE" => {
            // A label with no message yet: Gmail makes it a folder; here it shows once
            // a message carries it (the store's views follow the labels).
            put(format!("{tag} OK Success\r\n"));
        }
        "EXAMINE" | "SELECT" => {
            let st = lock(&sh.store);
            let name = args(rest).into_iter().next().unwrap_or_default();
            match st.view(&name) {
                Some(v) => {
                    conn.selected = Some(name.clone());
                    put(format!(
                        "* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing)\r\n\
                         * OK [PERMANENTFLAGS ()] Flags permitted.\r\n* OK [UIDVALIDITY {}] UIDs valid.\r\n\
                         * {} EXISTS\r\n* 0 RECENT\r\n* OK [UIDNEXT {}] Predicted next UID.\r\n\
                         * OK [HIGHESTMODSEQ {}]\r\n{tag} OK [{}] {name} selected. (Success)\r\n",
                        v.uidvalidity,
                        v.uids.len(),
                        v.uidnext,
                        st.highest_modseq(v),
                        if verb == "SELECT" { "READ-WRITE" } else { "READ-ONLY" }
                    ));
                }
                None => put(format!("{tag} NO [NONEXISTENT] Unknown Mailbox: {name} (Failure)\r\n")),
            }
        }
        "CLOSE" | "UNSELECT" => {
            conn.selected = None;
            put(format!("{tag} OK Returned to authenticated state. (Success)\r\n"));
        }
        "UID" => return uid_command(sh, conn, tag, rest, out),
        _ => {
            lock(&sh.errors).push(format!("a command the fake Gmail does not know: {verb} {rest}"));
            put(format!("{tag} BAD Unknown command\r\n"));
        }
    }
    true
}

fn uid_command(sh: &Shared, conn: &Conn, tag: &str, rest: &str, out: &mut Vec<u8>) -> bool {
    let (sub, args_text) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut st = lock(&sh.store);
    let Some(view) = conn.selected.as_deref().and_then(|n| st.view(n)).cloned() else {
        out.extend_from_slice(format!("{tag} BAD No mailbox selected\r\n").as_bytes());
        return true;
    };
    let max = view.uids.last().map_or(0, |u| u.0);
    match sub.to_ascii_uppercase().as_str() {
        "SEARCH" => {
            let uids: Vec<String> = view.uids.iter().map(|(u, _)| u.to_string()).collect();
            out.extend_from_slice(format!("* SEARCH {}", uids.join(" ")).trim_end().as_bytes());
            out.extend_from_slice(format!("\r\n{tag} OK SEARCH completed (Success)\r\n").as_bytes());
            true
        }
        "STORE" => {
            // `UID STORE set +X-GM-LABELS (labels)` or `+FLAGS (flags)`.
            let (set, what) = args_text.split_once(' ').unwrap_or((args_text, ""));
            let (item, list) = what.split_once(' ').unwrap_or((what, ""));
            let values = args(list.trim_start_matches('(').trim_end_matches(')'));
            st.modseq += 1;
            let modseq = st.modseq;
            for &(uid, i) in view.uids.iter().filter(|(u, _)| in_set(*u, set, max)) {
                let m = &mut st.messages[i];
                let target =
                    if item.to_ascii_uppercase().contains("X-GM-LABELS") { &mut m.labels } else { &mut m.flags };
                for v in &values {
                    if item.starts_with('+') && !target.contains(v) {
                        target.push(v.clone());
                    } else if item.starts_with('-') {
                        target.retain(|t| t != v);
                    }
                }
                m.modseq = modseq;
                let _ = uid;
            }
            st.sync();
            out.extend_from_slice(format!("{tag} OK Success\r\n").as_bytes());
            true
        }
        "FETCH" => {
            drop(st);
            fetch(sh, &view, tag, args_text, out)
        }
        "MOVE" => {
            // `UID MOVE set "[Gmail]/Trash"`: the messages go to the Trash (out of All Mail
            // and every label), as in Gmail's web interface; only the Trash is modelled.
            let (set, target) = args_text.split_once(' ').unwrap_or((args_text, ""));
            let target = args(target).into_iter().next().unwrap_or_default();
            let Some(trash) = st.views.iter().find(|v| v.kind == Kind::Trash).cloned() else { return true };
            if target != trash.name {
                lock(&sh.errors).push(format!("a UID MOVE the fake Gmail does not model: {rest}"));
                out.extend_from_slice(format!("{tag} NO [CANNOT] Not modelled\r\n").as_bytes());
                return true;
            }
            st.modseq += 1;
            let modseq = st.modseq;
            let mut seqs = Vec::new();
            for (seq, &(uid, i)) in view.uids.iter().enumerate().filter(|(_, (u, _))| in_set(*u, set, max)) {
                let m = &mut st.messages[i];
                if !m.has("\\Trash") {
                    m.labels.push("\\Trash".into());
                }
                m.modseq = modseq;
                seqs.push((seq + 1, uid, i));
            }
            st.sync();
            let moved: Vec<String> = seqs.iter().map(|(_, u, _)| u.to_string()).collect();
            let given: Vec<String> = st
                .view(&trash.name)
                .map(|t| {
                    t.uids.iter().filter(|(_, i)| seqs.iter().any(|s| s.2 == *i)).map(|(u, _)| u.to_string()).collect()
                })
                .unwrap_or_default();
            out.extend_from_slice(
                format!("* OK [COPYUID {} {} {}]\r\n", trash.uidvalidity, moved.join(","), given.join(",")).as_bytes(),
            );
            // Sequence numbers shift down as each goes: the highest first.
            for (seq, _, _) in seqs.iter().rev() {
                out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes());
            }
            out.extend_from_slice(format!("{tag} OK Success\r\n").as_bytes());
            true
        }
        _ => {
            lock(&sh.errors).push(format!("a UID command the fake Gmail does not know: {rest}"));
            out.extend_from_slice(format!("{tag} BAD Unknown command\r\n").as_bytes());
            true
        }
    }
}

/// The answers to `UID FETCH set (items) [(CHANGEDSINCE n)]`; false when the download
/// cap ended the connection.
fn fetch(sh: &Shared, view: &View, tag: &str, args_text: &str, out: &mut Vec<u8>) -> bool {
    let (set, items) = args_text.split_once(' ').unwrap_or((args_text, ""));
    let upper = items.to_ascii_uppercase();
    let tokens: Vec<&str> = upper.split([' ', '(', ')']).collect();
    let has = |t: &str| tokens.contains(&t);
    let changed_since: Option<u64> =
        upper.split_once("(CHANGEDSINCE ").and_then(|(_, r)| r.split(')').next()?.trim().parse().ok());
    let header_fields_asked: Option<Vec<String>> = upper.split_once("BODY.PEEK[HEADER.FIELDS (").and_then(|(_, r)| {
        Some(r.split_once(")]")?.0.split_whitespace().map(|n| n.trim_matches('"').to_string()).collect())
    });
    let partial = upper.split_once("BODY.PEEK[]<").and_then(|(_, r)| {
        let (o, l) = r.split_once('>')?.0.split_once('.')?;
        Some((o.parse::<usize>().ok()?, l.parse::<usize>().ok()?))
    });
    let header_part = upper.split_once("BODY.PEEK[HEADER]<").and_then(|(_, r)| {
        let (o, l) = r.split_once('>')?.0.split_once('.')?;
        Some((o.parse::<usize>().ok()?, l.parse::<usize>().ok()?))
    });
    let whole = upper.contains("BODY.PEEK[]") || upper.contains("BODY[]") || upper.contains("RFC822 ");
    // The cap is met by the command whose answer passes it (that answer still goes out
    // whole); every body fetch after it is refused.
    let cap = *lock(&sh.cap);
    if (whole || partial.is_some() || header_fields_asked.is_some() || header_part.is_some())
        && (sh.over_cap.load(Ordering::SeqCst) || cap.is_some_and(|c| sh.served.load(Ordering::SeqCst) >= c))
    {
        sh.over_cap.store(true, Ordering::SeqCst);
        out.extend_from_slice(format!("* BYE {OVER_CAP}\r\n").as_bytes());
        return false;
    }
    let st = lock(&sh.store);
    let max = view.uids.last().map_or(0, |u| u.0);
    for (seq, &(uid, i)) in view.uids.iter().enumerate() {
        if !in_set(uid, set, max) {
            continue;
        }
        let m = &st.messages[i];
        if changed_since.is_some_and(|c| m.modseq <= c) {
            continue;
        }
        let mut line = format!("* {} FETCH (", seq + 1);
        if has("X-GM-THRID") {
            line += &format!("X-GM-THRID {} ", m.thrid);
        }
        if has("X-GM-MSGID") {
            line += &format!("X-GM-MSGID {} ", m.msgid);
        }
        if has("X-GM-LABELS") {
            // A folder's own label is not listed in its view (Gmail leaves it out).
            let labels: Vec<String> = m
                .labels
                .iter()
                .filter(|l| !matches!(&view.kind, Kind::Label(own) if own == *l))
                .map(|l| if l.starts_with('\\') { l.clone() } else { format!("\"{l}\"") })
                .collect();
            line += &format!("X-GM-LABELS ({}) ", labels.join(" "));
        }
        line += &format!("UID {uid}");
        if has("RFC822.SIZE") {
            line += &format!(" RFC822.SIZE {}", m.body.len());
        }
        if has("FLAGS") {
            line += &format!(" FLAGS ({})", m.flags.join(" "));
        }
        if has("INTERNALDATE") {
            line += &format!(" INTERNALDATE \"{:02}-Mar-2024 10:{:02}:00 +0000\"", 1 + i % 28, i % 60);
        }
        if changed_since.is_some() {
            line += &format!(" MODSEQ ({})", m.modseq);
        }
        let data: Option<(String, Vec<u8>)> = if let Some(fields) = &header_fields_asked {
            let names = fields.join(" ");
            Some((format!("BODY[HEADER.FIELDS ({names})]"), header_fields(&m.body, fields)))
        } else if let Some((o, l)) = header_part {
            let end = m.body.windows(4).position(|w| w == b"\r\n\r\n").map_or(m.body.len(), |p| p + 4);
            Some((format!("BODY[HEADER]<{o}>"), m.body[o.min(end)..(o + l).min(end)].to_vec()))
        } else if let Some((o, l)) = partial {
            Some((format!("BODY[]<{o}>"), m.body[o.min(m.body.len())..(o + l).min(m.body.len())].to_vec()))
        } else if whole {
            Some(("BODY[]".into(), m.body.clone()))
        } else {
            None
        };
        match data {
            Some((item, bytes)) => {
                let counter = if item.starts_with("BODY[HEADER") { &sh.headers } else { &sh.served };
                counter.fetch_add(bytes.len() as u64, Ordering::SeqCst);
                out.extend_from_slice(format!("{line} {item} {{{}}}\r\n", bytes.len()).as_bytes());
                out.extend_from_slice(&bytes);
                out.extend_from_slice(b")\r\n");
            }
            None => out.extend_from_slice(format!("{line})\r\n").as_bytes()),
        }
    }
    out.extend_from_slice(format!("{tag} OK Success\r\n").as_bytes());
    true
}

/// `APPEND mailbox [(flags)] ["date"] {n}` / `{n+}`: LITERAL- takes a non-synchronizing
/// literal of 4096 bytes at most (RFC 7888); a bigger one is a client error. The message
/// joins the store with the folder's label; APPENDUID is answered (UIDPLUS).
fn append(sh: &Shared, s: &mut Tls, conn: &Conn, tag: &str, rest: &str) -> io::Result<()> {
    let Some(open) = rest.rfind('{') else {
        lock(&sh.errors).push(format!("APPEND without a literal: {rest}"));
        return send(s, format!("{tag} BAD Missing literal\r\n").as_bytes());
    };
    let announced = rest[open + 1..].trim_end_matches('}');
    let (size, plus) = match announced.strip_suffix('+') {
        Some(n) => (n.parse::<usize>().unwrap_or(0), true),
        None => (announced.parse::<usize>().unwrap_or(0), false),
    };
    if plus && size > 4096 {
        lock(&sh.errors).push(format!("a non-synchronizing literal of {size} bytes under LITERAL-"));
    }
    if !plus {
        send(s, b"+ go ahead\r\n")?;
    }
    let mut body = vec![0u8; size];
    s.read_exact(&mut body)?;
    let mut end = String::new();
    s.read_line(&mut end)?;
    let name = args(&rest[..open]).into_iter().next().unwrap_or_default();
    let flags: Vec<String> = rest[..open]
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(f, _)| f.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let _ = conn;
    let mut st = lock(&sh.store);
    let Some(view) = st.view(&name).cloned() else {
        return send(s, format!("{tag} NO [TRYCREATE] Folder doesn't exist. (Failure)\r\n").as_bytes());
    };
    let label = match &view.kind {
        Kind::All => None,
        Kind::Label(l) => Some(l.clone()),
        Kind::Trash => Some("\\Trash".into()),
        Kind::Spam => Some("\\Spam".into()),
    };
    st.modseq += 1;
    let msgid = 1_700_000_000_000_000_000 + st.messages.len() as u64;
    let modseq = st.modseq;
    st.messages.push(Message { msgid, thrid: msgid, body, labels: label.into_iter().collect(), flags, modseq });
    st.sync();
    let uid = st.view(&name).and_then(|v| v.uids.last()).map_or(0, |u| u.0);
    send(s, format!("{tag} OK [APPENDUID {} {uid}] (Success)\r\n", view.uidvalidity).as_bytes())
}

/// Label names as the client sees them: modified UTF-7 for non-ASCII ones.
pub fn wire_label(name: &str) -> String {
    smailarchiver::mailbox_name::encode_utf7(name)
}

/// A plain message with the headers a mailbox has.
pub fn message_bytes(i: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Sender {i} <s{i}@example.org>\r\nTo: me@gmail.com\r\nSubject: Message {i}\r\n\
         Date: Mon, 4 Mar 2024 10:00:00 +0000\r\nMessage-ID: <m{i}@example.org>\r\n\r\n"
    )
    .into_bytes();
    while m.len() < size {
        m.extend_from_slice(format!("line {i} of the body, {}\r\n", m.len()).as_bytes());
    }
    m
}
