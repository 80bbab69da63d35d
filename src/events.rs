//! How a mode tells what happens as it runs: it hands typed events (`upload::Event`,
//! `backup::Event`, ...) to a [`Sink`] its caller gives, and never words. The command
//! line's printers (`print`) turn them into text and progress, `run_report` into JSON,
//! as grep-searcher's `Sink` hands matches to its printers.

/// Where a mode's events of type `E` go.
pub trait Sink<E> {
    /// One event, as it happens.
    fn event(&self, event: E);

    /// Whether whoever reads the output went away (a closed pipe): the mode then stops
    /// early, quietly.
    fn gone(&self) -> bool {
        false
    }
}
