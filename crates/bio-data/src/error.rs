//! [`DataError`]: everything that can go wrong reading or writing datasets and model files.

use std::path::PathBuf;

use thiserror::Error;

/// An error of `bio-data`. Every variant names the file, directory or dataset it concerns, and its
/// message is a single line.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// An operating-system error while touching `path`.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being attempted, e.g. `"read"` or `"create directory"`.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An IDX file (or gzip stream around it) that is not well formed.
    #[error("{}: malformed IDX file: {what}", path.display())]
    Malformed {
        /// The file (or in-memory name) concerned.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A named dataset was not found anywhere on the search path.
    #[error(
        "dataset `{dataset}` not found; looked in: {}; {hint}",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// The dataset asked for.
        dataset: String,
        /// Every directory that was checked, in search order.
        searched: Vec<PathBuf>,
        /// How to obtain the files.
        hint: String,
    },
    /// The dataset spec is neither a known name nor an existing directory.
    #[error(
        "unknown dataset `{spec}`: expected one of fashion-mnist, mnist, kmnist, embedded, omniglot-small1[-SIDE], or a directory holding the four IDX files"
    )]
    UnknownDataset {
        /// The spec as given.
        spec: String,
    },
    /// A dataset whose files are individually valid but do not fit together (sizes, labels, classes).
    #[error("dataset `{dataset}` is inconsistent: {what}")]
    Inconsistent {
        /// The dataset (name or directory) concerned.
        dataset: String,
        /// What does not fit.
        what: String,
    },
    /// An invalid in-memory argument (e.g. IDX dimensions that do not match the pixel buffer).
    #[error("invalid argument: {what}")]
    Invalid {
        /// What is wrong.
        what: String,
    },
    /// A class has fewer examples than a per-class subset asks for.
    #[error("class {class} has only {available} examples, {requested} requested per class")]
    NotEnoughExamples {
        /// The class label.
        class: usize,
        /// How many examples of it exist.
        available: usize,
        /// How many were requested.
        requested: usize,
    },
    /// A zip archive or an image in it (Omniglot) that is corrupt, foreign or fails its checksum.
    #[error("{name}: {what}")]
    Archive {
        /// The archive (or archive/entry) concerned.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// A JSON file that cannot be parsed into the expected type, or a value that cannot be written as JSON.
    #[error("{}: invalid JSON: {what}", path.display())]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// The parser's complaint.
        what: String,
    },
    /// The file does not start with the biorule checkpoint magic bytes.
    #[error("{}: not a biorule checkpoint (wrong magic bytes)", path.display())]
    NotACheckpoint {
        /// The file concerned.
        path: PathBuf,
    },
    /// The checkpoint was written in a format version this build cannot read.
    #[error(
        "{}: checkpoint format version {found} is not supported (this build reads version {supported}); \
         it was written by another biorule release: use that release, or train again",
        path.display()
    )]
    CheckpointVersion {
        /// The file concerned.
        path: PathBuf,
        /// The version stored in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The checkpoint ends before its header or declared payload does.
    #[error("{}: truncated checkpoint: {what}", path.display())]
    CheckpointTruncated {
        /// The file concerned.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// The checkpoint's payload does not match its checksum, or it has bytes after the payload.
    #[error("{}: corrupt checkpoint: {what}", path.display())]
    CheckpointCorrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The checkpoint frame is intact but its payload does not decode as the expected type.
    #[error("{}: checkpoint payload cannot be decoded: {what}", path.display())]
    CheckpointDecode {
        /// The file concerned.
        path: PathBuf,
        /// The decoder's complaint.
        what: String,
    },
}

impl DataError {
    /// Shorthand for [`DataError::Io`].
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }

    /// Shorthand for [`DataError::Malformed`].
    pub(crate) fn malformed(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Self::Malformed { path: path.into(), what: what.into() }
    }
}
