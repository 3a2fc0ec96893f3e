use super::*;

const RELEASE: &str = "Origin: acme\nCodename: bookworm\nDate: Mon, 01 Jan 2024 00:00:00 UTC\nArchitectures: amd64 source\nMD5Sum:\n 0123 10 main/binary-amd64/Packages\nSHA256:\n aaaa 10 main/binary-amd64/Packages\n bbbb 7 main/binary-amd64/Packages.xz\n";

const PACKAGES: &str = "Package: greet\nVersion: 1.0-1\nDescription: says hello\n A longer text.\n .\n With a paragraph.\n\nPackage: other\nVersion: 2\n";

#[test]
fn round_trip_keeps_text_and_order() {
    for text in [RELEASE, PACKAGES] {
        let parsed = parse(text).unwrap();
        assert_eq!(write(&parsed), text);
    }
    let p = parse(PACKAGES).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(
        p[0].get("description"),
        Some("says hello\nA longer text.\n.\nWith a paragraph.")
    );
    let names: Vec<&str> = p[0].fields().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["Package", "Version", "Description"]);
    let release = parse_one(RELEASE).unwrap();
    assert_eq!(
        release.get("SHA256").unwrap(),
        "\naaaa 10 main/binary-amd64/Packages\nbbbb 7 main/binary-amd64/Packages.xz"
    );
}

#[test]
fn blank_lines_separate_and_surrounding_ones_are_ignored() {
    let text = "\n\nA: 1\n  \t\nB: 2\n\n\n";
    let p = parse(text).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!((p[0].get("A"), p[1].get("B")), (Some("1"), Some("2")));
    assert!(parse("").unwrap().is_empty());
    let raw: Vec<&str> = raw_paragraphs(PACKAGES).collect();
    assert_eq!(raw[1], "Package: other\nVersion: 2");
    assert!(raw[0].ends_with("With a paragraph."));
}

#[test]
fn editing_fields() {
    let mut r = parse_one(RELEASE).unwrap();
    r.set_before("Acquire-By-Hash", "yes", &["MD5Sum", "SHA1", "SHA256"]);
    r.set_after("Valid-Until", "Tue, 02 Jan 2024 00:00:00 UTC", "Date");
    r.set("Origin", "acme 9.0");
    assert_eq!(
        r.remove("MD5Sum").as_deref(),
        Some("\n0123 10 main/binary-amd64/Packages")
    );
    assert_eq!(r.remove("MD5Sum"), None);
    assert_eq!(
        r.to_string(),
        "Origin: acme 9.0\nCodename: bookworm\nDate: Mon, 01 Jan 2024 00:00:00 UTC\nValid-Until: Tue, 02 Jan 2024 00:00:00 UTC\nArchitectures: amd64 source\nAcquire-By-Hash: yes\nSHA256:\n aaaa 10 main/binary-amd64/Packages\n bbbb 7 main/binary-amd64/Packages.xz\n"
    );
    let mut empty = Paragraph::new();
    empty.set_after("B", "2", "A");
    empty.set_before("A", "1", &["B"]);
    assert_eq!(empty.to_string(), "A: 1\nB: 2\n");
}

#[test]
fn checksum_lists() {
    let r = parse_one(RELEASE).unwrap();
    let sha = ChecksumEntry::list(&r, "SHA256").unwrap();
    assert_eq!(sha.len(), 2);
    assert_eq!(
        sha[1],
        ChecksumEntry {
            sum: "bbbb".into(),
            size: 7,
            path: "main/binary-amd64/Packages.xz".into()
        }
    );
    assert!(ChecksumEntry::list(&r, "SHA512").unwrap().is_empty());
    let mut again = r.clone();
    again.set("SHA256", ChecksumEntry::value(&sha));
    assert_eq!(again, r);
    for bad in ["\nzz 1 a", "\naa x a", "\naa 1", "\naa 1 a b"] {
        let mut p = Paragraph::new();
        p.set("SHA256", bad);
        assert!(ChecksumEntry::list(&p, "SHA256").is_err(), "{bad:?}");
    }
}

#[test]
fn hostile_input_is_refused_with_its_line() {
    assert_eq!(
        parse("A: 1\nno colon here\n"),
        Err(Deb822Error::NoColon { line: 2 })
    );
    assert_eq!(
        parse("A: 1\n: empty name\n"),
        Err(Deb822Error::NoColon { line: 2 })
    );
    assert_eq!(
        parse("A: 1\nB C: x\n"),
        Err(Deb822Error::NoColon { line: 2 })
    );
    assert_eq!(parse(" orphan\n"), Err(Deb822Error::Orphan { line: 1 }));
    assert_eq!(
        parse("A: 1\n\nB: 1\nb: 2\n"),
        Err(Deb822Error::Duplicate {
            line: 4,
            field: "b".into()
        })
    );
    let long = format!("A: {}\n", "x".repeat(MAX_LINE));
    assert_eq!(
        parse(&long),
        Err(Deb822Error::LineTooLong {
            line: 1,
            len: MAX_LINE + 3
        })
    );
    assert_eq!(
        parse_one("A: 1\n\nB: 2\n"),
        Err(Deb822Error::NotOneParagraph { found: 2 })
    );
}

#[test]
fn raw_fields() {
    let raw: Vec<&str> = raw_paragraphs(PACKAGES).collect();
    assert_eq!(raw_field(raw[0], "version"), Some("1.0-1"));
    assert_eq!(raw_field(raw[0], "Description"), Some("says hello"));
    assert_eq!(raw_field(raw[0], "A longer text."), None);
    assert_eq!(raw_field(raw[1], "Architecture"), None);
}
