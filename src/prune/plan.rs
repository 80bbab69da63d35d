//! Which messages of a folder qualify for removal: those whose INTERNALDATE is older than
//! the limit, less the flagged ones when they are to be kept. Fed one message at a time as
//! the server lists them, so only the old ones are held.

/// Whether `flags` hold `\Flagged`.
pub fn flagged(flags: &[String]) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case("\\Flagged"))
}

/// One old message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Old {
    /// Its UID.
    pub uid: u32,
    /// Its INTERNALDATE, Unix time.
    pub arrived: i64,
    /// Whether it is flagged.
    pub flagged: bool,
}

/// The old messages of a folder, as the listing goes.
#[derive(Debug, Default)]
pub struct Plan {
    /// Arrived before this (Unix time): old.
    cutoff: i64,
    /// The old messages, ascending by UID once [`Plan::finish`]ed.
    pub old: Vec<Old>,
    /// Messages whose INTERNALDATE was missing or unreadable: never removed.
    pub undated: usize,
    /// Messages listed.
    pub listed: usize,
}

impl Plan {
    /// A plan for messages that arrived more than `days` days before `now` (Unix time).
    pub fn new(now: i64, days: u32) -> Plan {
        Plan { cutoff: now - i64::from(days) * 86_400, ..Plan::default() }
    }

    /// Takes one message of the listing: its UID, INTERNALDATE as sent and flags.
    pub fn note(&mut self, uid: u32, internal_date: Option<&str>, flags: &[String]) {
        self.listed += 1;
        match internal_date.and_then(crate::archive::metadata::parse_internal_date) {
            Some((arrived, _)) if arrived < self.cutoff => self.old.push(Old { uid, arrived, flagged: flagged(flags) }),
            Some(_) => {}
            None => self.undated += 1,
        }
    }

    /// Sorts the old messages by UID, each once (a server may answer one twice).
    pub fn finish(mut self) -> Plan {
        self.old.sort_unstable_by_key(|o| o.uid);
        self.old.dedup_by_key(|o| o.uid);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_messages_older_than_the_limit_qualify() {
        // 2026-12-01 00:00:00 UTC.
        let now = 1_796_083_200;
        let mut plan = Plan::new(now, 30);
        let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        plan.note(3, Some("01-Nov-2026 00:00:01 +0000"), &flags(&[]));
        plan.note(1, Some("31-Oct-2026 23:59:59 +0000"), &flags(&["\\Seen"]));
        plan.note(2, Some("01-Jan-2019 10:00:00 +0200"), &flags(&["\\flagged"]));
        plan.note(4, None, &[]);
        plan.note(5, Some("not a date"), &[]);
        plan.note(1, Some("31-Oct-2026 23:59:59 +0000"), &flags(&["\\Seen"]));
        let plan = plan.finish();
        let old: Vec<(u32, bool)> = plan.old.iter().map(|o| (o.uid, o.flagged)).collect();
        assert_eq!(old, [(1, false), (2, true)]);
        assert_eq!((plan.undated, plan.listed), (2, 6));
    }
}
