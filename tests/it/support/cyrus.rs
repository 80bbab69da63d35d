//! A private Cyrus IMAP 3.6 server for integration tests (see [`super::servers`] for the
//! interface tests use).
//!
//! Debian's `cyrus-imapd` conflicts with `dovecot-imapd`, so `.ci/install-test-deps`
//! unpacks it into [`super::servers::SERVERS_DIR`]; the master process, `lmtpd` and
//! `ctl_cyrusdb` come from `cyrus-common`, logins from SASL's sasldb (`saslpasswd2`). Each
//! instance has its own `imapd.conf` and `cyrus.conf`, state directory, free ports and
//! certificate; it is stopped and its directory removed on drop.
//!
//! What the harness sets and why:
//! - [`CyrusMode::Dot`]: `altnamespace: no`, `unixhierarchysep: no`: `.` separator,
//!   personal folders under `INBOX.`; [`CyrusMode::Slash`]: the 3.x defaults (`/`, at the
//!   top).
//! - `autocreate_quota: 0`: a user's INBOX is made at its first login ([`Cyrus::add_user`]
//!   logs in once).
//! - Telemetry: a directory `configdirectory/log/USER` makes imapd write every session of
//!   USER, both ways, after login; the command logs and fetch counts come from there (Cyrus
//!   itself logs only to syslog, which a test machine may not have).
//!
//! Cyrus traps: it refuses bare LF and NUL on APPEND (`Message contains invalid header`),
//! and with the default `munge8bit` stores raw 8-bit header bytes as `X`; LMTP accepts
//! bare LF (stored as CRLF) but adds `Return-Path`, `Received`, `X-Cyrus-Session-Id`,
//! `X-Sieve` and, when missing, `Date`; LMTP into another folder than INBOX needs an ACL,
//! so [`MailServer::deliver_raw`] delivers to INBOX and MOVEs. CREATE of `A.B` makes `A`
//! a real folder too. Its INTERNALDATE has a space-padded day (`" 1-Jan-2015"`).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::dovecot::{
    accepts, find_program, greets, lookup_user, make_certificate, quote, read_lossy, require_root, tail, CertKind,
};
use super::servers::{
    check_user_name, chown_tree, count_fetched, harness_command, join_sessions, servers_dir, Hierarchy, Kind,
    MailServer, ServerStats, Startup, Supervised,
};

const DIR_PREFIX: &str = "smailtest-cyrus-";
const MASTER: &str = "/usr/lib/cyrus/bin/master";
const LMTPD: &str = "/usr/lib/cyrus/bin/lmtpd";
const CTL_CYRUSDB: &str = "/usr/lib/cyrus/bin/ctl_cyrusdb";
/// The SASL realm (and server name) logins are checked in.
const SERVER_NAME: &str = "smailtest-cyrus";
const NOT_INSTALLED: &str = "Cyrus IMAP is not installed: run .ci/install-test-deps (as root)";
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// Cyrus's two namespace modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CyrusMode {
    /// `.` separator, personal folders under `INBOX.`.
    Dot,
    /// `/` separator, personal folders at the top (the 3.x defaults).
    Slash,
}

/// A running Cyrus; stopped, and its state directory removed, on drop (or by
/// [`Cyrus::shut_down`]). `SMAILTEST_KEEP_CYRUS=1` keeps the directory.
pub struct Cyrus {
    /// The master, in a session of its own, and the state directory.
    proc: Supervised,
    mode: CyrusMode,
    imap_port: u16,
    imaps_port: u16,
    cyrus_ids: (u32, u32),
}

impl Cyrus {
    /// Starts a Cyrus in `mode`; panics with its log when it cannot.
    pub fn start(mode: CyrusMode) -> Cyrus {
        require_root();
        let imapd = servers_dir().join("cyrus-imapd/usr/lib/cyrus/bin/imapd");
        for p in [Path::new(MASTER), Path::new(LMTPD), Path::new(CTL_CYRUSDB), &imapd] {
            assert!(p.is_file(), "{NOT_INSTALLED}: {} is missing", p.display());
        }
        find_program("saslpasswd2").unwrap_or_else(|| panic!("{NOT_INSTALLED}: no saslpasswd2"));
        let openssl = find_program("openssl").expect("openssl is not installed: run .ci/install-test-deps");
        let cyrus_ids = lookup_user("cyrus").unwrap_or_else(|| panic!("{NOT_INSTALLED}: no system user cyrus"));
        let proc = Supervised::new(DIR_PREFIX, "SMAILTEST_KEEP_CYRUS", "cyrus");
        let dir = proc.dir.clone();
        for sub in ["lib", "lib/log", "spool", "sieve", "socket", "run"] {
            fs::create_dir_all(dir.join(sub)).expect("create Cyrus state directories");
        }
        make_certificate(&openssl, &dir, CertKind::EndEntity);
        fs::write(dir.join("imapd.conf"), imapd_conf(&dir, mode)).expect("write imapd.conf");
        let launch = |imap: u16, imaps: u16| {
            fs::write(dir.join("cyrus.conf"), cyrus_conf(&dir, &imapd, imap, imaps)).expect("write cyrus.conf");
            let _ = fs::remove_file(dir.join("master.log"));
            chown_tree(&dir, cyrus_ids.0, cyrus_ids.1);
            let mut cmd = Command::new(MASTER);
            cmd.arg("-C").arg(dir.join("imapd.conf")).arg("-M").arg(dir.join("cyrus.conf"));
            cmd.arg("-p").arg(dir.join("run/master.pid")).arg("-L").arg(dir.join("master.log"));
            cmd.current_dir(&dir);
            cmd
        };
        let check = |imap: u16, imaps: u16| {
            if read_lossy(&dir.join("master.log")).contains("bind") {
                Startup::PortsTaken
            } else if proc.exited() {
                Startup::Failed
            } else if greets(imap) && accepts(imaps) && dir.join("socket/lmtp").exists() {
                Startup::Ready
            } else {
                Startup::Waiting
            }
        };
        let Some((imap_port, imaps_port)) = proc.start("master.out", launch, check) else {
            fail(&dir, "Cyrus did not start (see its output)")
        };
        Cyrus { proc, mode, imap_port, imaps_port, cyrus_ids }
    }

    /// Stops the server and removes its directory through a shared reference (for a
    /// server kept in a static for the whole test binary); not to be used afterwards.
    pub fn shut_down(&self) {
        self.proc.shut_down();
    }

    fn telemetry_dir(&self, user: &str) -> PathBuf {
        self.proc.dir.join("lib/log").join(user)
    }

    /// Delivers `message` into `user`'s INBOX over LMTP, as an MTA does (bare LF accepted).
    pub fn lmtp(&self, user: &str, message: &[u8]) {
        let path = self.proc.dir.join("socket/lmtp");
        let stream = UnixStream::connect(&path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut reply = |expect: &str, transcript: &mut Vec<String>| loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read LMTP reply");
            transcript.push(line.trim_end().to_string());
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                assert!(line.starts_with(expect), "LMTP: expected {expect}: {transcript:?}");
                return;
            }
        };
        let mut transcript = Vec::new();
        reply("220", &mut transcript);
        for (command, expect) in [
            ("LHLO smailtest\r\n", "250"),
            ("MAIL FROM:<>\r\n", "250"),
            (&*format!("RCPT TO:<{user}>\r\n"), "250"),
            ("DATA\r\n", "354"),
        ] {
            writer.write_all(command.as_bytes()).unwrap();
            reply(expect, &mut transcript);
        }
        // Dot-stuffing, line by line whatever the line ends are.
        let mut data = Vec::with_capacity(message.len() + 16);
        for line in message.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        if !data.ends_with(b"\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        writer.write_all(&data).unwrap();
        reply("250", &mut transcript);
        writer.write_all(b"QUIT\r\n").unwrap();
        reply("221", &mut transcript);
    }

    /// The telemetry of every session of `user`.
    fn telemetry(&self, user: &str) -> Vec<TelemetrySession> {
        let dir = self.telemetry_dir(user);
        let mut sessions = Vec::new();
        let Ok(entries) = fs::read_dir(&dir) else { return sessions };
        for entry in entries.filter_map(Result::ok) {
            let file = entry.file_name().to_string_lossy().into_owned();
            let data = fs::read(entry.path()).unwrap_or_default();
            let header = format!("---------- {user} ");
            let starts: Vec<usize> = line_starts(&data).filter(|&i| data[i..].starts_with(header.as_bytes())).collect();
            for (k, &start) in starts.iter().enumerate() {
                let end = starts.get(k + 1).copied().unwrap_or(data.len());
                let later = k + 1 < starts.len();
                sessions.push(TelemetrySession::parse(&data[start..end], &file, start, later));
            }
        }
        sessions
    }

    /// Client sessions of `user` once they ended (a BYE sent, or a later session in the
    /// same process); after [`LOGOUT_TIMEOUT`] whatever is there.
    fn client_sessions(&self, user: &str) -> Vec<TelemetrySession> {
        let deadline = Instant::now() + LOGOUT_TIMEOUT;
        loop {
            let sessions: Vec<TelemetrySession> = self.telemetry(user).into_iter().filter(|s| !s.harness).collect();
            if sessions.iter().all(|s| s.ended) || Instant::now() > deadline {
                return sessions;
            }
            sleep(Duration::from_millis(20));
        }
    }
}

fn imapd_conf(dir: &Path, mode: CyrusMode) -> String {
    let d = dir.display();
    let (alt, unix) = match mode {
        CyrusMode::Dot => ("no", "no"),
        CyrusMode::Slash => ("yes", "yes"),
    };
    format!(
        "# Written by tests/it/support/cyrus.rs; reads nothing from /etc.\n\
         servername: {SERVER_NAME}\n\
         configdirectory: {d}/lib\n\
         partition-default: {d}/spool\n\
         defaultpartition: default\n\
         sievedir: {d}/sieve\n\
         lmtpsocket: {d}/socket/lmtp\n\
         idlesocket: {d}/socket/idle\n\
         notifysocket: {d}/socket/notify\n\
         proc_path: {d}/run/proc\n\
         mboxname_lockpath: {d}/run/lock\n\
         duplicate_db_path: {d}/lib/deliver.db\n\
         statuscache_db_path: {d}/lib/statuscache.db\n\
         syslog_prefix: {SERVER_NAME}\n\
         sasl_pwcheck_method: auxprop\n\
         sasl_auxprop_plugin: sasldb\n\
         sasl_sasldb_path: {d}/sasldb2\n\
         sasl_mech_list: PLAIN LOGIN\n\
         allowplaintext: yes\n\
         altnamespace: {alt}\n\
         unixhierarchysep: {unix}\n\
         autocreate_quota: 0\n\
         tls_server_cert: {d}/cert.pem\n\
         tls_server_key: {d}/key.pem\n\
         lmtp_downcase_rcpt: yes\n"
    )
}

fn cyrus_conf(dir: &Path, imapd: &Path, imap: u16, imaps: u16) -> String {
    let (d, conf, imapd) = (dir.display(), dir.join("imapd.conf").display().to_string(), imapd.display());
    format!(
        "# Written by tests/it/support/cyrus.rs.\n\
         START {{\n  recover cmd=\"{CTL_CYRUSDB} -r -C {conf}\"\n}}\n\
         SERVICES {{\n\
         \x20 imap cmd=\"{imapd} -C {conf}\" listen=\"127.0.0.1:{imap}\" prefork=0\n\
         \x20 imaps cmd=\"{imapd} -s -C {conf}\" listen=\"127.0.0.1:{imaps}\" prefork=0\n\
         \x20 lmtpunix cmd=\"{LMTPD} -C {conf}\" listen=\"{d}/socket/lmtp\" prefork=0\n\
         }}\n\
         EVENTS {{\n}}\n"
    )
}

fn fail(dir: &Path, why: &str) -> ! {
    panic!(
        "{why}\nstate dir: {}\n--- master output ---\n{}\n--- master log ---\n{}",
        dir.display(),
        tail(&read_lossy(&dir.join("master.out")), 40),
        tail(&read_lossy(&dir.join("master.log")), 40),
    )
}

/// One session of a telemetry file.
struct TelemetrySession {
    key: String,
    harness: bool,
    input: Vec<u8>,
    output: Vec<u8>,
    ended: bool,
}

impl TelemetrySession {
    /// Telemetry chunks start a line with `<SECONDS<` (what the client sent) or
    /// `>SECONDS>` (what the server sent); the text up to the next chunk is theirs.
    fn parse(data: &[u8], file: &str, offset: usize, later: bool) -> TelemetrySession {
        let mut input = Vec::new();
        let mut output = Vec::new();
        let mut first_time = 0u64;
        let mut current: Option<bool> = None;
        for line in data.split_inclusive(|&b| b == b'\n') {
            let marker = chunk_marker(line);
            let body = match marker {
                Some((inbound, seconds, len)) => {
                    if first_time == 0 {
                        first_time = seconds;
                    }
                    current = Some(inbound);
                    &line[len..]
                }
                None => line,
            };
            match current {
                Some(true) => input.extend_from_slice(body),
                Some(false) => output.extend_from_slice(body),
                None => {}
            }
        }
        let first_command = String::from_utf8_lossy(&input).lines().next().unwrap_or("").to_string();
        let harness = harness_command(&first_command);
        let ended = later || super::servers::find(&output, b"* BYE").is_some();
        TelemetrySession { key: format!("{first_time:020}-{file}-{offset:012}"), harness, input, output, ended }
    }
}

/// `(inbound, seconds, marker length)` of a line starting `<DIGITS<` or `>DIGITS>`.
fn chunk_marker(line: &[u8]) -> Option<(bool, u64, usize)> {
    let open = *line.first()?;
    if open != b'<' && open != b'>' {
        return None;
    }
    let digits = line[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || line.get(1 + digits) != Some(&open) {
        return None;
    }
    let seconds = std::str::from_utf8(&line[1..1 + digits]).ok()?.parse().ok()?;
    Some((open == b'<', seconds, digits + 2))
}

fn line_starts(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(data.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1))
}

impl MailServer for Cyrus {
    fn kind(&self) -> Kind {
        match self.mode {
            CyrusMode::Dot => Kind::CyrusDot,
            CyrusMode::Slash => Kind::CyrusSlash,
        }
    }
    fn imap_port(&self) -> u16 {
        self.imap_port
    }
    fn imaps_port(&self) -> u16 {
        self.imaps_port
    }
    fn cert_pem_path(&self) -> PathBuf {
        self.proc.dir.join("cert.pem")
    }
    fn add_user(&self, user: &str, password: &str) {
        check_user_name(user);
        assert!(!password.contains(['\r', '\n', '\0']), "a SASL password cannot contain CR, LF or NUL");
        let saslpasswd2 = find_program("saslpasswd2").unwrap_or_else(|| panic!("{NOT_INSTALLED}: no saslpasswd2"));
        let sasldb = self.proc.dir.join("sasldb2");
        let mut child = Command::new(saslpasswd2)
            .args(["-p", "-c", "-u", SERVER_NAME, "-f"])
            .arg(&sasldb)
            .arg(user)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run saslpasswd2");
        child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "saslpasswd2: {}", String::from_utf8_lossy(&out.stderr));
        let (uid, gid) = self.cyrus_ids;
        chown(&sasldb, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(&sasldb, fs::Permissions::from_mode(0o640)).unwrap();
        let telemetry = self.telemetry_dir(user);
        fs::create_dir_all(&telemetry).unwrap();
        chown(&telemetry, Some(uid), Some(gid)).unwrap();
        // The first login makes the INBOX (autocreate_quota).
        self.session(user, password).logout();
    }
    fn hierarchy(&self) -> Hierarchy {
        match self.mode {
            CyrusMode::Dot => Hierarchy { separator: '.', prefix: "INBOX." },
            CyrusMode::Slash => Hierarchy { separator: '/', prefix: "" },
        }
    }
    fn deliver_raw(&self, user: &str, password: &str, mailbox: &str, message: &[u8]) {
        self.lmtp(user, message);
        if mailbox.eq_ignore_ascii_case("INBOX") {
            return;
        }
        if !self.list_mailboxes(user, password).iter().any(|m| m == mailbox) {
            self.create_mailbox(user, password, mailbox);
        }
        let mut s = self.session(user, password);
        s.ok("SELECT INBOX");
        let found = s.ok("UID SEARCH ALL");
        let newest = found
            .untagged
            .iter()
            .filter_map(|u| u.text.strip_prefix("* SEARCH"))
            .flat_map(|rest| rest.split_whitespace().filter_map(|n| n.parse::<u32>().ok()))
            .max()
            .expect("the delivered message in INBOX");
        s.ok(&format!("UID MOVE {newest} {}", quote(mailbox)));
        s.logout();
    }
    fn fetch_stats(&self, user: &str) -> ServerStats {
        let mut stats = ServerStats::default();
        for s in self.client_sessions(user) {
            stats.sessions += 1;
            count_fetched(&s.output, &mut stats);
        }
        stats
    }
    fn commands_log(&self, user: &str) -> String {
        let sessions = self.client_sessions(user);
        join_sessions(sessions.into_iter().map(|s| (s.key, String::from_utf8_lossy(&s.input).into_owned())).collect())
    }
    fn log_path(&self) -> PathBuf {
        self.proc.dir.join("master.log")
    }
    fn state_dir(&self) -> &Path {
        &self.proc.dir
    }
}
