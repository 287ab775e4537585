//! Where a run history is (`output.history`, `--history`): one reading for the campaign's
//! validation and the `history` crate, so that validate accepts exactly what run opens.

/// A history location, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryAt {
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
    /// A SQLite file: a path, or `sqlite:PATH` with the prefix removed.
    Sqlite(String),
}

/// Reads `text` as a history location; `None` when it is neither (another URL scheme, empty).
pub fn parse(text: &str) -> Option<HistoryAt> {
    let text = text.trim();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return Some(HistoryAt::Postgres(text.to_owned()));
    }
    let path = text.strip_prefix("sqlite:").unwrap_or(text);
    (!path.is_empty() && !text.contains("://")).then(|| HistoryAt::Sqlite(path.to_owned()))
}
