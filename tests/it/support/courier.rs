//! A private Courier-IMAP 5.0 server for integration tests (see [`super::servers`] for
//! the interface tests use).
//!
//! Debian's `courier-imap` conflicts with `dovecot-imapd`, so `.ci/install-test-deps`
//! unpacks it into [`super::servers::SERVERS_DIR`]; `couriertcpd`, `couriertls`,
//! `authdaemond` and its userdb module come from `courier-base`, `courier-authdaemon` and
//! `courier-authlib-userdb`. Logins go through `authdaemond`, whose socket
//! (`/run/courier/authdaemon/socket`), configuration (`/etc/courier/authdaemonrc`) and
//! user database (`/etc/courier/userdb.dat`) are built into the binaries: each instance
//! runs in a mount namespace of its own (`unshare --mount`) where its state directory's
//! `etc` and `run` stand in for `/etc/courier` and `/run/courier`. The system's
//! `/etc/courier` is never touched. Stopped, and its directory removed, on drop.
//!
//! Logs: `imapd.log` gets what imaplogin and imapd write (a `LOGOUT` line per session
//! with `headers=` and `body=` byte counts: the fetch statistics); a wrapper in front of
//! imapd copies what each session's client sends to `HOME/commands/` (the command logs:
//! LOGIN is handled before, by imaplogin, so passwords never appear).
//!
//! Courier traps: no LITERAL+ (APPEND waits for `+`), no CONDSTORE, no LIST-STATUS; `.`
//! separator under `INBOX.`; UIDNEXT only in STATUS, not on SELECT/EXAMINE; a folder
//! without `courierimapuiddb` (made on disk, never opened read-write) gets a new
//! UIDVALIDITY every session (the current second); APPEND into a folder selected with
//! EXAMINE is refused; folder names are UTF-8 on disk (`.Reçus`), without `INBOX.`; it
//! stores messages with LF line ends and serves CRLF (its RFC822.SIZE counts CRLF).

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::dovecot::{
    accepts, ensure_mail_user, find_program, greets, make_certificate, read_lossy, require_root, tail, CertKind,
};
use super::servers::{
    check_user_name, chown_tree, counters, drop_into_maildir, harness_command, join_sessions, servers_dir, Hierarchy,
    Kind, MailServer, ServerStats, Startup, Supervised,
};

const DIR_PREFIX: &str = "smailtest-courier-";
const COURIERTCPD: &str = "/usr/sbin/couriertcpd";
const COURIERTLS: &str = "/usr/bin/couriertls";
const AUTHDAEMOND: &str = "/usr/lib/courier/courier-authlib/authdaemond";
const USERDB_MODULE: &str = "/usr/lib/courier-authlib/libauthuserdb.so";
const MAKEUSERDB: &str = "/usr/sbin/makeuserdb";
const MAILDIRMAKE: &str = "/usr/bin/maildirmake.courier";
/// Diffie-Hellman parameters for couriertls (Dovecot's, always installed for the tests).
const DH_PARAMS: &str = "/usr/share/dovecot/dh.pem";
const NOT_INSTALLED: &str = "Courier-IMAP is not installed: run .ci/install-test-deps (as root)";
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(15);

/// A running Courier-IMAP; stopped, and its state directory removed, on drop (or by
/// [`Courier::shut_down`]). `SMAILTEST_KEEP_COURIER=1` keeps the directory.
pub struct Courier {
    /// Its processes, in a session (and mount namespace) of their own, and the state
    /// directory.
    proc: Supervised,
    imap_port: u16,
    imaps_port: u16,
    mail_ids: (u32, u32),
    /// Serialises changes to the user database.
    users: Mutex<()>,
}

impl Courier {
    /// Starts a Courier-IMAP; panics with its output when it cannot.
    pub fn start() -> Courier {
        require_root();
        let base = servers_dir().join("courier-imap");
        let (imaplogin, imapd) = (base.join("usr/lib/courier/courier/imaplogin"), base.join("usr/bin/imapd"));
        for p in [COURIERTCPD, COURIERTLS, AUTHDAEMOND, USERDB_MODULE, MAKEUSERDB, MAILDIRMAKE, DH_PARAMS] {
            assert!(Path::new(p).exists(), "{NOT_INSTALLED}: {p} is missing");
        }
        for p in [&imaplogin, &imapd] {
            assert!(p.is_file(), "{NOT_INSTALLED}: {} is missing", p.display());
        }
        for p in ["/etc/courier", "/run/courier"] {
            // The mount points; /run may have been emptied by a reboot.
            fs::create_dir_all(p).unwrap_or_else(|e| panic!("create {p}: {e}"));
        }
        let unshare = find_program("unshare").unwrap_or_else(|| panic!("unshare (util-linux) is not installed"));
        let openssl = find_program("openssl").expect("openssl is not installed: run .ci/install-test-deps");
        let proc = Supervised::new(DIR_PREFIX, "SMAILTEST_KEEP_COURIER", "courier");
        let dir = proc.dir.clone();
        for sub in ["etc", "run", "run/authdaemon", "home"] {
            fs::create_dir_all(dir.join(sub)).expect("create Courier state directories");
            fs::set_permissions(dir.join(sub), fs::Permissions::from_mode(0o755)).unwrap();
        }
        make_certificate(&openssl, &dir, CertKind::EndEntity);
        let pem = [fs::read(dir.join("key.pem")).unwrap(), fs::read(dir.join("cert.pem")).unwrap()].concat();
        write_mode(&dir.join("imapd.pem"), &pem, 0o600);
        write_mode(
            &dir.join("etc/authdaemonrc"),
            b"authmodulelist=\"authuserdb\"\nauthmodulelistorig=\"authuserdb\"\ndaemons=3\n\
              authdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n",
            0o644,
        );
        write_mode(&dir.join("etc/userdb"), b"", 0o600);
        make_userdb(&dir);
        write_mode(&dir.join("imapd-logged"), logging_wrapper(&imapd).as_bytes(), 0o755);
        let launch = |imap: u16, imaps: u16| {
            write_mode(&dir.join("start.sh"), start_script(&dir, &imaplogin, imap, imaps).as_bytes(), 0o755);
            let mut cmd = Command::new(&unshare);
            cmd.args(["--mount", "--propagation", "private", "/bin/sh"]).arg(dir.join("start.sh"));
            cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").current_dir(&dir);
            cmd
        };
        let check = |imap: u16, imaps: u16| {
            let out = read_lossy(&dir.join("start.out"));
            if out.contains("Address already in use") {
                Startup::PortsTaken
            } else if out.contains("mount:") || out.contains("unshare:") {
                Startup::Failed
            } else if dir.join("run/authdaemon/socket").exists() && greets(imap) && accepts(imaps) {
                Startup::Ready
            } else {
                Startup::Waiting
            }
        };
        let Some((imap_port, imaps_port)) = proc.start("start.out", launch, check) else {
            fail(&dir, "Courier did not start")
        };
        Courier { proc, imap_port, imaps_port, mail_ids: ensure_mail_user(), users: Mutex::new(()) }
    }

    /// Stops the server and removes its directory through a shared reference (for a
    /// server kept in a static for the whole test binary); not to be used afterwards.
    pub fn shut_down(&self) {
        self.proc.shut_down();
    }

    /// `user`'s home directory (its Maildir is `HOME/Maildir`).
    pub fn user_home(&self, user: &str) -> PathBuf {
        self.proc.dir.join("home").join(user)
    }

    /// The Maildir++ directory of mailbox `wire` of `user`, as Courier 5 names it on disk:
    /// the INBOX at the top, `INBOX.A.B` in `.A.B`, names in UTF-8.
    pub fn folder_path(&self, user: &str, wire: &str) -> PathBuf {
        let maildir = self.user_home(user).join("Maildir");
        if wire.eq_ignore_ascii_case("INBOX") {
            return maildir;
        }
        let rest = wire.strip_prefix("INBOX.").unwrap_or_else(|| panic!("{wire:?} is not under INBOX."));
        let name = smailarchiver::mailbox_name::decode_utf7(rest).unwrap_or_else(|e| panic!("{wire:?}: {e:?}"));
        maildir.join(format!(".{name}"))
    }

    /// Makes the folder on disk, the way a mail filter does: without `courierimapuiddb`, so
    /// that Courier gives it a new UIDVALIDITY every session until a client opens it
    /// read-write.
    pub fn make_folder_on_disk(&self, user: &str, wire: &str) {
        let path = self.folder_path(user, wire);
        let (uid, gid) = self.mail_ids;
        for sub in ["", "cur", "new", "tmp"] {
            let d = path.join(sub);
            fs::create_dir_all(&d).unwrap();
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
            chown(&d, Some(uid), Some(gid)).unwrap();
        }
        let marker = path.join("maildirfolder");
        fs::write(&marker, b"").unwrap();
        chown(&marker, Some(uid), Some(gid)).unwrap();
    }

    /// Sessions of `user` in the log once each that logged in has ended: (whether it is
    /// the client's, i.e. over TLS, and the counters of its LOGOUT line).
    fn finished_sessions(&self, user: &str) -> Vec<(bool, std::collections::HashMap<String, u64>)> {
        let deadline = Instant::now() + LOGOUT_TIMEOUT;
        let marker = format!(" user={user},");
        loop {
            let log = read_lossy(&self.log_path());
            let mut logins = 0;
            let mut ended = Vec::new();
            for line in log.lines().filter(|l| l.contains(&marker)) {
                if line.contains("INFO: LOGIN,") {
                    logins += 1;
                } else if ["INFO: LOGOUT,", "INFO: DISCONNECTED,", "INFO: TIMEOUT,"].iter().any(|k| line.contains(k)) {
                    // The harness's own sessions never use TLS; the client always does.
                    ended.push((line.contains("starttls=1"), counters(line)));
                }
            }
            if ended.len() >= logins {
                return ended;
            }
            if Instant::now() > deadline {
                panic!(
                    "sessions of {user} still open after {LOGOUT_TIMEOUT:?}: {logins} logins, {} ended\n{}",
                    ended.len(),
                    tail(&log, 20)
                );
            }
            sleep(Duration::from_millis(20));
        }
    }
}

/// Compiles `etc/userdb` into the `userdb.dat` authdaemond reads.
fn make_userdb(dir: &Path) {
    let out = Command::new(MAKEUSERDB).arg("-f").arg(dir.join("etc/userdb")).output().expect("run makeuserdb");
    assert!(out.status.success(), "makeuserdb: {}", String::from_utf8_lossy(&out.stderr));
}

fn start_script(dir: &Path, imaplogin: &Path, imap: u16, imaps: u16) -> String {
    let d = dir.display();
    let capability = "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE";
    let tcpd = format!(
        "{COURIERTCPD} -address=127.0.0.1 -maxprocs=200 -maxperip=200 -nodnslookup -noidentlookup -stderr={d}/imapd.log"
    );
    let (login, imapd) = (imaplogin.display(), format!("{d}/imapd-logged"));
    format!(
        "# Written by tests/it/support/courier.rs; run by `unshare --mount`: this instance's etc and\n\
         # run stand in for /etc/courier and /run/courier, built into authdaemond and its clients.\n\
         set -e\n\
         mount --bind {d}/etc /etc/courier\n\
         mount --bind {d}/run /run/courier\n\
         {AUTHDAEMOND} 2>>{d}/authdaemond.log &\n\
         # The settings of Debian's /etc/courier/imapd and imapd-ssl that matter here.\n\
         export IMAP_CAPABILITY='{capability}'\n\
         export IMAP_CAPABILITY_TLS='{capability} AUTH=PLAIN'\n\
         export IMAP_KEYWORDS=1 IMAP_ACL=1 IMAP_IDLE_TIMEOUT=60 IMAP_MAILBOX_SANITY_CHECK=1\n\
         export IMAP_USELOCKS=1 IMAP_TRASHFOLDERNAME=Trash IMAP_EMPTYTRASH=Trash:7 IMAP_MOVE_EXPUNGE_TO_TRASH=0\n\
         export IMAP_STARTTLS=YES IMAP_TLS_REQUIRED=0 COURIERTLS={COURIERTLS}\n\
         export TLS_CERTFILE={d}/imapd.pem TLS_DHPARAMS={DH_PARAMS} TLS_VERIFYPEER=NONE\n\
         {tcpd} {imap} {login} {imapd} Maildir &\n\
         IMAP_TLS=1 {tcpd} {imaps} {COURIERTLS} -server -tcpd {login} {imapd} Maildir &\n\
         wait\n"
    )
}

fn fail(dir: &Path, why: &str) -> ! {
    panic!(
        "{why}\nstate dir: {}\n--- start output ---\n{}\n--- imapd log ---\n{}\n--- authdaemond log ---\n{}",
        dir.display(),
        tail(&read_lossy(&dir.join("start.out")), 40),
        tail(&read_lossy(&dir.join("imapd.log")), 40),
        tail(&read_lossy(&dir.join("authdaemond.log")), 20),
    )
}

/// A stand-in for imapd that runs it with what the client sends copied to
/// `HOME/commands/TIME-PID.in` (imaplogin has made the home the current directory). Perl,
/// because the socket it reads is non-blocking (`tee` gives up on EAGAIN); it ends when
/// imapd does, so the connection closes as it would without it.
fn logging_wrapper(imapd: &Path) -> String {
    format!(
        r#"#!/usr/bin/perl
# Written by tests/it/support/courier.rs.
use strict;
use warnings;
use IO::Select;
use POSIX ":sys_wait_h";
use Time::HiRes qw(time);
my $log = sprintf("commands/%.6f-%d.in", time, $$);
open(my $out, ">>", $log) or die "$log: $!";
pipe(my $from, my $to) or die "pipe: $!";
my $pid = fork() // die "fork: $!";
if ($pid == 0) {{
    close $to;
    open(STDIN, "<&", $from) or die "dup: $!";
    exec("{imapd}", @ARGV) or die "exec: $!";
}}
close $from;
my $select = IO::Select->new(\*STDIN);
while (1) {{
    last if waitpid($pid, WNOHANG) > 0;
    next unless $select->can_read(0.05);
    my $n = sysread(STDIN, my $data, 65536);
    if (!defined $n) {{
        next if $!{{EAGAIN}} || $!{{EINTR}};
        last;
    }}
    last if $n == 0;
    syswrite($out, $data);
    syswrite($to, $data) // last;
}}
close $to;
waitpid($pid, 0);
exit($? >> 8);
"#,
        imapd = imapd.display()
    )
}

fn write_mode(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

impl MailServer for Courier {
    fn kind(&self) -> Kind {
        Kind::Courier
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
        assert!(!password.contains(['\r', '\n', '\0']), "a userdb password cannot contain CR, LF or NUL");
        let _guard = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let home = self.user_home(user);
        let (uid, gid) = self.mail_ids;
        if !home.join("Maildir").is_dir() {
            fs::create_dir_all(&home).unwrap();
            let out = Command::new(MAILDIRMAKE).arg(home.join("Maildir")).output().expect("run maildirmake");
            assert!(out.status.success(), "maildirmake: {}", String::from_utf8_lossy(&out.stderr));
            fs::create_dir_all(home.join("commands")).unwrap();
            chown_tree(&home, uid, gid);
            fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
        }
        let openssl = find_program("openssl").expect("openssl");
        let mut child = Command::new(openssl)
            .args(["passwd", "-6", "-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run openssl passwd");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{password}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl passwd failed");
        let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let db = self.proc.dir.join("etc/userdb");
        let mut lines: Vec<String> = read_lossy(&db)
            .lines()
            .filter(|l| l.split('\t').next() != Some(user) && !l.is_empty())
            .map(str::to_string)
            .collect();
        lines.push(format!(
            "{user}\tuid={uid}|gid={gid}|home={}|mail={}|systempw={hash}",
            home.display(),
            home.join("Maildir").display()
        ));
        write_mode(&db, (lines.join("\n") + "\n").as_bytes(), 0o600);
        make_userdb(&self.proc.dir);
    }
    fn hierarchy(&self) -> Hierarchy {
        Hierarchy { separator: '.', prefix: "INBOX." }
    }
    fn deliver_raw(&self, user: &str, _password: &str, mailbox: &str, message: &[u8]) {
        let folder = self.folder_path(user, mailbox);
        if !folder.join("cur").is_dir() {
            self.make_folder_on_disk(user, mailbox);
        }
        let (uid, gid) = self.mail_ids;
        drop_into_maildir(&folder, message, uid, gid);
    }
    fn fetch_stats(&self, user: &str) -> ServerStats {
        let mut stats = ServerStats::default();
        for (client, c) in self.finished_sessions(user) {
            if client {
                stats.sessions += 1;
                stats.body_bytes += c.get("body").copied().unwrap_or(0);
                stats.header_bytes += c.get("headers").copied().unwrap_or(0);
            }
        }
        stats
    }
    fn commands_log(&self, user: &str) -> String {
        self.finished_sessions(user);
        let dir = self.user_home(user).join("commands");
        let sessions = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e} (was the user added with add_user?)", dir.display()))
            .filter_map(Result::ok)
            .map(|e| (e.file_name().to_string_lossy().into_owned(), read_lossy(&e.path())))
            .filter(|(_, text)| !harness_command(text.lines().next().unwrap_or("")))
            .collect();
        join_sessions(sessions)
    }
    fn log_path(&self) -> PathBuf {
        self.proc.dir.join("imapd.log")
    }
    fn state_dir(&self) -> &Path {
        &self.proc.dir
    }
}
