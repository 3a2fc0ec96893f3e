//! Version order as dpkg and rpm define it, and Debian version syntax: one place for every
//! part of the farm that sorts or checks versions (the worker's version rule, retrigger,
//! rebuild, promotion's dependency check).

use std::fmt;

/// A Debian version split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebVersion {
    pub epoch: Option<String>,
    pub upstream: String,
    pub revision: Option<String>,
}

impl DebVersion {
    /// Splits `[epoch:]upstream[-revision]`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (epoch, rest) = match text.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                (Some(e.to_owned()), rest)
            }
            Some(_) => return None,
            None => (None, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, Some(r.to_owned())),
            None => (rest, None),
        };
        let ok = |s: &str, extra: &[u8]| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b) || extra.contains(&b))
        };
        if !ok(upstream, b"-") || !upstream.as_bytes()[0].is_ascii_digit() {
            return None;
        }
        if revision.as_deref().is_some_and(|r| !ok(r, b"")) {
            return None;
        }
        Some(Self {
            epoch,
            upstream: upstream.to_owned(),
            revision,
        })
    }

    /// The version without its epoch, as it appears in file names.
    pub fn without_epoch(&self) -> String {
        match &self.revision {
            Some(r) => format!("{}-{}", self.upstream, r),
            None => self.upstream.clone(),
        }
    }
}

impl fmt::Display for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.epoch {
            write!(f, "{e}:")?;
        }
        f.write_str(&self.without_epoch())
    }
}

/// Orders two versions the way dpkg does (epoch, then upstream, then revision, each by
/// dpkg's rule: non-digit runs compared with `~` lowest and letters before other characters,
/// digit runs compared as numbers).
pub fn compare(a: &DebVersion, b: &DebVersion) -> std::cmp::Ordering {
    let epoch = |v: &DebVersion| {
        v.epoch
            .as_deref()
            .and_then(|e| e.parse::<u64>().ok())
            .unwrap_or(0)
    };
    epoch(a)
        .cmp(&epoch(b))
        .then_with(|| compare_part(&a.upstream, &b.upstream))
        .then_with(|| {
            compare_part(
                a.revision.as_deref().unwrap_or(""),
                b.revision.as_deref().unwrap_or(""),
            )
        })
}

/// dpkg's `verrevcmp` for one part of a version.
fn compare_part(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_digit() => 0,
            Some(c) if c.is_ascii_alphabetic() => i32::from(c),
            Some(c) => i32::from(c) + 256,
        }
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let (ca, cb) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ca != cb {
                return ca.cmp(&cb);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first == Ordering::Equal {
                first = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first != Ordering::Equal {
            return first;
        }
    }
    Ordering::Equal
}

/// Orders two rpm versions (`[E:]V-R`) the way rpm does: epoch, then version, then release,
/// each by `rpmvercmp` (alphanumeric segments, digits above letters, `~` lowest, `^` above the
/// end).
pub fn rpm_compare(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(evr: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match evr.split_once(':') {
            Some((e, r)) => (e.parse().unwrap_or(0), r),
            None => (0, evr),
        };
        let (version, release) = rest.rsplit_once('-').unwrap_or((rest, ""));
        (epoch, version, release)
    }
    let (ea, va, ra) = split(a);
    let (eb, vb, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| rpmvercmp(va, vb))
        .then_with(|| rpmvercmp(ra, rb))
}

/// rpm's `rpmvercmp` for one part of a version.
fn rpmvercmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if a == b {
        return Ordering::Equal;
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let separator = |c: &u8| !c.is_ascii_alphanumeric() && *c != b'~' && *c != b'^';
    loop {
        while a.first().is_some_and(separator) {
            a = &a[1..];
        }
        while b.first().is_some_and(separator) {
            b = &b[1..];
        }
        for mark in [b'~', b'^'] {
            match (a.first() == Some(&mark), b.first() == Some(&mark)) {
                (true, true) => {
                    a = &a[1..];
                    b = &b[1..];
                    continue;
                }
                (true, false) if mark == b'~' => return Ordering::Less,
                (false, true) if mark == b'~' => return Ordering::Greater,
                (true, false) => {
                    return if b.is_empty() {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (false, true) => {
                    return if a.is_empty() {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, false) => {}
            }
        }
        if a.is_empty() || b.is_empty() {
            break;
        }
        let numeric = a[0].is_ascii_digit();
        let take = |s: &[u8]| {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (na, nb) = (take(a), take(b));
        if nb == 0 {
            // Segments of different kinds: the numeric one is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (sa, sb) = (&a[..na], &b[..nb]);
        let order = if numeric {
            let trim = |s: &[u8]| {
                let zeros = s.iter().take_while(|c| **c == b'0').count();
                s[zeros..].to_vec()
            };
            let (ta, tb) = (trim(sa), trim(sb));
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(&tb))
        } else {
            sa.cmp(sb)
        };
        if order != Ordering::Equal {
            return order;
        }
        a = &a[na..];
        b = &b[nb..];
    }
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}
