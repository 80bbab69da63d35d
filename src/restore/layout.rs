//! A Maildir for the server that will read it. INBOX is a Maildir++ tree's top and every
//! other folder a directory `.NAME` in it, `.` between levels, but the NAME differs:
//! Dovecot's Maildir++ (its default `maildir:~/Maildir`) keeps the modified UTF-7 wire
//! name; Courier-IMAP 5 keeps UTF-8 names, without the `INBOX.` that it puts before every
//! folder on the wire (a folder `.INBOX.Archive` lists in Courier as `INBOX.INBOX.Archive`).
//! And Courier keeps messages with LF line ends, adding the CR when it serves them (a file
//! with CRLF comes back with CR CR LF), where Dovecot takes either.

use std::io::{self, Write};

use crate::error::{Error, Result};
use crate::hierarchy::{Hierarchy, SourceName};
use crate::mailbox_name::Mailbox;

/// The naming of a Maildir++ tree's folder directories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaildirLayout {
    /// `.` and the modified UTF-7 name with `/` as `.` (`.Re&AOc-us`, `.Archive.2023`):
    /// Dovecot's Maildir++.
    #[default]
    Dovecot,
    /// `.` and the UTF-8 name without an `INBOX.` prefix, `/` as `.` (`.Reçus`,
    /// `.Archive.2023` for `INBOX.Archive.2023` or `Archive/2023`): Courier-IMAP 5.
    Courier,
}

impl MaildirLayout {
    /// `dovecot` or `courier`, as `--maildir-layout` takes them.
    pub fn parse(text: &str) -> Result<MaildirLayout> {
        match text.to_ascii_lowercase().as_str() {
            "dovecot" => Ok(MaildirLayout::Dovecot),
            "courier" => Ok(MaildirLayout::Courier),
            _ => Err(Error::usage(format!("--maildir-layout takes dovecot or courier, not {text:?}"))),
        }
    }

    /// Whether message files get LF line ends (CRLF written as LF).
    pub fn unix_line_ends(self) -> bool {
        self == MaildirLayout::Courier
    }

    /// The folder directory's name (`.` included) for a mailbox with wire name `wire` (when
    /// known), moved aside at UIDVALIDITY `retired` or live, shown as `name`
    /// (` (UIDVALIDITY N)` included), from a server of hierarchy `source` (as recorded, or
    /// inferred: [`crate::hierarchy::infer`]).
    pub fn folder_dir(self, wire: Option<&str>, retired: Option<u32>, name: &str, source: &Hierarchy) -> String {
        let levels: Vec<String> = match self {
            // Dovecot's Maildir++ with the `/` separator the tool's backups name levels by:
            // the wire name, `/` as `.`; a generation moved aside by its shown name.
            MaildirLayout::Dovecot => match (wire, retired) {
                (Some(wire), None) => wire.split('/').map(file_name_part).collect(),
                _ => crate::mailbox_name::encode_utf7(name).split('/').map(file_name_part).collect(),
            },
            // Courier's personal namespace is `INBOX.`: on disk, the levels below the
            // source's own namespace, each in UTF-8.
            MaildirLayout::Courier => {
                let wire = wire.map_or_else(|| crate::mailbox_name::encode_utf7(name), str::to_string);
                let mut levels: Vec<String> = SourceName { wire, hierarchy: source.clone() }
                    .levels()
                    .iter()
                    .map(|level| Mailbox::from_wire(level).name())
                    .collect();
                if let (Some(v), Some(last)) = (retired, levels.last_mut()) {
                    last.push_str(&format!(" (UIDVALIDITY {v})"));
                }
                levels.iter().map(|l| file_name_part(l)).collect()
            }
        };
        format!(".{}", levels.join("."))
    }
}

/// A name level as a file name: control characters replaced, never empty, `.` or `..`.
pub fn file_name_part(part: &str) -> String {
    let cleaned: String = part.chars().map(|c| if c.is_control() { '_' } else { c }).collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

/// Writes what it is given with every CRLF as LF (a CR elsewhere stays), streaming: a CR at
/// the end of one write waits for the next. Call [`UnixLineEnds::finish`] at the end.
pub struct UnixLineEnds<W: Write> {
    inner: W,
    pending_cr: bool,
}

impl<W: Write> UnixLineEnds<W> {
    /// Writes to `inner`, each CRLF as LF.
    pub fn new(inner: W) -> UnixLineEnds<W> {
        UnixLineEnds { inner, pending_cr: false }
    }

    /// Writes a CR left pending at the end, and flushes.
    pub fn finish(mut self) -> io::Result<W> {
        if self.pending_cr {
            self.inner.write_all(b"\r")?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for UnixLineEnds<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        if self.pending_cr && !rest.is_empty() {
            if rest[0] != b'\n' {
                self.inner.write_all(b"\r")?;
            }
            self.pending_cr = false;
        }
        while let Some(cr) = rest.iter().position(|&b| b == b'\r') {
            self.inner.write_all(&rest[..cr])?;
            match rest.get(cr + 1) {
                // The CR of a CRLF is left out; the LF goes with the next piece.
                Some(b'\n') => {}
                Some(_) => self.inner.write_all(b"\r")?,
                None => self.pending_cr = true,
            }
            rest = &rest[cr + 1..];
        }
        self.inner.write_all(rest)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_becomes_lf_across_writes() {
        let input = b"a\r\nb\rc\r\r\nd\n\r";
        for split in 0..=input.len() {
            let mut w = UnixLineEnds::new(Vec::new());
            w.write_all(&input[..split]).unwrap();
            w.write_all(&input[split..]).unwrap();
            assert_eq!(w.finish().unwrap(), b"a\nb\rc\r\nd\n\r", "split at {split}");
        }
    }

    #[test]
    fn each_server_its_names() {
        let h = |prefix: &str, sep: char| Hierarchy { prefix: prefix.into(), separator: Some(sep) };
        let (slash, courier, inbox_slash) = (h("", '/'), h("INBOX.", '.'), h("INBOX/", '/'));
        let d = MaildirLayout::Dovecot;
        assert_eq!(d.folder_dir(Some("Archive/2019"), None, "Archive/2019", &slash), ".Archive.2019");
        assert_eq!(d.folder_dir(Some("Re&AOc-us"), None, "Reçus", &slash), ".Re&AOc-us");
        assert_eq!(d.folder_dir(Some("INBOX.Archive"), None, "INBOX.Archive", &courier), ".INBOX.Archive");
        assert_eq!(d.folder_dir(Some("INBOX"), Some(5), "INBOX (UIDVALIDITY 5)", &slash), ".INBOX (UIDVALIDITY 5)");
        let c = MaildirLayout::Courier;
        assert_eq!(c.folder_dir(Some("INBOX.Re&AOc-us"), None, "INBOX.Reçus", &courier), ".Reçus");
        assert_eq!(c.folder_dir(Some("Re&AOc-us"), None, "Reçus", &slash), ".Reçus");
        assert_eq!(c.folder_dir(Some("INBOX.Archive.2023"), None, "INBOX.Archive.2023", &courier), ".Archive.2023");
        assert_eq!(c.folder_dir(Some("Archive/2023"), None, "Archive/2023", &slash), ".Archive.2023");
        // A Dovecot whose namespace has the INBOX/ prefix: not INBOX.INBOX.Archive in Courier.
        assert_eq!(c.folder_dir(Some("INBOX/Archive/2023"), None, "INBOX/Archive/2023", &inbox_slash), ".Archive.2023");
        assert_eq!(c.folder_dir(Some("R&-D"), None, "R&D", &slash), ".R&D");
        let old = "INBOX.Filtered (UIDVALIDITY 7)";
        assert_eq!(c.folder_dir(Some("INBOX.Filtered"), Some(7), old, &courier), ".Filtered (UIDVALIDITY 7)");
        assert_eq!(c.folder_dir(Some("INBOX"), Some(7), "INBOX (UIDVALIDITY 7)", &courier), ".INBOX (UIDVALIDITY 7)");
        assert_eq!(c.folder_dir(Some("a//b"), None, "a//b", &slash), ".a._.b");
        // Archives without records: the directory's name, split by the inferred hierarchy.
        assert_eq!(c.folder_dir(None, None, "INBOX.Sent", &courier), ".Sent");
        assert_eq!(MaildirLayout::parse("Courier").unwrap(), MaildirLayout::Courier);
        assert!(MaildirLayout::parse("mutt").unwrap_err().to_string().contains("dovecot or courier"));
    }
}
