//! The reader and parser of answers, on answers written out by hand: well-formed, quirky
//! and hostile.

use super::*;

fn read(input: &[u8], max: usize) -> Result<Response, ImapError> {
    read_response(&mut io::Cursor::new(input.to_vec()), max)
}

fn data(input: &[u8]) -> Data {
    match read(input, 1 << 20).unwrap() {
        Response::Data(d) => d,
        other => panic!("{other:?}"),
    }
}

#[test]
fn lists_nested_too_deep_are_refused_not_a_crash() {
    let mut line = b"* 1 FETCH ".to_vec();
    line.extend(std::iter::repeat_n(b'(', 60_000));
    line.extend_from_slice(b"\r\n");
    // On a thread with a small stack, as a connection's is.
    let e = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || read(&line, 1 << 20).unwrap_err())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(e, ImapError::Protocol("lists nested more than 100 deep".into()));
    let ok = format!("* 1 FETCH (UID 1 X {}{})\r\n", "(".repeat(90), ")".repeat(90));
    assert!(matches!(read(ok.as_bytes(), 100).unwrap(), Response::Data(Data::Fetch(_))));
}

#[test]
fn tagged_and_state() {
    match read(b"a1 NO [TRYCREATE] no such mailbox\r\n", 0).unwrap() {
        Response::Tagged { tag, status, text } => {
            assert_eq!((tag.as_str(), status, text.as_str()), ("a1", Status::No, "[TRYCREATE] no such mailbox"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        data(b"* OK [UIDVALIDITY 1234] UIDs valid\r\n"),
        Data::State { status: Status::Ok, code: Some("UIDVALIDITY".into()), args: "1234".into() }
    );
    assert_eq!(data(b"* BYE shutting down\r\n"), Data::Bye("shutting down".into()));
    assert_eq!(data(b"* 17 EXISTS\r\n"), Data::Exists(17));
    assert_eq!(
        data(b"* CAPABILITY IMAP4rev1 id LIST-STATUS\r\n"),
        Data::Capability(vec!["IMAP4REV1".into(), "ID".into(), "LIST-STATUS".into()])
    );
    assert!(matches!(read(b"+ go on\r\n", 0).unwrap(), Response::Continue(t) if t == "go on"));
}

#[test]
fn namespace_and_partial_headers() {
    use crate::hierarchy::Hierarchy;
    let ns = |prefix: &str, sep| Data::Namespace(Some(Hierarchy { prefix: prefix.into(), separator: sep }));
    assert_eq!(data(b"* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\n"), ns("INBOX.", Some('.')));
    assert_eq!(
        data(b"* NAMESPACE ((\"\" \"/\")) ((\"Other Users/\" \"/\")) ((\"Shared/\" \"/\"))\r\n"),
        ns("", Some('/'))
    );
    assert_eq!(data(b"* NAMESPACE ((\"\" NIL)) NIL NIL\r\n"), ns("", None));
    assert_eq!(data(b"* NAMESPACE NIL NIL NIL\r\n"), Data::Namespace(None));
    let Data::Fetch(f) = data(b"* 2 FETCH (UID 9 BODY[HEADER]<0> {4}\r\nA: b)\r\n") else { panic!() };
    assert_eq!((f.uid, f.body.as_deref()), (Some(9), Some(&b"A: b"[..])));
}

#[test]
fn list_and_status() {
    assert_eq!(
        data(b"* LIST (\\HasNoChildren) \"/\" \"Re&AOc-us\"\r\n"),
        Data::List(ListEntry {
            attributes: vec!["\\HasNoChildren".into()],
            delimiter: Some('/'),
            wire: "Re&AOc-us".into()
        })
    );
    let Data::List(e) = data(b"* LIST (\\Noselect) NIL {7}\r\na\"b\\c d\r\n") else { panic!() };
    assert_eq!((e.wire.as_str(), e.delimiter, e.selectable()), ("a\"b\\c d", None, false));
    let Data::List(e) = data(b"* LIST () \".\" \"q\\\"x\"\r\n") else { panic!() };
    assert_eq!(e.wire, "q\"x");
    assert_eq!(data(b"* LIST () \"/\" {4}\r\nR\xe9\x1bx\r\n"), Data::UnusableName("R\u{fffd}\\u{1b}x".into()));
    assert_eq!(
        data(b"* STATUS \"Sent Items\" (UIDNEXT 12 UIDVALIDITY 9 MESSAGES 3)\r\n"),
        Data::MailboxStatus {
            wire: "Sent Items".into(),
            items: vec![("UIDNEXT".into(), 12), ("UIDVALIDITY".into(), 9), ("MESSAGES".into(), 3)]
        }
    );
}

/// Reads `input` with a sink for UID `uid` (tiny reads: pieces cross every boundary);
/// returns the responses and what the sink got.
fn read_streamed(input: &[u8], uid: u32, max: u64) -> (Vec<Result<Response, ImapError>>, Vec<u8>) {
    let mut got = Vec::new();
    let mut responses = Vec::new();
    {
        let mut piece = |d: &[u8]| {
            got.extend_from_slice(d);
            Ok(())
        };
        let mut sink = BodySink { uid, max, drain: 20, over: None, taken: false, piece: &mut piece };
        let mut r = io::BufReader::with_capacity(7, input);
        while !r.fill_buf().unwrap().is_empty() {
            let res = read_response_into(&mut r, 100, Some(&mut sink));
            let stop = res.is_err();
            responses.push(res);
            if stop {
                break;
            }
        }
    }
    (responses, got)
}

#[test]
fn a_body_streams_to_the_sink_once_and_only_for_its_uid() {
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let mut input = b"* 1 FETCH (UID 5 FLAGS (\\Seen))\r\n* 2 FETCH (UID 6 BODY[] {3}\r\nabc)\r\n".to_vec();
    input.extend(format!("* 3 FETCH (UID 7 FLAGS () BODY[] {{{}}}\r\n", body.len()).as_bytes());
    input.extend(&body);
    input.extend(b" INTERNALDATE \" 7-Jul-2019 02:44:25 -0700\")\r\n* 4 FETCH (UID 7 BODY[] {2}\r\nhi)\r\n");
    let (responses, got) = read_streamed(&input, 7, 5000);
    assert_eq!(got, body, "the body of UID 7, bigger than max_literal, went to the sink whole");
    let fetched: Vec<Fetched> = responses
        .into_iter()
        .map(|r| match r {
            Ok(Response::Data(Data::Fetch(f))) => f,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(fetched[1].body.as_deref(), Some(&b"abc"[..]), "UID 6's body is read as usual");
    assert_eq!((fetched[2].uid, fetched[2].body.as_ref(), fetched[2].streamed), (Some(7), None, Some(1000)));
    assert_eq!(fetched[2].internal_date.as_deref(), Some(" 7-Jul-2019 02:44:25 -0700"));
    assert_eq!(fetched[3].body.as_deref(), Some(&b"hi"[..]), "a second body is not streamed");
    // A UID after the body: taken, to be checked by the caller.
    let (responses, got) = read_streamed(b"* 3 FETCH (BODY[] {4}\r\nwxyz UID 9)\r\n", 7, 10);
    assert_eq!(got, b"wxyz");
    assert!(matches!(&responses[0], Ok(Response::Data(Data::Fetch(f))) if f.uid == Some(9) && f.streamed == Some(4)));
    // Bigger than the sink allows: read and thrown away up to the drain size, refused
    // before a byte is read beyond it.
    let (responses, got) = read_streamed(b"* 3 FETCH (UID 7 BODY[] {11}\r\nhello world)\r\n", 7, 10);
    assert!(got.is_empty());
    assert!(matches!(&responses[0], Ok(Response::Data(Data::Fetch(f))) if f.streamed == Some(11)), "{responses:?}");
    let (responses, got) = read_streamed(b"* 3 FETCH (UID 7 BODY[] {21}\r\nhello world hello wor)\r\n", 7, 10);
    assert!(got.is_empty());
    assert!(matches!(&responses[0], Err(ImapError::TooMuch(_))), "{responses:?}");
    // Longer than announced: the answer fails after the bytes went to the sink.
    let (responses, _) = read_streamed(b"* 3 FETCH (UID 7 BODY[] {3}\r\nhello)\r\n", 7, 10);
    assert!(matches!(&responses[0], Err(ImapError::Protocol(_))), "{responses:?}");
    // Cut short: the connection is lost.
    let (responses, _) = read_streamed(b"* 3 FETCH (UID 7 BODY[] {30}\r\nhello", 7, 100);
    assert!(matches!(&responses[0], Err(ImapError::Lost(_))), "{responses:?}");
}

#[test]
fn gmail_items() {
    let Data::Fetch(f) = data(
        b"* 1 FETCH (X-GM-THRID 1266894439832287888 X-GM-MSGID 1278455344230334865 \
          X-GM-LABELS (\\Inbox \"Work/2019\" {5}\r\n&AOc- \\Sent) UID 4)\r\n",
    ) else {
        panic!()
    };
    assert_eq!(f.uid, Some(4));
    assert_eq!((f.gm_msgid, f.gm_thrid), (Some(1278455344230334865), Some(1266894439832287888)));
    assert_eq!(f.gm_labels.unwrap(), ["&AOc-", "Work/2019", "\\Inbox", "\\Sent"]);
    let Data::Fetch(f) = data(b"* 1 FETCH (X-GM-LABELS () UID 4)\r\n") else { panic!() };
    assert_eq!(f.gm_labels, Some(vec![]));
    let many = format!("* 1 FETCH (X-GM-LABELS ({}) UID 4)\r\n", "a ".repeat(MAX_LABELS + 1));
    assert!(read(many.as_bytes(), 100).is_err());
}

#[test]
fn fetch_answers() {
    let Data::Fetch(f) = data(b"* 3 FETCH (UID 7 RFC822.SIZE 5 BODY[] {5}\r\nhello)\r\n") else { panic!() };
    assert_eq!(f, Fetched { uid: Some(7), size: Some(5), body: Some(b"hello".to_vec()), ..Fetched::default() });
    let Data::Fetch(f) = data(b"* 3 FETCH (BODY[]<4096> {3}\r\nabc UID 8)\r\n") else { panic!() };
    assert_eq!((f.uid, f.body.as_deref()), (Some(8), Some(&b"abc"[..])));
    let Data::Fetch(f) = data(b"* 3 FETCH (UID 8 RFC822.SIZE 90 BODY[HEADER]<0> {4}\r\nA: b)\r\n") else { panic!() };
    assert_eq!((f.uid, f.size, f.body.as_deref()), (Some(8), Some(90), Some(&b"A: b"[..])));
    let Data::Fetch(f) = data(b"* 1 FETCH (UID 2 FLAGS (\\Seen))\r\n") else { panic!() };
    assert_eq!((f.uid, f.body, f.flags), (Some(2), None, Some(vec!["\\Seen".to_string()])));
    let Data::Fetch(f) = data(
        b"* 4 FETCH (UID 9 FLAGS (\\Seen \\Recent \\Answered $Forwarded \"q x\" \\) INTERNALDATE \" 7-Jul-2019 02:44:25 -0700\" MODSEQ (12) BODY[] {2}\r\nhi)\r\n",
    ) else {
        panic!()
    };
    assert_eq!(
        f.flags.unwrap(),
        ["$Forwarded", "\\Answered", "\\Seen"],
        "sorted; \\Recent, a quoted name and a bare backslash are left out"
    );
    assert_eq!((f.internal_date.as_deref(), f.body.as_deref()), (Some(" 7-Jul-2019 02:44:25 -0700"), Some(&b"hi"[..])));
    // Header fields, their names echoed quoted (Courier) or as atoms (Cyrus, Dovecot).
    for answer in [
        &b"* 2 FETCH (UID 5 RFC822.SIZE 40 BODY[HEADER.FIELDS (\"MESSAGE-ID\" \"SUBJECT\")] {15}\r\nSubject: hi\r\n\r\n)\r\n"[..],
        b"* 2 FETCH (UID 5 RFC822.SIZE 40 BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)] {15}\r\nSubject: hi\r\n\r\n)\r\n",
    ] {
        let Data::Fetch(f) = data(answer) else { panic!() };
        assert_eq!((f.uid, f.size, f.body.as_deref()), (Some(5), Some(40), Some(&b"Subject: hi\r\n\r\n"[..])));
    }
    let Data::Fetch(f) = data(b"* 4 FETCH (UID 9 INTERNALDATE \"yesterday\")\r\n") else { panic!() };
    assert_eq!(f.internal_date, None);
    let many = format!("* 1 FETCH (UID 2 FLAGS ({}))\r\n", vec!["k"; MAX_FLAGS + 1].join(" "));
    assert!(read(many.as_bytes(), 0).unwrap_err().to_string().contains("flags"));
    let long = format!("* 1 FETCH (UID 2 FLAGS ({}))\r\n", "k".repeat(MAX_FLAG_LEN + 1));
    assert!(read(long.as_bytes(), 0).unwrap_err().to_string().contains("flag name"));
    let Data::Fetch(f) = data(b"* 1 FETCH (UID 2 BODY[] \"\")\r\n") else { panic!() };
    assert_eq!(f.body, Some(Vec::new()));
    let Data::Fetch(f) = data(b"* 298 FETCH (UID 298 BODY[] NIL)\r\n") else { panic!() };
    assert_eq!((f.uid, f.body), (Some(298), None), "expunged meanwhile: no body");
    let e = read(b"* 3 FETCH (UID 7 BODY[] {3}\r\nhello)\r\n", 100).unwrap_err();
    assert!(e.to_string().contains("longer than announced"), "{e}");
    let e = read(b"* 3 FETCH (UID 7 BODY[] {300}\r\n", 100).unwrap_err();
    assert!(e.to_string().contains("literal of 300 bytes"), "{e}");
}

#[test]
fn search_streams_past_the_line_cap() {
    assert_eq!(data(b"* SEARCH 1 5 9\r\n"), Data::Search(vec![1, 5, 9]));
    assert_eq!(data(b"* SEARCH\r\n"), Data::Search(vec![]));
    let mut long = b"* SEARCH".to_vec();
    for uid in 1..=50_000u32 {
        long.extend_from_slice(format!(" {uid}").as_bytes());
    }
    long.extend_from_slice(b"\r\na1 OK done\r\n");
    let mut r = io::Cursor::new(long);
    let Response::Data(Data::Search(uids)) = read_response(&mut r, 0).unwrap() else { panic!() };
    assert_eq!(uids, (1..=50_000).collect::<Vec<u32>>());
    assert!(matches!(read_response(&mut r, 0).unwrap(), Response::Tagged { .. }));
}

#[test]
fn hostile_input_is_bounded() {
    let mut long = b"* OK ".to_vec();
    long.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
    assert!(read(&long, 0).unwrap_err().to_string().contains("more than"));
    assert!(matches!(read(b"", 0).unwrap_err(), ImapError::Lost(_)));
    assert!(matches!(read(b"* OK half", 0).unwrap_err(), ImapError::Lost(_)));
    assert!(read(b"* SEARCH 1 x\r\n", 0).is_err());
    assert!(read(b"* LIST (\\X) \"/\" {99999999}\r\n", 0).is_err());
    assert!(read(b"junk line\r\n", 0).is_err());
}
