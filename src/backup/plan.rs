//! Which messages to fetch in which command: small messages grouped into one `UID FETCH`
//! under a memory budget, big ones alone (their bodies streamed to the writer).

/// One fetch command's worth of messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Batch {
    /// Several whole messages in one `UID FETCH`, together under the budget.
    Whole(Vec<u32>),
    /// One message bigger than the budget (or to be fetched alone), fetched by itself, its
    /// body streamed to the writer as it comes.
    Alone(u32),
}

/// Most messages in one command, so command lines and answers stay modest.
pub const MAX_PER_BATCH: usize = 200;

/// Groups `(uid, size)` pairs (in UID order) into batches whose sizes add up to at most
/// `budget` bytes; a message larger than `budget`, or one that is to be fetched `alone`,
/// becomes a batch of its own.
pub fn batches(messages: &[(u32, u32)], budget: usize, alone: &dyn Fn(u32) -> bool) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut cur: Vec<u32> = Vec::new();
    let mut cur_size = 0usize;
    for &(uid, size) in messages {
        let size = size as usize;
        if size > budget || alone(uid) {
            // Keep UID order: what was gathered so far goes first.
            if !cur.is_empty() {
                out.push(Batch::Whole(std::mem::take(&mut cur)));
                cur_size = 0;
            }
            out.push(Batch::Alone(uid));
            continue;
        }
        if !cur.is_empty() && (cur_size + size > budget || cur.len() == MAX_PER_BATCH) {
            out.push(Batch::Whole(std::mem::take(&mut cur)));
            cur_size = 0;
        }
        cur.push(uid);
        cur_size += size;
    }
    if !cur.is_empty() {
        out.push(Batch::Whole(cur));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_and_big_messages() {
        let msgs = [(1, 100), (2, 200), (3, 5000), (4, 300), (5, 800), (6, 50)];
        assert_eq!(
            batches(&msgs, 1000, &|_| false),
            vec![Batch::Whole(vec![1, 2]), Batch::Alone(3), Batch::Whole(vec![4]), Batch::Whole(vec![5, 6])]
        );
        let many: Vec<(u32, u32)> = (1..=450).map(|u| (u, 1)).collect();
        let b = batches(&many, 1 << 20, &|_| false);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0], Batch::Whole((1..=200).collect()));
    }

    #[test]
    fn messages_to_fetch_alone_keep_their_order() {
        let msgs = [(1, 10), (2, 10), (3, 10), (4, 10)];
        assert_eq!(
            batches(&msgs, 1000, &|u| u == 2),
            vec![Batch::Whole(vec![1]), Batch::Alone(2), Batch::Whole(vec![3, 4])]
        );
    }

    #[test]
    fn every_message_planned_once_and_budget_kept() {
        let mut x = 7u64;
        let msgs: Vec<(u32, u32)> = (1..2000)
            .map(|u| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (u, (x >> 40) as u32 % 70_000)
            })
            .collect();
        let sizes: std::collections::HashMap<u32, u32> = msgs.iter().copied().collect();
        let mut seen = Vec::new();
        for b in batches(&msgs, 64 * 1024, &|_| false) {
            match b {
                Batch::Whole(uids) => {
                    assert!(uids.iter().map(|u| sizes[u] as usize).sum::<usize>() <= 64 * 1024);
                    seen.extend(uids);
                }
                Batch::Alone(u) => {
                    assert!(sizes[&u] as usize > 64 * 1024);
                    seen.push(u);
                }
            }
        }
        assert_eq!(seen, (1..2000).collect::<Vec<u32>>());
    }
}
