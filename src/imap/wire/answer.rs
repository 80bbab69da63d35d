//! The answers as the client sees them once read: how a command ended, the untagged data
//! it uses, and the bounds on what one answer may carry.

/// Most UIDs one SEARCH answer may carry: far above any real folder, far below what would
/// hurt a router's memory (4 bytes each).
pub const MAX_UIDS: usize = 4_000_000;

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Ok,
    /// Refused.
    No,
    /// Not understood.
    Bad,
}

/// One answer from the server.
#[derive(Debug)]
pub enum Response {
    /// The end of the command tagged `tag`.
    Tagged {
        /// The command's tag.
        tag: String,
        /// How it ended.
        status: Status,
        /// The human-readable text, with any response code.
        text: String,
    },
    /// `+ ...`: the server waits for more of the command.
    Continue(String),
    /// `* ...`: data.
    Data(Data),
}

/// The untagged answers the tool uses; anything else is [`Data::Other`].
#[derive(Debug, PartialEq, Eq)]
pub enum Data {
    /// `* OK/NO/BAD [CODE ARGS] text`.
    State {
        /// OK, NO or BAD.
        status: Status,
        /// The response code's name (`UIDVALIDITY`), upper case, if any.
        code: Option<String>,
        /// The code's arguments.
        args: String,
    },
    /// `* BYE text`: the server is closing the connection.
    Bye(String),
    /// `* CAPABILITY ...`, upper case.
    Capability(Vec<String>),
    /// `* LIST (attributes) delimiter name`.
    List(ListEntry),
    /// A LIST entry whose name is not text (so it cannot be sent back), as the server sent
    /// it, made printable.
    UnusableName(String),
    /// `* STATUS name (ITEM n ...)`.
    MailboxStatus {
        /// The mailbox's wire name.
        wire: String,
        /// Items and their numbers, names upper case.
        items: Vec<(String, u64)>,
    },
    /// `* N EXISTS`.
    Exists(u32),
    /// `* SEARCH n n n`.
    Search(Vec<u32>),
    /// `* N FETCH (...)`.
    Fetch(Fetched),
    /// `* NAMESPACE (("" "/")) NIL NIL`: the first personal namespace, if any.
    Namespace(Option<crate::hierarchy::Hierarchy>),
    /// Anything else.
    Other,
}

/// One entry of a LIST answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// Attributes as sent (`\Noselect`), compared case-insensitively.
    pub attributes: Vec<String>,
    /// The hierarchy delimiter, if any.
    pub delimiter: Option<char>,
    /// The mailbox's wire name.
    pub wire: String,
}

impl ListEntry {
    /// Whether the mailbox can hold messages.
    pub fn selectable(&self) -> bool {
        !self.attributes.iter().any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"))
    }
}

/// One message's FETCH answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Its UID, when the answer carried it.
    pub uid: Option<u32>,
    /// `RFC822.SIZE`.
    pub size: Option<u32>,
    /// The body section's data (`BODY[]`, `BODY[]<offset>`, `BODY[HEADER]` or
    /// `BODY[HEADER]<offset>` or `BODY[HEADER.FIELDS (...)]`); `None` when absent.
    pub body: Option<Vec<u8>>,
    /// The size of a `BODY[]` that went to a `BodySink` instead of `body`.
    pub streamed: Option<u64>,
    /// `FLAGS`, as sent; at most [`MAX_FLAGS`] of at most [`MAX_FLAG_LEN`] bytes each
    /// (more fails the answer), names that are not IMAP atoms left out.
    pub flags: Option<Vec<String>>,
    /// `INTERNALDATE` (`"17-Jul-1996 02:44:25 -0700"`), when it had that form.
    pub internal_date: Option<String>,
    /// Gmail's `X-GM-MSGID`: the message's one id across all its folders.
    pub gm_msgid: Option<u64>,
    /// Gmail's `X-GM-THRID`: its conversation.
    pub gm_thrid: Option<u64>,
    /// Gmail's `X-GM-LABELS`, as sent (modified UTF-7 names, system labels with `\`); at
    /// most [`MAX_LABELS`] of at most [`MAX_LABEL_LEN`] bytes each (more fails the answer).
    pub gm_labels: Option<Vec<String>>,
}

/// Most Gmail labels one message may carry in an answer.
pub const MAX_LABELS: usize = 1000;
/// Longest Gmail label name accepted.
pub const MAX_LABEL_LEN: usize = 1024;

/// Most flags one message may carry in an answer: far above any real mailbox's keywords.
pub const MAX_FLAGS: usize = 64;
/// Longest flag name accepted.
pub const MAX_FLAG_LEN: usize = 128;
