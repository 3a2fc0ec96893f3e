use super::*;

fn v(s: &str) -> DebVersion {
    DebVersion::parse(s).unwrap()
}

#[test]
fn the_rule_as_documented() {
    let split = Counts::Split {
        code: 42,
        packaging: 7,
    };
    let at = |base, native, counts, r, review| {
        BuildVersion::new(&v(base), native, counts, r, review).to_string()
    };
    assert_eq!(at("2.10-3", false, split, 0, false), "2.10+git42-3+p7.0");
    assert_eq!(
        at("1:2.10-3", false, split, 2, false),
        "1:2.10+git42-3+p7.2"
    );
    assert_eq!(at("2.10", false, split, 0, false), "2.10+git42-0+p7.0");
    assert_eq!(at("1.4", true, split, 1, false), "1.4+p49.1");
    assert_eq!(at("1.4", true, Counts::Combined(5), 0, false), "1.4+p5.0");
    assert_eq!(
        at("1.0-1", false, Counts::Combined(5), 3, false),
        "1.0+git5-1+p5.3"
    );
    assert_eq!(at("1.0-1", false, split, 3, true), "1.0+git42.3-1+p7.3");
}

#[test]
fn parse_reads_back_what_format_writes() {
    let counts = [
        Counts::Split {
            code: 1,
            packaging: 0,
        },
        Counts::Split {
            code: 120,
            packaging: 9,
        },
        Counts::Combined(33),
    ];
    for base in [
        "1.0-1",
        "1:2.10-3",
        "2.0.0-1-2",
        "1.0+git3-1+p4",
        "1.0",
        "7:0.1~rc1",
    ] {
        // A native version holds no `-` (dpkg would read a revision).
        let natives: &[bool] = if v(base).upstream.contains('-') {
            &[false]
        } else {
            &[false, true]
        };
        for &native in natives {
            for counts in counts {
                for rebuild in [0, 1, 17] {
                    for review in [false, true] {
                        let x = BuildVersion::new(&v(base), native, counts, rebuild, review);
                        let text = x.to_string();
                        let back =
                            BuildVersion::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                        // A native build keeps only the total, and a review's shape.
                        assert_eq!(back.to_string(), text);
                        assert_eq!(back.rebuild, rebuild, "{text}");
                        assert_eq!(back.epoch, v(base).epoch, "{text}");
                        if !native {
                            assert_eq!(back, x, "{text}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn native_and_non_native_are_told_apart() {
    let native = BuildVersion::parse("1.4+p5.3").unwrap();
    assert_eq!(native.shape, Shape::Native { commits: 5 });
    assert_eq!((native.upstream.as_str(), native.rebuild), ("1.4", 3));
    let release = BuildVersion::parse("3:1.0+git3-1+p2.4").unwrap();
    assert_eq!(release.epoch.as_deref(), Some("3"));
    assert_eq!(
        release.shape,
        Shape::NonNative {
            code: 3,
            revision: "1".into(),
            packaging: 2,
            review: false
        }
    );
    assert_eq!(release.rebuild, 4);
    let review = BuildVersion::parse("1.0+git2.5-1+p1.5").unwrap();
    assert!(matches!(
        review.shape,
        Shape::NonNative { review: true, .. }
    ));
    assert_eq!(review.rebuild, 5);
}

#[test]
fn garbage_is_refused() {
    for bad in [
        "",
        " 1.0+p1.0",
        "1.0+p1.0\n",
        "x:1.0+p1.0",
        "1.0",
        "1.0-1",
        "1.0+p1",
        "1.0+p.1",
        "1.0+p1.",
        "1.0+p1.x",
        "1.0+p01.0",
        "1.0+p1.00",
        "1.0+p1.99999999999",
        "+p1.0",
        "1.0+git3-1",
        "1.0-1+p2.0",
        "1.0+gitx-1+p2.0",
        "1.0+git3.1-1+p2.2",
        "1.0+git3-+p2.0",
        "1.0+git3-1+p2.0;rm",
    ] {
        let e = BuildVersion::parse(bad).expect_err(bad);
        assert!(
            matches!(
                e,
                BuildVersionError::NotDebian(_) | BuildVersionError::NotFarm { .. }
            ),
            "{bad}: {e}"
        );
    }
}

#[test]
fn rpm_releases_round_trip() {
    for counts in [
        Counts::Split {
            code: 3,
            packaging: 2,
        },
        Counts::Combined(11),
    ] {
        for rebuild in [0, 6] {
            let r = RpmRelease { counts, rebuild };
            let text = r.to_string();
            assert_eq!(RpmRelease::parse(&text), Ok((r, None)), "{text}");
            let dist = format!("{text}.el9");
            assert_eq!(RpmRelease::parse(&dist), Ok((r, Some("el9"))), "{dist}");
            let long = format!("{text}.el9.x");
            assert_eq!(RpmRelease::parse(&long), Ok((r, Some("el9.x"))), "{long}");
        }
    }
    assert_eq!(
        RpmRelease {
            counts: Counts::Split {
                code: 3,
                packaging: 2
            },
            rebuild: 6
        }
        .to_string(),
        "git3.p2.6"
    );
    for bad in [
        "",
        "1",
        "p1",
        "p1.",
        "git3.p2",
        "git3.2.1",
        "q1.0",
        "p1.0.",
        "p1.0-1",
        "gitx.p1.0",
    ] {
        assert!(RpmRelease::parse(bad).is_err(), "{bad}");
    }
}
