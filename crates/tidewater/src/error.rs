//! Library errors. Each variant names the thing at fault; the binary maps them to exit
//! codes (2 for configuration, 1 at run time) in one place.

use std::path::PathBuf;

use crate::field::Field;

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option has a bad value or options contradict each other.
    #[error("invalid option {field}: {message}")]
    Config {
        /// The option at fault; each surface spells it its own way.
        field: Field,
        /// What is wrong and what to do.
        message: String,
    },
    /// The machine refused something the run needs: a thread, a runtime, an HTTP
    /// client. Not the user's configuration, so not a usage error.
    #[error("cannot start {what}: {message}")]
    Resource {
        /// What could not be had.
        what: String,
        /// The system's message.
        message: String,
    },
    /// An input cannot be opened or read.
    #[error("cannot read input {input}: {source}")]
    InputUnreadable {
        /// The input as given.
        input: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An input ended early (IN5): truncated gzip or `export terminated early`.
    #[error(
        "input {input} is incomplete ({reason}); windows holding its events were not committed"
    )]
    Incomplete {
        /// The input as given.
        input: String,
        /// Why it is incomplete.
        reason: String,
    },
    /// `where` raised a runtime error on an event and the policy is to fail (§2.4).
    #[error("--where failed on input {input}, line {line} ($insert_id {insert_id}): {message}; nothing was committed (use --on-where-error skip to drop such events)")]
    Where {
        /// The input as given.
        input: String,
        /// Physical line number.
        line: u64,
        /// The event's `$insert_id`, or `(none)`.
        insert_id: String,
        /// The runtime error.
        message: String,
    },
    /// The output folder cannot be used at all: it cannot be made, or its state cannot
    /// be read or written before the run starts.
    #[error(
        "cannot use output folder {path}: {source}; fix its permissions or choose another --out"
    )]
    OutputRoot {
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another run holds the output root (each run holds its root exclusively).
    #[error("output folder {root} is in use by another run ({holder}); wait for it to finish or choose another --out")]
    Locked {
        /// The output root.
        root: PathBuf,
        /// Who holds it, as that run wrote it: its process id, host and start time.
        holder: String,
    },
    /// Writing the output failed while the run was under way (a full disk, a
    /// permission that changed, a file in the way).
    #[error("cannot write output {path}: {source}")]
    Output {
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The mapping file in the output root cannot be used.
    #[error("mapping file {path} is unusable: {message}; move it away or choose another --out")]
    Mapping {
        /// The mapping file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Parquet or Arrow encoding failed (a bug or a resource problem, not bad data).
    #[error("encoding {what} failed: {message}")]
    Encode {
        /// The table and window being written.
        what: String,
        /// The encoder's message.
        message: String,
    },
    /// The export API refused a request (400, 401, 402, 403, 404), or a download could
    /// not go on.
    #[error("export window {window}: {message}")]
    Export {
        /// The window, `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD`.
        window: String,
        /// The server's answer or what went wrong.
        message: String,
        /// The HTTP status of a refused request (401 and 403: the credentials).
        status: Option<u16>,
    },
    /// An export stopped part-way (a refused request, a local write failure): the
    /// cause, and the summary of what was done until then.
    #[error("{source}")]
    ExportStopped {
        /// Why it stopped.
        source: Box<Error>,
        /// Windows committed, failed and not run, and the counts so far.
        summary: Box<crate::export::ExportSummary>,
    },
    /// Export windows that could not be had complete; nothing of them was committed,
    /// and a re-run of the same request exports them.
    #[error("{} not committed: {}; run the same command again to export {} (committed windows are kept)", plural(windows.len(), "window"), windows.join(", "), if windows.len() == 1 { "it" } else { "them" })]
    WindowsFailed {
        /// The windows that failed, `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD`.
        windows: Vec<String>,
    },
    /// The run was stopped by its caller (a sink asked to stop).
    #[error("run stopped by the caller: {0}")]
    Stopped(String),
    /// The run was cancelled through its [`crate::Cancel`] token: nothing further was
    /// committed.
    #[error("the run was cancelled; windows committed before stay committed, nothing else was")]
    Cancelled,
}

impl Error {
    /// True for errors that come from the user's configuration (exit code 2).
    pub fn is_usage(&self) -> bool {
        if let Error::ExportStopped { source, .. } = self {
            return source.is_usage();
        }
        matches!(
            self,
            Error::Config { .. }
                | Error::InputUnreadable { .. }
                | Error::OutputRoot { .. }
                | Error::Mapping { .. }
        )
    }

    /// The output root cannot be used at all (a usage error).
    pub fn output_root(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::OutputRoot {
            path: path.into(),
            source,
        }
    }

    /// An output path cannot be written while the run is under way.
    pub fn output(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Output {
            path: path.into(),
            source,
        }
    }

    /// A bad value of `field`.
    pub fn config(field: Field, message: impl Into<String>) -> Self {
        Error::Config {
            field,
            message: message.into(),
        }
    }

    /// Something the run needs could not be started.
    pub fn resource(what: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Resource {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_field_and_resource_errors_are_not_usage_errors() {
        let e = Error::config(Field::BlockBytes, "too big");
        assert!(e.is_usage());
        assert_eq!(e.to_string(), "invalid option block_bytes: too big");
        let e = Error::resource("the worker threads", "no memory");
        assert!(!e.is_usage(), "exit 1, not 2");
        assert_eq!(e.to_string(), "cannot start the worker threads: no memory");
    }
}
