//! Messages the suites put on servers, built the same way wherever the same kind is
//! needed (a suite whose messages must differ keeps its own builder).

/// A short note with a To header: `Subject: {subject}`, then `body`.
pub fn note(subject: &str, body: &str) -> Vec<u8> {
    format!("From: Ann <ann@example.org>\r\nTo: bo@example.net\r\nSubject: {subject}\r\n\r\n{body}\r\n").into_bytes()
}

/// A short message whose body names its subject.
pub fn titled(subject: &str) -> Vec<u8> {
    format!("From: Ann <ann@example.org>\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n").into_bytes()
}

/// A short message from `a{i}@example.org`, distinct for each `i`.
pub fn numbered(i: usize) -> Vec<u8> {
    format!("From: a{i}@example.org\r\nSubject: m{i}\r\n\r\nbody {i}\r\n").into_bytes()
}

/// A dated message of at least `size` bytes (CRLF lines), distinct for each `n`, whose
/// Message-ID is `<{n}{id_tag}@example.org>`.
pub fn dated(n: usize, size: usize, id_tag: &str) -> Vec<u8> {
    let mut m = format!(
        "From: Sender {n} <s{n}@example.org>\r\nTo: r@example.org\r\nSubject: message {n}\r\n\
         Date: Tue, {:02} Mar 2021 10:{:02}:07 +0100\r\nMessage-ID: <{n}{id_tag}@example.org>\r\n\r\n",
        1 + n % 28,
        n % 60
    )
    .into_bytes();
    while m.len() < size {
        m.extend_from_slice(format!("line {} of message {n}\r\n", m.len()).as_bytes());
    }
    m
}
