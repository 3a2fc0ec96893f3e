//! The farm's version rule, written and read back in one place: deterministic from git
//! history, strictly increasing with every merge and every manual rebuild.
//!
//! Given the top `debian/changelog` version `[E:]U[-R]`, the commit counts of the code and
//! packaging commits (`git rev-list --count`), and the job's rebuild number `r`:
//!
//! - non-native: `[E:]U+git<Ncode>-R+p<Npackaging>.<r>` (`R` is `0` when the changelog has
//!   none): the upstream part names the code commit, so every distinct upstream tarball gets a
//!   distinct file name;
//! - native: `[E:]U+p<Ncode+Npackaging>.<r>` (for one repository holding both, `N` once);
//! - a review build's `r` is its patch set, and a non-native one's upstream part is
//!   `U+git<Ncode>.<r>`: patch sets of a change share commit counts, not code.
//!
//! An rpm build keeps the spec's `Version:` and gets the `Release:` `git<Ncode>.p<Npackaging>.<r>`
//! (`p<N>.<r>` for one repository), followed by the spec's `%{?dist}` if it has one.
//!
//! [`BuildVersion::parse`] reads back exactly what [`BuildVersion`]'s `Display` writes
//! (`parse(format(x)) == x`); anything else is refused with a [`BuildVersionError`], so a
//! change of the rule cannot make a reader silently misread a published version.

use std::fmt;

use crate::versions::DebVersion;

/// Commit counts of the sources of one build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counts {
    /// Code and packaging in two repositories.
    Split { code: u64, packaging: u64 },
    /// One repository holding both.
    Combined(u64),
}

impl Counts {
    /// `(code, packaging, total)`: a combined repository counts once for each.
    fn parts(self) -> (u64, u64, u64) {
        match self {
            Counts::Split { code, packaging } => (code, packaging, code + packaging),
            Counts::Combined(n) => (n, n, n),
        }
    }
}

/// A version string is not one the farm's rule writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildVersionError {
    /// Not Debian version syntax at all.
    #[error("{0:?} is not a Debian version")]
    NotDebian(String),
    /// A Debian version, but not of the farm's shape.
    #[error("{version:?} is not a farm build version: {why}")]
    NotFarm { version: String, why: &'static str },
    /// Not an rpm release of the farm's shape.
    #[error("{0:?} is not a farm rpm release (git<N>.p<M>.<r> or p<N>.<r>)")]
    NotFarmRpm(String),
}

/// What the farm adds to a Debian version, beside the changelog's own parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A native package: `U+p<commits>.<r>`.
    Native { commits: u64 },
    /// A non-native package: `U+git<code>[.<r>]-R+p<packaging>.<r>`; `review` when the
    /// upstream part carries the rebuild (patch set) too.
    NonNative {
        code: u64,
        revision: String,
        packaging: u64,
        review: bool,
    },
}

/// One build's Debian version by the farm's rule (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildVersion {
    /// The changelog's epoch.
    pub epoch: Option<String>,
    /// The changelog's upstream version `U`.
    pub upstream: String,
    /// Native or not, with the commit counts.
    pub shape: Shape,
    /// The rebuild number (a review build's patch set).
    pub rebuild: u32,
}

impl BuildVersion {
    /// The version the farm gives a build of the changelog version `base`.
    pub fn new(
        base: &DebVersion,
        native: bool,
        counts: Counts,
        rebuild: u32,
        review: bool,
    ) -> Self {
        let (code, packaging, total) = counts.parts();
        let shape = if native {
            Shape::Native { commits: total }
        } else {
            Shape::NonNative {
                code,
                revision: base.revision.clone().unwrap_or_else(|| "0".into()),
                packaging,
                review,
            }
        };
        Self {
            epoch: base.epoch.clone(),
            upstream: base.upstream.clone(),
            shape,
            rebuild,
        }
    }

    /// Reads back a version the farm wrote; refuses anything else. A `-` always starts the
    /// revision (as for dpkg), so a version with one is read as non-native.
    pub fn parse(text: &str) -> Result<Self, BuildVersionError> {
        let not_farm = |why| BuildVersionError::NotFarm {
            version: text.to_owned(),
            why,
        };
        if text.trim() != text {
            return Err(BuildVersionError::NotDebian(text.to_owned()));
        }
        let deb =
            DebVersion::parse(text).ok_or_else(|| BuildVersionError::NotDebian(text.to_owned()))?;
        let parsed = match &deb.revision {
            None => {
                let (upstream, counter) = deb
                    .upstream
                    .rsplit_once("+p")
                    .ok_or_else(|| not_farm("a native version ends in +p<N>.<r>"))?;
                let (commits, rebuild) = counter_pair(counter)
                    .ok_or_else(|| not_farm("+p<N>.<r> must be two numbers"))?;
                Self {
                    epoch: deb.epoch.clone(),
                    upstream: upstream.to_owned(),
                    shape: Shape::Native {
                        commits: number(commits).ok_or_else(|| not_farm("bad commit count"))?,
                    },
                    rebuild: number(rebuild).ok_or_else(|| not_farm("bad rebuild number"))?,
                }
            }
            Some(revision) => {
                let (base_revision, counter) = revision
                    .rsplit_once("+p")
                    .ok_or_else(|| not_farm("the revision ends in +p<N>.<r>"))?;
                let (packaging, rebuild) = counter_pair(counter)
                    .ok_or_else(|| not_farm("+p<N>.<r> must be two numbers"))?;
                let (upstream, code_part) = deb
                    .upstream
                    .rsplit_once("+git")
                    .ok_or_else(|| not_farm("the upstream part ends in +git<N>"))?;
                let (code, review) = match counter_pair(code_part) {
                    Some((code, again)) if again == rebuild => (code, true),
                    Some(_) => return Err(not_farm("a review build's two rebuild numbers differ")),
                    None => (code_part, false),
                };
                Self {
                    epoch: deb.epoch.clone(),
                    upstream: upstream.to_owned(),
                    shape: Shape::NonNative {
                        code: number(code).ok_or_else(|| not_farm("bad code commit count"))?,
                        revision: base_revision.to_owned(),
                        packaging: number(packaging)
                            .ok_or_else(|| not_farm("bad packaging commit count"))?,
                        review,
                    },
                    rebuild: number(rebuild).ok_or_else(|| not_farm("bad rebuild number"))?,
                }
            }
        };
        if parsed.upstream.is_empty()
            || matches!(&parsed.shape, Shape::NonNative { revision, .. } if revision.is_empty())
        {
            return Err(not_farm("the changelog's part is empty"));
        }
        // What is not written back the same way (leading zeros, say) was not written by us.
        if parsed.to_string() != text {
            return Err(not_farm("not in the form the farm writes"));
        }
        Ok(parsed)
    }

    /// The version as a [`DebVersion`].
    pub fn to_deb(&self) -> DebVersion {
        let r = self.rebuild;
        match &self.shape {
            Shape::Native { commits } => DebVersion {
                epoch: self.epoch.clone(),
                upstream: format!("{}+p{commits}.{r}", self.upstream),
                revision: None,
            },
            Shape::NonNative {
                code,
                revision,
                packaging,
                review,
            } => DebVersion {
                epoch: self.epoch.clone(),
                upstream: if *review {
                    format!("{}+git{code}.{r}", self.upstream)
                } else {
                    format!("{}+git{code}", self.upstream)
                },
                revision: Some(format!("{revision}+p{packaging}.{r}")),
            },
        }
    }
}

impl fmt::Display for BuildVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_deb().fmt(f)
    }
}

impl std::str::FromStr for BuildVersion {
    type Err = BuildVersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `<a>.<b>` with both sides non-empty.
fn counter_pair(text: &str) -> Option<(&str, &str)> {
    let (a, b) = text.split_once('.')?;
    (!a.is_empty() && !b.is_empty()).then_some((a, b))
}

/// A decimal number as the farm writes it: digits only, no leading zero.
fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// One rpm build's `Release:` by the farm's rule, without the spec's `%{?dist}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpmRelease {
    /// The commit counts.
    pub counts: Counts,
    /// The rebuild number.
    pub rebuild: u32,
}

impl RpmRelease {
    /// Reads back a release the farm wrote, followed by the spec's `%{?dist}` (`.el9`) if any;
    /// returns the dist suffix without its dot.
    pub fn parse(text: &str) -> Result<(Self, Option<&str>), BuildVersionError> {
        let bad = || BuildVersionError::NotFarmRpm(text.to_owned());
        let fields = if text.starts_with("git") { 3 } else { 2 };
        let mut parts = text.splitn(fields + 1, '.');
        let farm: Vec<&str> = parts.by_ref().take(fields).collect();
        let dist = parts.next();
        let (counts, rebuild) = match farm.as_slice() {
            [code, packaging, rebuild] => {
                let code = code.strip_prefix("git").ok_or_else(bad)?;
                let packaging = packaging.strip_prefix('p').ok_or_else(bad)?;
                let counts = Counts::Split {
                    code: number(code).ok_or_else(bad)?,
                    packaging: number(packaging).ok_or_else(bad)?,
                };
                (counts, *rebuild)
            }
            [n, rebuild] => {
                let n = n.strip_prefix('p').ok_or_else(bad)?;
                (Counts::Combined(number(n).ok_or_else(bad)?), *rebuild)
            }
            _ => return Err(bad()),
        };
        if dist.is_some_and(|d| d.is_empty() || d.contains('-')) {
            return Err(bad());
        }
        let release = Self {
            counts,
            rebuild: number(rebuild).ok_or_else(bad)?,
        };
        Ok((release, dist))
    }
}

impl fmt::Display for RpmRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.rebuild;
        match self.counts {
            Counts::Split { code, packaging } => write!(f, "git{code}.p{packaging}.{r}"),
            Counts::Combined(n) => write!(f, "p{n}.{r}"),
        }
    }
}

#[cfg(test)]
mod tests;
