//! Package relations (`Depends`, `Build-Depends`, rpm's `Requires`): parsing, and which of
//! them a set of available packages leaves unsatisfied. Promotion uses this to refuse moving
//! a package into a suite where it could not be installed or rebuilt.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::versions::{compare, rpm_compare, DebVersion};

/// A version comparison in a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Op {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" | "==" => Op::Eq,
            // Debian's obsolete `<` and `>` mean `<=` and `>=`.
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    fn holds(self, order: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Lt => order == Less,
            Op::Le => order != Greater,
            Op::Eq => order == Equal,
            Op::Ge => order != Less,
            Op::Gt => order == Greater,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

/// Which version order a relation's versions follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Dpkg,
    Rpm,
}

impl Order {
    fn compare(self, a: &str, b: &str) -> std::cmp::Ordering {
        match self {
            Order::Rpm => rpm_compare(a, b),
            Order::Dpkg => match (DebVersion::parse(a), DebVersion::parse(b)) {
                (Some(a), Some(b)) => compare(&a, &b),
                _ => a.cmp(b),
            },
        }
    }
}

/// One alternative of a relation: a name with an optional version constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub name: String,
    pub constraint: Option<(Op, String)>,
}

impl fmt::Display for Wanted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.constraint {
            Some((op, v)) => write!(f, "{} ({} {v})", self.name, op.as_str()),
            None => f.write_str(&self.name),
        }
    }
}

/// A relation: all of its groups must hold, each group by any one of its alternatives.
pub type Relation = Vec<Vec<Wanted>>;

/// Parses a Debian relation field (`a (>= 1) | b, c:any [amd64] <!nocheck>`). Architecture
/// qualifiers, architecture lists and build profiles are dropped: every alternative counts.
pub fn parse_deb(field: &str) -> Relation {
    let mut out = Vec::new();
    for group in field.split(',') {
        let mut alternatives = Vec::new();
        for alt in group.split('|') {
            let mut text = alt.to_owned();
            for (open, close) in [('[', ']'), ('<', '>')] {
                // Restriction lists; a version constraint's `<<`/`>=` sits inside parentheses.
                while let Some(start) = outside_parens(&text, open) {
                    let end = text[start..]
                        .find(close)
                        .map_or(text.len(), |e| start + e + 1);
                    text.replace_range(start..end, "");
                }
            }
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let (name, constraint) = match text.split_once('(') {
                Some((name, rest)) => {
                    let inner = rest.trim_end().trim_end_matches(')').trim();
                    let split = inner
                        .find(|c: char| !"<>=".contains(c))
                        .unwrap_or(inner.len());
                    let constraint =
                        Op::parse(&inner[..split]).map(|op| (op, inner[split..].trim().to_owned()));
                    (name.trim(), constraint)
                }
                None => (text, None),
            };
            let name = name.split(':').next().unwrap_or(name).trim();
            alternatives.push(Wanted {
                name: name.to_owned(),
                constraint,
            });
        }
        if !alternatives.is_empty() {
            out.push(alternatives);
        }
    }
    out
}

fn outside_parens(text: &str, wanted: char) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if c == wanted && depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// Parses rpm's `--requires` output lines (`name`, `name >= 1.0-1`).
pub fn parse_rpm<'a>(lines: impl IntoIterator<Item = &'a str>) -> Relation {
    lines
        .into_iter()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?.to_owned();
            let constraint = match (words.next(), words.next()) {
                (Some(op), Some(v)) => Op::parse(match op {
                    "<" => "<<",
                    ">" => ">>",
                    op => op,
                })
                .map(|op| (op, v.to_owned())),
                _ => None,
            };
            Some(vec![Wanted { name, constraint }])
        })
        .collect()
}

/// The packages a relation is judged against: name → versions it is available at (`None` for
/// an unversioned `Provides`).
#[derive(Debug, Clone)]
pub struct Available {
    order: Order,
    names: BTreeMap<String, Vec<Option<String>>>,
}

impl Available {
    pub fn new(order: Order) -> Self {
        Self {
            order,
            names: BTreeMap::new(),
        }
    }

    /// Adds a package, or something it provides.
    pub fn add(&mut self, name: &str, version: Option<&str>) {
        self.names
            .entry(name.to_owned())
            .or_default()
            .push(version.map(str::to_owned));
    }

    /// Adds a package with its Debian `Provides` field.
    pub fn add_deb(&mut self, name: &str, version: &str, provides: Option<&str>) {
        self.add(name, Some(version));
        for provided in parse_deb(provides.unwrap_or("")).into_iter().flatten() {
            let version = provided.constraint.map(|(_, v)| v);
            self.add(&provided.name, version.as_deref());
        }
    }

    /// Whether anything of that name is available.
    pub fn has(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    fn satisfies(&self, wanted: &Wanted) -> bool {
        let Some(versions) = self.names.get(&wanted.name) else {
            return false;
        };
        match &wanted.constraint {
            None => true,
            Some((op, v)) => versions.iter().flatten().any(|have| {
                // An rpm requirement without a release matches any release of that version.
                let have = match self.order {
                    Order::Rpm if !v.contains('-') => {
                        have.rsplit_once('-').map_or(&**have, |h| h.0)
                    }
                    _ => have,
                };
                op.holds(self.order.compare(have, v))
            }),
        }
    }
}

/// The groups of `relation` that `available` leaves unsatisfied, written as in the field.
/// Only names `known` says are judged here count: an alternative naming something else (the
/// base distribution's packages, rpm's file and library requirements) is taken as satisfied.
pub fn unsatisfied(
    relation: &Relation,
    available: &Available,
    known: impl Fn(&str) -> bool,
) -> BTreeSet<String> {
    relation
        .iter()
        .filter(|group| {
            !group
                .iter()
                .any(|alt| !known(&alt.name) || available.satisfies(alt))
        })
        .map(|group| {
            group
                .iter()
                .map(Wanted::to_string)
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_relations() {
        let r = parse_deb("greet (>= 1.1+p2.0), libc6:any (>= 2.36) [amd64] | musl <!stage1>, debhelper-compat (= 13)");
        assert_eq!(r.len(), 3);
        assert_eq!(r[0][0].to_string(), "greet (>= 1.1+p2.0)");
        assert_eq!(r[1][0].to_string(), "libc6 (>= 2.36)");
        assert_eq!(r[1][1].to_string(), "musl");
        assert_eq!(r[2][0].constraint, Some((Op::Eq, "13".into())));
        assert!(parse_deb("").is_empty());
    }

    #[test]
    fn judges_only_known_names_and_honours_versions() {
        let mut available = Available::new(Order::Dpkg);
        available.add_deb("greet", "1.0+p1.0", Some("greeter (= 2)"));
        let known = |n: &str| n.starts_with("greet");
        let r = parse_deb("greet (>= 1.1), libc6 (>= 2.36), greeter (>= 2), greet-more | greet");
        let missing = unsatisfied(&r, &available, known);
        assert_eq!(missing.into_iter().collect::<Vec<_>>(), ["greet (>= 1.1)"]);
        available.add_deb("greet", "1.1+p2.0", None);
        assert!(unsatisfied(&r, &available, known).is_empty());
        let r = parse_deb("greet (<< 1.0~)");
        assert_eq!(unsatisfied(&r, &available, known).len(), 1);
    }

    #[test]
    fn rpm_requirements() {
        let mut available = Available::new(Order::Rpm);
        available.add("greet", Some("1.0-git1.p1.0"));
        let r = parse_rpm([
            "greet >= 1.0",
            "greet > 1.0-git1.p1.0",
            "/bin/sh",
            "rpmlib(X) <= 4",
        ]);
        let known = |n: &str| n == "greet";
        let missing: Vec<_> = unsatisfied(&r, &available, known).into_iter().collect();
        assert_eq!(missing, ["greet (>> 1.0-git1.p1.0)"]);
    }
}
