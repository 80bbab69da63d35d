//! Folders' last commits, finished on a thread of their own while the connection goes on
//! to the next folder. A first run of many small folders spent two thirds of its time
//! waiting for flushes at each folder's end (3,000 folders of three messages: about 3 of
//! each folder's 4.6 ms); handed over, those flushes overlap the next folder's round trips.
//!
//! One folder is finished at a time, and up to eight more may wait. With one waiting, the
//! connection stopped whenever two folders' flushes were slow, and a busy neighbour made
//! them slow: 1,000 folders of three messages took 1.24x their time beside a busy loop at
//! nice 19 and 1.17x beside a 2 GiB writer, against 0.95x and 1.06x with eight waiting,
//! and the same alone (4.11 s against 4.24 s, medians of five rounds; the writer took
//! 1.00 s and 1.07 s beside them, 1.05 s beside mbsync). A waiting folder's messages are
//! committed meanwhile by its own writer threads; what waits is the journal lines and marks
//! that must follow those commits.
//!
//! What the connection reports is handed over too, in order: the folders' lines come out
//! in the order the folders were done, as they did when each was finished in place.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::context::{Context, FolderReport, Place};
use super::folder::Tail;
use crate::mailbox_name::Mailbox;

/// Folders waiting for their last commit at most, besides the one being finished.
const IN_FLIGHT: usize = 8;
/// Messages waiting for a commit in the folders handed over, at most, unless only one
/// folder is (each holds a temporary file open: well within the 1,024 descriptors a
/// process is commonly allowed).
const MAX_IN_HAND: usize = 256;

/// What came of a folder, in the order the connection was done with it.
pub enum Finished<'m> {
    /// Its report.
    Report(FolderReport),
    /// Its last commit and what depends on it.
    Tail(Box<Tail<'m>>),
    /// It failed as a whole, for this reason.
    Failed(&'m Mailbox, String),
}

/// The queue to the finishing thread.
pub struct Finisher<'m> {
    state: Mutex<Queue<'m>>,
    changed: Condvar,
}

struct Queue<'m> {
    /// The folders handed over and not yet taken, each with its messages in hand.
    waiting: VecDeque<(Finished<'m>, usize)>,
    /// Messages of the waiting tails and the one being finished still to be committed.
    in_hand: usize,
    closed: bool,
    /// The finishing thread ended (a panic, in a build that unwinds): nobody waits.
    gone: bool,
}

impl<'m> Finisher<'m> {
    fn lock(&self) -> MutexGuard<'_, Queue<'m>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a folder over; waits while the folders waiting are as many as allowed (or
    /// hold as many messages).
    pub fn hand(&self, f: Finished<'m>) {
        let cost = match &f {
            Finished::Tail(t) => t.in_hand(),
            _ => 0,
        };
        let mut q = self.lock();
        while !q.gone && !q.waiting.is_empty() && (q.waiting.len() >= IN_FLIGHT || q.in_hand + cost > MAX_IN_HAND) {
            q = self.changed.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        q.in_hand += cost;
        q.waiting.push_back((f, cost));
        self.changed.notify_all();
    }

    /// The next folder to finish and its cost, or `None` once closed and empty.
    fn next(&self) -> Option<(Finished<'m>, usize)> {
        let mut q = self.lock();
        loop {
            if let Some(taken) = q.waiting.pop_front() {
                self.changed.notify_all();
                return Some(taken);
            }
            if q.closed {
                return None;
            }
            q = self.changed.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn done_with(&self, cost: usize) {
        let mut q = self.lock();
        q.in_hand = q.in_hand.saturating_sub(cost);
        self.changed.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

/// Says the finishing thread ended, however it ends.
struct Gone<'a, 'm>(&'a Finisher<'m>);

impl Drop for Gone<'_, '_> {
    fn drop(&mut self) {
        self.0.lock().gone = true;
        self.0.changed.notify_all();
    }
}

/// Closes the queue however `work` ends, so the finishing thread ends too.
struct Closing<'a, 'm>(&'a Finisher<'m>);

impl Drop for Closing<'_, '_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Runs `work` with a finishing thread beside it, and waits for that thread to finish what
/// `work` handed over: `report` receives each report, `failed` each failure, in order.
pub fn finishing<'m, R>(
    ctx: &Context<'_>,
    place: &Place<'_>,
    report: &(dyn Fn(FolderReport) + Sync),
    failed: &(dyn Fn(&'m Mailbox, String) + Sync),
    work: impl FnOnce(&Finisher<'m>) -> R,
) -> R {
    let finisher = Finisher {
        state: Mutex::new(Queue { waiting: VecDeque::new(), in_hand: 0, closed: false, gone: false }),
        changed: Condvar::new(),
    };
    std::thread::scope(|scope| {
        let finisher = &finisher;
        scope.spawn(move || {
            let _gone = Gone(finisher);
            while let Some((f, cost)) = finisher.next() {
                match f {
                    Finished::Report(r) => report(r),
                    Finished::Failed(mailbox, why) => failed(mailbox, why),
                    Finished::Tail(t) => {
                        let mailbox = t.mailbox();
                        match t.finish(ctx, place) {
                            Ok(r) => report(r),
                            Err(e) => failed(mailbox, e.to_string()),
                        }
                    }
                }
                finisher.done_with(cost);
            }
        });
        let _closing = Closing(finisher);
        work(finisher)
    })
}
