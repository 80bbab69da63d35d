//! One live connection to the server: the stream with its pace check ([`Paced`]), the
//! capabilities, the tags of the commands in flight, and the reading of answers up to a
//! command's end ([`Link::finish`]). It knows nothing of logins or reconnects: the
//! session above it drops a link that broke and opens another.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

use super::connect::ServerSpec;
use super::error::{self, quote, ImapError};
use super::tls::Stream;
use super::wire::{self, Data, Response, Status};
use crate::error::describe_io;

/// Untagged answers of no interest tolerated during one command.
const MAX_OTHER_ANSWERS: usize = 100_000;

/// The slowest an answer may come once it is [`Paced::grace`] late: slower, a server (or
/// something between) is stalling us and the command fails, whatever its size.
const MIN_RATE: u64 = 8 * 1024;

/// The connection's stream with a pace check: a command's answer must arrive within the
/// timeout plus the time its size takes at [`MIN_RATE`]. The socket's timeout catches a
/// silent server; this catches one that sends a byte now and then.
pub(super) struct Paced {
    inner: Stream,
    grace: Duration,
    since: std::time::Instant,
    received: u64,
}

impl Paced {
    /// Starts the clock for a new answer.
    pub(super) fn restart(&mut self) {
        self.since = Instant::now();
        self.received = 0;
    }
}

impl Read for Paced {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let allowed = self.grace + Duration::from_secs(self.received / MIN_RATE);
        if self.since.elapsed() > allowed {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, wire::TOO_SLOW));
        }
        // The socket wakes every tick (see `open`), so SIGINT is heard while the server is
        // silent; the server has the whole timeout to say something.
        let waiting = Instant::now();
        loop {
            if crate::interrupt::requested() {
                return Err(std::io::Error::other("interrupted"));
            }
            match self.inner.read(buf) {
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                        && waiting.elapsed() < self.grace => {}
                Err(e) => return Err(e),
                Ok(n) => {
                    self.received += n as u64;
                    return Ok(n);
                }
            }
        }
    }
}

impl Write for Paced {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One live connection: the stream, the capabilities, and the commands in flight on it.
pub(super) struct Link {
    pub(super) io: BufReader<Paced>,
    pub(super) caps: Vec<String>,
    pub(super) next_tag: u32,
    /// Tags of commands sent whose answers are not read yet, oldest first.
    pub(super) in_flight: VecDeque<String>,
    /// The `UID FETCH` commands among them, for [`Session::read_fetch`].
    pub(super) fetches: VecDeque<String>,
    /// The `APPEND` commands among them, for [`Session::read_append`].
    pub(super) appends: VecDeque<String>,
    /// Tagged answers of those that came while the go-ahead for a later one was awaited.
    pub(super) answered: HashMap<String, (Status, String)>,
    /// A message came whole over this connection, or an upload was stored: losing it
    /// later does not count against [`RECONNECTS`].
    pub(super) progressed: bool,
    /// One command at a time: a command is written only once the ones before it were
    /// answered (a server that mishandles pipelining).
    pub(super) serial: bool,
    /// In that mode, the commands (the last ones of `in_flight`) not written yet.
    pub(super) queued: VecDeque<Vec<u8>>,
    /// Tags of commands written while an earlier one was still unanswered.
    pub(super) pipelined: HashSet<String>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("in_flight", &self.in_flight).finish_non_exhaustive()
    }
}

impl Link {
    /// A link over `stream`, just connected: nothing read or sent yet. Reads wait at most
    /// the spec's timeout before the pace check applies.
    pub(super) fn new(stream: Stream, spec: &ServerSpec) -> Link {
        Link {
            io: BufReader::with_capacity(
                64 * 1024,
                Paced { inner: stream, grace: spec.timeout, since: Instant::now(), received: 0 },
            ),
            caps: Vec::new(),
            next_tag: 0,
            in_flight: VecDeque::new(),
            fetches: VecDeque::new(),
            appends: VecDeque::new(),
            answered: HashMap::new(),
            progressed: false,
            serial: spec.serial(),
            queued: VecDeque::new(),
            pipelined: HashSet::new(),
        }
    }
    pub(super) fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c.eq_ignore_ascii_case(cap))
    }

    pub(super) fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("s{}", self.next_tag)
    }

    /// Sends commands in one write (one at a time, each after the answer of the one
    /// before, when [`Link::serial`]); returns their tags.
    pub(super) fn send(&mut self, commands: &[String]) -> std::result::Result<Vec<String>, ImapError> {
        let mut out = Vec::new();
        let mut tags = Vec::new();
        for c in commands {
            let tag = self.tag();
            let line = format!("{tag} {c}\r\n").into_bytes();
            if self.serial {
                self.queued.push_back(line);
            } else {
                if !self.in_flight.is_empty() || !tags.is_empty() {
                    self.pipelined.insert(tag.clone());
                }
                out.extend_from_slice(&line);
            }
            tags.push(tag);
        }
        if !out.is_empty() {
            self.write(&out)?;
        }
        self.in_flight.extend(tags.iter().cloned());
        self.pump()?;
        Ok(tags)
    }

    /// One at a time: writes the next queued command once every command written before
    /// it was answered.
    pub(super) fn pump(&mut self) -> std::result::Result<(), ImapError> {
        if self.in_flight.len() == self.queued.len() {
            if let Some(line) = self.queued.pop_front() {
                self.write(&line)?;
            }
        }
        Ok(())
    }

    /// Writes every queued command now: before a command written directly (APPEND),
    /// which must come after them.
    pub(super) fn unqueue(&mut self) -> std::result::Result<(), ImapError> {
        while let Some(line) = self.queued.pop_front() {
            self.write(&line)?;
        }
        Ok(())
    }

    pub(super) fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), ImapError> {
        let stream = self.io.get_mut();
        stream.write_all(bytes).and_then(|()| stream.flush()).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ImapError::Timeout,
            _ => ImapError::Lost(format!("sending a command: {}", describe_io(&e))),
        })
    }

    /// Reads answers up to the end of the command tagged `tag`, handing data to `on_data`;
    /// the commands sent before it end on the way (their outcome is not needed).
    pub(super) fn finish(
        &mut self,
        tag: &str,
        max_literal: usize,
        on_data: &mut dyn FnMut(Data) -> std::result::Result<(), ImapError>,
    ) -> std::result::Result<String, ImapError> {
        self.finish_into(tag, max_literal, None, on_data)
    }

    /// [`Link::finish`], a `BODY[]` going to `sink` when given.
    pub(super) fn finish_into(
        &mut self,
        tag: &str,
        max_literal: usize,
        mut sink: Option<&mut wire::BodySink<'_>>,
        on_data: &mut dyn FnMut(Data) -> std::result::Result<(), ImapError>,
    ) -> std::result::Result<String, ImapError> {
        let mut others = 0;
        let mut bodies = false;
        self.io.get_mut().restart();
        loop {
            self.pump()?;
            match wire::read_response_into(&mut self.io, max_literal, sink.as_deref_mut())? {
                Response::Data(Data::Fetch(f)) => {
                    bodies |= f.body.is_some() || f.streamed.is_some();
                    on_data(Data::Fetch(f))?
                }
                Response::Data(Data::Bye(text)) => {
                    return Err(ImapError::Lost(format!("the server hung up: {}", quote(&text))))
                }
                Response::Data(d @ (Data::Other | Data::State { .. })) => {
                    others += 1;
                    if others > MAX_OTHER_ANSWERS {
                        return Err(ImapError::Protocol(format!("more than {MAX_OTHER_ANSWERS} unasked-for answers")));
                    }
                    on_data(d)?;
                }
                Response::Data(d) => on_data(d)?,
                Response::Continue(_) => {
                    return Err(ImapError::Protocol("the server asked for more of a complete command".into()))
                }
                Response::Tagged { tag: t, status, text } => {
                    if self.in_flight.front() != Some(&t) {
                        return Err(ImapError::Protocol(format!("an answer tagged {} out of turn", quote(&t))));
                    }
                    self.in_flight.pop_front();
                    if self.fetches.front() == Some(&t) {
                        self.fetches.pop_front();
                    }
                    let pipelined = self.pipelined.remove(&t);
                    if status != Status::Ok && error::is_throttling(&text) {
                        // Whatever it ends, it is not the command's fault.
                        return Err(ImapError::Throttled(text));
                    }
                    if status == Status::Bad && pipelined && error::is_garbled_command(&text) {
                        return Err(ImapError::Garbled(text));
                    }
                    if t == tag {
                        return match status {
                            Status::Ok => {
                                self.progressed |= bodies;
                                Ok(text)
                            }
                            Status::No | Status::Bad => Err(ImapError::Refused(text)),
                        };
                    }
                }
            }
        }
    }
}
