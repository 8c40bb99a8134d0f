//! Config errors: every problem found in one pass, each tied to the JSON pointer of the value
//! that caused it, phrased as a plain sentence that never repeats a secret.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// RFC 6901 JSON pointer to the offending value (`""` for the whole document).
    pub pointer: String,
    /// What is wrong and, where it helps, what to do about it.
    pub message: String,
}

impl Problem {
    /// A problem at `pointer`.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "(document)"
        } else {
            &self.pointer
        };
        write!(f, "{pointer}: {}", self.message)
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read the config file {}: {source}", path.display())]
    Read {
        /// The path that was tried.
        path: PathBuf,
        /// The underlying IO error.
        source: std::io::Error,
    },
    /// The file was read but is not a usable config; every problem is listed.
    #[error("{}", Invalid(problems))]
    Invalid {
        /// The problems, in document order as far as it can be known.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found, empty for a read error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems } => problems,
        }
    }
}

/// Displays problems one per line.
struct Invalid<'a>(&'a [Problem]);

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "the config has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, p) in self.0.iter().enumerate() {
            if i + 1 < n {
                writeln!(f, "{p}")?;
            } else {
                write!(f, "{p}")?;
            }
        }
        Ok(())
    }
}
