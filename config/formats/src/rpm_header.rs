//! Reading rpm package headers with the host's `rpm -qp` (the header only: no scriptlet or spec
//! of the package runs).

use std::path::Path;
use std::process::Command;

/// `rpm -qp` failed, or answered for fewer files than asked.
#[derive(Debug, thiserror::Error)]
#[error("rpm -qp of {subject}: {detail}")]
pub struct QueryError {
    pub subject: String,
    pub detail: String,
}

/// One line per file: `format` (an rpm query format, e.g. `%{SHA256HEADER}`) expanded for
/// each package, in order. Signatures are not checked; digests are.
pub fn query(files: &[&Path], format: &str) -> Result<Vec<String>, QueryError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let subject = match files {
        [one] => one.display().to_string(),
        many => format!("{} files", many.len()),
    };
    let err = |detail: String| QueryError {
        subject: subject.clone(),
        detail,
    };
    let out = Command::new("rpm")
        .args(["-qp", "--nosignature", "--qf"])
        .arg(format!("{format}\n"))
        .args(files)
        .output()
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if lines.len() != files.len() {
        return Err(err(format!(
            "expected {} answers, got {}",
            files.len(),
            lines.len()
        )));
    }
    Ok(lines)
}

/// What [`architecture`] reads from a package file without running rpm.
const LEAD_SIZE: usize = 96;
const HEADER_MAGIC: [u8; 4] = [0x8e, 0xad, 0xe8, 0x01];
const TAG_ARCH: u32 = 1022;
const TYPE_STRING: u32 = 6;

/// The architecture an rpm file is built for — `src` for a source rpm (the lead's type), else
/// the main header's `ARCH` tag (`noarch`, `x86_64`) — read from the file itself, as rpm's
/// `%{ARCH}`/`%{SOURCERPM}` query would give it but without starting rpm.
pub fn architecture(path: &Path) -> Result<String, QueryError> {
    let err = |detail: &str| QueryError {
        subject: path.display().to_string(),
        detail: detail.to_owned(),
    };
    let mut file = fs_err::File::open(path).map_err(|e| err(&e.to_string()))?;
    // Lead and both headers of a package are small; 1 MiB holds them many times over.
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, 1 << 20), &mut buf)
        .map_err(|e| err(&e.to_string()))?;
    parse_architecture(&buf).map_err(err)
}

fn parse_architecture(buf: &[u8]) -> Result<String, &'static str> {
    if buf.len() < LEAD_SIZE || buf[..4] != [0xed, 0xab, 0xee, 0xdb] {
        return Err("not an rpm package (no lead)");
    }
    if u16::from_be_bytes([buf[6], buf[7]]) == 1 {
        return Ok("src".into());
    }
    let be = |at: usize| -> Result<u32, &'static str> {
        buf.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or("truncated header")
    };
    // (index entries, data size) of the header at `at`, after checking its magic.
    let header = |at: usize| -> Result<(usize, usize), &'static str> {
        if buf.get(at..at + 4) != Some(&HEADER_MAGIC[..]) {
            return Err("bad header magic");
        }
        Ok((be(at + 8)? as usize, be(at + 12)? as usize))
    };
    let (sig_entries, sig_data) = header(LEAD_SIZE)?;
    let sig_end = LEAD_SIZE + 16 + sig_entries * 16 + sig_data;
    let main = sig_end.div_ceil(8) * 8;
    let (entries, _) = header(main)?;
    let store = main + 16 + entries * 16;
    for i in 0..entries {
        let entry = main + 16 + i * 16;
        if be(entry)? == TAG_ARCH && be(entry + 4)? == TYPE_STRING {
            let start = store + be(entry + 8)? as usize;
            let rest = buf.get(start..).ok_or("truncated header")?;
            let end = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or("unterminated ARCH")?;
            return String::from_utf8(rest[..end].to_vec()).map_err(|_| "ARCH is not text");
        }
    }
    Err("the header has no ARCH tag")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lead and two headers laid out as rpm writes them, the main one holding `ARCH`.
    fn package(kind: u16, arch: &str) -> Vec<u8> {
        let mut buf = vec![0xed, 0xab, 0xee, 0xdb, 3, 0];
        buf.extend(kind.to_be_bytes());
        buf.resize(LEAD_SIZE, 0);
        let header = |entries: &[(u32, u32, &[u8])]| {
            let mut index = Vec::new();
            let mut data = Vec::new();
            for (tag, kind, value) in entries {
                for n in [*tag, *kind, data.len() as u32, 1] {
                    index.extend(n.to_be_bytes());
                }
                data.extend_from_slice(value);
            }
            let mut h = HEADER_MAGIC.to_vec();
            h.extend([0; 4]);
            h.extend((entries.len() as u32).to_be_bytes());
            h.extend((data.len() as u32).to_be_bytes());
            h.extend(index);
            h.extend(data);
            h
        };
        buf.extend(header(&[(1000, 7, b"sig12")]));
        while buf.len() % 8 != 0 {
            buf.push(0);
        }
        let arch = format!("{arch}\0");
        buf.extend(header(&[
            (1000, 6, b"greet\0"),
            (TAG_ARCH, 6, arch.as_bytes()),
        ]));
        buf
    }

    #[test]
    fn reads_the_architecture_of_binary_and_source_packages() {
        assert_eq!(parse_architecture(&package(0, "noarch")).unwrap(), "noarch");
        assert_eq!(parse_architecture(&package(0, "x86_64")).unwrap(), "x86_64");
        assert_eq!(parse_architecture(&package(1, "x86_64")).unwrap(), "src");
        assert!(parse_architecture(b"!<arch>\ndebian-binary").is_err());
        let mut cut = package(0, "noarch");
        cut.truncate(LEAD_SIZE + 20);
        assert!(parse_architecture(&cut).is_err());
    }
}
