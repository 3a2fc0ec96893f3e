//! The signing keys end to end, against a throwaway GnuPG home and gpgv.

use std::process::Command;

use super::context::restrict;
use super::*;

/// A throwaway GnuPG home with its agent stopped on drop.
struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pg")
            .tempdir_in("/tmp")
            .unwrap();
        restrict(dir.path());
        Self(dir)
    }
    fn gpg(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(self.0.path())
            .args(["--batch", "--pinentry-mode", "loopback"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
    /// Makes a key as an operator would, returns (fingerprint, armored secret key).
    fn make_key(&self, expire: &str, passphrase: &str) -> (String, Vec<u8>) {
        self.gpg(&[
            "--passphrase",
            passphrase,
            "--quick-gen-key",
            "Test Signing <sign@example.invalid>",
            "ed25519",
            "sign",
            expire,
        ]);
        let listing =
            String::from_utf8(self.gpg(&["--with-colons", "--list-secret-keys"])).unwrap();
        let fpr = listing
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .unwrap()
            .split(':')
            .nth(9)
            .unwrap()
            .to_owned();
        let secret = self.gpg(&[
            "--passphrase",
            passphrase,
            "--armor",
            "--export-secret-keys",
            &fpr,
        ]);
        (fpr, secret)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.0.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

fn gpgv(keyring_armored: &[u8], signature: &[u8], data: Option<&[u8]>) -> bool {
    gpgv_status(keyring_armored, signature, data).0
}

/// gpgv's verdict and its machine-readable status lines.
fn gpgv_status(keyring_armored: &[u8], signature: &[u8], data: Option<&[u8]>) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.asc");
    fs_err::write(&key, keyring_armored).unwrap();
    let keyring = dir.path().join("key.gpg");
    let dearmor = Command::new("gpg")
        .args(["--batch", "--yes", "--dearmor", "-o"])
        .arg(&keyring)
        .arg(&key)
        .status()
        .unwrap();
    assert!(dearmor.success());
    let sig = dir.path().join("sig");
    fs_err::write(&sig, signature).unwrap();
    let mut cmd = Command::new("gpgv");
    cmd.args(["--status-fd", "1", "--keyring"])
        .arg(&keyring)
        .arg(&sig);
    if let Some(data) = data {
        let file = dir.path().join("data");
        fs_err::write(&file, data).unwrap();
        cmd.arg(&file);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn an_imported_key_signs_what_gpgv_accepts() {
    let operator = Home::new();
    let (fpr, secret) = operator.make_key("1y", "");
    let publisher = Home::new();
    let imported = import_secret_key(publisher.0.path(), &secret, None).unwrap();
    assert_eq!(imported, std::slice::from_ref(&fpr));

    let signer = Signer::open(publisher.0.path(), std::slice::from_ref(&fpr), None).unwrap();
    let public = signer.export_public().unwrap();
    assert!(public.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    let data = b"Origin: test\nSuite: bookworm\n";
    let inline = signer.clearsign(data).unwrap();
    assert!(String::from_utf8_lossy(&inline).contains("Suite: bookworm"));
    assert!(gpgv(&public, &inline, None));
    let detached = signer.detach_sign(data).unwrap();
    assert!(gpgv(&public, &detached, Some(data)));
    assert!(!gpgv(&public, &detached, Some(b"tampered")));
}

#[test]
fn a_passphrase_protected_key_signs_with_its_passphrase() {
    let operator = Home::new();
    let (fpr, secret) = operator.make_key("1y", "s3cret");
    let publisher = Home::new();
    import_secret_key(publisher.0.path(), &secret, Some("s3cret")).unwrap();
    let signer = Signer::open(
        publisher.0.path(),
        std::slice::from_ref(&fpr),
        Some("s3cret".into()),
    )
    .unwrap();
    let sig = signer.detach_sign(b"x").unwrap();
    assert!(gpgv(&signer.export_public().unwrap(), &sig, Some(b"x")));
}

#[test]
fn two_keys_sign_together_during_a_rotation() {
    let operator = Home::new();
    let (old, old_secret) = operator.make_key("1y", "");
    let other = Home::new();
    let (new, new_secret) = other.make_key("1y", "");
    let publisher = Home::new();
    import_secret_key(publisher.0.path(), &old_secret, None).unwrap();
    import_secret_key(publisher.0.path(), &new_secret, None).unwrap();
    let both = Signer::open(publisher.0.path(), &[old.clone(), new.clone()], None).unwrap();
    let sig = both.clearsign(b"data\n").unwrap();
    // A client that trusts only the new key, or only the old one, finds a good signature
    // by its key (apt accepts a file with one good signature from a trusted key).
    for fpr in [&old, &new] {
        let one = Signer::open(publisher.0.path(), std::slice::from_ref(fpr), None).unwrap();
        let (_, status) = gpgv_status(&one.export_public().unwrap(), &sig, None);
        assert!(
            status.contains(&format!("[GNUPG:] VALIDSIG {fpr}")),
            "no good signature by {fpr}:\n{status}"
        );
    }
    let key = both.export_public().unwrap();
    assert!(
        gpgv(&key, &sig, None),
        "both signatures verify with both keys"
    );
}

#[test]
fn missing_expired_and_public_only_keys_are_refused() {
    let publisher = Home::new();
    let err = Signer::open(
        publisher.0.path(),
        &["0123456789ABCDEF0123456789ABCDEF01234567".into()],
        None,
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("perestroika-publisher key import"),
        "{err}"
    );

    let operator = Home::new();
    let (fpr, secret) = operator.make_key("seconds=1", "");
    std::thread::sleep(std::time::Duration::from_secs(2));
    import_secret_key(publisher.0.path(), &secret, None).unwrap();
    let err = Signer::open(publisher.0.path(), std::slice::from_ref(&fpr), None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("expired"), "{err}");

    let public = operator.gpg(&["--armor", "--export", &fpr]);
    let err = import_secret_key(publisher.0.path(), &public, None).unwrap_err();
    assert!(
        err.to_string().contains("ASCII-armored secret key"),
        "{err}"
    );
}
