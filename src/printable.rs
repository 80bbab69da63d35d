//! Text from outside (server-supplied mailbox names, server answers, file names) made
//! inert for a terminal or a cron mail: control characters, C1 controls and the
//! Unicode bidirectional overrides are shown escaped, so a hostile name can neither
//! rewrite the screen nor forge a line of output.

/// `text` with every control, C1 and bidi-control character written as `\u{XX}` (and
/// `\\` for a backslash, so the escapes cannot be forged either).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether printing `c` as is could change what the reader sees elsewhere on the line.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped() {
        assert_eq!(escape("Отправленные"), "Отправленные");
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\ny\r"), "x\\u{a}y\\u{d}");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("abc\u{202e}txt.exe"), "abc\\u{202e}txt.exe");
        assert_eq!(escape(r"a\u{1b}"), r"a\\u{1b}");
        assert_eq!(escape("日本語 [Gmail]/All Mail"), "日本語 [Gmail]/All Mail");
    }
}
