//! The rules for names that travel through queues, paths and command lines.
//!
//! Customers, versions, packages, distros and artifact file names come from configuration and
//! from Gerrit; every one of them ends up in a path or an argument list. They are checked here,
//! once, so that nothing downstream has to quote or sanitise.

/// Suffix of a work queue's dead-letter queue.
pub const DEAD_SUFFIX: &str = ".dead";

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {name:?} is not allowed: {why}")]
pub struct NameError {
    pub what: &'static str,
    pub name: String,
    pub why: &'static str,
}

/// Checks a path element such as a customer, version, package or distro name.
///
/// Allowed: ASCII letters, digits and `. + ~ _ -`, starting with a letter or digit, at most 100
/// characters. This covers Debian package names and versions and rpm names, and keeps every such
/// name safe as a file name, a queue name component and a command argument.
pub fn check_token(what: &'static str, name: &str) -> Result<(), NameError> {
    let err = |why| {
        Err(NameError {
            what,
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return err("it is empty");
    }
    if name.len() > 100 {
        return err("it is longer than 100 characters");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return err("it must start with a letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b))
    {
        return err("only letters, digits and . _ + ~ - may appear");
    }
    Ok(())
}

/// Checks a customer name: a token without `.`, so that a queue name
/// `<stage>.<customer>.<version>` splits at its second dot (`build.a.b.c` is customer `a`,
/// version `b.c`, never customer `a.b`).
pub fn check_customer(name: &str) -> Result<(), NameError> {
    check_token("customer", name)?;
    if name.contains('.') {
        return Err(NameError {
            what: "customer",
            name: name.to_owned(),
            why: "only letters, digits and _ + ~ - may appear (no `.`: it separates the parts of a queue name)",
        });
    }
    Ok(())
}

/// Words a version may not be: `dead` and a trailing `.dead` would read as a dead-letter
/// queue (`build.acme.9.0.dead`), and `review` is the customer's directory of review trees.
pub const RESERVED_VERSIONS: [&str; 2] = ["dead", "review"];

/// Checks a version (release) name: a token that is none of [`RESERVED_VERSIONS`] and does not
/// end in the dead-letter suffix `.dead`, so that no work queue's name is another's dead-letter
/// queue.
pub fn check_version(name: &str) -> Result<(), NameError> {
    check_token("version", name)?;
    let reserved = RESERVED_VERSIONS.contains(&name) || name.ends_with(DEAD_SUFFIX);
    if reserved {
        return Err(NameError {
            what: "version",
            name: name.to_owned(),
            why: "`dead`, `review` and names ending in `.dead` are reserved (dead-letter queues, review trees)",
        });
    }
    Ok(())
}

/// Checks an artifact file name: a token that may also contain `:` (epochs in .buildinfo names
/// never do, but some tools write them), never a path.
pub fn check_file_name(name: &str) -> Result<(), NameError> {
    check_token("file name", &name.replace(':', "_"))
}

/// Checks a Gerrit project name: path elements separated by `/`, each a token.
pub fn check_project(name: &str) -> Result<(), NameError> {
    if name.is_empty()
        || name
            .split('/')
            .any(|part| check_token("project", part).is_err())
    {
        return Err(NameError {
            what: "project",
            name: name.to_owned(),
            why: "it must be path elements of letters, digits and . _ + ~ - separated by /",
        });
    }
    Ok(())
}

/// Checks a git commit id: 40 (sha1) or 64 (sha256) lower-case hex digits.
pub fn check_commit(commit: &str) -> Result<(), NameError> {
    let ok = matches!(commit.len(), 40 | 64)
        && commit
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(NameError {
            what: "commit",
            name: commit.to_owned(),
            why: "it must be 40 or 64 lower-case hex digits",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        for ok in ["acme", "9.0", "python-nova", "g++", "1.2~rc1", "el9"] {
            assert!(check_token("t", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "../x", "a/b", "-rf", ".hidden", "a b", "a;b", "$(x)", "ä",
        ] {
            assert!(check_token("t", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn customers_and_versions_keep_queue_names_unambiguous() {
        assert!(check_customer("acme-eu_2").is_ok());
        let err = check_customer("a.b").unwrap_err();
        assert_eq!(err.what, "customer");
        assert!(err.to_string().contains("no `.`"), "{err}");
        assert!(check_customer("../x").is_err());
        for ok in [
            "9.0",
            "2024.1",
            "deadline",
            "dead-end",
            "9.0.deadx",
            "reviewed",
        ] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for bad in ["dead", "review", "x.dead", "9.0.dead", "a/b", ""] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
        assert!(check_version("x.dead")
            .unwrap_err()
            .to_string()
            .contains("reserved"));
    }

    #[test]
    fn projects_and_commits() {
        assert!(check_project("acme/openstack/nova").is_ok());
        assert!(check_project("acme//nova").is_err());
        assert!(check_project("/acme").is_err());
        assert!(check_project("acme/../x").is_err());
        assert!(check_commit(&"a".repeat(40)).is_ok());
        assert!(check_commit(&"A".repeat(40)).is_err());
        assert!(check_commit("deadbeef").is_err());
    }

    #[test]
    fn file_names() {
        assert!(check_file_name("hello_2.10-3_amd64.deb").is_ok());
        assert!(check_file_name("../hello.deb").is_err());
        assert!(check_file_name("dir/hello.deb").is_err());
    }
}
