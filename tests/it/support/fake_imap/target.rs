//! The scripted server as an upload target: the commands an upload sends (NAMESPACE,
//! `LIST "" ""`, CREATE, APPEND with its literal, SELECT, UID STORE, UID EXPUNGE,
//! UNSELECT, CLOSE, partial header fetches) and the ways servers take them ([`Persona`]),
//! written from their documentation and from what the issue saw them do:
//! - Courier-IMAP: no LITERAL+ (each literal waits for the server's `+`), folders under
//!   `INBOX.` with `.` between levels, APPEND refused into a
//!   mailbox the session has open read-only ("Current box is selected READ-ONLY."),
//!   CREATE refused outside its namespace ("Permission denied") and for names with `/`.
//! - Gmail: LITERAL- (RFC 7888: non-synchronizing literals of 4096 bytes at most).
//! - Cyrus IMAP: `munge8bit` (raw 8-bit header bytes stored as `X`), bare LF refused
//!   ("Message contains bare newlines").
//!
//! Client mistakes fail the test: a non-synchronizing literal the server did not offer,
//! CLOSE after SELECT removing messages marked `\Deleted` that the client did not mean to
//! remove is what a real server does, and is done here too.

use super::*;

/// How a server names folders and takes uploads. The default is Dovecot's way in the
/// harness: `/` between levels, no prefix, everything taken as it is.
#[derive(Clone, Copy, Debug)]
pub struct Persona {
    /// The hierarchy separator LIST and NAMESPACE give.
    pub separator: char,
    /// The personal namespace's prefix (`INBOX.`): CREATE refuses names outside it.
    pub prefix: &'static str,
    /// APPEND is refused into the mailbox the session has open read-only (Courier).
    pub no_append_when_examined: bool,
    /// Raw 8-bit bytes of a header are stored as `X` (Cyrus's default `munge8bit`).
    pub munge8bit: bool,
    /// A message with a LF not after a CR is refused (Cyrus).
    pub refuse_bare_lf: bool,
    /// A message that does not end with CRLF is stored with one more.
    pub add_trailing_crlf: bool,
}

impl Default for Persona {
    fn default() -> Persona {
        Persona {
            separator: '/',
            prefix: "",
            no_append_when_examined: false,
            munge8bit: false,
            refuse_bare_lf: false,
            add_trailing_crlf: false,
        }
    }
}

impl Persona {
    /// Courier-IMAP 5 (offer it with [`Persona::COURIER_CAPABILITIES`]).
    pub fn courier() -> Persona {
        Persona { separator: '.', prefix: "INBOX.", no_append_when_examined: true, ..Persona::default() }
    }

    /// Courier's capabilities: no LITERAL+, no UNSELECT.
    pub const COURIER_CAPABILITIES: &'static str = "NAMESPACE UIDPLUS CHILDREN";

    /// Cyrus IMAP 3 in its classic namespace mode (`.` under `INBOX.`).
    pub fn cyrus_dot() -> Persona {
        Persona { separator: '.', prefix: "INBOX.", munge8bit: true, refuse_bare_lf: true, ..Persona::default() }
    }

    /// Cyrus's capabilities.
    pub const CYRUS_CAPABILITIES: &'static str = "LITERAL+ NAMESPACE UIDPLUS UNSELECT ID";

    /// Gmail's capabilities: LITERAL-, not LITERAL+.
    pub const GMAIL_CAPABILITIES: &'static str = "LITERAL- NAMESPACE UIDPLUS UNSELECT ID";
}

/// What APPEND stored beside a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// Its flags, as given.
    pub flags: Vec<String>,
    /// Its INTERNALDATE, as given.
    pub date: Option<String>,
}

/// APPENDs received so far, and those held back until a count ([`Fault::LandLate`]).
#[derive(Default)]
pub(super) struct Landing {
    received: usize,
    held: Vec<(usize, String, Vec<u8>)>,
}

/// The literal an APPEND line announces: its size and whether it is non-synchronizing.
pub(super) fn announced(cmd: &str) -> Option<(usize, bool)> {
    if !cmd.get(..7).is_some_and(|v| v.eq_ignore_ascii_case("APPEND ")) {
        return None;
    }
    let inside = cmd.strip_suffix('}')?.rsplit_once('{')?.1;
    match inside.strip_suffix('+') {
        Some(n) => Some((n.parse().ok()?, true)),
        None => Some((inside.parse().ok()?, false)),
    }
}

/// Reads an APPEND's literal of `size` bytes, giving the go-ahead first unless it is
/// non-synchronizing; `None` when the client left.
pub(super) fn read_literal(
    s: &mut Tls,
    account: &Account,
    size: usize,
    plus: bool,
    errors: &Mutex<Vec<String>>,
    n: usize,
) -> io::Result<Option<Vec<u8>>> {
    if plus && !(account.offers("LITERAL+") || (account.offers("LITERAL-") && size <= 4096)) {
        lock(errors).push(format!("connection {n}: a non-synchronizing literal of {size} bytes, not offered"));
    }
    if !plus {
        send(s, b"+ Ready for literal data\r\n")?;
    }
    let mut data = vec![0u8; size];
    match s.read_exact(&mut data) {
        Ok(()) => {}
        Err(e) if client_left(&e) => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut rest = String::new();
    s.read_line(&mut rest)?;
    if rest.trim_end() != "" {
        lock(errors).push(format!("connection {n}: after an APPEND's literal came {rest:?}"));
    }
    Ok(Some(data))
}

/// Holds the APPEND `cmd` of `message` back: it is stored just before the `later`-th
/// APPEND received after it.
pub(super) fn hold(account: &Account, cmd: &str, message: Vec<u8>, later: usize) {
    let mut landing = lock(&account.landing);
    let at = landing.received + later;
    landing.held.push((at, cmd.to_string(), message));
}

/// Counts an APPEND received, storing first those held back until it.
fn receive(account: &Account) {
    let mut landing = lock(&account.landing);
    landing.received += 1;
    let now = landing.received;
    let (due, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut landing.held).into_iter().partition(|h| h.0 <= now);
    landing.held = kept;
    for (_, cmd, message) in due {
        let (mailbox, flags, date) = parse_append(&cmd);
        let _ = store(account, &mailbox, flags, date, message);
    }
}

/// The answer to the APPEND `cmd` of `message`.
pub(super) fn append(account: &Account, state: &State, tag: &str, cmd: &str, message: Vec<u8>) -> Vec<u8> {
    receive(account);
    let persona = account.offer.persona;
    let (mailbox, flags, date) = parse_append(cmd);
    if persona.no_append_when_examined && state.selected.as_deref() == Some(mailbox.as_str()) && !state.writable {
        return format!("{tag} NO Current box is selected READ-ONLY.\r\n").into_bytes();
    }
    let bare_lf = message.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || message[i - 1] != b'\r'));
    if persona.refuse_bare_lf && bare_lf {
        return format!("{tag} NO Message contains bare newlines\r\n").into_bytes();
    }
    match store(account, &mailbox, flags, date, message) {
        Ok((validity, uid)) if account.offers("UIDPLUS") => {
            format!("{tag} OK [APPENDUID {validity} {uid}] Completed\r\n").into_bytes()
        }
        Ok(_) => format!("{tag} OK Completed\r\n").into_bytes(),
        Err(text) => format!("{tag} NO {text}\r\n").into_bytes(),
    }
}

/// Stores a message as the persona does; its folder's UIDVALIDITY and its UID.
fn store(
    account: &Account,
    mailbox: &str,
    flags: Vec<String>,
    date: Option<String>,
    mut message: Vec<u8>,
) -> Result<(u32, u32), String> {
    let persona = account.offer.persona;
    let mut folders = lock(&account.folders);
    let Some(f) = folders.iter_mut().find(|f| f.name == mailbox) else {
        return Err("[TRYCREATE] Mailbox does not exist".into());
    };
    if persona.munge8bit {
        let end = header_end(&message);
        for b in &mut message[..end] {
            if *b >= 0x80 {
                *b = b'X';
            }
        }
    }
    if persona.add_trailing_crlf && !message.ends_with(b"\r\n") {
        message.extend_from_slice(b"\r\n");
    }
    let uid = f.uidnext;
    f.uidnext += 1;
    f.messages.push((uid, message));
    f.stored.insert(uid, Stored { flags, date });
    Ok((f.uidvalidity, uid))
}

/// Where a message's header ends (after its blank line), or its length.
fn header_end(message: &[u8]) -> usize {
    let mut at = 0;
    for line in message.split_inclusive(|&b| b == b'\n') {
        at += line.len();
        if line == b"\n" || line == b"\r\n" {
            return at;
        }
    }
    message.len()
}

/// `APPEND mailbox [(flags)] ["date"] {N}`: the mailbox, flags and date.
fn parse_append(cmd: &str) -> (String, Vec<String>, Option<String>) {
    let rest = cmd[7..].trim_start();
    let (mailbox, rest) = first_string(rest);
    let rest = rest.trim_start();
    let (flags, rest) = match rest.strip_prefix('(') {
        Some(r) => {
            let (inside, after) = r.split_once(')').unwrap_or((r, ""));
            (inside.split_whitespace().map(str::to_string).collect(), after.trim_start())
        }
        None => (Vec::new(), rest),
    };
    let date = rest.starts_with('"').then(|| first_string(rest).0);
    (mailbox, flags, date)
}

/// A quoted string (with `\"` and `\\`) or an atom at the start of `text`, and the rest.
fn first_string(text: &str) -> (String, &str) {
    if let Some(inner) = text.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = inner.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return (out, &inner[i + 1..]),
                '\\' => out.extend(chars.next().map(|(_, c)| c)),
                c => out.push(c),
            }
        }
        return (out, "");
    }
    let end = text.find(' ').unwrap_or(text.len());
    (text[..end].to_string(), &text[end..])
}

/// The answers to the commands of uploads that the backup server does not know; `None`
/// for any other command.
pub(super) fn answer(account: &Account, state: &mut State, tag: &str, verb: &str, rest: &str) -> Option<Vec<u8>> {
    let persona = account.offer.persona;
    let ok = |text: &str| format!("{tag} OK {text}\r\n");
    let reply = match verb.to_ascii_uppercase().as_str() {
        "NAMESPACE" if account.offers("NAMESPACE") => {
            format!("* NAMESPACE ((\"{}\" \"{}\")) NIL NIL\r\n{}", persona.prefix, persona.separator, ok("Completed"))
        }
        "LIST" if rest == "\"\" \"\"" => {
            format!("* LIST (\\Noselect) \"{}\" \"\"\r\n{}", persona.separator, ok("Completed"))
        }
        "CREATE" => {
            let name = first_string(rest).0;
            let mut folders = lock(&account.folders);
            let outside = !persona.prefix.is_empty() && !name.starts_with(persona.prefix);
            if folders.iter().any(|f| f.name == name) {
                format!("{tag} NO [ALREADYEXISTS] Mailbox exists\r\n")
            } else if outside || name.eq_ignore_ascii_case("INBOX") {
                format!("{tag} NO Permission denied\r\n")
            } else if name.contains('/') && persona.separator != '/' {
                format!("{tag} NO Invalid mailbox name\r\n")
            } else {
                let uidvalidity = 1000 + folders.len() as u32;
                folders.push(Folder::new(&name, uidvalidity, Vec::new()));
                ok("Completed")
            }
        }
        "SELECT" => {
            let name = first_string(rest).0;
            let folders = lock(&account.folders);
            match folders.iter().find(|f| f.name == name) {
                Some(f) => {
                    state.selected = Some(name.clone());
                    state.writable = true;
                    format!(
                        "* {} EXISTS\r\n* OK [UIDVALIDITY {}] ok\r\n{}",
                        f.messages.len(),
                        f.uidvalidity,
                        ok("[READ-WRITE] selected")
                    )
                }
                None => {
                    state.selected = None;
                    format!("{tag} NO no such folder\r\n")
                }
            }
        }
        "UNSELECT" if account.offers("UNSELECT") => match state.selected.take() {
            Some(_) => ok("Completed"),
            None => format!("{tag} BAD No mailbox selected\r\n"),
        },
        "CLOSE" => match state.selected.take() {
            Some(name) => {
                if state.writable {
                    let mut folders = lock(&account.folders);
                    if let Some(f) = folders.iter_mut().find(|f| f.name == name) {
                        let gone: Vec<u32> = f
                            .stored
                            .iter()
                            .filter(|(_, s)| s.flags.iter().any(|x| x.eq_ignore_ascii_case("\\Deleted")))
                            .map(|(u, _)| *u)
                            .collect();
                        f.messages.retain(|(u, _)| !gone.contains(u));
                    }
                }
                ok("Completed")
            }
            None => format!("{tag} BAD No mailbox selected\r\n"),
        },
        // As a real server answers a command sent after an EXAMINE that failed.
        "UID" if state.selected.is_none() => format!("{tag} BAD No mailbox selected\r\n"),
        "UID" => {
            let (sub, args) = rest.split_once(' ')?;
            let sub = sub.to_ascii_uppercase();
            if sub != "STORE" && sub != "EXPUNGE" {
                return None;
            }
            if !state.writable || state.selected.is_none() {
                return Some(format!("{tag} NO Mailbox is read-only\r\n").into_bytes());
            }
            let name = state.selected.clone().unwrap_or_default();
            let mut folders = lock(&account.folders);
            let f = folders.iter_mut().find(|f| f.name == name)?;
            let max = f.messages.last().map_or(0, |m| m.0);
            let set = args.split(' ').next().unwrap_or("");
            let uids: Vec<u32> = f.messages.iter().map(|m| m.0).filter(|&u| in_set(u, set, max)).collect();
            if sub == "STORE" {
                if !args.to_ascii_uppercase().contains("+FLAGS.SILENT (\\DELETED)") {
                    return None;
                }
                for u in uids {
                    let s = f.stored.entry(u).or_default();
                    if !s.flags.iter().any(|x| x == "\\Deleted") {
                        s.flags.push("\\Deleted".into());
                    }
                }
                ok("Completed")
            } else {
                if !account.offers("UIDPLUS") {
                    return None;
                }
                let mut out = String::new();
                for u in uids {
                    let deleted = f.stored.get(&u).is_some_and(|s| s.flags.iter().any(|x| x == "\\Deleted"));
                    if let (true, Some(seq)) = (deleted, f.messages.iter().position(|m| m.0 == u)) {
                        f.messages.remove(seq);
                        out.push_str(&format!("* {} EXPUNGE\r\n", seq + 1));
                    }
                }
                out + &ok("Completed")
            }
        }
        _ => return None,
    };
    Some(reply.into_bytes())
}

/// The answers to `UID FETCH set (UID BODY.PEEK[HEADER]<0.N>)` (or without `<0.N>`).
pub(super) fn headers(folder: &Folder, set: &str, items: &str, out: &mut Vec<u8>) {
    let limit = items
        .split_once("BODY.PEEK[HEADER]<0.")
        .and_then(|(_, r)| r.split_once('>'))
        .and_then(|(n, _)| n.parse::<usize>().ok());
    let max = folder.messages.last().map_or(0, |m| m.0);
    for (i, (uid, body)) in folder.messages.iter().enumerate() {
        if !in_set(*uid, set, max) {
            continue;
        }
        let header = &body[..header_end(body)];
        let (origin, data) = match limit {
            Some(n) => ("<0>", &header[..header.len().min(n)]),
            None => ("", header),
        };
        // A backup samples headers with their sizes (the mailstore's evidence).
        let size = if items.contains("RFC822.SIZE") { format!(" RFC822.SIZE {}", body.len()) } else { String::new() };
        out.extend_from_slice(
            format!("* {} FETCH (UID {uid}{size} BODY[HEADER]{origin} {{{}}}\r\n", i + 1, data.len()).as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b")\r\n");
    }
}
