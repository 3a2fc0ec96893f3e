//! A build's log: every line goes to the log file, optionally to stdout as it comes, and the
//! build is stopped when the log outgrows its limit.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The log grew past its configured limit.
#[derive(Debug, thiserror::Error)]
#[error("build log exceeded {limit} bytes")]
pub struct LogFull {
    pub limit: u64,
}

/// Where a build's output goes.
pub struct BuildLog {
    file: fs_err::File,
    path: PathBuf,
    written: u64,
    limit: u64,
    echo: bool,
}

impl BuildLog {
    /// Creates (truncates) the log file. With `echo`, output is also copied to stdout live.
    pub fn create(path: &Path, limit: u64, echo: bool) -> std::io::Result<Self> {
        Ok(Self {
            file: fs_err::File::create(path)?,
            path: path.to_owned(),
            written: 0,
            limit,
            echo,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends output of the build.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), LogFull> {
        let room = self.limit.saturating_sub(self.written);
        let take = (bytes.len() as u64).min(room) as usize;
        // A log that cannot be written is not a reason to fail the build; the result says so.
        let _ = self.file.write_all(&bytes[..take]);
        if self.echo {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes[..take]);
            let _ = out.flush();
        }
        self.written += take as u64;
        if take < bytes.len() {
            let _ = self
                .file
                .write_all(b"\n[perestroika] log limit reached; build stopped\n");
            return Err(LogFull { limit: self.limit });
        }
        Ok(())
    }

    /// A line of the farm's own, marked as such.
    pub fn note(&mut self, text: &str) {
        let _ = self.write(format!("[perestroika] {text}\n").as_bytes());
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.written
    }

    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let text = fs_err::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = BuildLog::create(&dir.path().join("b.log"), 10, false).unwrap();
        log.write(b"12345").unwrap();
        assert!(log.write(b"67890abc").is_err());
        assert_eq!(log.len(), 10);
        let text = fs_err::read_to_string(log.path()).unwrap();
        assert!(text.starts_with("1234567890\n[perestroika] log limit"));
    }
}
