//! Reading a `.dsc`: the source package's name, version and files, each name checked before
//! any file is touched.

use perestroika_config::names::NameError;

use crate::version::DebVersion;

/// What is wrong with a `.dsc`.
#[derive(Debug, thiserror::Error)]
pub enum DscError {
    #[error("no Source field")]
    NoSource,
    #[error("no Version field")]
    NoVersion,
    #[error("Version {version:?} is not a Debian version")]
    Version { version: String },
    #[error("no Files field")]
    NoFiles,
    #[error(transparent)]
    Name(#[from] NameError),
}

/// The fields of a .dsc the worker needs.
pub(super) fn parse_dsc(text: &str) -> Result<(String, String, Vec<String>), DscError> {
    let mut source = None;
    let mut version = None;
    let mut files = Vec::new();
    let mut in_files = false;
    for line in text.lines() {
        if line.starts_with("-----BEGIN PGP SIGNATURE") {
            break;
        }
        if let Some(rest) = line.strip_prefix(' ') {
            if in_files {
                if let Some(name) = rest.split_whitespace().nth(2) {
                    files.push(name.to_owned());
                }
            }
            continue;
        }
        in_files = false;
        if let Some((key, value)) = line.split_once(':') {
            match key {
                "Source" => source = Some(value.trim().to_owned()),
                "Version" => version = Some(value.trim().to_owned()),
                "Files" => in_files = true,
                _ => {}
            }
        }
    }
    let source = source.ok_or(DscError::NoSource)?;
    let version = version.ok_or(DscError::NoVersion)?;
    perestroika_config::names::check_token("source package", &source)?;
    if DebVersion::parse(&version).is_none() {
        return Err(DscError::Version { version });
    }
    for f in &files {
        perestroika_config::names::check_file_name(f)?;
    }
    if files.is_empty() {
        return Err(DscError::NoFiles);
    }
    Ok((source, version, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsc_fields() {
        let dsc = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nFormat: 3.0 (quilt)\nSource: hello\nVersion: 2.10-3\nFiles:\n 6cd0ffea3884a4e79330338dcc2987d6 725946 hello_2.10.orig.tar.gz\n e5ca2 12688 hello_2.10-3.debian.tar.xz\nChecksums-Sha256:\n abc 725946 hello_2.10.orig.tar.gz\n\n-----BEGIN PGP SIGNATURE-----\n x y z\n";
        let (s, v, f) = parse_dsc(dsc).unwrap();
        assert_eq!((s.as_str(), v.as_str()), ("hello", "2.10-3"));
        assert_eq!(f, ["hello_2.10.orig.tar.gz", "hello_2.10-3.debian.tar.xz"]);
        assert!(parse_dsc("Source: x\nVersion: 1\nFiles:\n a 1 ../../etc/passwd\n").is_err());
    }
}
