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
