//! Imperative actions from `kubectl switchyard`, carried by annotations (never spec, so GitOps
//! sees no drift). Each is carried out once, and says what it did or why it was ignored, so
//! the plugin never prints "done" for a command that changed nothing.

/// An imperative action and the id that makes it run once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub id: String,
    pub kind: CommandKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// Skip to the next step now.
    Promote,
    /// Skip to the desired split now.
    PromoteFull,
    Abort,
    Pause,
    Resume,
    /// Try a rolled-back split again.
    Retry,
}

impl CommandKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "promote" => CommandKind::Promote,
            "promote-full" => CommandKind::PromoteFull,
            "abort" => CommandKind::Abort,
            "pause" => CommandKind::Pause,
            "resume" => CommandKind::Resume,
            "retry" => CommandKind::Retry,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Promote => "promote",
            CommandKind::PromoteFull => "promote-full",
            CommandKind::Abort => "abort",
            CommandKind::Pause => "pause",
            CommandKind::Resume => "resume",
            CommandKind::Retry => "retry",
        }
    }
}

/// What a command did. `Ignored` carries why, for `status.lastCommandResult`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandResult {
    Done(String),
    Ignored(String),
}

impl CommandResult {
    /// The line `status.lastCommandResult` holds, e.g. `promote ignored: no migration is in
    /// progress`.
    pub fn message(&self, kind: CommandKind) -> String {
        match self {
            CommandResult::Done(what) => format!("{}: {what}", kind.as_str()),
            CommandResult::Ignored(why) => format!("{} ignored: {why}", kind.as_str()),
        }
    }
}

/// Prefix of `status.lastCommandResult` for a command that changed nothing; the plugin exits
/// non-zero on it.
pub const IGNORED: &str = " ignored: ";
