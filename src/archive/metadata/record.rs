//! One record of a journal (format 2) as text, and parsing it back: pure functions, so
//! the parser can be fuzzed on its own (`fuzz/fuzz_targets/journal.rs`).
//!
//! A record is one line of tab-separated fields: a kind, then (for a message) its UID,
//! then `key=value` fields in any order. Unknown kinds and keys are ignored, so a later
//! version can add some; a line that breaks these rules is damage.
//!
//! | kind | meaning |
//! | --- | --- |
//! | `H b=BASE_END n=COUNT` | second line of the file: where the sorted base ends (fixed width) |
//! | `M UID fields` | a message archived: replaces whatever was known of the UID |
//! | `U UID fields` | fields learnt or changed later (flags, arrival time, left the server) |
//! | `B` | a run starts committing messages (flags no longer known to be current) |
//! | `E n=TIME_NS [m=HIGHESTMODSEQ] [g=GONE]` | a run's end: when, the flags' HIGHESTMODSEQ, messages left the server |
//!
//! Fields: `s=SIZE`, `h=SHA256` (hex; an encrypted file's HMAC tag), `x=.mbox.gz.enc` (the
//! file's suffix), `t=UNIX_TIME z=ZONE_MINUTES` (INTERNALDATE), `f=FLAGS` (space-separated),
//! `a=UNIX_TIME` (archived), `g=LAST_SEEN/NOTICED` (left the server: Unix times);
//! `hf= ht= hs= hd= hm=` (From, To, Subject, Date, Message-ID as the message has them,
//! [`super::headers::escape`]d) with `hx=CUT` (present whenever the header fields were
//! recorded; CUT names the fields cut at their bound: letters of `ftsdm`), `l=LABELS`
//! (Gmail labels, each escaped, space-separated), `gm=MSGID/THRID` (Gmail's `X-GM-MSGID` and
//! `X-GM-THRID`).

use super::headers::{escape, unescape, HeaderFields};
use crate::codec::Form;

/// The record keys of the kept header fields, in [`super::headers::KEPT`] order, and the
/// letter of each in `hx=`.
const HEADER_KEYS: [(&str, char); 5] = [("hf", 'f'), ("ht", 't'), ("hs", 's'), ("hd", 'd'), ("hm", 'm')];

/// Longest record text accepted (flags with many keywords stay far below).
pub const MAX_TEXT: usize = 64 * 1024;

/// A message that left the server: when it was last known there, and when a run noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone {
    /// Unix time of the last run known to have seen it on the server.
    pub last_seen: i64,
    /// Unix time of the run that found it gone.
    pub noticed: i64,
}

/// What a record says of one message; `None` for what it does not say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// Size in bytes.
    pub size: Option<u64>,
    /// SHA-256 of the message as fetched; an encrypted file's HMAC tag.
    pub digest: Option<[u8; 32]>,
    /// The layers of its file.
    pub form: Option<Form>,
    /// INTERNALDATE: Unix time and zone (minutes east).
    pub date: Option<(i64, i16)>,
    /// Flags, space-separated.
    pub flags: Option<String>,
    /// When it was archived (Unix time).
    pub archived: Option<i64>,
    /// It left the server.
    pub gone: Option<Gone>,
    /// Its From, To, Subject, Date and Message-ID, when they were recorded.
    pub headers: Option<Box<HeaderFields>>,
    /// Its Gmail labels, when recorded.
    pub labels: Option<Vec<String>>,
    /// Its Gmail message and thread ids (`X-GM-MSGID`, `X-GM-THRID`), when recorded.
    pub gmail: Option<(u64, u64)>,
}

impl Fields {
    /// Takes over what `later` says.
    pub fn update(&mut self, later: &Fields) {
        macro_rules! take {
            ($($f:ident),*) => {$(if later.$f.is_some() { self.$f = later.$f.clone(); })*};
        }
        take!(size, digest, form, date, flags, archived, gone, headers, labels, gmail);
    }
}

/// The end of a run's writing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// When (Unix time in nanoseconds); the file's modification time is set to it, so a
    /// change by anyone else shows.
    pub time_ns: Option<u64>,
    /// The flags are up to date with this HIGHESTMODSEQ.
    pub modseq: Option<u64>,
    /// Messages of the journal that left the server.
    pub gone: Option<u64>,
}

/// One record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Where the sorted base ends, and how many records it holds.
    Head {
        /// The offset just past the base's last record.
        base_end: u64,
        /// The records in the base.
        count: u64,
    },
    /// A message archived: everything known of it.
    Message {
        /// Its UID.
        uid: u32,
        /// What is known of it.
        fields: Fields,
    },
    /// Fields of a message learnt or changed.
    Update {
        /// Its UID.
        uid: u32,
        /// The fields learnt or changed; the others stay as they were.
        fields: Fields,
    },
    /// A run starts committing messages.
    Begin,
    /// A run's end.
    End(Mark),
    /// A kind this version does not know.
    Unknown,
}

/// Width of the base-end field of a head record: its text has one length whatever the
/// numbers, so it can be rewritten in place.
const HEAD_DIGITS: usize = 20;

impl Record {
    /// The record's text (no line break).
    pub fn text(&self) -> String {
        match self {
            Record::Head { base_end, count } => format!("H\tb={base_end:0HEAD_DIGITS$}\tn={count:0HEAD_DIGITS$}"),
            Record::Message { uid, fields } => format!("M\t{uid}{}", fields_text(fields)),
            Record::Update { uid, fields } => format!("U\t{uid}{}", fields_text(fields)),
            Record::Begin => "B".to_string(),
            Record::End(m) => {
                let mut s = String::from("E");
                if let Some(t) = m.time_ns {
                    s += &format!("\tn={t}");
                }
                if let Some(v) = m.modseq {
                    s += &format!("\tm={v}");
                }
                if let Some(g) = m.gone {
                    s += &format!("\tg={g}");
                }
                s
            }
            Record::Unknown => "?".to_string(),
        }
    }

    /// The UID a message record is about.
    pub fn uid(&self) -> Option<u32> {
        match self {
            Record::Message { uid, .. } | Record::Update { uid, .. } => Some(*uid),
            _ => None,
        }
    }
}

fn fields_text(f: &Fields) -> String {
    let mut s = String::new();
    if let Some(v) = f.size {
        s += &format!("\ts={v}");
    }
    if let Some(d) = &f.digest {
        s += &format!("\th={}", super::hex(d));
    }
    if let Some(form) = f.form {
        s += &format!("\tx={}", form.suffix());
    }
    if let Some((t, z)) = f.date {
        s += &format!("\tt={t}\tz={z}");
    }
    if let Some(flags) = &f.flags {
        s += &format!("\tf={flags}");
    }
    if let Some(a) = f.archived {
        s += &format!("\ta={a}");
    }
    if let Some(g) = f.gone {
        s += &format!("\tg={}/{}", g.last_seen, g.noticed);
    }
    if let Some(h) = &f.headers {
        let mut cut = String::new();
        for (i, (key, letter)) in HEADER_KEYS.iter().enumerate() {
            if let Some(v) = &h.values[i] {
                s += &format!("\t{key}={}", escape(v));
            }
            if h.cut & (1 << i) != 0 {
                cut.push(*letter);
            }
        }
        s += &format!("\thx={cut}");
    }
    if let Some(labels) = &f.labels {
        let escaped: Vec<String> = labels.iter().map(|l| escape(l.as_bytes()).replace(' ', "%20")).collect();
        s += &format!("\tl={}", escaped.join(" "));
    }
    if let Some((msgid, thrid)) = f.gmail {
        s += &format!("\tgm={msgid}/{thrid}");
    }
    s
}

/// Flags as a record holds them: each a valid IMAP flag, space-separated.
pub fn join_flags<S: AsRef<str>>(flags: &[S]) -> String {
    let mut out = String::new();
    for f in flags.iter().map(AsRef::as_ref).filter(|f| crate::imap::wire::flag_ok(f.as_bytes())) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(f);
    }
    out
}

/// Parses a record's text; `None` when it is not a record (damage).
pub fn parse(text: &str) -> Option<Record> {
    if text.len() > MAX_TEXT || text.contains('\n') {
        return None;
    }
    let mut parts = text.split('\t');
    let kind = parts.next()?;
    match kind {
        "H" => {
            let (mut base_end, mut count) = (None, None);
            for p in parts {
                match p.split_once('=')? {
                    ("b", v) => base_end = Some(number(v)?),
                    ("n", v) => count = Some(number(v)?),
                    _ => {}
                }
            }
            Some(Record::Head { base_end: base_end?, count: count? })
        }
        "M" | "U" => {
            let uid: u32 = number(parts.next()?)?;
            if uid == 0 {
                return None;
            }
            let mut f = Fields::default();
            let mut zone = 0i16;
            let mut time = None;
            let mut headers = HeaderFields::default();
            let mut headers_recorded = false;
            for p in parts {
                let (k, v) = p.split_once('=')?;
                if let Some(i) = HEADER_KEYS.iter().position(|(key, _)| *key == k) {
                    headers.values[i] = Some(unescape(v)?);
                    continue;
                }
                match k {
                    "s" => f.size = Some(number(v)?),
                    "h" => f.digest = Some(super::unhex32(v)?),
                    "x" => f.form = Some(Form::parse(&format!("0{v}")).filter(|(stem, _)| *stem == "0")?.1),
                    "t" => time = Some(signed(v)?),
                    "z" => zone = v.parse().ok().filter(|z: &i16| z.abs() < 24 * 60)?,
                    "f" => f.flags = Some(join_flags(&v.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>())),
                    "a" => f.archived = Some(signed(v)?),
                    "g" => {
                        let (seen, noticed) = v.split_once('/')?;
                        f.gone = Some(Gone { last_seen: signed(seen)?, noticed: signed(noticed)? });
                    }
                    "hx" => {
                        headers_recorded = true;
                        for c in v.chars() {
                            let i = HEADER_KEYS.iter().position(|(_, letter)| *letter == c)?;
                            headers.cut |= 1 << i;
                        }
                    }
                    "l" => {
                        let labels = v
                            .split(' ')
                            .filter(|s| !s.is_empty())
                            .map(|l| unescape(l).and_then(|b| String::from_utf8(b).ok()));
                        f.labels = Some(labels.collect::<Option<Vec<String>>>()?);
                    }
                    "gm" => {
                        let (msgid, thrid) = v.split_once('/')?;
                        f.gmail = Some((number(msgid)?, number(thrid)?));
                    }
                    _ => {}
                }
            }
            f.date = time.map(|t| (t, zone));
            if headers_recorded {
                f.headers = Some(Box::new(headers));
            }
            Some(if kind == "M" { Record::Message { uid, fields: f } } else { Record::Update { uid, fields: f } })
        }
        "B" => Some(Record::Begin),
        "E" => {
            let mut m = Mark::default();
            for p in parts {
                match p.split_once('=')? {
                    ("n", v) => m.time_ns = Some(number(v)?),
                    ("m", v) => m.modseq = Some(number(v)?),
                    ("g", v) => m.gone = Some(number(v)?),
                    _ => {}
                }
            }
            Some(Record::End(m))
        }
        k if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic()) => Some(Record::Unknown),
        _ => None,
    }
}

/// A decimal number without sign or padding other than leading zeros.
fn number<T: std::str::FromStr>(v: &str) -> Option<T> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// A decimal number with an optional minus sign.
fn signed(v: &str) -> Option<i64> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    number::<i64>(digits)?;
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let full = Fields {
            size: Some(5123),
            digest: Some([7; 32]),
            form: Some(Form { compressed: true, encrypted: true }),
            date: Some((-86_400, -420)),
            flags: Some("\\Seen $Work".into()),
            archived: Some(1_700_000_000),
            gone: Some(Gone { last_seen: 1_700_000_100, noticed: 1_700_000_200 }),
            headers: Some(Box::new(HeaderFields {
                values: [Some(b"Ann <a@x>".to_vec()), None, Some(b"caf\xe9 100%\t=".to_vec()), Some(vec![]), None],
                cut: 0b10010,
            })),
            labels: Some(vec!["\\Inbox".into(), "My label".into(), "100%".into()]),
            gmail: Some((u64::MAX, 1_266_894_439_832_287_888)),
        };
        for r in [
            Record::Head { base_end: 123, count: 4 },
            Record::Message { uid: 9, fields: full.clone() },
            Record::Message {
                uid: 9,
                fields: Fields { headers: Some(Box::default()), labels: Some(Vec::new()), ..Fields::default() },
            },
            Record::Update { uid: u32::MAX, fields: Fields { flags: Some(String::new()), ..Fields::default() } },
            Record::Begin,
            Record::End(Mark { time_ns: Some(1), modseq: Some(u64::MAX), gone: Some(3) }),
            Record::End(Mark::default()),
        ] {
            assert_eq!(parse(&r.text()), Some(r.clone()), "{}", r.text());
        }
        assert_eq!(
            Record::Head { base_end: 1, count: 2 }.text().len(),
            Record::Head { base_end: 9, count: 9 }.text().len()
        );
        assert_eq!(parse("Z\t1\tq=2"), Some(Record::Unknown));
        let u = parse("U\t5\tf=\\Seen bad\"flag \\Answered\tnew=1").unwrap();
        assert_eq!(
            u,
            Record::Update { uid: 5, fields: Fields { flags: Some("\\Seen \\Answered".into()), ..Fields::default() } }
        );
        for bad in [
            "",
            "M",
            "M\t0",
            "M\tx",
            "M\t1\ts=-1",
            "M\t1\th=12",
            "M\t1\tx=.gz",
            "M\t1\tnoequals",
            "M\t1\ths=%g1\thx=",
            "M\t1\thx=q",
            "M\t1\tl=%",
            "M\t1\tgm=1",
            "M\t1\tgm=1/x",
            "E\tn=",
            "1",
            "H\tb=1",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
