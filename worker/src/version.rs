//! The farm's version rule, as the worker applies it: the rule itself, with its parser, is
//! [`perestroika_formats::build_version`] (see there for the format).

pub use perestroika_formats::build_version::{BuildVersion, Counts, RpmRelease};
pub use perestroika_formats::versions::{compare, rpm_compare, DebVersion};

/// The version the farm gives a build (see [`perestroika_formats::build_version`]). A review
/// build's `rebuild` is its patch set, and it goes into the upstream part too: patch sets of
/// one change often share the commit counts while their code differs, and each needs its own
/// upstream tarball name.
pub fn farm_version(
    base: &DebVersion,
    native: bool,
    counts: Counts,
    rebuild: u32,
    review: bool,
) -> DebVersion {
    BuildVersion::new(base, native, counts, rebuild, review).to_deb()
}

/// The `Release:` the farm gives an rpm build, passed to rpmbuild as the macros
/// `%{perestroika_release}` and `%autorelease` (the packager's spec is never edited; its
/// `Version:` stays the upstream version). Ordered by rpm like the deb versions are by dpkg:
/// by code commits, then packaging commits, then the rebuild number.
pub fn rpm_release(counts: Counts, rebuild: u32) -> String {
    RpmRelease { counts, rebuild }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// dpkg is the judge of version order.
    fn dpkg_lt(a: &str, b: &str) -> bool {
        Command::new("dpkg")
            .args(["--compare-versions", a, "lt", b])
            .status()
            .expect("dpkg is installed")
            .success()
    }

    fn v(s: &str) -> DebVersion {
        DebVersion::parse(s).unwrap()
    }

    /// rpm is the judge of release order.
    fn rpm_lt(a: &str, b: &str) -> bool {
        let out = Command::new("rpm")
            .arg("--eval")
            .arg(format!("%{{lua: print(rpm.vercmp(\"{a}\", \"{b}\"))}}"))
            .output()
            .expect("rpm is installed");
        String::from_utf8_lossy(&out.stdout).trim() == "-1"
    }

    #[test]
    fn rpm_compare_agrees_with_rpm() {
        let versions = [
            "1.0-1",
            "1.0-p2.0",
            "1.0-p10.0",
            "1.0-git9.p30.4",
            "1.0-git10.p1.0",
            "1.0~rc1-1",
            "1.0^post1-1",
            "1:0.1-1",
            "1.0a-1",
            "1.01-1",
            "2.10-3",
            "1.0-1.el9",
        ];
        for a in versions {
            for b in versions {
                let ours = rpm_compare(a, b) == std::cmp::Ordering::Less;
                let out = Command::new("rpm")
                    .arg("--eval")
                    .arg(format!("%{{lua: print(rpm.vercmp(\"{a}\", \"{b}\"))}}"))
                    .output()
                    .unwrap();
                let theirs = String::from_utf8_lossy(&out.stdout).trim() == "-1";
                assert_eq!(ours, theirs, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn rpm_releases_rise_with_code_then_packaging_then_rebuild() {
        let split = |code, packaging, r| rpm_release(Counts::Split { code, packaging }, r);
        let order = [
            split(9, 30, 4),
            split(10, 1, 0),
            split(10, 2, 0),
            split(10, 2, 1),
            split(10, 11, 0),
        ];
        for pair in order.windows(2) {
            assert!(rpm_lt(&pair[0], &pair[1]), "{} < {}", pair[0], pair[1]);
        }
        let combined = |n, r| rpm_release(Counts::Combined(n), r);
        assert_eq!(combined(12, 0), "p12.0");
        assert!(rpm_lt(&combined(9, 3), &combined(12, 0)));
        assert!(rpm_lt(&combined(12, 0), &combined(12, 1)));
    }

    #[test]
    fn review_patch_sets_get_their_own_upstream_part_and_sort_in_order() {
        let split = Counts::Split {
            code: 2,
            packaging: 1,
        };
        let ps = |n| farm_version(&v("1.0-1"), false, split, n, true).to_string();
        assert_eq!(ps(1), "1.0+git2.1-1+p1.1");
        assert!(dpkg_lt(&ps(1), &ps(2)) && dpkg_lt(&ps(2), &ps(10)));
        // Native packages carry the rebuild in their only part already.
        assert_eq!(
            farm_version(&v("1.4"), true, Counts::Combined(5), 3, true).to_string(),
            "1.4+p5.3"
        );
    }

    #[test]
    fn compare_agrees_with_dpkg() {
        let versions = [
            "1.0",
            "1.0-1",
            "1.0+git2-1+p1.0",
            "1.0+git10-1+p1.0",
            "1.0~rc1",
            "1:0.1",
            "2.10-3",
            "2.10+git1-3+p1.0",
            "2.10+git1-3+p1.1",
            "1.0a",
            "1.0+b1",
            "1.00",
        ];
        for a in versions {
            for b in versions {
                let ours = compare(&v(a), &v(b));
                assert_eq!(
                    ours == std::cmp::Ordering::Less,
                    dpkg_lt(a, b),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(v("1:2.10-3").to_string(), "1:2.10-3");
        assert_eq!(v("1:2.10-3").without_epoch(), "2.10-3");
        assert_eq!(v("2.0.0-1-2").upstream, "2.0.0-1");
        assert_eq!(v("1.0").revision, None);
        for bad in ["", "a1.0", "1.0-", "x:1.0", "1.0 2", "1.0;rm"] {
            assert!(DebVersion::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_rule_as_documented() {
        let split = Counts::Split {
            code: 42,
            packaging: 7,
        };
        assert_eq!(
            farm_version(&v("2.10-3"), false, split, 0, false).to_string(),
            "2.10+git42-3+p7.0"
        );
        assert_eq!(
            farm_version(&v("1:2.10-3"), false, split, 2, false).to_string(),
            "1:2.10+git42-3+p7.2"
        );
        assert_eq!(
            farm_version(&v("1.4"), true, split, 1, false).to_string(),
            "1.4+p49.1"
        );
        assert_eq!(
            farm_version(&v("1.4"), true, Counts::Combined(5), 0, false).to_string(),
            "1.4+p5.0"
        );
    }

    #[test]
    fn every_change_and_rebuild_sorts_higher_for_dpkg() {
        let base = v("2.10-3");
        let at = |code, packaging, r| {
            farm_version(&base, false, Counts::Split { code, packaging }, r, false).to_string()
        };
        let steps = [
            at(9, 9, 0),
            at(9, 9, 1),
            at(9, 10, 0),
            at(10, 10, 0),
            at(10, 10, 11),
            at(100, 10, 0),
            at(100, 100, 0),
        ];
        for pair in steps.windows(2) {
            assert!(dpkg_lt(&pair[0], &pair[1]), "{} < {}", pair[0], pair[1]);
        }
        // The farm's builds sort above the changelog version they start from.
        assert!(dpkg_lt("2.10-3", &at(1, 1, 0)));
        let native =
            |n, r| farm_version(&v("1.4"), true, Counts::Combined(n), r, false).to_string();
        assert!(dpkg_lt(&native(9, 0), &native(9, 1)));
        assert!(dpkg_lt(&native(9, 5), &native(10, 0)));
    }
}
