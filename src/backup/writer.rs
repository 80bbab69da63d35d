//! Writing fetched messages into the archive on a thread of its own, so compression and
//! encryption (one core) overlap with TLS and IMAP parsing (the other). The queue between
//! the two is bounded in bytes, so memory stays flat whatever the message size.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::archive::files::atomic::{Batch, TempFile};
use crate::archive::metadata::headers::FieldScanner;
use crate::archive::metadata::{Entry, Hasher};
use crate::codec::cipher::TagSlot;
use crate::codec::{self, Finish, Form, WriteOptions, BUF_SIZE};
use crate::error::{describe_io, Error, IoContext, Result};
use crate::keys::Keys;
use crate::os::dir::Dir;

/// Largest piece of message data in the queue.
const PIECE: usize = 256 * 1024;
/// What a thread's queue holds at most: 512 KiB of message data. The bound is in bytes, not
/// jobs: counted in jobs (three for a small message), a queue of four filled whenever the
/// thread waited a few milliseconds for a commit's sync, and the reader stopped draining
/// the socket (measured: the main thread spent 1.3 s of a 3.5 s plain backup waiting).
const QUEUE_BYTES: usize = 2 * PIECE;
/// What a job costs in the queue besides its data, so many tiny messages stay bounded too.
const JOB_COST: usize = 4096;

/// How messages are stored.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The folder directory.
    pub dir: Arc<Dir>,
    /// Where messages are written until they are complete (same file system as `dir`).
    pub tmp_dir: Arc<Dir>,
    /// Layers of the files.
    pub form: Form,
    /// zlib level.
    pub level: u8,
    /// Keys, when encrypting.
    pub keys: Option<Keys>,
}

/// What the server said of a message besides its bytes, fetched with them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    /// FLAGS.
    pub flags: Vec<String>,
    /// INTERNALDATE, when sent.
    pub internal_date: Option<String>,
}

impl Stamp {
    /// The stamp of a FETCH answer.
    pub fn of(f: &crate::imap::wire::Fetched) -> Stamp {
        Stamp { flags: f.flags.clone().unwrap_or_default(), internal_date: f.internal_date.clone() }
    }
}

enum Job {
    Begin(u32),
    Data(Vec<u8>),
    End(Stamp),
    Abort,
    Flush,
}

/// Messages committed together at most (a flush commits sooner).
const BATCH: usize = 500;

/// What became of a message handed to the writer.
#[derive(Debug)]
pub enum Outcome {
    /// Stored under its final name: its metadata (UID, size, digest, flags, date).
    Stored(Entry),
    /// Another run stored it first.
    Existing(u32),
}

/// The writer threads and their queues.
pub struct MessageWriter {
    workers: Vec<Worker>,
    /// The worker of the message begun last.
    current: usize,
    outcomes: Receiver<Result<Outcome>>,
    /// Messages ended and not yet reported by [`MessageWriter::ready`].
    in_hand: usize,
    /// Bytes of the message begun last.
    size: u64,
}

/// One writer thread and its queue.
struct Worker {
    jobs: Option<Sender<(Job, usize)>>,
    gate: Arc<Gate>,
    thread: Option<JoinHandle<()>>,
}

/// The bytes a thread's queue holds, and whether the thread has ended.
#[derive(Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    /// Waits until `cost` more bytes fit (an empty queue takes anything); false once the
    /// thread has ended.
    fn enter(&self, cost: usize) -> bool {
        let Ok(mut st) = self.state.lock() else { return false };
        while !st.1 && st.0 > 0 && st.0 + cost > QUEUE_BYTES {
            st = match self.changed.wait(st) {
                Ok(st) => st,
                Err(_) => return false,
            };
        }
        if st.1 {
            return false;
        }
        st.0 += cost;
        true
    }

    /// The thread took `cost` bytes' worth of jobs off the queue.
    fn leave(&self, cost: usize) {
        if let Ok(mut st) = self.state.lock() {
            st.0 = st.0.saturating_sub(cost);
        }
        self.changed.notify_all();
    }

    /// The thread ended: nobody waits for room any more.
    fn close(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.1 = true;
        }
        self.changed.notify_all();
    }
}

/// Closes the gate when the writer thread ends, however it ends.
struct Closing(Arc<Gate>);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Bytes to compress below which one writer thread does (about 5 ms at level 1): a second
/// one costs a start, a stack and a sync of its own batch, and many small folders would
/// have two threads each alive while their commits wait (10,000 folders of two messages
/// with -z: 15.8-16.3 MiB peak RSS with two each).
const TWO_THREADS_FROM: u64 = 1 << 20;

/// Writer threads: compression is the costliest layer (about 180 MB/s on one core at
/// level 1), so with it two messages are written at once where there are two cores and
/// enough to compress (`bytes`, when known).
fn worker_count(form: Form, bytes: Option<u64>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if form.compressed && cores > 1 && bytes.is_none_or(|b| b >= TWO_THREADS_FROM) {
        2
    } else {
        1
    }
}

impl MessageWriter {
    /// Starts the writer threads for about `bytes` of messages (`None`: not known).
    pub fn spawn(settings: Settings, bytes: Option<u64>) -> Result<MessageWriter> {
        let (out_tx, outcomes) = mpsc::channel();
        let mut workers = Vec::new();
        for n in 0..worker_count(settings.form, bytes) {
            let (jobs, job_rx) = mpsc::channel();
            let gate = Arc::new(Gate::default());
            let (settings, out_tx, closing) = (settings.clone(), out_tx.clone(), Closing(gate.clone()));
            let thread = std::thread::Builder::new()
                .name(format!("codec-{n}"))
                .spawn(move || work(&settings, job_rx, out_tx, &closing))
                .doing("starting a codec thread")?;
            workers.push(Worker { jobs: Some(jobs), gate, thread: Some(thread) });
        }
        Ok(MessageWriter { workers, current: 0, outcomes, in_hand: 0, size: 0 })
    }

    fn send_to(&mut self, worker: usize, job: Job) -> Result<()> {
        let cost = JOB_COST + if let Job::Data(d) = &job { d.len() } else { 0 };
        let w = &self.workers[worker];
        let sent = w.gate.enter(cost) && w.jobs.as_ref().is_some_and(|j| j.send((job, cost)).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped: its last outcome says why.
        match self.finish_threads() {
            Err(e) => Err(e),
            Ok(_) => Err(Error::runtime("a codec thread stopped")),
        }
    }

    /// Starts a message.
    pub fn begin(&mut self, uid: u32) -> Result<()> {
        // Messages take turns; each thread keeps its messages in order.
        self.current = (self.current + 1) % self.workers.len();
        self.size = 0;
        self.send_to(self.current, Job::Begin(uid))
    }

    /// Adds message bytes.
    pub fn data(&mut self, bytes: &[u8]) -> Result<()> {
        self.size += bytes.len() as u64;
        for piece in bytes.chunks(PIECE) {
            self.send_to(self.current, Job::Data(piece.to_vec()))?;
        }
        Ok(())
    }

    /// Adds message bytes the caller no longer needs: a piece that fits the queue is handed
    /// over as it is, not copied.
    pub fn data_owned(&mut self, bytes: Vec<u8>) -> Result<()> {
        if bytes.len() > PIECE {
            return self.data(&bytes);
        }
        self.size += bytes.len() as u64;
        self.send_to(self.current, Job::Data(bytes))
    }

    /// Ends the message: it is committed to its final name; `stamp` goes into its metadata.
    /// Returns the message's size.
    pub fn end(&mut self, stamp: Stamp) -> Result<u64> {
        self.send_to(self.current, Job::End(stamp))?;
        self.in_hand += 1;
        Ok(self.size)
    }

    /// Drops the message begun (it vanished from the server); nothing is kept.
    pub fn abort(&mut self) -> Result<()> {
        self.send_to(self.current, Job::Abort)
    }

    /// Commits the messages ended so far (one filesystem sync per thread for all of them).
    pub fn flush(&mut self) -> Result<()> {
        (0..self.workers.len()).try_for_each(|w| self.send_to(w, Job::Flush))
    }

    /// Outcomes available now, without waiting; an error if a message failed.
    pub fn ready(&mut self) -> Result<Vec<Outcome>> {
        let ready: Vec<Outcome> = self.outcomes.try_iter().collect::<Result<_>>()?;
        self.in_hand = self.in_hand.saturating_sub(ready.len());
        Ok(ready)
    }

    /// Messages ended whose outcome has not been taken yet (each holds a temporary file
    /// open until its commit).
    pub fn in_hand(&self) -> usize {
        self.in_hand
    }

    /// No more messages: the threads commit what they hold and end, while the caller goes
    /// on; [`MessageWriter::finish`] then waits for them.
    pub fn close(&mut self) {
        for w in &mut self.workers {
            w.jobs = None;
        }
    }

    /// Waits for every message handed over and stops the threads.
    pub fn finish(mut self) -> Result<Vec<Outcome>> {
        self.finish_threads()
    }

    fn finish_threads(&mut self) -> Result<Vec<Outcome>> {
        // Without their queues the threads end once the queued jobs are done.
        for w in &mut self.workers {
            w.jobs = None;
        }
        let mut panicked = false;
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                panicked |= t.join().is_err();
            }
        }
        if panicked {
            return Err(Error::runtime("a codec thread panicked"));
        }
        self.outcomes.try_iter().collect()
    }
}

impl Drop for MessageWriter {
    fn drop(&mut self) {
        // Without its queue a thread ends, dropping (and so removing) a half-written file.
        let _ = self.finish_threads();
    }
}

/// The thread: one message at a time through the chain into a temporary file; finished
/// files are committed in batches.
fn work(settings: &Settings, jobs: Receiver<(Job, usize)>, outcomes: mpsc::Sender<Result<Outcome>>, gate: &Closing) {
    let mut current: Option<Pending> = None;
    let mut done = Done { dir: settings.dir.clone(), batch: Batch::default(), messages: Vec::new() };
    for (job, cost) in jobs {
        // Taken off the queue: the reader may hand over more while this one is written.
        gate.0.leave(cost);
        let result = match job {
            Job::Begin(uid) => Pending::start(settings, uid).map(|p| current = Some(p)),
            Job::Data(bytes) => match current.as_mut() {
                Some(p) => p.write(&bytes),
                None => Ok(()),
            },
            Job::End(stamp) => match current.take() {
                Some(p) => p.finish(stamp, &mut done).and_then(|()| {
                    if done.batch.len() >= BATCH {
                        done.commit(&outcomes)
                    } else {
                        Ok(())
                    }
                }),
                None => Ok(()),
            },
            Job::Abort => {
                current = None;
                Ok(())
            }
            Job::Flush => done.commit(&outcomes),
        };
        if let Err(e) = result {
            // Stop at the first failure (a full disk): the sender learns it at once.
            let _ = outcomes.send(Err(e));
            return;
        }
    }
    // The queue closed (the folder is done, or the connection broke): whole messages
    // still count, a message cut short is dropped with its temporary file.
    drop(current);
    if let Err(e) = done.commit(&outcomes) {
        let _ = outcomes.send(Err(e));
    }
}

/// Finished messages waiting for their commit.
struct Done {
    dir: Arc<Dir>,
    batch: Batch,
    messages: Vec<Entry>,
}

impl Done {
    fn commit(&mut self, outcomes: &mpsc::Sender<Result<Outcome>>) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let stored = self.batch.commit(false).map_err(|e| {
            Error::runtime(format!("committing messages in {}: {}", self.dir.path().display(), describe_io(&e)))
        })?;
        for ((_, was_stored), entry) in stored.into_iter().zip(self.messages.drain(..)) {
            let _ = outcomes.send(Ok(if was_stored { Outcome::Stored(entry) } else { Outcome::Existing(entry.uid) }));
        }
        Ok(())
    }
}

/// A message being written: the codec chain over a temporary file.
struct Pending {
    tmp: TempFile,
    chain: Box<dyn Finish>,
    name: String,
    target: PathBuf,
    uid: u32,
    size: u64,
    digest: Digest,
    form: Form,
    /// The header fields the journal keeps, found in the bytes as they go by.
    headers: FieldScanner,
}

/// How a message's digest is had: SHA-256 of its bytes, or for an encrypted file the HMAC
/// tag the format computes anyway (SHA-256 of every message would cost a tenth of a `-z -e`
/// backup's CPU again; `--verify` compares the tag it checks).
enum Digest {
    Sha(Hasher),
    Tag(TagSlot),
}

impl Pending {
    fn start(s: &Settings, uid: u32) -> Result<Pending> {
        let name = crate::archive::file_name(uid, s.form);
        let target = s.dir.path().join(&name);
        let tmp = TempFile::create_at(&s.tmp_dir, &name, 0o600).map_err(|e| write_error(&target, e))?;
        let file = tmp.file().try_clone().at(tmp.path())?;
        let digest = if s.form.encrypted { Digest::Tag(TagSlot::default()) } else { Digest::Sha(Hasher::default()) };
        let chain = codec::writer_tagged(
            WriteOptions { form: s.form, level: s.level, keys: s.keys.as_ref() },
            Box::new(BufWriter::with_capacity(BUF_SIZE, file)),
            match &digest {
                Digest::Tag(slot) => Some(slot.clone()),
                Digest::Sha(_) => None,
            },
        )
        .map_err(|e| write_error(&target, e))?;
        Ok(Pending { tmp, chain, name, target, uid, size: 0, digest, form: s.form, headers: FieldScanner::kept() })
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.size += data.len() as u64;
        if let Digest::Sha(h) = &mut self.digest {
            h.update(data);
        }
        if self.headers.ended().is_none() {
            self.headers.feed(data);
        }
        self.chain.write_all(data).map_err(|e| write_error(&self.target, e))
    }

    /// Finishes the file; it waits in `done` for the batch commit that names it.
    fn finish(self, stamp: Stamp, done: &mut Done) -> Result<()> {
        let Pending { tmp, chain, name, target, uid, size, digest, form, headers } = self;
        chain.finish().map_err(|e| write_error(&target, e))?;
        let digest = match digest {
            Digest::Sha(h) => h.finish(),
            // Set by the finished chain's encryption layer.
            Digest::Tag(slot) => {
                *slot.get().ok_or_else(|| write_error(&target, std::io::Error::other("no HMAC tag")))?
            }
        };
        done.batch.push_at(tmp, done.dir.clone(), name);
        let Stamp { flags, internal_date } = stamp;
        let headers = Some(Box::new(headers.finish_kept()));
        done.messages.push(Entry { uid, size, digest, internal_date, flags, form: Some(form), headers, labels: None });
        Ok(())
    }
}

/// An error writing a message, named after the file it was to become.
fn write_error(target: &Path, e: std::io::Error) -> Error {
    Error::runtime(format!("writing {}: {}", target.display(), describe_io(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_thread_only_for_enough_to_compress() {
        let gz = Form { compressed: true, encrypted: true };
        let two_if_cores = if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 { 2 } else { 1 };
        assert_eq!(worker_count(gz, Some(TWO_THREADS_FROM - 1)), 1);
        assert_eq!(worker_count(gz, Some(0)), 1);
        assert_eq!(worker_count(gz, Some(TWO_THREADS_FROM)), two_if_cores);
        assert_eq!(worker_count(gz, None), two_if_cores);
        assert_eq!(worker_count(Form { compressed: false, encrypted: true }, Some(u64::MAX)), 1);
    }
}
