//! The bounded reader: regular files only, at most their kind's limit, never blocking on open.
//!
//! A path is checked twice: its metadata before opening (so that a device is never even opened)
//! and the opened descriptor's (so that a path swapped in between is still judged by what was
//! opened). The open uses `O_NONBLOCK`, which makes opening a FIFO return at once instead of
//! waiting for a writer, and has no effect on reading a regular file. Reading stops one byte past
//! the limit, so a file that grows after the size check is still refused without being read whole.

use std::fmt;
use std::fs::{File, FileType, OpenOptions};
use std::io::{BufRead, BufReader, Read, Take};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// A kind of file the tool reads, with the limits it is read under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKind {
    /// What the file is, with its article, as shown in messages ("an inventory").
    pub name: &'static str,
    /// The most bytes a file of this kind may hold.
    pub limit: u64,
    /// The most bytes one line may hold, for files read line by line.
    pub line_limit: u64,
}

impl FileKind {
    /// A campaign file: a real one is a few kilobytes.
    pub const CAMPAIGN: FileKind = FileKind::whole("a campaign file", MIB);
    /// An inventory (hosts and services), as `testbed up` writes it: a few kilobytes.
    pub const INVENTORY: FileKind = FileKind::whole("an inventory", MIB);
    /// An OpenStack `clouds.yaml`.
    pub const CLOUDS_YAML: FileKind = FileKind::whole("a clouds.yaml", MIB);
    /// A file holding one URL or one secret (`url_file`): a line.
    pub const SECRET: FileKind = FileKind::whole("a URL or secret file", 16 * KIB);
    /// A fingerprint store: grows with the commands and variants learned.
    pub const FINGERPRINT_STORE: FileKind = FileKind::whole("a fingerprint store", 256 * MIB);
    /// A trace file (events, transactions, a firehose capture, Zipkin or OTLP spans): a long run's
    /// capture is the largest input the tool reads; one line is one message or event.
    pub const TRACE: FileKind = FileKind {
        name: "a trace file",
        limit: 1024 * MIB,
        line_limit: 16 * MIB,
    };
    /// A run's `report.json`.
    pub const REPORT: FileKind = FileKind::whole("a report.json", 64 * MIB);
    /// An alarm file (JSON Lines of alarms from an external detector).
    pub const ALARMS: FileKind = FileKind {
        name: "an alarm file",
        limit: 64 * MIB,
        line_limit: MIB,
    };
    /// A run's `workload.jsonl` (one record per command issued).
    pub const WORKLOAD_RECORDS: FileKind = FileKind {
        name: "a workload record file",
        limit: 256 * MIB,
        line_limit: MIB,
    };
    /// A testbed state file (pids, addresses, generated secrets).
    pub const TESTBED_STATE: FileKind = FileKind::whole("a testbed state file", MIB);
    /// A run's `engine.json`: the detection engine's names and roles, a few kilobytes.
    pub const ENGINE_SETUP: FileKind = FileKind::whole("an engine setup file", MIB);

    /// A deployer's variables file (kolla `globals.yml`, OSA `user_variables.yml`): kolla ships
    /// a 32 KiB one, mostly comments.
    pub const DEPLOYER_VARS: FileKind = FileKind::whole("a deployer's variables file", 4 * MIB);
    /// A deployer's secrets file (kolla `passwords.yml`, OSA `user_secrets.yml`): a few hundred
    /// keys, some holding SSH keys.
    pub const DEPLOYER_SECRETS: FileKind = FileKind::whole("a deployer's secrets file", MIB);

    /// Every kind, for documentation and tests.
    pub const ALL: [FileKind; 13] = [
        FileKind::CAMPAIGN,
        FileKind::INVENTORY,
        FileKind::CLOUDS_YAML,
        FileKind::SECRET,
        FileKind::FINGERPRINT_STORE,
        FileKind::TRACE,
        FileKind::REPORT,
        FileKind::ALARMS,
        FileKind::WORKLOAD_RECORDS,
        FileKind::TESTBED_STATE,
        FileKind::ENGINE_SETUP,
        FileKind::DEPLOYER_VARS,
        FileKind::DEPLOYER_SECRETS,
    ];

    /// A kind read whole, whose one line may be as long as the file.
    pub const fn whole(name: &'static str, limit: u64) -> FileKind {
        FileKind {
            name,
            limit,
            line_limit: limit,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A size in words: `1 MiB`, `16 KiB`, `50.0 MiB`, `312 bytes`.
pub fn size_in_words(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1024 * MIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            return if bytes.is_multiple_of(unit) {
                format!("{} {name}", bytes / unit)
            } else {
                format!("{:.1} {name}", bytes as f64 / unit as f64)
            };
        }
    }
    if bytes == 1 {
        "1 byte".to_owned()
    } else {
        format!("{bytes} bytes")
    }
}

/// Why a file was not read. Displayed as a sentence that names the file, what it is and the
/// limit ([`Error::reason`] says the same of "the file", for messages already located at it).
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe(&self.path().display().to_string()))]
pub enum Error {
    /// The file could not be opened or read (it does not exist, permissions, I/O).
    Io {
        /// The file.
        path: PathBuf,
        /// What it was to be.
        kind: FileKind,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The path names a directory, a device, a FIFO or a socket.
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it was to be.
        kind: FileKind,
        /// What it is, with its article ("a directory", "a FIFO (named pipe)").
        found: &'static str,
    },
    /// The file holds more than its kind's limit.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What it was to be.
        kind: FileKind,
        /// Its size when its metadata told; `None` when it grew past the limit while being read.
        size: Option<u64>,
    },
    /// A line of a file read line by line is longer than its kind's line limit.
    LineTooLong {
        /// The file.
        path: PathBuf,
        /// What it was to be.
        kind: FileKind,
        /// The line (1-based).
        line: usize,
    },
    /// The file (or a line of it) is not UTF-8 text.
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// What it was to be.
        kind: FileKind,
        /// The line holding the first invalid byte (1-based).
        line: usize,
    },
}

impl Error {
    /// The sentence, with `subject` standing for the file.
    fn describe(&self, subject: &str) -> String {
        match self {
            Error::Io { source, .. } => format!("cannot read {subject}: {source}"),
            Error::NotRegular { kind, found, .. } => format!(
                "{subject} is {found}, not a regular file; {kind} must be a regular file of at most {}",
                size_in_words(kind.limit)
            ),
            Error::TooLarge { kind, size, .. } => format!(
                "{subject} is {}; {kind} is limited to {}",
                size.map_or_else(
                    || format!("larger than {}", size_in_words(kind.limit)),
                    size_in_words
                ),
                size_in_words(kind.limit)
            ),
            Error::LineTooLong { kind, line, .. } => format!(
                "line {line} of {subject} is longer than {}, the limit for a line of {kind}",
                size_in_words(kind.line_limit)
            ),
            Error::NotUtf8 { line, .. } => {
                format!("{subject} is not valid UTF-8 text (line {line})")
            }
        }
    }

    /// The sentence about "the file", for a message that already names it.
    pub fn reason(&self) -> String {
        self.describe("the file")
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Error::Io { path, .. }
            | Error::NotRegular { path, .. }
            | Error::TooLarge { path, .. }
            | Error::LineTooLong { path, .. }
            | Error::NotUtf8 { path, .. } => path,
        }
    }

    /// True when the file does not exist (callers that start empty without it check this).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// An I/O error on `path`, for callers that read through another channel (tests, archives).
    pub fn io(path: &Path, kind: FileKind, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            kind,
            source,
        }
    }
}

/// What a non-regular file type is, in words.
fn irregular(file_type: FileType) -> Option<&'static str> {
    if file_type.is_file() {
        None
    } else if file_type.is_dir() {
        Some("a directory")
    } else if file_type.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if file_type.is_char_device() {
        Some("a character device")
    } else if file_type.is_block_device() {
        Some("a block device")
    } else if file_type.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

fn check(path: &Path, kind: FileKind, metadata: &std::fs::Metadata) -> Result<(), Error> {
    if let Some(found) = irregular(metadata.file_type()) {
        return Err(Error::NotRegular {
            path: path.to_owned(),
            kind,
            found,
        });
    }
    if metadata.len() > kind.limit {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            kind,
            size: Some(metadata.len()),
        });
    }
    Ok(())
}

/// Opens `path` for reading after checking that it is a regular file within `kind`'s limit.
/// The returned reader yields at most the limit plus one byte.
fn open(path: &Path, kind: FileKind) -> Result<(Take<File>, u64), Error> {
    let io = |source| Error::io(path, kind, source);
    check(path, kind, &std::fs::metadata(path).map_err(io)?)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    check(path, kind, &metadata)?;
    Ok((file.take(kind.limit + 1), metadata.len()))
}

/// Reads a whole file of `kind` as bytes.
pub fn read(path: &Path, kind: FileKind) -> Result<Vec<u8>, Error> {
    let (mut reader, size) = open(path, kind)?;
    // The metadata's size is a hint for the buffer, never trusted beyond the limit.
    let mut bytes = Vec::with_capacity(size.min(kind.limit) as usize + 1);
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| Error::io(path, kind, source))?;
    if bytes.len() as u64 > kind.limit {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            kind,
            size: None,
        });
    }
    Ok(bytes)
}

/// Reads a whole file of `kind` as UTF-8 text.
pub fn read_to_string(path: &Path, kind: FileKind) -> Result<String, Error> {
    let bytes = read(path, kind)?;
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        Error::NotUtf8 {
            path: path.to_owned(),
            kind,
            line: valid.iter().filter(|b| **b == b'\n').count() + 1,
        }
    })
}

/// Reads a file of `kind` line by line, each line within the kind's line limit and all of them
/// within its limit. Yields `(line number, line)` without the line ending; stops at the first
/// error.
pub fn lines(path: &Path, kind: FileKind) -> Result<Lines, Error> {
    let (reader, _) = open(path, kind)?;
    Ok(Lines {
        reader: BufReader::new(reader),
        path: path.to_owned(),
        kind,
        number: 0,
        total: 0,
        done: false,
    })
}

/// The lines of a file, from [`lines`].
#[derive(Debug)]
pub struct Lines {
    reader: BufReader<Take<File>>,
    path: PathBuf,
    kind: FileKind,
    number: usize,
    total: u64,
    done: bool,
}

impl Lines {
    fn next_line(&mut self) -> Result<Option<String>, Error> {
        let mut bytes = Vec::new();
        let read = (&mut self.reader)
            .take(self.kind.line_limit + 1)
            .read_until(b'\n', &mut bytes)
            .map_err(|source| Error::io(&self.path, self.kind, source))?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        self.total += read as u64;
        if self.total > self.kind.limit {
            return Err(Error::TooLarge {
                path: self.path.clone(),
                kind: self.kind,
                size: None,
            });
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        } else if bytes.len() as u64 > self.kind.line_limit {
            return Err(Error::LineTooLong {
                path: self.path.clone(),
                kind: self.kind,
                line: self.number,
            });
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::NotUtf8 {
                path: self.path.clone(),
                kind: self.kind,
                line: self.number,
            })
    }
}

impl Iterator for Lines {
    type Item = Result<(usize, String), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_line() {
            Ok(Some(line)) => Some(Ok((self.number, line))),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const SMALL: FileKind = FileKind {
        name: "a test file",
        limit: 64,
        line_limit: 16,
    };

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn a_regular_file_within_its_limit_is_read_whole() {
        let file = file_with(&[b'x'; 64]);
        assert_eq!(read(file.path(), SMALL).unwrap().len(), 64);
    }

    #[test]
    fn a_file_over_its_limit_is_refused_naming_the_file_its_size_and_the_limit() {
        let file = file_with(&[b'x'; 65]);
        let error = read(file.path(), SMALL).unwrap_err();
        assert!(matches!(error, Error::TooLarge { size: Some(65), .. }));
        assert_eq!(
            error.to_string(),
            format!(
                "{} is 65 bytes; a test file is limited to 64 bytes",
                file.path().display()
            )
        );
    }

    #[test]
    fn a_device_is_refused_without_reading_it() {
        let error = read(Path::new("/dev/zero"), FileKind::INVENTORY).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/dev/zero is a character device, not a regular file; an inventory must be a regular file of at most 1 MiB"
        );
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_to_string(dir.path(), SMALL).unwrap_err();
        assert!(matches!(
            error,
            Error::NotRegular {
                found: "a directory",
                ..
            }
        ));
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Were the reader to open the FIFO for reading without O_NONBLOCK, this would block.
        let error = lines(&fifo, SMALL).unwrap_err();
        assert!(matches!(
            error,
            Error::NotRegular {
                found: "a FIFO (named pipe)",
                ..
            }
        ));
    }

    #[test]
    fn a_missing_file_is_an_io_error_that_says_not_found() {
        let error = read(Path::new("/nonexistent/butterfly"), SMALL).unwrap_err();
        assert!(error.is_not_found());
        assert_eq!(error.path(), Path::new("/nonexistent/butterfly"));
    }

    #[test]
    fn a_file_reporting_no_size_is_still_read_no_further_than_the_limit() {
        // procfs files report a size of 0 whatever they hold; the read itself is bounded.
        let tiny = FileKind::whole("a tiny file", 4);
        let error = read(Path::new("/proc/self/status"), tiny).unwrap_err();
        assert!(
            matches!(error, Error::TooLarge { size: None, .. }),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .ends_with("is larger than 4 bytes; a tiny file is limited to 4 bytes")
        );
    }

    #[test]
    fn non_utf8_text_names_the_line() {
        let file = file_with(b"a\nb\n\xff\n");
        let error = read_to_string(file.path(), SMALL).unwrap_err();
        assert!(matches!(error, Error::NotUtf8 { line: 3, .. }));
    }

    #[test]
    fn lines_come_numbered_without_their_endings() {
        let file = file_with(b"one\r\ntwo\n\nthree");
        let lines: Vec<(usize, String)> = lines(file.path(), SMALL)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            lines,
            [(1, "one"), (2, "two"), (3, ""), (4, "three")].map(|(n, l)| (n, l.to_owned()))
        );
    }

    #[test]
    fn a_line_at_its_limit_passes_and_one_past_it_is_refused() {
        let mut text = [b'x'; 16].to_vec();
        text.push(b'\n');
        text.extend([b'y'; 17]);
        let file = file_with(&text);
        let mut lines = lines(file.path(), SMALL).unwrap();
        assert_eq!(lines.next().unwrap().unwrap().1.len(), 16);
        let error = lines.next().unwrap().unwrap_err();
        assert!(matches!(error, Error::LineTooLong { line: 2, .. }));
        assert!(lines.next().is_none());
    }

    #[test]
    fn lines_stop_at_the_total_limit_even_when_the_size_said_less() {
        let kind = FileKind {
            name: "a test file",
            limit: 64,
            line_limit: 4096,
        };
        let results: Vec<_> = lines(Path::new("/proc/self/status"), kind)
            .unwrap()
            .collect();
        assert!(matches!(
            results.last().unwrap(),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn sizes_read_in_words() {
        assert_eq!(size_in_words(1024 * 1024), "1 MiB");
        assert_eq!(size_in_words(16 * 1024), "16 KiB");
        assert_eq!(size_in_words(52_429_318), "50.0 MiB");
        assert_eq!(size_in_words(1), "1 byte");
        assert_eq!(size_in_words(312), "312 bytes");
        assert_eq!(size_in_words(1024 * 1024 * 1024), "1 GiB");
    }
}
