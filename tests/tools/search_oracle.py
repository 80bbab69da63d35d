"""The test oracle of `--search` (tests/it/search.rs): which messages a query selects, found
with Python's standard library only: the `email` package parses each message (its feed
parser, header value parser, and payload decoding), `html.parser` turns HTML into text,
the `codecs` decode charsets (labels read as the WHATWG Encoding Standard reads them).

Usage: search_oracle.py MANIFEST QUERY...
MANIFEST has one message a line, TAB-separated: key, path of the raw message, INTERNALDATE
or -, flags (space-separated) or -, labels (separated by |) or -. For each QUERY, prints
one line: the keys it selects, space-separated, in manifest order.
"""

import codecs
import datetime
import email
import email._header_value_parser as hvp
import email.policy
import email.utils
import html.parser
import re
import sys

WHITE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
        "\u2028\u2029\u202f\u205f\u3000"
WS_RUN = re.compile("[" + re.escape(WHITE) + "]+")

# Labels WHATWG reads differently from Python's codec of the same name.
WHATWG = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "l1": "cp1252", "iso_8859-1": "cp1252",
    "iso-8859-9": "cp1254", "latin5": "cp1254", "gb2312": "gbk", "gb_2312-80": "gbk", "x-gbk": "gbk",
    "shift_jis": "cp932", "sjis": "cp932", "windows-31j": "cp932", "x-sjis": "cp932", "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949", "korean": "cp949", "tis-620": "cp874", "iso-8859-11": "cp874", "big5": "big5hkscs",
}


def normalize(text):
    text = WS_RUN.sub(" ", text).strip(" ")
    return text.lower().replace("ς", "σ")


def cp1252(data):
    # WHATWG windows-1252: the five bytes Python leaves undefined are C1 controls.
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in data)


def fallback(data):
    out = []
    for line in data.splitlines(keepends=True):
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(cp1252(line))
    return "".join(out)


def decode_text(data, label):
    label = (label or "").strip().lower()
    if label in ("", "us-ascii", "ascii"):
        return fallback(data)
    name = WHATWG.get(label, label)
    if name == "cp1252":
        return cp1252(data)
    try:
        codecs.lookup(name)
    except LookupError:
        return fallback(data)
    return data.decode(name, errors="replace")


def header_text(raw):
    """A header value's text: raw 8-bit as UTF-8 or windows-1252, encoded words decoded
    as Python's unstructured header does."""
    data = raw.encode("ascii", "surrogateescape")
    text = fallback(data).replace("\r\n", "").replace("\n", "")
    return str(hvp.get_unstructured(text))


class HtmlText(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def html_text(text):
    p = HtmlText()
    p.feed(text)
    p.close()
    return "".join(p.parts)


SEARCHED = ["from", "to", "subject", "message-id", "date", "sender", "reply-to", "cc", "bcc"]
KIND = {"from": "from", "to": "to", "subject": "subject", "message-id": "id", "date": "date"}


def documents(msg):
    """(kind, normalized text) of each document: header fields by kind ('from', 'to',
    'subject', 'id', 'date', 'other', 'attached') and text parts ('body')."""
    docs = []

    def headers(m, attached):
        raw = {}
        for k, v in m.raw_items():
            raw.setdefault(k.lower(), v)
        for name in SEARCHED:
            v = raw.get(name)
            if v is not None:
                kind = "attached" if attached else KIND.get(name, "other")
                docs.append((kind, normalize(header_text(v))))

    def walk(m, attached):
        headers(m, attached)
        stack = [m]
        while stack:
            part = stack.pop(0)
            if part.is_multipart():
                subs = part.get_payload()
                if part.get_content_maintype() == "message":
                    for s in subs:
                        walk(s, True)
                else:
                    stack[0:0] = subs
                continue
            if part.get_content_maintype() == "text":
                data = part.get_payload(decode=True) or b""
                text = decode_text(data, part.get_param("charset"))
                if part.get_content_subtype() == "html":
                    text = html_text(text)
                docs.append(("body", normalize(text)))

    walk(msg, False)
    return docs


FIELDS = {"from", "to", "subject", "id", "since", "before", "larger", "smaller", "flag", "label"}
SYSTEM = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]


def parse(query):
    """The query as nested tuples: ('or', [...]), ('and', [...]), ('not', x), ('term', kinds, text),
    ('since'|'before', date), ('larger'|'smaller', n), ('flag'|'label', text)."""
    toks = re.findall(r'\(|\)|"(?:\\.|[^"\\])*"|[^\s()"]+(?:"(?:\\.|[^"\\])*")?', query)
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else None

    def take():
        pos[0] += 1
        return toks[pos[0] - 1]

    def unquote(t):
        return re.sub(r'\\(["\\])', r"\1", t[1:-1])

    def p_or():
        items = [p_and()]
        while peek() == "OR":
            take()
            items.append(p_and())
        return items[0] if len(items) == 1 else ("or", items)

    def p_and():
        items = []
        while peek() not in (None, ")", "OR"):
            if peek() == "AND":
                take()
                continue
            items.append(p_unary())
        return items[0] if len(items) == 1 else ("and", items)

    def p_unary():
        t = peek()
        if t == "NOT":
            take()
            return ("not", p_unary())
        if t.startswith("-") and len(t) > 1:
            toks[pos[0]] = t[1:]
            return ("not", p_unary())
        return atom()

    def atom():
        t = take()
        if t == "(":
            inner = p_or()
            take()
            return inner
        if t.startswith('"'):
            return ("term", "free", normalize(unquote(t)))
        name, _, value = t.partition(":")
        if _ and name.lower() in FIELDS:
            name = name.lower()
            if value.startswith('"'):
                value = unquote(value)
            value = value.strip()
            if name in ("from", "to", "subject", "id"):
                return ("term", name, normalize(value))
            if name in ("since", "before"):
                return (name, datetime.date.fromisoformat(value).toordinal())
            if name in ("larger", "smaller"):
                unit = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(value[-1].lower(), 1)
                return (name, int(value[:-1] if unit > 1 else value) * unit)
            if name == "flag":
                bare = value[1:] if value.startswith("\\") else value
                return (name, next((s for s in SYSTEM if s[1:].lower() == bare.lower()), value))
            return (name, value)
        return ("term", "free", normalize(t))

    return p_or()


def internal_day(date):
    # "07-Jul-2019 02:44:25 -0700": the day as written, in its own zone.
    return datetime.datetime.strptime(date.split()[0], "%d-%b-%Y").date().toordinal()


def header_day(msg):
    raw = next((v for k, v in msg.raw_items() if k.lower() == "date"), None)
    if raw is None:
        return None
    t = email.utils.parsedate_tz(str(raw))
    if t is None:
        return None
    try:
        return datetime.date(t[0], t[1], t[2]).toordinal()
    except ValueError:
        return None


def evaluate(node, m):
    kind = node[0]
    if kind == "or":
        return any(evaluate(x, m) for x in node[1])
    if kind == "and":
        return all(evaluate(x, m) for x in node[1])
    if kind == "not":
        return not evaluate(node[1], m)
    if kind == "term":
        where, text = node[1], node[2]
        return any(text in doc for k, doc in m["docs"] if where == "free" or k == where)
    if kind in ("since", "before"):
        day = m["day"]
        return day is not None and (day >= node[1] if kind == "since" else day < node[1])
    if kind == "larger":
        return m["size"] > node[1]
    if kind == "smaller":
        return m["size"] < node[1]
    if kind == "flag":
        return any(f.lower() == node[1].lower() for f in m["flags"])
    return any(normalize(l) == normalize(node[1]) for l in m["labels"])


def main():
    messages = []
    for line in open(sys.argv[1], encoding="utf-8"):
        key, path, date, flags, labels = line.rstrip("\n").split("\t")
        raw = open(path, "rb").read()
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        day = internal_day(date) if date != "-" else header_day(msg)
        messages.append({
            "key": key, "docs": documents(msg), "day": day, "size": len(raw),
            "flags": [] if flags == "-" else flags.split(" "),
            "labels": [] if labels == "-" else labels.split("|"),
        })
    for query in sys.argv[2:]:
        tree = parse(query)
        print(" ".join(m["key"] for m in messages if evaluate(tree, m)))


main()
