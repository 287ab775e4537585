//! Diagnostics: one problem in one file at one place, printed as `file:line:col: message` followed
//! by the offending source line, so that both people and editors can jump to it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::raw::Pos;

/// How a user value is echoed in a message, the one way everywhere: [`quoted`] for a value in
/// quotes, cut to a short excerpt with its length and with URL passwords as `***`; [`excerpt`]
/// for the bare excerpt.
pub use userinput::echo::{excerpt, quoted};

/// The most characters of a source line a diagnostic shows, in a window around the column.
pub const SOURCE_WINDOW_CHARS: usize = 100;

/// One problem found in a campaign or inventory file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Where in the file (line 0 when the problem is about the file as a whole).
    pub at: Pos,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is an obvious way (e.g. `did you mean "process-kill"?`).
    pub hint: Option<String>,
    /// The source line, for display.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A diagnostic without hint.
    pub fn new(file: &Path, at: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_owned(),
            at,
            message: message.into(),
            hint: None,
            source_line: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// The one-line form: `file:line:col: message; hint`.
    pub fn headline(&self) -> String {
        let location = if self.at.line == 0 {
            self.file.display().to_string()
        } else {
            format!(
                "{}:{}:{}",
                self.file.display(),
                self.at.line,
                self.at.column
            )
        };
        match &self.hint {
            Some(hint) => format!("{location}: {}; {hint}", self.message),
            None => format!("{location}: {}", self.message),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.headline())?;
        if let Some(line) = &self.source_line {
            let number = self.at.line.to_string();
            let gutter = " ".repeat(number.len());
            let (line, column) =
                userinput::echo::line_window(line, self.at.column as usize, SOURCE_WINDOW_CHARS);
            let caret_pad: String = line
                .chars()
                .take(column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n {number} | {line}\n {gutter} | {caret_pad}^")?;
        }
        Ok(())
    }
}

/// Every problem found in one validation, in file then position order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Attaches source lines to the diagnostics of `file`.
    pub fn attach_source(&mut self, file: &Path, text: &str) {
        let lines: Vec<&str> = text.lines().collect();
        for diagnostic in &mut self.0 {
            if diagnostic.file == file && diagnostic.at.line > 0 {
                diagnostic.source_line = lines
                    .get(diagnostic.at.line as usize - 1)
                    .map(|line| line.to_string());
            }
        }
    }

    /// Sorts by file and position and drops exact duplicates, so output is stable.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.at, &a.message).cmp(&(&b.file, b.at, &b.message)));
        self.0.dedup();
    }

    /// True when there is no problem.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest known name to `input`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(input: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let input_lower = input.to_ascii_lowercase();
    known
        .into_iter()
        .map(|candidate| {
            let distance = strsim::osa_distance(&input_lower, &candidate.to_ascii_lowercase());
            // A word of the candidate that starts with the input (`kil` → `process-kill`) is a
            // likelier intent than an unrelated name at a small edit distance.
            let prefix_match = input_lower.len() >= 3
                && candidate
                    .split(['-', '_', ' ', '.'])
                    .chain(std::iter::once(candidate))
                    .any(|word| word.starts_with(&input_lower));
            (candidate, distance, prefix_match)
        })
        .filter(|(candidate, distance, prefix_match)| {
            *prefix_match || *distance <= (candidate.len().max(input.len()) / 3).max(1)
        })
        .min_by_key(|(_, distance, prefix_match)| (!prefix_match, *distance))
        .map(|(candidate, _, _)| candidate)
}

/// A hint naming the closest known value, or listing the known values.
pub fn suggestion(input: &str, known: &[&str]) -> String {
    match did_you_mean(input, known.iter().copied()) {
        Some(best) => format!("did you mean {best}?", best = quoted(best)),
        None => format!("known: {}", known.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_word() {
        let kinds = ["process-kill", "process-freeze", "service-stop"];
        assert_eq!(did_you_mean("kil", kinds), Some("process-kill"));
        assert_eq!(did_you_mean("proces-kill", kinds), Some("process-kill"));
        assert_eq!(did_you_mean("process", kinds), Some("process-kill"));
        assert_eq!(did_you_mean("zzz", kinds), None);
    }

    #[test]
    fn display_points_at_the_column() {
        let mut diagnostics = Diagnostics(vec![
            Diagnostic::new(Path::new("c.yaml"), Pos { line: 2, column: 9 }, "bad")
                .with_hint("did you mean \"x\"?"),
        ]);
        diagnostics.attach_source(Path::new("c.yaml"), "a: 1\nkind:   kil\n");
        assert_eq!(
            diagnostics.to_string(),
            "c.yaml:2:9: bad; did you mean \"x\"?\n 2 | kind:   kil\n   |         ^"
        );
    }
}
