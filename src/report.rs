//! What the modes share of their output: the settings (`--quiet`, `--verbose`) and a
//! backup's figures per folder for `--report`.

/// Output settings shared by every mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct Output {
    /// Only errors.
    pub quiet: bool,
    /// One line per message.
    pub verbose: bool,
}

/// One folder's figures once it is done (or stopped), for `--report`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FolderFigures {
    /// The folder's name, printable.
    pub name: String,
    /// Messages archived by this run.
    pub new: usize,
    /// Messages its archive holds now (this run's and earlier runs').
    pub archived: usize,
    /// Messages that could not be archived (the next run tries them again).
    pub failed: usize,
    /// Message bytes archived by this run.
    pub bytes: u64,
    /// How long it took.
    pub seconds: f64,
    /// What went wrong with it, one line each.
    pub errors: Vec<String>,
    /// Archived messages known to have left the server (kept only in the archive).
    pub only_in_archive: u64,
    /// Of those, the ones this run found gone.
    pub left_server: usize,
    /// What verified prune did to it, when it ran.
    pub pruned: Option<PruneFigures>,
}

/// What verified prune did to one folder, for `--report`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneFigures {
    /// Old messages removed from the server.
    pub removed: usize,
    /// Old messages kept there.
    pub kept: usize,
    /// The kept ones by reason (`flagged`, `not_archived`, `damaged`, ...).
    pub kept_by_reason: Vec<(String, usize)>,
    /// The kept ones whose reason is a problem (a damaged copy, a refusal), one line
    /// each: `UID 7: its archived file is damaged: ...`.
    pub problems: Vec<String>,
}

impl PruneFigures {
    /// The figures of what prune did to a folder.
    pub fn of(outcome: &crate::prune::Outcome) -> PruneFigures {
        PruneFigures {
            removed: outcome.removed.len(),
            kept: outcome.kept.len(),
            kept_by_reason: outcome.kept_by_reason().into_iter().map(|(k, n)| (k.to_string(), n)).collect(),
            problems: outcome.problems().map(|k| format!("UID {}: {}", k.uid, k.reason)).collect(),
        }
    }
}
