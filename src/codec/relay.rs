//! A thread boundary inside a writer chain: what is written to a [`Relay`] is passed, in
//! bounded pieces, to a thread that writes it to the next layer. Compressing on one core
//! while encrypting on the other makes `-z -e` nearly as fast as either alone. The thread
//! starts only once a message fills a piece: most messages compress to less, and for
//! them a thread would cost more (its start, stack and hand-overs) than it saves.

use std::io::{self, Write};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use super::Finish;

/// Size of a piece handed over.
const PIECE: usize = 64 * 1024;
/// Pieces in flight: bounds the memory between the two threads.
const IN_FLIGHT: usize = 4;

/// Writes to the next layer from a thread of its own, once there is a piece to hand over.
pub struct Relay {
    buf: Vec<u8>,
    /// The next layer, until the thread takes it.
    inner: Option<Box<dyn Finish>>,
    tx: Option<SyncSender<Vec<u8>>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Relay {
    /// Wraps `inner`; the thread that will own it starts with the first full piece.
    pub fn new(inner: Box<dyn Finish>) -> io::Result<Relay> {
        Ok(Relay { buf: Vec::with_capacity(PIECE), inner: Some(inner), tx: None, thread: None })
    }

    fn start(&mut self) -> io::Result<()> {
        let Some(mut inner) = self.inner.take() else { return Ok(()) };
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let thread = std::thread::Builder::new().name("codec-relay".into()).spawn(move || {
            for piece in rx {
                inner.write_all(&piece)?;
            }
            inner.finish()
        })?;
        self.tx = Some(tx);
        self.thread = Some(thread);
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        self.start()?;
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(piece).is_ok());
        if sent {
            Ok(())
        } else {
            // The thread stopped on an error: that error is the one to report.
            Err(self.join().err().unwrap_or_else(|| io::Error::other("the relay thread stopped")))
        }
    }

    fn join(&mut self) -> io::Result<()> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| io::Error::other("the relay thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Write for Relay {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Finish for Relay {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if let Some(mut inner) = self.inner.take() {
            // Less than a piece in all: no thread was started, this one writes it.
            inner.write_all(&self.buf)?;
            return inner.finish();
        }
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.join()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // An abandoned message: stop the thread; its half-written output is dropped with it.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
