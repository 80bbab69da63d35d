//! The command line: one table of flags, each with its documentation, feeds both the
//! parser and `--help`. Parsing fills [`LowArgs`] (what was typed); [`LowArgs::resolve`]
//! turns that into a [`Mode`] (what to do). The original's flags parse as argparse did:
//! `-uUSER`, `--user=USER`, `--user USER`, `-ezP`, and unique prefixes of long names.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::account::buffer_range;
use crate::error::{Error, Result};

/// Everything the command line said, before it is checked for sense.
#[derive(Debug, Default, Clone)]
pub struct LowArgs {
    /// Number of arguments given (none at all starts the wizard).
    pub count: usize,
    /// `--help`.
    pub help: bool,
    /// `--version`.
    pub version: bool,
    /// `--user`.
    pub user: Option<String>,
    /// `--imap`.
    pub imap: Option<String>,
    /// `--passwd`.
    pub passwd: Option<String>,
    /// `--passwd-command`.
    pub passwd_command: Option<String>,
    /// `--oauth2-token-command`.
    pub oauth2_token_command: Option<String>,
    /// `--oauth2-login`.
    pub oauth2_login: bool,
    /// `--oauth2`.
    pub oauth2: Option<String>,
    /// `--oauth2-client-id`.
    pub oauth2_client_id: Option<String>,
    /// `--oauth2-client-secret-file`.
    pub oauth2_client_secret_file: Option<PathBuf>,
    /// `--oauth2-tenant`.
    pub oauth2_tenant: Option<String>,
    /// `--oauth2-flow`.
    pub oauth2_flow: Option<String>,
    /// `--oauth2-token-file`.
    pub oauth2_token_file: Option<PathBuf>,
    /// `--oauth2-seal`.
    pub oauth2_seal: bool,
    /// `--no-pipelining`.
    pub no_pipelining: bool,
    /// `--folder`.
    pub folders: Vec<String>,
    /// `--all-folders`.
    pub all_folders: bool,
    /// `--exclude`.
    pub exclude: Vec<String>,
    /// `--dir`.
    pub dir: Option<PathBuf>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--starttls`.
    pub starttls: bool,
    /// `--no-gmail-mode`.
    pub no_gmail_mode: bool,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--pin-sha256`.
    pub pin_sha256: Option<String>,
    /// `--encrypt`.
    pub encrypt: bool,
    /// `--keys`.
    pub keys: Option<PathBuf>,
    /// `--promp`.
    pub promp: bool,
    /// `--key-password-file`.
    pub key_password_file: Option<PathBuf>,
    /// `--key-password-command`.
    pub key_password_command: Option<String>,
    /// `--compress`.
    pub compress: bool,
    /// `--compress-level`.
    pub compress_level: Option<u8>,
    /// `--buffer-size`.
    pub buffer_size: Option<usize>,
    /// `--timeout`.
    pub timeout: Option<u64>,
    /// `--connections`.
    pub connections: Option<usize>,
    /// `--since`.
    pub since: Option<String>,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--prune-older-than DAYS`.
    pub prune_older_than: Option<u32>,
    /// `--prune-keep-flagged`.
    pub prune_keep_flagged: bool,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--restore`.
    pub restore: Option<PathBuf>,
    /// `--to-maildir`.
    pub to_maildir: Option<PathBuf>,
    /// `--maildir-layout`.
    pub maildir_layout: Option<String>,
    /// `--to-imap`.
    pub to_imap: bool,
    /// `--to-folder`.
    pub to_folder: Option<String>,
    /// `--output`.
    pub output: Option<PathBuf>,
    /// `--list-folders`.
    pub list_folders: bool,
    /// `--verify`.
    pub verify: Option<PathBuf>,
    /// `--list`.
    pub list: Option<PathBuf>,
    /// `--search`.
    pub search: Option<String>,
    /// The PATH after `--search QUERY`.
    pub search_path: Option<PathBuf>,
    /// `--uid`.
    pub uid: Option<String>,
    /// `--sandbox`.
    pub sandbox: Option<String>,
    /// `--sandbox-check`.
    pub sandbox_check: bool,
    /// `--report`.
    pub report: Option<PathBuf>,
    /// `--generate`.
    pub generate: Option<String>,
    /// `--verbose`.
    pub verbose: bool,
    /// `--quiet`.
    pub quiet: bool,
}

/// Sections of `--help`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Group {
    /// The account, its login and its folders.
    Account,
    /// The archive, compression and encryption.
    Storage,
    /// Restore and verify.
    Restore,
    /// Output and the rest.
    Output,
}

impl Group {
    /// The section's heading in `--help` (with its colon).
    pub fn title(self) -> &'static str {
        match self {
            Group::Account => "Backup (account, login and folders):",
            Group::Storage => "Archive, compression and encryption:",
            Group::Restore => "Restore and verify:",
            Group::Output => "Output and other:",
        }
    }
}

type Apply = fn(&mut LowArgs, Option<String>) -> std::result::Result<(), String>;

/// One flag: its names, its value's name, its help text and what it sets.
pub struct Flag {
    /// The one-letter name, if it has one (`-u`).
    pub short: Option<char>,
    /// The long name, without its dashes (`user` for `--user`).
    pub long: &'static str,
    /// The name of its value in `--help` (`USER`); `None` for a switch.
    pub value: Option<&'static str>,
    /// Its section of `--help`.
    pub group: Group,
    /// Its help text.
    pub doc: &'static str,
    apply: Apply,
}

fn val(v: Option<String>) -> std::result::Result<String, String> {
    v.ok_or_else(|| "a value is required".to_string())
}

fn num<T: std::str::FromStr>(v: Option<String>) -> std::result::Result<T, String> {
    let v = val(v)?;
    v.parse().map_err(|_| format!("'{v}' is not a valid number"))
}

/// A fetch budget like `4M`, `256K`, `1048576`, one of [`crate::account::buffer_size`]'s.
/// Arithmetic is checked: a value too big for any integer is refused, never wrapped.
fn buffer_size(v: Option<String>) -> std::result::Result<usize, String> {
    let v = val(v)?;
    let (digits, unit) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 1024u64),
        Some(b'm' | b'M') => (&v[..v.len() - 1], 1024 * 1024),
        _ => (&v[..], 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{v}' is not a size (examples: 262144, 256K, 4M)"));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .and_then(crate::account::buffer_size)
        .ok_or_else(|| format!("{v} is not {}", buffer_range()))
}

macro_rules! flag {
    ($short:expr, $long:literal, $value:expr, $group:ident, $doc:literal, $apply:expr) => {
        Flag { short: $short, long: $long, value: $value, group: Group::$group, doc: $doc, apply: $apply }
    };
}

/// Every flag the tool knows, in `--help` order.
pub static FLAGS: &[Flag] = &[
    flag!(Some('u'), "user", Some("USER"), Account, "Email user name (login).", |a, v| {
        a.user = Some(val(v)?);
        Ok(())
    }),
    flag!(Some('i'), "imap", Some("SERVER"), Account, "IMAP server host name or address.", |a, v| {
        a.imap = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "port", Some("N"), Account, "IMAP port (default 993, or 143 with --starttls).", |a, v| {
        a.port = Some(num(v)?);
        Ok(())
    }),
    flag!(None, "starttls", None, Account, "Connect in plain text and upgrade with STARTTLS (the certificate is still verified).", |a, _| {
        a.starttls = true;
        Ok(())
    }),
    flag!(None, "ca-file", Some("PEM"), Account, "Also trust the certificates in PEM (a self-signed NAS or home server).", |a, v| {
        a.ca_file = Some(val(v)?.into());
        Ok(())
    }),
    flag!(None, "pin-sha256", Some("HEX"), Account, "Accept exactly the server certificate with this SHA-256 fingerprint.", |a, v| {
        a.pin_sha256 = Some(val(v)?);
        Ok(())
    }),
    flag!(Some('p'), "passwd", Some("PASS"), Account, "Email password (visible to other users in the process list: prefer the next options).", |a, v| {
        a.passwd = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "passwd-command", Some("CMD"), Account, "Run CMD (with sh -c) and use the first line it prints as the email password. Otherwise: environment SMAILARCHIVER_PASSWD, then the terminal, or one line of standard input.", |a, v| {
        a.passwd_command = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "oauth2-token-command", Some("CMD"), Account, "Log in with XOAUTH2, using the access token that CMD prints (Gmail, Microsoft 365); run again for a fresh token at every reconnect.", |a, v| {
        a.oauth2_token_command = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "oauth2", Some("PROVIDER"), Account, "Log in with OAuth2 built in: google or microsoft (any other provider: \"oauth2\" in the config). Sign in once with --oauth2-login; later runs renew the token themselves. No password is asked.", |a, v| {
        let p = val(v)?;
        if !OAUTH2_PROVIDERS.contains(&p.as_str()) { return Err(format!("'{p}' is not one of google, microsoft (other providers: \"oauth2\" in the config file)")); }
        a.oauth2 = Some(p);
        Ok(())
    }),
    flag!(None, "oauth2-client-id", Some("ID"), Account, "With --oauth2: the client id of the application you registered with the provider (README, \"Gmail and Microsoft 365\").", |a, v| {
        a.oauth2_client_id = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "oauth2-client-secret-file", Some("FILE"), Account, "With --oauth2: read the client secret (Google wants the one of a \"Desktop app\" client) from the first line of FILE.", |a, v| {
        a.oauth2_client_secret_file = Some(val(v)?.into());
        Ok(())
    }),
    flag!(None, "oauth2-tenant", Some("TENANT"), Account, "With --oauth2 microsoft: the directory (tenant) id or domain your application is registered in (default common).", |a, v| {
        a.oauth2_tenant = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "oauth2-flow", Some("FLOW"), Account, "How --oauth2-login signs in: device (a code to enter in a browser on any device; Microsoft's default) or browser (an address to open; the only one Google allows for Gmail).", |a, v| {
        let f = val(v)?;
        if !OAUTH2_FLOWS.contains(&f.as_str()) { return Err(format!("'{f}' is not one of device, browser")); }
        a.oauth2_flow = Some(f);
        Ok(())
    }),
    flag!(None, "oauth2-token-file", Some("PATH"), Account, "Keep the refresh token in PATH (mode 0600) instead of ROOT/.smailarchiver/oauth2/; the run may write in its directory.", |a, v| {
        a.oauth2_token_file = Some(val(v)?.into());
        Ok(())
    }),
    flag!(None, "oauth2-seal", None, Account, "Seal the refresh token with the archive's key (needs -e): a copy of the token file is useless without the key file.", |a, _| {
        a.oauth2_seal = true;
        Ok(())
    }),
    flag!(None, "oauth2-login", None, Account, "Sign in to the provider once (OAuth2 accounts of -c, or --oauth2), keep the refresh token, try it on the IMAP server, and exit. Works without a browser on this machine.", |a, _| {
        a.oauth2_login = true;
        Ok(())
    }),
    flag!(None, "timeout", Some("SECONDS"), Account, "Give up on a server that does not answer for this long (default 60).", |a, v| {
        let n: u64 = num(v)?;
        if n == 0 { return Err("the timeout must be at least 1 second".into()); }
        a.timeout = Some(n);
        Ok(())
    }),
    flag!(None, "connections", Some("N"), Account, "Back up up to N folders at once, one connection each (default 1, at most 8; fewer when the server refuses more).", |a, v| {
        let n: usize = num(v)?;
        if !(1..=crate::account::MAX_CONNECTIONS).contains(&n) { return Err(format!("{n} is not from 1 to {}", crate::account::MAX_CONNECTIONS)); }
        a.connections = Some(n);
        Ok(())
    }),
    flag!(None, "no-pipelining", None, Account, "Send one command at a time, each after the answer to the one before (found out by itself, and remembered, for a server that garbles pipelined commands).", |a, _| {
        a.no_pipelining = true;
        Ok(())
    }),
    flag!(None, "no-gmail-mode", None, Account, "On Gmail, archive every folder as a plain server's (each label folder downloads its own copy) instead of fetching each message once from All Mail and hard-linking the label folders' files.", |a, _| {
        a.no_gmail_mode = true;
        Ok(())
    }),
    flag!(Some('f'), "folder", Some("FOLDER"), Account, "IMAP folder to back up, by its name (Reçus) or its modified UTF-7 wire name (Re&AOc-us); repeat for several (default INBOX).", |a, v| {
        a.folders.push(val(v)?);
        Ok(())
    }),
    flag!(None, "list-folders", None, Account, "List the account's folders (name, wire name, archive directory, messages, excluded or not) and exit; writes nothing.", |a, _| {
        a.list_folders = true;
        Ok(())
    }),
    flag!(None, "since", Some("DATE"), Account, "Archive only messages the server received on or after DATE (YYYY-MM-DD): for a first run of a huge mailbox; a later run without it fetches the older ones.", |a, v| {
        a.since = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "dry-run", None, Account, "Connect and count, per folder, the messages and bytes a backup would fetch; writes nothing.", |a, _| {
        a.dry_run = true;
        Ok(())
    }),
    flag!(None, "prune-older-than", Some("DAYS"), Account, "After a folder's backup completed without a failure, remove from the server its messages that arrived more than DAYS days ago, each only once its archived file was read back, decoded and found to be the message fetched (with UIDPLUS's UID EXPUNGE, or MOVE to Trash; --dry-run lists them). The only write to the server.", |a, v| {
        let days: u32 = num(v)?;
        if !(1..=crate::prune::MAX_DAYS).contains(&days) {
            return Err(format!("{days} is not a number of days from 1 to {}", crate::prune::MAX_DAYS));
        }
        a.prune_older_than = Some(days);
        Ok(())
    }),
    flag!(None, "prune-keep-flagged", None, Account, "With --prune-older-than, keep flagged messages on the server.", |a, _| {
        a.prune_keep_flagged = true;
        Ok(())
    }),
    flag!(None, "all-folders", None, Account, "Back up every selectable folder the server lists.", |a, _| {
        a.all_folders = true;
        Ok(())
    }),
    flag!(None, "exclude", Some("PATTERN"), Account, "With --all-folders, skip folders matching PATTERN (IMAP wildcards * and %); repeatable.", |a, v| {
        a.exclude.push(val(v)?);
        Ok(())
    }),
    flag!(Some('c'), "config", Some("FILE"), Account, "Back up the accounts listed in the JSON file FILE. Flags given with it win over its keys; -u and -i pick its accounts.", |a, v| {
        a.config = Some(val(v)?.into());
        Ok(())
    }),
    flag!(None, "dir", Some("ROOT"), Storage, "Archive root directory (default: the current directory).", |a, v| {
        a.dir = Some(val(v)?.into());
        Ok(())
    }),
    flag!(Some('z'), "compress", None, Storage, "Compress each message (zlib; files end in .gz).", |a, _| {
        a.compress = true;
        Ok(())
    }),
    flag!(None, "compress-level", Some("N"), Storage, "zlib level 0 (none) to 9 (smallest); default 1 (the original used 6: twice as slow for 1-2% less).", |a, v| {
        let n: u8 = num(v)?;
        if n > 9 { return Err(format!("{n} is not a level from 0 to 9")); }
        a.compress_level = Some(n);
        Ok(())
    }),
    flag!(Some('e'), "encrypt", None, Storage, "Encrypt each message (AES-256-CBC + HMAC-SHA256; files end in .enc).", |a, _| {
        a.encrypt = true;
        Ok(())
    }),
    flag!(Some('k'), "keys", Some("FILE"), Storage, "Key file (default: keys). Created, mode 0600, by the first encrypted backup.", |a, v| {
        a.keys = Some(val(v)?.into());
        Ok(())
    }),
    flag!(Some('P'), "promp", None, Storage, "The key file is password-protected: ask for its password (see the next options).", |a, _| {
        a.promp = true;
        Ok(())
    }),
    flag!(None, "key-password-file", Some("FILE"), Storage, "Read the key password from the first line of FILE.", |a, v| {
        a.key_password_file = Some(val(v)?.into());
        Ok(())
    }),
    flag!(None, "key-password-command", Some("CMD"), Storage, "Run CMD and use the first line it prints as the key password. Otherwise: environment SMAILARCHIVER_KEY_PASSWORD, then the terminal, or one line of standard input.", |a, v| {
        a.key_password_command = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "buffer-size", Some("SIZE"), Storage, "Memory budget for one fetch, from 64K to 64M (default 1M); bigger messages are fetched alone, streamed to disk.", |a, v| {
        a.buffer_size = Some(buffer_size(v)?);
        Ok(())
    }),
    flag!(Some('r'), "restore", Some("DIR"), Restore, "Restore the folder directory DIR into DIR.mbox (mboxrd, ascending UID; other .mbox* files in it come last), or a user directory (with -o or --to-maildir); an archive root or a directory without archive files is an error.", |a, v| {
        a.restore = Some(val(v)?.into());
        Ok(())
    }),
    flag!(Some('o'), "output", Some("PATH"), Restore, "With -r, write the mbox file PATH instead of DIR.mbox; for a user directory (every folder of an account), PATH is a directory that gets one mbox file per folder, named by its real name.", |a, v| {
        a.output = Some(val(v)?.into());
        Ok(())
    }),
    flag!(None, "to-maildir", Some("OUT"), Restore, "With -r, write a Maildir OUT instead: one file per message, the bytes the server sent; for a user directory, one Maildir++ tree with every folder.", |a, v| {
        a.to_maildir = Some(val(v)?.into());
        Ok(())
    }),
    flag!(None, "maildir-layout", Some("SERVER"), Restore, "With -r DIR --to-maildir OUT, write the Maildir for the server that will read it: dovecot (default: folders as .NAME in modified UTF-7, the bytes as the server sent them) or courier (Courier-IMAP 5: folders as .NAME in UTF-8 without the INBOX. prefix, LF line ends).", |a, v| {
        a.maildir_layout = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "to-imap", None, Restore, "With -r, upload to an IMAP server instead (its account from -u/-i and the connection options, or -c): a folder directory into its mailbox, a user directory into every mailbox (created when missing); messages already there are not uploaded again.", |a, _| {
        a.to_imap = true;
        Ok(())
    }),
    flag!(None, "to-folder", Some("NAME"), Restore, "With -r DIR --to-imap, upload the folder directory DIR into the mailbox NAME (default: the name it was backed up from).", |a, v| {
        a.to_folder = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "uid", Some("N[,M-K]"), Restore, "With -r on a folder directory, restore only the messages with these UIDs (7, 7,9-12).", |a, v| {
        a.uid = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "list", Some("PATH"), Restore, "List the messages of a folder directory, a user directory or a whole archive root, one line each: UID, date, From, Subject, size, flags, left the server (only the headers are decoded).", |a, v| {
        a.list = Some(val(v)?.into());
        Ok(())
    }),
    flag!(None, "search", Some("QUERY"), Restore, "Search PATH (given after QUERY: a folder directory, a user directory or a whole archive root; default: --dir, else the current directory) and print the messages QUERY selects as --list does, each after its folder directory. QUERY: words and \"phrases\" (found in the header and the text of the body, case-insensitively), from: to: subject: id: since:YYYY-MM-DD before:YYYY-MM-DD larger:SIZE smaller:SIZE flag: label:, -TERM (not), OR, ( ); all terms must hold. Only the metadata is read where it decides.", |a, v| {
        a.search = Some(val(v)?);
        Ok(())
    }),
    flag!(None, "verify", Some("PATH"), Restore, "Decode every archive file of PATH (a folder, a user directory or a whole archive) and check its metadata; report every bad file, missing file and damaged metadata record.", |a, v| {
        a.verify = Some(val(v)?.into());
        Ok(())
    }),
    flag!(None, "sandbox", Some("MODE"), Output, "auto (default): confine the process with landlock where the kernel can; require: fail if it cannot; off.", |a, v| {
        a.sandbox = Some(choice(v, SANDBOX_MODES)?);
        Ok(())
    }),
    flag!(None, "sandbox-check", None, Output, "Report what the kernel's landlock can confine, and prove it (with --dir).", |a, _| {
        a.sandbox_check = true;
        Ok(())
    }),
    flag!(None, "report", Some("FILE"), Output, "After a backup (also a failed or interrupted one), write what it did to FILE as JSON, atomically.", |a, v| {
        a.report = Some(val(v)?.into());
        Ok(())
    }),
    flag!(Some('v'), "verbose", None, Output, "Say more: one line per message.", |a, _| {
        a.verbose = true;
        Ok(())
    }),
    flag!(Some('q'), "quiet", None, Output, "Print nothing but errors (for cron).", |a, _| {
        a.quiet = true;
        Ok(())
    }),
    flag!(None, "version", None, Output, "Print the version and exit; with -v also the target and the AES, SHA-256, deflate and landlock support in use.", |a, _| {
        a.version = true;
        Ok(())
    }),
    flag!(Some('h'), "help", None, Output, "Print this help and exit.", |a, _| {
        a.help = true;
        Ok(())
    }),
    flag!(None, "generate", Some("KIND"), Output, "Print the man page (man) or a shell completion script (complete-bash, complete-zsh, complete-fish), made from these options, and exit.", |a, v| {
        a.generate = Some(choice(v, GENERATE_KINDS)?);
        Ok(())
    }),
];

/// What `--sandbox` accepts.
pub const SANDBOX_MODES: &[&str] = &["auto", "require", "off"];

/// The Maildir layouts `--maildir-layout` names (checked by `restore::layout`).
pub const MAILDIR_LAYOUTS: &[&str] = &["dovecot", "courier"];
/// `--oauth2`'s providers (others go in the config file).
pub const OAUTH2_PROVIDERS: &[&str] = &["google", "microsoft"];
/// `--oauth2-flow`'s sign-in flows.
pub const OAUTH2_FLOWS: &[&str] = &["device", "browser"];

/// What `--generate` prints: the man page, and the completion scripts for bash, zsh, fish.
pub const GENERATE_KINDS: &[&str] = &["man", "complete-bash", "complete-zsh", "complete-fish"];

/// A value that must be one of `choices`.
fn choice(v: Option<String>, choices: &[&str]) -> std::result::Result<String, String> {
    let v = val(v)?;
    if choices.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(format!("'{v}' is not one of {}", choices.join(", ")))
    }
}

impl Flag {
    /// The values the flag accepts when they are a fixed set (empty otherwise).
    pub fn choices(&self) -> &'static [&'static str] {
        match self.long {
            "sandbox" => SANDBOX_MODES,
            "generate" => GENERATE_KINDS,
            "maildir-layout" => MAILDIR_LAYOUTS,
            "oauth2" => OAUTH2_PROVIDERS,
            "oauth2-flow" => OAUTH2_FLOWS,
            _ => &[],
        }
    }

    /// Whether giving the flag again adds to it (`-f A -f B`) rather than replacing it:
    /// its documentation says so.
    pub fn repeatable(&self) -> bool {
        self.doc.contains("repeat")
    }
}

/// The forms of the command line, after the program name: `--help`'s usage and the man
/// page's synopsis.
pub const USAGE: &[&str] = &[
    "-u USER -i SERVER [-f FOLDER]... [-z] [-e [-k KEYS] [-P]]",
    "-c CONFIG.json [--dry-run | --list-folders]",
    "-c CONFIG.json --oauth2-login",
    "-u USER -i SERVER --list-folders [--all-folders]",
    "-u USER -i SERVER --dry-run [--since DATE]",
    "-u USER -i SERVER --prune-older-than DAYS [--prune-keep-flagged]",
    "-r DIR [-o PATH | --to-maildir OUT] [-k KEYS] [-P]",
    "-r DIR --uid N[,M-K] [-o PATH | --to-maildir OUT] [-k KEYS]",
    "-r USERDIR --to-maildir OUT --maildir-layout courier",
    "-r DIR --to-imap -u USER -i SERVER [--to-folder NAME] [-k KEYS]",
    "--list PATH [-k KEYS] [-P]",
    "--verify PATH [-k KEYS] [-P]",
    "--search QUERY [PATH] [-k KEYS] [-P]",
];

/// The exit statuses, for `--help` and the man page.
pub const EXIT_STATUSES: &[(i32, &str)] = &[
    (crate::exit::EXIT_SUCCESS, "all good"),
    (crate::exit::EXIT_FAILURE, "something failed"),
    (crate::exit::EXIT_USAGE, "usage or config error"),
    (crate::exit::of_signal(libc::SIGINT), "interrupted by SIGINT"),
    (crate::exit::of_signal(libc::SIGTERM), "interrupted by SIGTERM"),
];

/// The long names the original (argparse) knew; their prefixes must keep working.
const ORIGINAL_LONGS: &[&str] = &[
    "user", "imap", "passwd", "folder", "encrypt", "keys", "promp", "compress", "config", "restore", "verbose",
    "version", "help",
];

/// Finds a long flag by its name or, as argparse did, by a unique prefix of it.
fn find_long(name: &str) -> Result<&'static Flag> {
    if let Some(f) = FLAGS.iter().find(|f| f.long == name) {
        return Ok(f);
    }
    let mut matches: Vec<_> = FLAGS.iter().filter(|f| !name.is_empty() && f.long.starts_with(name)).collect();
    // A prefix that was unique among the original's flags keeps meaning what it meant.
    if matches.len() > 1 {
        let original: Vec<_> = matches.iter().copied().filter(|f| ORIGINAL_LONGS.contains(&f.long)).collect();
        if original.len() == 1 {
            matches = original;
        }
    }
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::usage(format!("unknown option --{name} (see --help)"))),
        many => Err(Error::usage(format!(
            "ambiguous option --{name}: could be {}",
            many.iter().map(|f| format!("--{}", f.long)).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Parses the arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<LowArgs> {
    let args: Vec<OsString> = args.into_iter().collect();
    let mut low = LowArgs { count: args.len(), ..LowArgs::default() };
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| Error::usage(e.to_string()))? {
        let long = matches!(arg, lexopt::Arg::Long(_));
        let (flag, shown) = match arg {
            lexopt::Arg::Short(c) => {
                let f = FLAGS
                    .iter()
                    .find(|f| f.short == Some(c))
                    .ok_or_else(|| Error::usage(format!("unknown option -{c} (see --help)")))?;
                (f, format!("-{c}"))
            }
            lexopt::Arg::Long(name) => {
                let name = name.to_string();
                (find_long(&name)?, format!("--{name}"))
            }
            lexopt::Arg::Value(v) if low.search.is_some() && low.search_path.is_none() => {
                low.search_path = Some(PathBuf::from(v));
                continue;
            }
            lexopt::Arg::Value(v) => {
                return Err(Error::usage(format!("unexpected argument '{}' (see --help)", v.to_string_lossy())));
            }
        };
        let value = match flag.value {
            Some(_) => {
                let v = parser.value().map_err(|_| Error::usage(format!("{shown} needs a value")))?;
                Some(
                    v.into_string()
                        .map_err(|v| Error::usage(format!("{shown}: '{}' is not valid UTF-8", v.to_string_lossy())))?,
                )
            }
            None => {
                // Only `--flag=value` can carry a stray value; `-ezP` is a cluster of flags.
                if let Some(v) = long.then(|| parser.optional_value()).flatten() {
                    return Err(Error::usage(format!("{shown} takes no value (got '{}')", v.to_string_lossy())));
                }
                None
            }
        };
        (flag.apply)(&mut low, value).map_err(|e| Error::usage(format!("{shown}: {e}")))?;
    }
    Ok(low)
}

/// `text` broken at spaces into lines of at most `width` columns, each ending in a newline.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The `--help` text, generated from [`FLAGS`] and wrapped to 80 columns.
pub fn help() -> String {
    const INDENT: usize = 26;
    const WIDTH: usize = 80;
    let mut out = format!(
        "smailarchiver {} - back up IMAP mailboxes one file per message\n\nUsage:\n",
        env!("CARGO_PKG_VERSION")
    );
    for form in USAGE {
        out.push_str(&format!("  smailarchiver {form}\n"));
    }
    out.push_str("  smailarchiver          (no arguments: interactive wizard)\n");
    let mut group = None;
    for f in FLAGS {
        if group != Some(f.group) {
            group = Some(f.group);
            out.push('\n');
            out.push_str(f.group.title());
            out.push('\n');
        }
        let mut names = match f.short {
            Some(c) => format!("  -{c}, --{}", f.long),
            None => format!("      --{}", f.long),
        };
        if let Some(v) = f.value {
            names.push(' ');
            names.push_str(v);
        }
        let mut line = names.clone();
        let mut col = if names.len() + 2 > INDENT {
            out.push_str(&names);
            out.push('\n');
            line = " ".repeat(INDENT);
            INDENT
        } else {
            line.push_str(&" ".repeat(INDENT - names.len()));
            INDENT
        };
        for word in f.doc.split(' ') {
            if col + word.len() + 1 > WIDTH && col > INDENT {
                out.push_str(line.trim_end());
                out.push('\n');
                line = " ".repeat(INDENT);
                col = INDENT;
            }
            if col > INDENT {
                line.push(' ');
                col += 1;
            }
            line.push_str(word);
            col += word.len();
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let statuses: Vec<String> = EXIT_STATUSES.iter().map(|(code, what)| format!("{code} {what}")).collect();
    out.push('\n');
    out.push_str(&wrap(&format!("Exit status: {}.", statuses.join(", ")), WIDTH));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{MAX_BUFFER, MIN_BUFFER};

    fn p(args: &[&str]) -> Result<LowArgs> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn argparse_forms() {
        let a = p(&["-uann", "--imap=imap.x", "--passwd", "pw", "-ezP", "-f", "INBOX", "-fSent"]).unwrap();
        assert_eq!(a.user.as_deref(), Some("ann"));
        assert_eq!(a.imap.as_deref(), Some("imap.x"));
        assert_eq!(a.passwd.as_deref(), Some("pw"));
        assert!(a.encrypt && a.compress && a.promp);
        assert_eq!(a.folders, ["INBOX", "Sent"]);
        let a = p(&["--comp", "--verb", "--res", "d", "--pass", "pw"]).unwrap();
        assert!(a.compress && a.verbose);
        assert_eq!(a.passwd.as_deref(), Some("pw"));
        assert_eq!(a.restore, Some(PathBuf::from("d")));
    }

    #[test]
    fn errors_are_usage_errors() {
        for (args, want) in [
            (&["--bogus"][..], "unknown option --bogus"),
            (&["-x"][..], "unknown option -x"),
            (&["-u"][..], "-u needs a value"),
            (&["--co", "x"][..], "ambiguous option --co"),
            (&["stray"][..], "unexpected argument 'stray'"),
            (&["--compress=yes"][..], "--compress takes no value"),
            (&["--compress-level", "12"][..], "not a level"),
            (&["--buffer-size", "lots"][..], "not a size"),
            (&["--buffer-size", "-1"][..], "not a size"),
            (&["--buffer-size", "0"][..], "0 is not from 64K to 64M (65536 to 67108864 bytes)"),
            (&["--buffer-size", "63K"][..], "63K is not from 64K"),
            (&["--buffer-size", "65M"][..], "65M is not from 64K"),
            (&["--buffer-size", "67108865"][..], "67108865 is not from 64K"),
            (&["--buffer-size", "18446744073709551615"][..], "18446744073709551615 is not from 64K"),
            (&["--buffer-size", "18446744073709551616"][..], "is not from 64K"),
            (&["--buffer-size", "99999999999M"][..], "99999999999M is not from 64K"),
        ] {
            let e = p(args).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn buffer_size_bounds_are_accepted() {
        for (text, want) in [("64K", MIN_BUFFER), ("65536", MIN_BUFFER), ("64M", MAX_BUFFER), ("1m", 1 << 20)] {
            assert_eq!(p(&["--buffer-size", text]).unwrap().buffer_size, Some(want), "{text}");
        }
    }

    /// A flag is repeatable (for the completions) exactly when a second value adds to
    /// the first rather than replacing it.
    #[test]
    fn repeatable_is_what_the_parser_does() {
        for f in FLAGS.iter().filter(|f| f.value.is_some() && f.choices().is_empty()) {
            let (a, b) = if f.long == "buffer-size" { ("1M", "2M") } else { ("1", "2") };
            let name = format!("--{}", f.long);
            let once = p(&[&name, b]).unwrap();
            let mut twice = p(&[&name, a, &name, b]).unwrap();
            twice.count = once.count;
            let adds = format!("{twice:?}") != format!("{once:?}");
            assert_eq!(adds, f.repeatable(), "{name}");
        }
    }

    #[test]
    fn help_fits_80_columns_and_lists_every_flag() {
        let h = help();
        for line in h.lines() {
            assert!(line.chars().count() <= 80, "too wide: {line}");
        }
        for f in FLAGS {
            assert!(h.contains(&format!("--{}", f.long)), "{} missing", f.long);
        }
    }
}
