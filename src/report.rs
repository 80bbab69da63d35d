//! How a run tells what happens. Library code hands what it has to say to a [`Sink`], and
//! `app`, the one place that prints, decides how it looks and where it goes.

/// Output settings shared by every mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct Output {
    /// Only errors.
    pub quiet: bool,
    /// One line per message.
    pub verbose: bool,
}

/// Where a run's messages go. Called from several threads at once (one per connection).
pub trait Sink: Sync {
    /// A result line, such as a folder's summary (left out with `--quiet`).
    fn result(&self, text: &str);
    /// A detail, such as one line per message (only with `--verbose`).
    fn detail(&self, text: &str);
    /// A problem that did not stop the run (always shown).
    fn warning(&self, text: &str);
    /// A remark on how the run goes, such as a refused extra connection (only with
    /// `--verbose`).
    fn remark(&self, text: &str);
    /// Something failed (always shown).
    fn error(&self, text: &str);
}
