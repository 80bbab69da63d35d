//! The text of an HTML part, as a reader sees it: tags, comments, declarations and
//! processing instructions removed (nothing put in their place), character references
//! decoded, `<script>` and `<style>` contents kept as written. These are the rules of
//! Python's `html.parser` (the test oracle's), streaming, in bounded memory. Named
//! references are those of Latin-1 and common typography (`&amp;`, `&nbsp;`, `&eacute;`,
//! `&euro;`, `&mdash;`...), each with its `;`; others stay as written.

/// Named character references known (sorted by name for the binary search).
const NAMED: &[(&str, char)] = &[
    ("AElig", '\u{c6}'),
    ("Aacute", '\u{c1}'),
    ("Acirc", '\u{c2}'),
    ("Agrave", '\u{c0}'),
    ("Aring", '\u{c5}'),
    ("Atilde", '\u{c3}'),
    ("Auml", '\u{c4}'),
    ("Ccedil", '\u{c7}'),
    ("Dagger", '\u{2021}'),
    ("ETH", '\u{d0}'),
    ("Eacute", '\u{c9}'),
    ("Ecirc", '\u{ca}'),
    ("Egrave", '\u{c8}'),
    ("Euml", '\u{cb}'),
    ("Iacute", '\u{cd}'),
    ("Icirc", '\u{ce}'),
    ("Igrave", '\u{cc}'),
    ("Iuml", '\u{cf}'),
    ("Ntilde", '\u{d1}'),
    ("OElig", '\u{152}'),
    ("Oacute", '\u{d3}'),
    ("Ocirc", '\u{d4}'),
    ("Ograve", '\u{d2}'),
    ("Oslash", '\u{d8}'),
    ("Otilde", '\u{d5}'),
    ("Ouml", '\u{d6}'),
    ("Prime", '\u{2033}'),
    ("Scaron", '\u{160}'),
    ("THORN", '\u{de}'),
    ("Uacute", '\u{da}'),
    ("Ucirc", '\u{db}'),
    ("Ugrave", '\u{d9}'),
    ("Uuml", '\u{dc}'),
    ("Yacute", '\u{dd}'),
    ("Yuml", '\u{178}'),
    ("aacute", '\u{e1}'),
    ("acirc", '\u{e2}'),
    ("acute", '\u{b4}'),
    ("aelig", '\u{e6}'),
    ("agrave", '\u{e0}'),
    ("amp", '&'),
    ("angst", '\u{c5}'),
    ("apos", '\''),
    ("aring", '\u{e5}'),
    ("atilde", '\u{e3}'),
    ("auml", '\u{e4}'),
    ("bdquo", '\u{201e}'),
    ("brvbar", '\u{a6}'),
    ("bull", '\u{2022}'),
    ("ccedil", '\u{e7}'),
    ("cedil", '\u{b8}'),
    ("cent", '\u{a2}'),
    ("check", '\u{2713}'),
    ("circ", '\u{2c6}'),
    ("copy", '\u{a9}'),
    ("curren", '\u{a4}'),
    ("dagger", '\u{2020}'),
    ("darr", '\u{2193}'),
    ("deg", '\u{b0}'),
    ("div", '\u{f7}'),
    ("divide", '\u{f7}'),
    ("eacute", '\u{e9}'),
    ("ecirc", '\u{ea}'),
    ("egrave", '\u{e8}'),
    ("emsp", '\u{2003}'),
    ("ensp", '\u{2002}'),
    ("eth", '\u{f0}'),
    ("euml", '\u{eb}'),
    ("euro", '\u{20ac}'),
    ("fnof", '\u{192}'),
    ("frac12", '\u{bd}'),
    ("frac14", '\u{bc}'),
    ("frac34", '\u{be}'),
    ("gt", '>'),
    ("harr", '\u{2194}'),
    ("hearts", '\u{2665}'),
    ("hellip", '\u{2026}'),
    ("iacute", '\u{ed}'),
    ("icirc", '\u{ee}'),
    ("iexcl", '\u{a1}'),
    ("igrave", '\u{ec}'),
    ("iquest", '\u{bf}'),
    ("iuml", '\u{ef}'),
    ("laquo", '\u{ab}'),
    ("larr", '\u{2190}'),
    ("ldquo", '\u{201c}'),
    ("lrm", '\u{200e}'),
    ("lsaquo", '\u{2039}'),
    ("lsquo", '\u{2018}'),
    ("lt", '<'),
    ("macr", '\u{af}'),
    ("mdash", '\u{2014}'),
    ("micro", '\u{b5}'),
    ("middot", '\u{b7}'),
    ("minus", '\u{2212}'),
    ("nbsp", '\u{a0}'),
    ("ndash", '\u{2013}'),
    ("not", '\u{ac}'),
    ("ntilde", '\u{f1}'),
    ("oacute", '\u{f3}'),
    ("ocirc", '\u{f4}'),
    ("oelig", '\u{153}'),
    ("ograve", '\u{f2}'),
    ("ordf", '\u{aa}'),
    ("ordm", '\u{ba}'),
    ("oslash", '\u{f8}'),
    ("otilde", '\u{f5}'),
    ("ouml", '\u{f6}'),
    ("para", '\u{b6}'),
    ("permil", '\u{2030}'),
    ("plusmn", '\u{b1}'),
    ("pound", '\u{a3}'),
    ("prime", '\u{2032}'),
    ("quot", '"'),
    ("raquo", '\u{bb}'),
    ("rarr", '\u{2192}'),
    ("rdquo", '\u{201d}'),
    ("reg", '\u{ae}'),
    ("rlm", '\u{200f}'),
    ("rsaquo", '\u{203a}'),
    ("rsquo", '\u{2019}'),
    ("sbquo", '\u{201a}'),
    ("scaron", '\u{161}'),
    ("sect", '\u{a7}'),
    ("shy", '\u{ad}'),
    ("sup1", '\u{b9}'),
    ("sup2", '\u{b2}'),
    ("sup3", '\u{b3}'),
    ("szlig", '\u{df}'),
    ("thinsp", '\u{2009}'),
    ("thorn", '\u{fe}'),
    ("tilde", '\u{2dc}'),
    ("times", '\u{d7}'),
    ("trade", '\u{2122}'),
    ("uacute", '\u{fa}'),
    ("uarr", '\u{2191}'),
    ("ucirc", '\u{fb}'),
    ("ugrave", '\u{f9}'),
    ("uml", '\u{a8}'),
    ("uuml", '\u{fc}'),
    ("yacute", '\u{fd}'),
    ("yen", '\u{a5}'),
    ("yuml", '\u{ff}'),
    ("zwj", '\u{200d}'),
    ("zwnj", '\u{200c}'),
];

/// Longest reference or raw-text end tag held.
const MAX_HELD: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Text,
    /// After `<`.
    Open,
    /// After `</`.
    CloseOpen,
    /// In a tag: its name still being read, an attribute value's quote.
    Tag {
        in_name: bool,
        after_eq: bool,
        quote: Option<char>,
        end: bool,
    },
    /// After `<!`: what follows decides.
    Bang,
    /// `<!--` ... `-->`: the dashes just seen.
    Comment {
        dashes: u8,
    },
    /// `<!...>`, `<?...>`, `</` followed by no letter: up to the next `>`.
    Skip,
    /// After `&`.
    Reference,
    /// The contents of `<script>` or `<style>`, up to its end tag.
    Raw,
}

/// Turns HTML into its text, fed in pieces.
pub struct HtmlText {
    state: State,
    /// A tag's name (lowercase, its start), a reference, or a possible end of raw text.
    held: String,
    /// The element whose contents are raw text (`script`, `style`).
    raw: Option<&'static str>,
}

impl Default for HtmlText {
    fn default() -> Self {
        HtmlText { state: State::Text, held: String::new(), raw: None }
    }
}

impl HtmlText {
    /// Appends the text of `html` to `out`.
    pub fn feed(&mut self, html: &str, out: &mut String) {
        for c in html.chars() {
            self.char(c, out);
        }
    }

    /// The end of the HTML: what is held back that is text.
    pub fn finish(&mut self, out: &mut String) {
        match self.state {
            State::Reference => {
                let held = std::mem::take(&mut self.held);
                reference(&held, false, out);
            }
            State::Open => out.push('<'),
            State::Raw => out.push_str(&self.held),
            _ => {}
        }
        self.held.clear();
        self.state = State::Text;
    }

    fn char(&mut self, c: char, out: &mut String) {
        match self.state {
            State::Text => match c {
                '<' => self.state = State::Open,
                '&' => {
                    self.held.clear();
                    self.state = State::Reference;
                }
                _ => out.push(c),
            },
            State::Open => match c {
                c if c.is_ascii_alphabetic() => {
                    self.held.clear();
                    self.held.push(c.to_ascii_lowercase());
                    self.state = State::Tag { in_name: true, after_eq: false, quote: None, end: false };
                }
                '/' => self.state = State::CloseOpen,
                '!' => {
                    self.held.clear();
                    self.state = State::Bang;
                }
                '?' => self.state = State::Skip,
                _ => {
                    out.push('<');
                    self.state = State::Text;
                    self.char(c, out);
                }
            },
            State::CloseOpen => match c {
                c if c.is_ascii_alphabetic() => {
                    self.held.clear();
                    self.held.push(c.to_ascii_lowercase());
                    self.state = State::Tag { in_name: true, after_eq: false, quote: None, end: true };
                }
                '>' => self.state = State::Text,
                _ => self.state = State::Skip,
            },
            State::Tag { in_name, after_eq, quote, end } => {
                if let Some(q) = quote {
                    if c == q {
                        self.state = State::Tag { in_name, after_eq: false, quote: None, end };
                    }
                    return;
                }
                if c == '>' {
                    self.state = State::Text;
                    if !end {
                        self.raw = ["script", "style"].into_iter().find(|n| *n == self.held);
                        if self.raw.is_some() {
                            self.held.clear();
                            self.state = State::Raw;
                        }
                    }
                    return;
                }
                let in_name = in_name && (c.is_ascii_alphanumeric() || c == '-');
                if in_name && self.held.len() < MAX_HELD {
                    self.held.push(c.to_ascii_lowercase());
                }
                let (after_eq, quote) = match c {
                    '=' => (true, None),
                    '"' | '\'' if after_eq => (false, Some(c)),
                    ' ' | '\t' | '\r' | '\n' | '\x0c' => (after_eq, None),
                    _ => (false, None),
                };
                self.state = State::Tag { in_name, after_eq, quote, end };
            }
            State::Bang => {
                self.held.push(c);
                if self.held == "-" {
                    return;
                }
                self.state = if self.held == "--" { State::Comment { dashes: 0 } } else { State::Skip };
                if self.state == State::Skip && c == '>' {
                    self.state = State::Text;
                }
            }
            State::Comment { dashes } => {
                self.state = match c {
                    '-' => State::Comment { dashes: dashes.saturating_add(1) },
                    '>' if dashes >= 2 => State::Text,
                    _ => State::Comment { dashes: 0 },
                };
            }
            State::Skip => {
                if c == '>' {
                    self.state = State::Text;
                }
            }
            State::Reference => {
                let takes = match self.held.as_bytes() {
                    [] => c == '#' || c.is_ascii_alphanumeric(),
                    [b'#'] => c.is_ascii_digit() || c == 'x' || c == 'X',
                    [b'#', b'x' | b'X', ..] => c.is_ascii_hexdigit(),
                    [b'#', ..] => c.is_ascii_digit(),
                    _ => c.is_ascii_alphanumeric(),
                };
                if takes && self.held.len() < MAX_HELD {
                    self.held.push(c);
                    return;
                }
                let held = std::mem::take(&mut self.held);
                self.state = State::Text;
                reference(&held, c == ';', out);
                if c != ';' {
                    self.char(c, out);
                }
            }
            State::Raw => {
                let name = self.raw.unwrap_or("script");
                if self.held.is_empty() && c != '<' {
                    out.push(c);
                    return;
                }
                self.held.push(c.to_ascii_lowercase());
                let want = format!("</{name}");
                if self.held == want {
                    self.held.clear();
                    self.raw = None;
                    self.state = State::Tag { in_name: false, after_eq: false, quote: None, end: true };
                } else if !want.starts_with(self.held.as_str()) {
                    // Not the end tag: what was held is text (as written, but for case).
                    let held = std::mem::take(&mut self.held);
                    let mut rest = held.chars();
                    if let Some(first) = rest.next() {
                        out.push(first);
                    }
                    for r in rest {
                        self.char(r, out);
                    }
                }
            }
        }
    }
}

/// Appends what the reference `&NAME` (`;` after it when `semicolon`) stands for, as
/// Python's `html.unescape` reads it: a numeric one with or without its `;`, a name with
/// its `;`, or the longest of the names HTML allows without one (those of Latin-1) that
/// starts it; else the text as written.
fn reference(name: &str, semicolon: bool, out: &mut String) {
    let end = if semicolon { ";" } else { "" };
    if name.starts_with('#') {
        match resolve(name) {
            Some(Some(c)) => out.push(c),
            Some(None) => {}
            None => {
                out.push('&');
                out.push_str(name);
                out.push_str(end);
            }
        }
        return;
    }
    if semicolon {
        if let Some(Some(c)) = resolve(name) {
            out.push(c);
            return;
        }
    }
    for x in (2..=name.len()).rev() {
        if let Some(c) = resolve(&name[..x]).flatten().filter(|&c| legacy(&name[..x], c)) {
            out.push(c);
            out.push_str(&name[x..]);
            out.push_str(end);
            return;
        }
    }
    out.push('&');
    out.push_str(name);
    out.push_str(end);
}

/// Whether HTML allows the named reference without its `;`.
fn legacy(name: &str, c: char) -> bool {
    c <= '\u{ff}' && !matches!(name, "apos" | "angst" | "div")
}

/// The character of a reference's name (`amp`, `#233`, `#xE9`): `Some(None)` for a
/// numeric one Python drops (a control character), `None` when it is not one.
fn resolve(name: &str) -> Option<Option<char>> {
    if let Some(num) = name.strip_prefix('#') {
        let value = match num.strip_prefix(['x', 'X']) {
            Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => u32::from_str_radix(hex, 16),
            None if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => num.parse::<u32>(),
            _ => return None,
        };
        let n = value.unwrap_or(u32::MAX);
        return Some(match n {
            0 => Some('\u{fffd}'),
            0x80..=0x9f => {
                let text =
                    super::charset::decode_all(super::charset::Charset::Known(encoding_rs::WINDOWS_1252), &[n as u8]);
                text.chars().next()
            }
            0x1..=0x8 | 0xb | 0xe..=0x1f | 0x7f | 0xfdd0..=0xfdef => None,
            n if n & 0xfffe == 0xfffe && n <= 0x10ffff => None,
            n => Some(char::from_u32(n).unwrap_or('\u{fffd}')),
        });
    }
    NAMED.binary_search_by(|(n, _)| (*n).cmp(name)).ok().map(|i| Some(NAMED[i].1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(html: &str, piece: usize) -> String {
        let mut h = HtmlText::default();
        let mut out = String::new();
        let chars: Vec<char> = html.chars().collect();
        for p in chars.chunks(piece) {
            h.feed(&p.iter().collect::<String>(), &mut out);
        }
        h.finish(&mut out);
        out
    }

    /// The expected values are what Python's `html.parser.HTMLParser` hands `handle_data`
    /// (with `convert_charrefs=True`), joined.
    #[test]
    fn text_as_python_sees_it() {
        let cases: &[(&str, &str)] = &[
            ("<p>Hello <b>big</b> world</p>", "Hello big world"),
            ("Tom &amp; Jerry&nbsp;&eacute;t&eacute; &#233;&#xE9;&#150;", "Tom & Jerry\u{a0}été éé–"),
            ("<!-- <b>not</b> -- --> shown <!DOCTYPE html><?xml x?>", " shown "),
            ("<a href=\"x>y\" title='a>b'>link</a>", "link"),
            ("<script>if (a) { x = '&amp;'; }</script>after", "if (a) { x = '&amp;'; }after"),
            ("<STYLE>p { color: red }</STYLE>", "p { color: red }"),
            ("a < b and c <3", "a < b and c <3"),
            ("&unknown; &amp &ampx; &eacutex &#233x &#xZ &euro &hellip;", "&unknown; & &x; éx éx &#xZ &euro …"),
            ("</>x</ y>z", "xz"),
        ];
        for (html, want) in cases {
            for piece in [1, 2, 5, 1000] {
                assert_eq!(text(html, piece), *want, "{html} in pieces of {piece}");
            }
        }
    }

    #[test]
    fn names_are_sorted() {
        assert!(NAMED.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
