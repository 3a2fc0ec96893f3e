//! Timing, medians and the side-by-side rows every comparison prints.

use std::time::Instant;

/// Runs `f`; the seconds it took, and what it returned.
pub fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed().as_secs_f64(), out)
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The value at fraction `p` (0.5 the median, 0.99 the 99th percentile) of `sorted`, nearest
/// rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One row: a label, our figure, theirs and the ratio, at `decimals` places.
pub fn row(label: &str, ours: f64, theirs: f64, decimals: usize) -> String {
    format!(
        "{label:<52} {ours:>10.decimals$} {theirs:>10.decimals$} {:>8.2}",
        ours / theirs
    )
}

/// The header above [`row`]s.
pub fn header(label: &str, ours: &str, theirs: &str) -> String {
    format!("{label:<52} {ours:>10} {theirs:>10} {:>8}", "ratio")
}

/// A build's phases in seconds: the whole wall time, build dependencies and the build.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    pub wall: f64,
    pub deps: f64,
    pub build: f64,
}

impl Phases {
    /// Root setup and teardown: what is neither dependencies nor the build.
    pub fn setup(&self) -> f64 {
        self.wall - self.deps - self.build
    }
}

/// `runs` builds each of ours and theirs, alternating, each run's wall times printed as it
/// ends (theirs under the name `theirs_name`).
pub fn paired_runs<E>(
    runs: usize,
    theirs_name: &str,
    mut ours: impl FnMut() -> Result<Phases, E>,
    mut theirs: impl FnMut() -> Result<Phases, E>,
) -> Result<(Vec<Phases>, Vec<Phases>), E> {
    let (mut o, mut t) = (Vec::new(), Vec::new());
    for i in 1..=runs {
        let (a, b) = (ours()?, theirs()?);
        println!(
            "  run {i}: perestroika {:.2}s, {theirs_name} {:.2}s",
            a.wall, b.wall
        );
        o.push(a);
        t.push(b);
    }
    Ok((o, t))
}

/// What a worker comparison's table names: its title, the other tool, the dependency and
/// build steps, and the cold-cache dependency times (ours, theirs) if measured.
pub struct PhaseLabels<'a> {
    pub title: &'a str,
    pub theirs: &'a str,
    pub deps: &'a str,
    pub build: &'a str,
    pub cold_deps: Option<(f64, f64)>,
}

/// Medians of many builds' phases, ours next to theirs, as the worker comparisons print.
pub fn phase_table(labels: &PhaseLabels, ours: &[Phases], theirs: &[Phases]) {
    let m = |v: &[Phases], f: fn(&Phases) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let width = labels.theirs.len().max(12);
    println!(
        "{:<34} {:>12} {:>width$} {:>8}",
        labels.title, "perestroika", labels.theirs, "ratio"
    );
    let line = |label: &str, a: f64, b: f64| {
        println!("{label:<34} {a:>12.2} {b:>width$.2} {:>8.2}", a / b);
    };
    line(
        "root setup + teardown",
        m(ours, Phases::setup),
        m(theirs, Phases::setup),
    );
    if let Some((a, b)) = labels.cold_deps {
        line("build dependencies, cold cache", a, b);
    }
    line(labels.deps, m(ours, |p| p.deps), m(theirs, |p| p.deps));
    line(labels.build, m(ours, |p| p.build), m(theirs, |p| p.build));
    line("whole build", m(ours, |p| p.wall), m(theirs, |p| p.wall));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_timings() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let p = Phases {
            wall: 10.0,
            deps: 3.5,
            build: 4.25,
        };
        assert!((p.setup() - 2.25).abs() < 1e-9);
    }
}
