//! The query language of `--search`, parsed into an expression of predicates, and its
//! three-valued evaluation: a predicate the metadata cannot decide is unknown, and a
//! message whose query stays unknown is read from its file.
//!
//! Grammar (words are separated by white space; `OR`, `AND`, `NOT` in capitals):
//!
//! ```text
//! query   = or
//! or      = and { "OR" and }
//! and     = unary { ["AND"] unary }          terms side by side must all hold
//! unary   = "-" unary | "NOT" unary | atom    "-" right before a term: it must not hold
//! atom    = "(" or ")" | field ":" value | value
//! value   = word | '"' phrase '"'             \" and \\ inside a phrase
//! field   = from | to | subject | id | since | before | larger | smaller | flag | label
//! ```
//!
//! A word whose part before `:` is not a field is text (`http://x`, `re:`).

use super::matcher::{bit, normalize, Doc, Docs, Term, FREE_TEXT, MAX_TERMS};
use crate::error::{Error, Result};

/// Longest query accepted, in bytes.
const MAX_QUERY: usize = 4096;
/// Deepest nesting of parentheses and negations.
const MAX_DEPTH: usize = 32;

/// One condition on a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pred {
    /// A term (an index into [`Query::terms`]) is found where it is looked for.
    Term(usize),
    /// Its date is on or after this day (days since 1970-01-01).
    Since(i64),
    /// Its date is before this day.
    Before(i64),
    /// It is bigger than this many bytes.
    Larger(u64),
    /// It is smaller than this many bytes.
    Smaller(u64),
    /// It has this flag or keyword (compared without regard to case).
    Flag(String),
    /// It has this Gmail label (compared without regard to case).
    Label(String),
}

/// A query's structure over its predicates (indexes into [`Query::preds`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// A predicate.
    Pred(usize),
    /// Negation.
    Not(Box<Expr>),
    /// All of them.
    And(Vec<Expr>),
    /// Any of them.
    Or(Vec<Expr>),
}

/// True, false, or not known yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tri {
    /// Holds.
    True,
    /// Does not hold.
    False,
    /// Cannot be told from what is known.
    Unknown,
}

impl From<bool> for Tri {
    fn from(b: bool) -> Tri {
        if b {
            Tri::True
        } else {
            Tri::False
        }
    }
}

/// A parsed query.
#[derive(Clone, Debug)]
pub struct Query {
    /// Its structure.
    pub expr: Expr,
    /// Its predicates.
    pub preds: Vec<Pred>,
    /// The terms its [`Pred::Term`]s look for.
    pub terms: Vec<Term>,
}

impl Query {
    /// Parses `text`; a usage error says what is wrong.
    pub fn parse(text: &str) -> Result<Query> {
        if text.len() > MAX_QUERY {
            return Err(bad(format!("longer than {MAX_QUERY} bytes")));
        }
        let mut p = Parser { chars: text.chars().collect(), pos: 0, preds: Vec::new(), terms: Vec::new(), depth: 0 };
        p.skip_ws();
        if p.at_end() {
            return Err(bad("it is empty"));
        }
        let expr = p.or()?;
        p.skip_ws();
        if !p.at_end() {
            return Err(bad("a ')' closes nothing"));
        }
        Ok(Query { expr, preds: p.preds, terms: p.terms })
    }

    /// The query's value, given each predicate's.
    pub fn eval(&self, value: &mut dyn FnMut(&Pred) -> Tri) -> Tri {
        eval(&self.expr, &self.preds, value)
    }

    /// Whether a term is looked for in the body (the query needs the text parts).
    pub fn reads_body(&self) -> bool {
        self.terms.iter().any(|t| t.docs & bit(Doc::Body) != 0)
    }
}

fn eval(e: &Expr, preds: &[Pred], value: &mut dyn FnMut(&Pred) -> Tri) -> Tri {
    match e {
        Expr::Pred(i) => value(&preds[*i]),
        Expr::Not(inner) => match eval(inner, preds, value) {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        },
        Expr::And(all) => {
            let mut result = Tri::True;
            for x in all {
                match eval(x, preds, value) {
                    Tri::False => return Tri::False,
                    Tri::Unknown => result = Tri::Unknown,
                    Tri::True => {}
                }
            }
            result
        }
        Expr::Or(any) => {
            let mut result = Tri::False;
            for x in any {
                match eval(x, preds, value) {
                    Tri::True => return Tri::True,
                    Tri::Unknown => result = Tri::Unknown,
                    Tri::False => {}
                }
            }
            result
        }
    }
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::usage(format!("--search: the query is not valid: {why} (see --help or README, Search)"))
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    preds: Vec<Pred>,
    terms: Vec<Term>,
    depth: usize,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Whether the next word is `word` (a whole word).
    fn next_is(&self, word: &str) -> bool {
        let n = word.chars().count();
        let end = self.pos + n;
        end <= self.chars.len()
            && self.chars[self.pos..end].iter().copied().eq(word.chars())
            && self.chars.get(end).is_none_or(|c| c.is_whitespace() || *c == '(' || *c == ')')
    }

    fn deeper(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(bad(format!("nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr> {
        let mut any = vec![self.and()?];
        loop {
            self.skip_ws();
            if !self.next_is("OR") {
                break;
            }
            self.pos += 2;
            self.skip_ws();
            if self.at_end() || self.peek() == Some(')') {
                return Err(bad("OR needs a term after it"));
            }
            any.push(self.and()?);
        }
        Ok(if any.len() == 1 { any.remove(0) } else { Expr::Or(any) })
    }

    fn and(&mut self) -> Result<Expr> {
        let mut all = Vec::new();
        loop {
            self.skip_ws();
            if self.at_end() || self.peek() == Some(')') || self.next_is("OR") {
                break;
            }
            if self.next_is("AND") {
                self.pos += 3;
                continue;
            }
            all.push(self.unary()?);
        }
        match all.len() {
            0 => Err(bad("a term is missing (before OR, or inside parentheses)")),
            1 => Ok(all.remove(0)),
            _ => Ok(Expr::And(all)),
        }
    }

    fn unary(&mut self) -> Result<Expr> {
        self.skip_ws();
        let negated = if self.peek() == Some('-') {
            self.pos += 1;
            if self.at_end() || self.peek().is_some_and(char::is_whitespace) {
                return Err(bad("a '-' must stand right before the term it negates"));
            }
            true
        } else if self.next_is("NOT") {
            self.pos += 3;
            self.skip_ws();
            true
        } else {
            false
        };
        if negated {
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                self.deeper()?;
                let inner = self.or()?;
                self.depth -= 1;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(bad("a '(' is not closed"));
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(')') => Err(bad("a ')' closes nothing")),
            Some('"') => {
                let phrase = self.quoted()?;
                self.term(&phrase, FREE_TEXT, "a phrase")
            }
            _ => {
                let word = self.word();
                if let Some((name, value)) = word.split_once(':') {
                    if let Some(field) = FIELDS.iter().find(|f| f.eq_ignore_ascii_case(name)) {
                        let value = if value.is_empty() && self.peek() == Some('"') {
                            self.quoted()?
                        } else {
                            value.to_string()
                        };
                        return self.field(field, &value);
                    }
                }
                self.term(&word, FREE_TEXT, "a word")
            }
        }
    }

    /// A word: up to white space, a parenthesis or a quote.
    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|c| !c.is_whitespace() && c != '(' && c != ')' && c != '"') {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// A quoted phrase, the quotes taken off.
    fn quoted(&mut self) -> Result<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(bad("a '\"' is not closed")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') if matches!(self.chars.get(self.pos + 1), Some('"' | '\\')) => {
                    out.push(self.chars[self.pos + 1]);
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn pred(&mut self, p: Pred) -> Expr {
        let i = match self.preds.iter().position(|q| *q == p) {
            Some(i) => i,
            None => {
                self.preds.push(p);
                self.preds.len() - 1
            }
        };
        Expr::Pred(i)
    }

    fn term(&mut self, text: &str, docs: Docs, what: &str) -> Result<Expr> {
        let text = normalize(text);
        if text.is_empty() {
            return Err(bad(format!("{what} is empty")));
        }
        let term = Term { text, docs };
        let i = match self.terms.iter().position(|t| *t == term) {
            Some(i) => i,
            None => {
                if self.terms.len() == MAX_TERMS {
                    return Err(bad(format!("more than {MAX_TERMS} terms")));
                }
                self.terms.push(term);
                self.terms.len() - 1
            }
        };
        Ok(self.pred(Pred::Term(i)))
    }

    fn field(&mut self, field: &str, value: &str) -> Result<Expr> {
        let what = format!("{field}:");
        let value = value.trim();
        if value.is_empty() {
            return Err(bad(format!("{what} needs a value")));
        }
        let p = match field {
            "from" => return self.term(value, bit(Doc::From), &what),
            "to" => return self.term(value, bit(Doc::To), &what),
            "subject" => return self.term(value, bit(Doc::Subject), &what),
            "id" => return self.term(value, bit(Doc::MessageId), &what),
            "since" => Pred::Since(day(value, &what)?),
            "before" => Pred::Before(day(value, &what)?),
            "larger" => Pred::Larger(size(value, &what)?),
            "smaller" => Pred::Smaller(size(value, &what)?),
            "flag" => Pred::Flag(flag(value)),
            _ => Pred::Label(value.to_string()),
        };
        Ok(self.pred(p))
    }
}

/// The fields of the language.
const FIELDS: [&str; 10] = ["from", "to", "subject", "id", "since", "before", "larger", "smaller", "flag", "label"];

/// `YYYY-MM-DD` as days since 1970-01-01.
fn day(text: &str, what: &str) -> Result<i64> {
    let wrong = || bad(format!("{what}{text} is not a date like 2024-02-01"));
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(wrong()) };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 || !text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Err(wrong());
    }
    let (y, m, d) = (y.parse::<i64>(), m.parse::<i64>(), d.parse::<i64>());
    let (Ok(y), Ok(m), Ok(d)) = (y, m, d) else { return Err(wrong()) };
    if !(1..=12).contains(&m) || d < 1 || d > crate::mbox::days_in_month(y, m) {
        return Err(wrong());
    }
    Ok(crate::mbox::days_from_civil(y, m, d))
}

/// A size: bytes, or with a `K`, `M` or `G` suffix (powers of 1024).
fn size(text: &str, what: &str) -> Result<u64> {
    let wrong = || bad(format!("{what}{text} is not a size like 20000, 100K or 5M"));
    let (digits, unit) = match text.as_bytes().last() {
        Some(b'k' | b'K') => (&text[..text.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&text[..text.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(wrong());
    }
    digits.parse::<u64>().ok().and_then(|n| n.checked_mul(unit)).ok_or_else(wrong)
}

/// A flag as given: the system flags by their names with or without `\` (`seen`,
/// `\Seen`), anything else as it is (a keyword: `$Forwarded`, `$Junk`, `work`).
fn flag(text: &str) -> String {
    const SYSTEM: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];
    let bare = text.strip_prefix('\\').unwrap_or(text);
    SYSTEM.iter().find(|s| s[1..].eq_ignore_ascii_case(bare)).map_or_else(|| text.to_string(), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Query {
        Query::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The query's value where exactly the predicates `holding` hold.
    fn value(query: &Query, holding: &[Pred]) -> Tri {
        query.eval(&mut |p| Tri::from(holding.contains(p)))
    }

    #[test]
    fn the_grammar() {
        let query = q(r#"from:ann "quarterly  Report" -flag:seen (subject:"a \"b\"" OR larger:10K) NOT label:Work"#);
        assert_eq!(query.terms.len(), 3);
        assert_eq!(query.terms[0], Term { text: "ann".into(), docs: bit(Doc::From) });
        assert_eq!(query.terms[1], Term { text: "quarterly report".into(), docs: FREE_TEXT });
        assert_eq!(query.terms[2], Term { text: "a \"b\"".into(), docs: bit(Doc::Subject) });
        assert!(query.preds.contains(&Pred::Flag("\\Seen".into())));
        assert!(query.preds.contains(&Pred::Larger(10240)));
        assert!(query.preds.contains(&Pred::Label("Work".into())));
        let all = [Pred::Term(0), Pred::Term(1), Pred::Larger(10240)];
        assert_eq!(value(&query, &all), Tri::True);
        assert_eq!(value(&query, &[Pred::Term(0), Pred::Term(1), Pred::Term(2)]), Tri::True);
        assert_eq!(value(&query, &[Pred::Term(0), Pred::Term(1)]), Tri::False);
        let mut seen = all.to_vec();
        seen.push(Pred::Flag("\\Seen".into()));
        assert_eq!(value(&query, &seen), Tri::False);
        // A word that is not a field is text; capitals only make operators.
        let query = q("http://example.org re: or and not");
        assert_eq!(query.terms.len(), 5);
        assert_eq!(query.terms[0].text, "http://example.org");
        assert!(matches!(q("a AND b").expr, Expr::And(ref v) if v.len() == 2));
        assert_eq!(q("since:2024-02-29 before:2025-01-01").preds, [Pred::Since(19782), Pred::Before(20089)]);
        assert_eq!(
            q("flag:\\answered flag:$Junk").preds,
            [Pred::Flag("\\Answered".into()), Pred::Flag("$Junk".into())]
        );
        assert_eq!(q("smaller:2m").preds, [Pred::Smaller(2 << 20)]);
        assert_eq!(q("FROM:x").terms[0].docs, bit(Doc::From));
    }

    #[test]
    fn unknown_stays_unknown_unless_decided() {
        let query = q("a OR -b");
        let mut v = |p: &Pred| if *p == Pred::Term(0) { Tri::Unknown } else { Tri::False };
        assert_eq!(query.eval(&mut v), Tri::True, "-b holds whatever a is");
        let query = q("a b");
        let mut v = |p: &Pred| if *p == Pred::Term(0) { Tri::Unknown } else { Tri::False };
        assert_eq!(query.eval(&mut v), Tri::False);
        let mut v = |p: &Pred| if *p == Pred::Term(0) { Tri::Unknown } else { Tri::True };
        assert_eq!(query.eval(&mut v), Tri::Unknown);
    }

    #[test]
    fn bad_queries_say_why() {
        for (text, why) in [
            ("", "empty"),
            ("  ", "empty"),
            ("\"open", "not closed"),
            ("(a", "not closed"),
            ("a)", "closes nothing"),
            ("a OR", "after it"),
            ("- a", "right before"),
            ("since:2024-2-1", "not a date"),
            ("since:2023-02-29", "not a date"),
            ("larger:lots", "not a size"),
            ("larger:99999999999999G", "not a size"),
            ("from:", "needs a value"),
            ("\"  \"", "empty"),
            ("()", "missing"),
        ] {
            let e = Query::parse(text).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(why), "{text:?}: {e}");
        }
        let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert!(Query::parse(&deep).unwrap_err().to_string().contains("nested"));
        let many: String = (0..70).map(|i| format!("w{i} ")).collect();
        assert!(Query::parse(&many).unwrap_err().to_string().contains("terms"));
    }
}
