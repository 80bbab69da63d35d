//! An upload's words (`-r PATH --to-imap`).

use crate::events::Sink;
use crate::upload::{Event, FolderUpload};

/// Renders an upload's events as lines, each folder's result after the account's label.
pub struct UploadPrinter<'a> {
    /// Where the lines go.
    pub printer: super::Printer,
    /// The account's label (`user@server`).
    pub label: &'a str,
}

impl Sink<Event<'_>> for UploadPrinter<'_> {
    fn event(&self, event: Event<'_>) {
        let (p, label) = (&self.printer, self.label);
        match event {
            Event::Reconnected { server, notice } => p.warning(&format!("{server}: {notice}")),
            Event::NoHierarchy { error } => p.warning(&format!("{error}; folder names are used as they are")),
            Event::NoMetadata { folder, error } => {
                p.warning(&format!("{folder}: {error}; flags and arrival times not restored"))
            }
            Event::LeftOut { path, why } => p.warning(&format!("left out {}: {why}", path.display())),
            Event::Refused { path, text } => p.warning(&format!("the server refused {}: {text}", path.display())),
            Event::Uploaded { path } => p.detail(&format!("uploaded {}", path.display())),
            Event::Resending { folder, count } => p.remark(&format!(
                "{folder}: {count} message(s) sent on a lost connection are not at the target: sending them again"
            )),
            Event::RemovedTwice { folder, uids } => {
                p.remark(&format!("{folder}: removed the copies this run made twice (UIDs {uids})"))
            }
            Event::LeftTwice { folder, uids, refused: Some(text) } => p.warning(&format!(
                "{folder}: messages this run uploaded twice are left at UIDs {uids}: the server refused to remove \
                 them: {text}"
            )),
            Event::LeftTwice { folder, uids, refused: None } => p.warning(&format!(
                "{folder}: messages this run uploaded twice (a stalled connection stored them late) are left at \
                 UIDs {uids}: the server cannot remove single messages (no UIDPLUS); remove them by hand"
            )),
            Event::GmailLabel { folder } => {
                p.remark(&format!("{folder}: a Gmail label: its messages go with All Mail's, labelled"))
            }
            Event::LabelsSet { folder, count } => p.remark(&format!("{folder}: labels set on {count} messages")),
            Event::LabelsNotSet { folder, error } => p.warning(&format!("{folder}: labels not set: {error}")),
            Event::Waiting { seconds } => p.remark(&format!(
                "waiting {seconds:.0} s for the server to store what lost connections sent, before looking for it"
            )),
            Event::FolderDone { folder, upload } => {
                p.result(&format!("{label} {folder}: {}", summary(upload)));
                if upload.in_doubt > 0 {
                    p.warning(&format!(
                        "{label} {folder}: {} message(s) sent on a lost connection may or may not be at the target: \
                         run the upload again to settle them",
                        upload.in_doubt
                    ));
                }
            }
            Event::FolderFailed { folder, error } => p.error(&format!("{label} {folder}: {error}")),
        }
    }
}

/// `N uploaded, M already there, K failed, B bytes, S s`, with the copies made twice
/// where there were any.
pub fn summary(r: &FolderUpload) -> String {
    let mut twice = String::new();
    if r.removed > 0 {
        twice.push_str(&format!(", {} uploaded twice and removed", r.removed));
    }
    if r.twice > 0 {
        twice.push_str(&format!(", {} uploaded twice and left", r.twice));
    }
    format!(
        "{} uploaded, {} already there, {} failed{twice}, {} bytes, {:.2} s",
        r.uploaded, r.present, r.failed, r.bytes, r.seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_say_what_was_made_twice() {
        let r = FolderUpload { uploaded: 3, present: 1, bytes: 10, ..FolderUpload::default() };
        assert_eq!(summary(&r), "3 uploaded, 1 already there, 0 failed, 10 bytes, 0.00 s");
        let r = FolderUpload { removed: 2, twice: 1, ..r };
        assert_eq!(
            summary(&r),
            "3 uploaded, 1 already there, 0 failed, 2 uploaded twice and removed, 1 uploaded twice and left, 10 bytes, 0.00 s"
        );
        assert!(r.failing());
    }
}
