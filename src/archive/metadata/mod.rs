//! Each archived message's flags, arrival time (INTERNALDATE), size, digest (SHA-256 of
//! the message as fetched; an encrypted file's HMAC tag), file form, and whether it left the
//! server, kept per folder in `ROOT/.smailarchiver/meta/USERDIR/`, outside the folder
//! directories (the original's restore loop reads every file in those).
//!
//! A folder's file is a journal ([`journal`]): records appended after the messages they
//! describe are committed, each checked on its own (a checksum, or sealed with the
//! archive's keys and framing when the account encrypts), so a damaged record costs that
//! record only; compacted now and then into one sorted record per message. Reading
//! ([`index`]) streams it in UID order in bounded memory, whatever its size.

pub mod headers;
mod index;
mod journal;
pub mod line;
pub mod reader;
pub mod record;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::archive::layout::registry::Registry;
use crate::archive::layout::{JOURNALS_DIR, META_DIR};
use crate::mbox::{civil_from_days, days_from_civil, days_in_month, MONTHS};

pub use index::{Cursor, Index};
pub use journal::{authenticates, last_modseq, now, summary, Journal, Summary};
pub use line::LineError;
pub use reader::Damage;
pub use record::{Gone, Mark};

use crate::codec::Form;

/// What is kept of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageMeta {
    /// Its flags, as the server names them (`\Seen`, `$Forwarded`, keywords).
    pub flags: Vec<String>,
    /// INTERNALDATE in IMAP form (`07-Jul-2019 02:44:25 -0700`), when known.
    pub internal_date: Option<String>,
    /// INTERNALDATE as Unix time.
    pub arrived: Option<i64>,
    /// Message size in bytes, when known.
    pub size: Option<u64>,
    /// SHA-256 of the message as fetched (an encrypted file's HMAC tag), when known (and
    /// asked for).
    pub digest: Option<[u8; 32]>,
    /// Whether its flags are known.
    pub flags_known: bool,
    /// The layers of its file, when recorded.
    pub form: Option<Form>,
    /// It left the server: when it was last known there.
    pub gone: Option<Gone>,
    /// Recorded as archived (not only flags or a date learnt of it).
    pub archived: bool,
    /// When it was archived (Unix time), when recorded.
    pub archived_at: Option<i64>,
    /// Its From, To, Subject, Date and Message-ID, when recorded (by a backup of 0.7.0 on).
    pub headers: Option<Box<headers::HeaderFields>>,
    /// Its Gmail labels, when recorded.
    pub labels: Option<Vec<String>>,
    /// Its Gmail message and thread ids (`X-GM-MSGID`, `X-GM-THRID`), when recorded.
    pub gmail: Option<(u64, u64)>,
}

/// One message's line, written once it is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// UID.
    pub uid: u32,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the message bytes; for an encrypted file, its HMAC-SHA256 tag.
    pub digest: [u8; 32],
    /// INTERNALDATE as the server sent it (checked form), if it did.
    pub internal_date: Option<String>,
    /// Flags as fetched with the body.
    pub flags: Vec<String>,
    /// The layers of its file.
    pub form: Option<Form>,
    /// Its From, To, Subject, Date and Message-ID, as the writer saw them go by.
    pub headers: Option<Box<headers::HeaderFields>>,
    /// Its Gmail labels, when known.
    pub labels: Option<Vec<String>>,
}

/// The journal of one folder: `META/USERDIR/HASH-UIDVALIDITY` where HASH is the first 16
/// hex digits of SHA-256 of the mailbox's wire name. Keyed by mailbox and UIDVALIDITY,
/// so a folder directory moved aside after a UIDVALIDITY change keeps its journal.
pub fn journal_path(root: &Path, account_dir: &str, wire: &str, uidvalidity: u32) -> PathBuf {
    root.join(META_DIR).join(JOURNALS_DIR).join(account_dir).join(journal_name(wire, uidvalidity))
}

fn journal_name(wire: &str, uidvalidity: u32) -> String {
    let hash = Sha256::digest(wire.as_bytes());
    format!("{}-{uidvalidity}", hex(&hash[..8]))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The journal of the folder directory `dir` (`ROOT/USERDIR/FOLDERDIR`), found through the
/// root's records: `None` for archives without records or metadata (the original's, 0.6's).
pub fn journal_of_dir(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    let user_dir = dir.parent()?;
    let root = user_dir.parent()?;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let (account, folder) = (name(user_dir)?, name(&dir)?);
    let records = Registry::read(root).ok()?;
    let record = records.folder_at(&account, &folder)?;
    let path = journal_path(root, &account, &record.mailbox.wire, record.uidvalidity?);
    path.is_file().then_some(path)
}

/// Parses an IMAP date-time into Unix time and the zone offset in minutes.
pub fn parse_internal_date(d: &str) -> Option<(i64, i16)> {
    if !crate::imap::wire::internal_date_ok(d) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| d.get(r)?.trim_start().parse::<i64>().ok();
    let day = num(0..2)?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(&d[3..6]))? as i64 + 1;
    let year = num(7..11)?;
    let (h, m, s) = (num(12..14)?, num(15..17)?, num(18..20)?);
    let (zh, zm) = (num(22..24)?, num(24..26)?);
    if day < 1 || day > days_in_month(year, month) || h > 23 || m > 59 || s > 60 || zm > 59 {
        return None;
    }
    let zone = (zh * 60 + zm) * if &d[21..22] == "-" { -1 } else { 1 };
    let local = days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s;
    Some((local - zone * 60, zone as i16))
}

/// The IMAP date-time of Unix time `t` in zone `zone` (minutes east).
pub fn format_internal_date(t: i64, zone: i16) -> String {
    let local = t + i64::from(zone) * 60;
    let (days, secs) = (local.div_euclid(86400), local.rem_euclid(86400));
    let (year, month, day) = civil_from_days(days);
    let (sign, z) = if zone < 0 { ('-', -i64::from(zone)) } else { ('+', i64::from(zone)) };
    format!(
        "{day:02}-{}-{year:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        z / 60,
        z % 60
    )
}

/// Digests a message while it is written.
#[derive(Clone, Default)]
pub struct Hasher(Sha256);

impl Hasher {
    /// Adds message bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The SHA-256.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// SHA-256 of everything read through it.
pub struct HashingReader<R> {
    /// The reader.
    pub inner: R,
    /// The digest so far.
    pub hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Maildir info letters for `flags` (`D F P R S T`, in that order), as `:2,` expects.
pub fn maildir_letters(flags: &[String]) -> String {
    let has = |name: &str| flags.iter().any(|f| f.eq_ignore_ascii_case(name));
    [
        ("\\Draft", 'D'),
        ("\\Flagged", 'F'),
        ("$Forwarded", 'P'),
        ("\\Answered", 'R'),
        ("\\Seen", 'S'),
        ("\\Deleted", 'T'),
    ]
    .iter()
    .filter(|(f, _)| has(f))
    .map(|(_, c)| *c)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let (t, z) = parse_internal_date(" 7-Jul-2019 02:44:25 -0700").unwrap();
        assert_eq!((t, z), (1562492665, -420));
        assert_eq!(format_internal_date(t, z), "07-Jul-2019 02:44:25 -0700");
        assert_eq!(parse_internal_date("01-Jan-1970 00:00:00 +0000"), Some((0, 0)));
        assert!(parse_internal_date("31-Feb-2019 02:44:25 -0700").is_none());
        assert!(parse_internal_date("07-Jux-2019 02:44:25 -0700").is_none());
    }

    #[test]
    fn maildir_flags() {
        let f: Vec<String> = ["\\Seen", "\\Answered", "\\Flagged", "$Forwarded", "\\Deleted", "\\Draft", "$Junk"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(maildir_letters(&f), "DFPRST");
        assert_eq!(maildir_letters(&[]), "");
    }
}
