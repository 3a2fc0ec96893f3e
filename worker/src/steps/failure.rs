//! How a build ends when it does not succeed: the build failed, the package's fault (a
//! `Failure`: the step and the reason, from the log), or it could not be attempted, the
//! farm's ([`InfraError`]: the job is tried again later).

use std::path::{Path, PathBuf};

use perestroika_config::Family;

use crate::container::buildlog::BuildLog;
use crate::container::rootfs::RootError;
use crate::container::SandboxError;
use crate::image::ImageError;
use crate::source::SourceError;

/// The build could not be attempted: the farm, not the package, is at fault (retry later).
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("job {job_id} is an {wanted} build, but the newest image of {distro} ({image}) builds {found} packages")]
    WrongFamily {
        job_id: String,
        distro: String,
        image: String,
        wanted: Family,
        found: Family,
    },
    /// The sources could not be had now ([`SourceError::is_transient`]: their host unreachable
    /// or too slow, a full disk); they may well be fine.
    #[error("{0}; the job will be tried again")]
    Source(#[source] SourceError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl InfraError {
    /// Whether trying again later can succeed: not for a job whose family its distro's image
    /// does not build, which only a new image or a corrected job changes.
    pub fn is_transient(&self) -> bool {
        !matches!(self, InfraError::WrongFamily { .. })
    }
}

/// Turns an I/O error about `path` into an [`InfraError::Io`].
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InfraError + '_ {
    move |source| InfraError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A build failure, with the step that failed.
pub(crate) struct Failure {
    pub step: &'static str,
    pub reason: String,
}

/// The build failed at `step` for `reason`.
pub(crate) fn fail(step: &'static str, reason: impl Into<String>) -> Failure {
    Failure {
        step,
        reason: reason.into(),
    }
}

/// How a step inside the container ends when it does not succeed.
pub(crate) enum Step {
    /// The build failed: the package's fault.
    Failed(Failure),
    /// The build could not go on: the farm's fault.
    Infra(InfraError),
}

impl Step {
    /// The build failed at `step`; the reason comes from the log, else `fallback`.
    pub(crate) fn failed(step: &'static str, log: &BuildLog, fallback: &str) -> Self {
        Step::Failed(fail(step, reason_from(log, fallback)))
    }

    /// An I/O error about `path`: the farm's.
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |e| Step::Infra(io(path)(e))
    }
}

impl From<SandboxError> for Step {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::LogFull(full) => Step::Failed(fail("log-limit", full.to_string())),
            too_large @ SandboxError::TooLarge { .. } => {
                Step::Failed(fail("limit", too_large.to_string()))
            }
            other => Step::Infra(other.into()),
        }
    }
}

/// The last lines of the log that say what went wrong.
fn reason_from(log: &BuildLog, fallback: &str) -> String {
    let tail = log.tail(40);
    let wanted: Vec<&str> = tail
        .lines()
        .filter(|l| {
            l.starts_with("E: ")
                || l.contains("but it is not installable")
                || l.contains("but it is not going to be installed")
                || l.contains("Unmet build dependencies")
                || l.contains("syntax error")
                || l.contains("error:")
                || l.starts_with("dpkg-buildpackage: error")
                || l.starts_with("make: ***")
                || l.starts_with("dpkg-source: error")
                || l.starts_with("Error: ")
                || l.starts_with("No matching package to install")
                || l.contains("nothing provides")
                || l.contains("is needed by")
                || l.starts_with("[perestroika] Source0")
        })
        .collect();
    if wanted.is_empty() {
        fallback.to_owned()
    } else {
        wanted.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason [`reason_from`] finds in a log of `text`.
    fn reason(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let mut log = BuildLog::create(&dir.path().join("build.log"), 1 << 20, false).unwrap();
        log.write(text.as_bytes()).unwrap();
        reason_from(&log, "the step failed")
    }

    #[test]
    fn apt_errors_and_unmet_dependencies_are_the_reason() {
        let log = "Reading package lists...\n\
            Building dependency tree...\n\
            Some packages could not be installed.\n\
            The following packages have unmet dependencies:\n \
            builddeps:greet : Depends: libmissing-dev but it is not installable\n\
            E: Unable to correct problems, you have held broken packages.\n";
        assert_eq!(
            reason(log),
            " builddeps:greet : Depends: libmissing-dev but it is not installable\n\
             E: Unable to correct problems, you have held broken packages."
        );
    }

    #[test]
    fn compiler_and_dpkg_errors_are_the_reason() {
        let log = "gcc -c greet.c\n\
            greet.c:3:1: error: expected ';' before '}' token\n\
            make: *** [Makefile:2: greet.o] Error 1\n\
            dh_auto_build: error: make -j2 returned exit code 2\n\
            dpkg-buildpackage: error: debian/rules build subprocess returned exit status 2\n";
        assert_eq!(
            reason(log),
            "greet.c:3:1: error: expected ';' before '}' token\n\
             make: *** [Makefile:2: greet.o] Error 1\n\
             dh_auto_build: error: make -j2 returned exit code 2\n\
             dpkg-buildpackage: error: debian/rules build subprocess returned exit status 2"
        );
    }

    #[test]
    fn rpm_errors_are_the_reason() {
        let log = "Last metadata expiration check: 0:00:01 ago\n\
            No matching package to install: 'libmissing-devel'\n\
            Error: Unable to find a match: libmissing-devel\n\
            error: Failed build dependencies:\n\
            \tlibmissing-devel is needed by greet-1.0-1.noarch\n\
            [perestroika] Source0 greet-1.0.tar.gz is not in the packaging\n";
        assert_eq!(reason(log).lines().count(), 5, "{}", reason(log));
        assert!(
            reason(log).ends_with("[perestroika] Source0 greet-1.0.tar.gz is not in the packaging")
        );
    }

    #[test]
    fn only_the_end_of_the_log_counts() {
        let mut log = String::from("E: an old error, long before the end\n");
        for i in 0..40 {
            log.push_str(&format!("building part {i}\n"));
        }
        log.push_str("dpkg-source: error: cannot represent change to greet.bin\n");
        assert_eq!(
            reason(&log),
            "dpkg-source: error: cannot represent change to greet.bin"
        );
    }

    #[test]
    fn without_a_telling_line_the_fallback_is_the_reason() {
        assert_eq!(reason("compiling\nlinking\nKilled\n"), "the step failed");
        assert_eq!(reason(""), "the step failed");
    }
}
