//! Mailbox names: how they travel on the wire (modified UTF-7 and IMAP quoted
//! strings) and how `--exclude` patterns match them. The directory names they become on
//! disk are the archive's ([`crate::archive::layout::naming`]).

use std::fmt;

/// Why a mailbox name could not be mapped, encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(String);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameError {}

/// A mailbox as the tool handles it: by the name the server knows it by (its wire name,
/// modified UTF-7), shown to people by its decoded name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox {
    /// The name as sent to and received from the server.
    pub wire: String,
}

impl Mailbox {
    /// The mailbox a server listed under `wire`.
    pub fn from_wire(wire: &str) -> Mailbox {
        Mailbox { wire: wire.to_string() }
    }

    /// The mailbox a user named (`-f`, `"folder"`): a valid modified UTF-7 string with a
    /// shift sequence (`Re&AOc-us`) is a wire name, as the original passed it to the server
    /// unchanged; anything else is a UTF-8 name (`Reçus`) and is encoded.
    pub fn from_arg(arg: &str) -> Mailbox {
        if arg.contains('&') && decode_utf7(arg).is_ok() {
            return Mailbox::from_wire(arg);
        }
        Mailbox { wire: encode_utf7(arg) }
    }

    /// The real (UTF-8) name; the wire name itself when it is not valid modified UTF-7.
    pub fn name(&self) -> String {
        decode_utf7(&self.wire).unwrap_or_else(|_| self.wire.clone())
    }

    /// The name for output: real name, control and bidi characters escaped.
    pub fn shown(&self) -> String {
        crate::printable::escape(&self.name())
    }

    /// Whether `pattern` (IMAP wildcards; a UTF-8 or a wire pattern, as for [`Mailbox::from_arg`])
    /// matches this mailbox.
    pub fn matches(&self, pattern: &str, delimiter: Option<char>) -> bool {
        let pattern = Mailbox::from_arg(pattern).name();
        wildcard_match(&pattern, &self.name(), delimiter)
    }
}

/// RFC 3501 replaces `/` by `,` because `/` is a common hierarchy delimiter.
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn is_printable_ascii(c: char) -> bool {
    (' '..='~').contains(&c)
}

/// Encodes a mailbox name to modified UTF-7 (RFC 3501 section 5.1.3).
pub fn encode_utf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    for c in name.chars() {
        if !is_printable_ascii(c) {
            let mut buf = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut buf));
            continue;
        }
        push_shifted_run(&mut out, &run);
        run.clear();
        if c == '&' {
            out.push_str("&-");
        } else {
            out.push(c);
        }
    }
    push_shifted_run(&mut out, &run);
    out
}

fn push_shifted_run(out: &mut String, units: &[u16]) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &unit in units {
        acc = (acc << 16) | u32::from(unit);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(BASE64[((acc >> bits) & 63) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE64[((acc << (6 - bits)) & 63) as usize]));
    }
    out.push('-');
}

/// Decodes a modified UTF-7 mailbox name, accepting only the canonical form.
///
/// Strictness guarantees `encode_utf7(decode_utf7(w)?) == w`, so a name read
/// from the server can be sent back byte for byte after a round trip.
pub fn decode_utf7(wire: &str) -> Result<String, NameError> {
    let err = |why: &str| NameError(format!("mailbox name {wire:?} is not valid modified UTF-7: {why}"));
    let bytes = wire.as_bytes();
    let mut out = String::with_capacity(wire.len());
    let mut i = 0;
    // Two non-empty runs back to back would have been one run in canonical form.
    let mut after_run = false;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'&' {
            if !(0x20..=0x7e).contains(&b) {
                return Err(err("character outside printable ASCII must be encoded"));
            }
            out.push(char::from(b));
            i += 1;
            after_run = false;
            continue;
        }
        let start = i + 1;
        let len = bytes[start..]
            .iter()
            .position(|&b| b == b'-')
            .ok_or_else(|| err("unterminated shifted run (missing '-')"))?;
        i = start + len + 1;
        if len == 0 {
            out.push('&');
            after_run = false;
            continue;
        }
        if after_run {
            return Err(err("adjacent shifted runs must be a single run"));
        }
        decode_shifted_run(&bytes[start..start + len], &mut out).map_err(err)?;
        after_run = true;
    }
    Ok(out)
}

fn decode_shifted_run(run: &[u8], out: &mut String) -> Result<(), &'static str> {
    let mut octets = Vec::with_capacity(run.len() * 3 / 4 + 1);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in run {
        let value = BASE64.iter().position(|&a| a == b).ok_or("invalid base64 character in shifted run")?;
        acc = (acc << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            octets.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err("shifted run has a base64 character that carries no data");
    }
    if acc != 0 {
        return Err("shifted run has non-zero leftover bits");
    }
    if octets.len() % 2 != 0 {
        return Err("shifted run has an odd number of bytes");
    }
    let units = octets.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    for c in char::decode_utf16(units) {
        let c = c.map_err(|_| "shifted run has an unpaired surrogate")?;
        if is_printable_ascii(c) {
            return Err("shifted run encodes printable ASCII, which must appear as is");
        }
        out.push(c);
    }
    Ok(())
}

/// Produces an IMAP quoted string for an already UTF-7-encoded name.
///
/// CR, LF, NUL and non-ASCII cannot appear in a quoted string at all, so they
/// are refused instead of being silently mangled.
pub fn quote(s: &str) -> Result<String, NameError> {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\r' | '\n' | '\0' => {
                return Err(NameError(format!(
                    "{s:?} contains CR, LF or NUL and cannot be sent as an IMAP quoted string"
                )))
            }
            c if !c.is_ascii() => {
                return Err(NameError(format!(
                    "{s:?} contains non-ASCII characters; encode it to modified UTF-7 first"
                )))
            }
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// Matches a mailbox name against an IMAP LIST-style pattern (`*` and `%`).
///
/// Uses a row-by-row DP so hostile patterns like `*a*a*a*b` stay
/// O(pattern × name) instead of backtracking exponentially.
pub fn wildcard_match(pattern: &str, name: &str, delimiter: Option<char>) -> bool {
    // INBOX is case-insensitive in IMAP (RFC 3501 section 5.1).
    if pattern.eq_ignore_ascii_case("INBOX") && name.eq_ignore_ascii_case("INBOX") {
        return true;
    }
    let name: Vec<char> = name.chars().collect();
    // matched[j]: the pattern read so far matches the first j chars of name.
    let mut matched = vec![false; name.len() + 1];
    matched[0] = true;
    for p in pattern.chars() {
        let mut next = vec![false; name.len() + 1];
        match p {
            '*' => {
                let mut any = false;
                for (n, &m) in next.iter_mut().zip(&matched) {
                    any |= m;
                    *n = any;
                }
            }
            '%' => {
                next[0] = matched[0];
                for (j, &c) in name.iter().enumerate() {
                    next[j + 1] = matched[j + 1] || (next[j] && Some(c) != delimiter);
                }
            }
            _ => {
                for (j, &c) in name.iter().enumerate() {
                    next[j + 1] = matched[j] && c == p;
                }
            }
        }
        matched = next;
    }
    matched[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift64 so property tests need no external crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn range(&mut self, lo: u32, hi: u32) -> u32 {
            lo + self.below(u64::from(hi - lo + 1)) as u32
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len() as u64) as usize]
        }
    }

    fn random_name(rng: &mut Rng) -> String {
        let len = rng.below(12);
        (0..len)
            .map(|_| {
                let code = match rng.below(7) {
                    0 | 1 => rng.range(0x20, 0x7e),
                    2 => u32::from('&'),
                    3 => rng.range(0x00, 0x1f),
                    4 => rng.range(0x80, 0xff),
                    5 => rng.range(0x4e00, 0x9fff),
                    _ => rng.range(0x1_0000, 0x10_ffff),
                };
                char::from_u32(code).expect("ranges avoid surrogates")
            })
            .collect()
    }

    fn rejects(wire: &str, why: &str) {
        let err = decode_utf7(wire).expect_err(wire).to_string();
        assert!(err.contains(why), "{wire:?}: {err}");
    }

    fn reference_match(p: &[char], n: &[char], d: Option<char>) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((&'*', rest)) => (0..=n.len()).any(|k| reference_match(rest, &n[k..], d)),
            Some((&'%', rest)) => {
                (0..=n.len()).take_while(|&k| k == 0 || Some(n[k - 1]) != d).any(|k| reference_match(rest, &n[k..], d))
            }
            Some((&c, rest)) => n.first() == Some(&c) && reference_match(rest, &n[1..], d),
        }
    }

    #[test]
    fn arguments_are_utf8_names_or_wire_names() {
        assert_eq!(Mailbox::from_arg("Re&AOc-us").wire, "Re&AOc-us");
        assert_eq!(Mailbox::from_arg("Reçus").wire, "Re&AOc-us");
        assert_eq!(Mailbox::from_arg("Tom & Jerry").wire, "Tom &- Jerry");
        assert_eq!(Mailbox::from_arg("A&-B").wire, "A&-B", "valid wire name, as the original sent it");
        assert_eq!(Mailbox::from_arg("INBOX").wire, "INBOX");
        assert_eq!(Mailbox::from_arg("Отправленные").name(), "Отправленные");
        assert_eq!(Mailbox::from_wire("bad&name").name(), "bad&name", "undecodable: shown as sent");
        let m = Mailbox::from_arg("Reçus");
        assert!(m.matches("Re*", Some('/')) && m.matches("Re&AOc-*", Some('/')) && !m.matches("Junk", None));
        assert_eq!(Mailbox::from_wire("&ABs-[2J").shown(), "\\u{1b}[2J");
    }

    #[test]
    fn utf7_known_answers() {
        let cases = [
            ("Reçus", "Re&AOc-us"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("&", "&-"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("INBOX", "INBOX"),
            ("", ""),
            ("áá", "&AOEA4Q-"),
            ("á&á", "&AOE-&-&AOE-"),
            ("\0", "&AAA-"),
        ];
        for (name, wire) in cases {
            assert_eq!(encode_utf7(name), wire);
            assert_eq!(decode_utf7(wire).unwrap(), name);
        }
    }

    #[test]
    fn utf7_astral_round_trip() {
        assert_eq!(encode_utf7("😀"), "&2D3eAA-");
        assert_eq!(decode_utf7("&2D3eAA-").unwrap(), "😀");
        let s = "Mail 📬 & 𝄞";
        assert_eq!(decode_utf7(&encode_utf7(s)).unwrap(), s);
    }

    #[test]
    fn decode_rejects_raw_unencoded_characters() {
        for wire in ["a\tb", "Reçus", "\u{7f}", "x\r\n"] {
            rejects(wire, "must be encoded");
        }
    }

    #[test]
    fn decode_rejects_unterminated_run() {
        rejects("&", "unterminated");
        rejects("Re&AOc", "unterminated");
    }

    #[test]
    fn decode_rejects_bad_base64() {
        rejects("&U/BTFw-", "invalid base64");
        rejects("&AOc=-", "invalid base64");
        rejects("&AO\u{e7}-", "invalid base64");
    }

    #[test]
    fn decode_rejects_leftover_bits() {
        rejects("&AOd-", "non-zero leftover bits");
        rejects("&A-", "carries no data");
        rejects("&AAAAA-", "carries no data");
    }

    #[test]
    fn decode_rejects_odd_byte_count() {
        rejects("&AOcA-", "odd number of bytes");
        rejects("&AA-", "odd number of bytes");
    }

    #[test]
    fn decode_rejects_unpaired_surrogates() {
        let lone = |units: &[u16]| {
            let mut s = String::new();
            push_shifted_run(&mut s, units);
            s
        };
        rejects(&lone(&[0xd83d]), "unpaired surrogate");
        rejects(&lone(&[0xde00]), "unpaired surrogate");
        rejects(&lone(&[0xde00, 0xd83d]), "unpaired surrogate");
        rejects(&lone(&[0xd83d, 0x00e1]), "unpaired surrogate");
    }

    #[test]
    fn decode_rejects_non_canonical_runs() {
        rejects("&AGE-", "printable ASCII");
        rejects("&AOEAYQ-", "printable ASCII");
        rejects("&ACY-", "printable ASCII");
        rejects("&AGE-&AGE-", "printable ASCII");
        rejects("&AOE-&AOE-", "adjacent shifted runs");
        assert!(decode_utf7("&AOE-&-&AOE-").is_ok());
    }

    #[test]
    fn utf7_round_trip_property() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5000 {
            let name = random_name(&mut rng);
            let wire = encode_utf7(&name);
            assert!(wire.chars().all(is_printable_ascii), "{wire:?}");
            assert_eq!(decode_utf7(&wire).as_deref(), Ok(name.as_str()));
        }
    }

    #[test]
    fn decode_garbage_never_panics_and_accepts_only_canonical() {
        let alphabet = [
            '&', '&', '-', '-', 'A', 'G', 'E', 'O', 'w', '2', 'D', '3', '+', ',', '/', '=', ' ', '~', '\t', '\u{7f}',
            'é', '台', '😀',
        ];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..5000 {
            let wire: String = if round % 2 == 0 {
                (0..rng.below(14)).map(|_| rng.pick(&alphabet)).collect()
            } else {
                // Mutating valid encodings reaches the deeper checks far more often.
                let mut chars: Vec<char> = encode_utf7(&random_name(&mut rng)).chars().collect();
                let at = rng.below(chars.len() as u64 + 1) as usize;
                match rng.below(3) {
                    0 => chars.insert(at, rng.pick(&alphabet)),
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ if at < chars.len() => chars[at] = rng.pick(&alphabet),
                    _ => {}
                }
                chars.into_iter().collect()
            };
            if let Ok(name) = decode_utf7(&wire) {
                assert_eq!(encode_utf7(&name), wire, "accepted non-canonical {wire:?}");
            }
        }
    }

    #[test]
    fn quote_known_answers() {
        assert_eq!(quote("INBOX").unwrap(), r#""INBOX""#);
        assert_eq!(quote("").unwrap(), r#""""#);
        assert_eq!(quote(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert_eq!(quote("Re&AOc-us").unwrap(), r#""Re&AOc-us""#);
    }

    #[test]
    fn quote_refuses_unsendable_characters() {
        for s in ["a\rb", "a\nb", "a\0b", "Reçus", "😀"] {
            assert!(quote(s).is_err(), "{s:?}");
        }
        assert!(quote("Reçus").unwrap_err().to_string().contains("UTF-7"));
    }

    #[test]
    fn wildcard_known_answers() {
        let slash = Some('/');
        assert!(wildcard_match("*", "", slash));
        assert!(wildcard_match("*", "a/b/c", slash));
        assert!(wildcard_match("%", "abc", slash));
        assert!(!wildcard_match("%", "a/b", slash));
        assert!(wildcard_match("%", "a/b", None));
        assert!(wildcard_match("Archive/%", "Archive/2020", slash));
        assert!(!wildcard_match("Archive/%", "Archive/2020/Jan", slash));
        assert!(wildcard_match("Archive/*", "Archive/2020/Jan", slash));
        assert!(wildcard_match("[Gmail]/*", "[Gmail]/All Mail", slash));
        assert!(!wildcard_match("Spam", "spam", slash));
        assert!(!wildcard_match("Spam", "Spam2", slash));
        assert!(wildcard_match("inbox", "INBOX", slash));
        assert!(wildcard_match("INBOX", "Inbox", slash));
        assert!(!wildcard_match("inbox", "inbox/x", slash));
        assert!(wildcard_match("%ç%", "Reçus", slash));
    }

    #[test]
    fn wildcard_is_not_exponential() {
        let name = "a".repeat(2000);
        let pattern = "*a".repeat(30) + "b";
        assert!(!wildcard_match(&pattern, &name, Some('/')));
        let pattern = "%a".repeat(30) + "b";
        assert!(!wildcard_match(&pattern, &name, Some('/')));
    }

    #[test]
    fn wildcard_agrees_with_reference() {
        let mut rng = Rng(0xfeed_face_cafe_beef);
        let alphabet = ['a', 'b', '/', '*', '%'];
        for _ in 0..5000 {
            let pattern: Vec<char> = (0..rng.below(7)).map(|_| rng.pick(&alphabet)).collect();
            let name: Vec<char> = (0..rng.below(9)).map(|_| rng.pick(&alphabet)).collect();
            let delimiter = rng.pick(&[Some('/'), None]);
            let p: String = pattern.iter().collect();
            let n: String = name.iter().collect();
            assert_eq!(
                wildcard_match(&p, &n, delimiter),
                reference_match(&pattern, &name, delimiter),
                "pattern {p:?} name {n:?} delimiter {delimiter:?}"
            );
        }
    }
}
