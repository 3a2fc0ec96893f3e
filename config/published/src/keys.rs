//! OpenPGP keys and signatures, checked with gpgv: a keyring made of armored public keys, and
//! the rule that every signature must be by a pinned key. The mirror's `verify` and the
//! remote reader share it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A gpgv keyring made of armored public keys, and the fingerprints every signature must be
/// by.
#[derive(Debug, Clone)]
pub struct Keyring {
    file: PathBuf,
    pinned: Vec<String>,
}

impl Keyring {
    /// Reads the armored `keys` into `<scratch>/key.gpg`, accepting signatures by `pinned`
    /// primary keys only. Returns the keyring and a problem for each key held that is not
    /// pinned; `Err` when a file holds no usable key.
    pub fn open(
        keys: &[&Path],
        scratch: &Path,
        pinned: &[String],
    ) -> Result<(Self, Vec<String>), String> {
        let (ring, held) = dearmored(keys, scratch)?;
        let problems = keys
            .iter()
            .zip(&held)
            .flat_map(|(key, held)| {
                held.iter().filter(|f| !pinned.contains(f)).map(move |f| {
                    format!(
                        "{}: holds key {f}, which is not pinned (expected {})",
                        key.display(),
                        pinned.join(" or ")
                    )
                })
            })
            .collect();
        Ok((Self::write(ring, scratch, pinned)?, problems))
    }

    /// A keyring of the armored `keys`, each of whose primary keys is pinned: the keys an
    /// operator configured as the ones to trust.
    pub fn pinned(keys: &[PathBuf], scratch: &Path) -> Result<Self, String> {
        let refs: Vec<&Path> = keys.iter().map(PathBuf::as_path).collect();
        let (ring, held) = dearmored(&refs, scratch)?;
        Self::write(ring, scratch, &held.concat())
    }

    /// The primary keys' fingerprints of the armored key file `key`.
    pub fn fingerprints(key: &Path, scratch: &Path) -> Result<Vec<String>, String> {
        listed(key, &gpg_home(scratch))
    }

    /// Writes `ring` to `<scratch>/key.gpg`, signatures to be by `pinned`.
    fn write(ring: Vec<u8>, scratch: &Path, pinned: &[String]) -> Result<Self, String> {
        let file = scratch.join("key.gpg");
        fs_err::write(&file, ring).map_err(|e| e.to_string())?;
        Ok(Self {
            file,
            pinned: pinned.to_vec(),
        })
    }

    /// The fingerprints signatures must be by.
    pub fn pinned_fingerprints(&self) -> &[String] {
        &self.pinned
    }

    /// Verifies `files` (one clearsigned file, or a detached signature and its data) with
    /// gpgv; every good signature must be by a pinned key.
    pub fn check(&self, files: &[&Path]) -> Result<(), String> {
        self.run_gpgv(None, files)
    }

    /// Verifies the clearsigned `file` and writes the data the signature covers, and only
    /// that, to `out`: what a reader may trust of the file.
    pub fn check_clearsigned(&self, file: &Path, out: &Path) -> Result<(), String> {
        let _ = fs_err::remove_file(out);
        self.run_gpgv(Some(out), &[file])
    }

    fn run_gpgv(&self, out: Option<&Path>, files: &[&Path]) -> Result<(), String> {
        let mut cmd = Command::new("gpgv");
        cmd.args(["--status-fd", "1", "--keyring"]).arg(&self.file);
        if let Some(out) = out {
            cmd.arg("--output").arg(out);
        }
        let out = cmd
            .args(files)
            .output()
            .map_err(|e| format!("cannot run gpgv: {e}"))?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(if why.is_empty() {
                "gpgv found no good signature".into()
            } else {
                why
            });
        }
        let signers = signers(&String::from_utf8_lossy(&out.stdout));
        if signers.is_empty() {
            return Err("gpgv reported no valid signature".into());
        }
        match signers.iter().find(|f| !self.pinned.contains(f)) {
            Some(found) => Err(format!(
                "signed by key {found}, expected {}",
                self.pinned.join(" or ")
            )),
            None => Ok(()),
        }
    }
}

/// A private gpg home below `scratch`, for listing keys.
fn gpg_home(scratch: &Path) -> PathBuf {
    let home = scratch.join("home");
    let _ = fs_err::create_dir_all(&home);
    let _ = fs_err::set_permissions(&home, std::fs::Permissions::from_mode(0o700));
    home
}

/// The armored `keys` made binary, one keyring, with the primary keys each file holds; `Err`
/// when a file holds no usable key.
fn dearmored(keys: &[&Path], scratch: &Path) -> Result<(Vec<u8>, Vec<Vec<String>>), String> {
    let home = gpg_home(scratch);
    let mut ring = Vec::new();
    let mut held = Vec::new();
    for key in keys {
        held.push(listed(key, &home)?);
        ring.extend(gpg_on(
            key,
            Command::new("gpg").args(["--batch", "--yes", "--dearmor", "-o", "-"]),
        )?);
    }
    Ok((ring, held))
}

/// The primary keys' fingerprints the armored `key` holds, listed with gpg in `home`; `Err`
/// when it holds none.
fn listed(key: &Path, home: &Path) -> Result<Vec<String>, String> {
    let listing = gpg_on(
        key,
        Command::new("gpg").arg("--homedir").arg(home).args([
            "--batch",
            "--with-colons",
            "--show-keys",
        ]),
    )?;
    let held = primary_fingerprints(&String::from_utf8_lossy(&listing));
    if held.is_empty() {
        return Err(unusable(key, "no key in it"));
    }
    Ok(held)
}

/// Runs the gpg command `gpg` on the key file `key`; its output, or why the key is unusable.
fn gpg_on(key: &Path, gpg: &mut Command) -> Result<Vec<u8>, String> {
    let out = gpg
        .arg(key)
        .output()
        .map_err(|e| unusable(key, &format!("cannot run gpg: {e}")))?;
    if !out.status.success() {
        return Err(unusable(key, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(out.stdout)
}

fn unusable(key: &Path, why: &str) -> String {
    format!("{}: not a usable public key: {why}", key.display())
}

/// The primary keys' fingerprints in `gpg --with-colons` output.
pub fn primary_fingerprints(listing: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_pub = false;
    for line in listing.lines() {
        let mut fields = line.split(':');
        match fields.next() {
            Some("pub") => after_pub = true,
            Some("fpr") if after_pub => {
                out.extend(fields.nth(8).map(str::to_ascii_uppercase));
                after_pub = false;
            }
            _ => after_pub = false,
        }
    }
    out
}

/// The primary key of each good signature in gpgv's `--status-fd` output (`VALIDSIG`).
pub fn signers(status: &str) -> Vec<String> {
    status
        .lines()
        .filter_map(|l| l.strip_prefix("[GNUPG:] VALIDSIG "))
        .filter_map(|rest| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // The signing (sub)key first; the primary key's fingerprint, when given, last.
            fields
                .get(9)
                .or(fields.first())
                .map(|f| f.to_ascii_uppercase())
        })
        .collect()
}
