//! The operator's key, through gpgme: imported once into the publisher's private keyring, then
//! used for every signature the farm makes. Nothing else in the farm sees the secret key.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use gpgme::{Context, ExportMode, PinentryMode, Protocol, SignMode};
use perestroika_config::settings::PublishSettings;
use perestroika_host::command::Deadline;
use sha2::Digest;

/// A signing problem, named so that the operator knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("gpgme: {what}: {source}")]
    Gpg {
        what: String,
        #[source]
        source: gpgme::Error,
    },
    #[error("signing key {fingerprint} is not in the publisher's keyring {home}; import it with `perestroika-publisher key import FILE`")]
    Missing { fingerprint: String, home: PathBuf },
    #[error("signing key {fingerprint} cannot sign: {why}")]
    Unusable { fingerprint: String, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Import(String),
    #[error("gpg returned a malformed {what} ({len} bytes)")]
    Malformed { what: &'static str, len: usize },
    #[error("gpgme: signing with {fingerprint} did not finish within {} s and was abandoned (is gpg-agent answering?); raise `{key}` if it needs longer", limit.as_secs())]
    TimedOut {
        fingerprint: String,
        limit: std::time::Duration,
        key: &'static str,
    },
}

impl SignError {
    /// Whether a signature ran out of time (the farm could not do it now).
    pub fn is_timeout(&self) -> bool {
        matches!(self, SignError::TimedOut { .. })
    }
}

fn gpg(what: impl Into<String>) -> impl FnOnce(gpgme::Error) -> SignError {
    let what = what.into();
    move |source| SignError::Gpg { what, source }
}

fn context(home: &Path, passphrase: Option<&str>) -> Result<Context, SignError> {
    fs_err::create_dir_all(home).map_err(|source| SignError::Io {
        path: home.to_owned(),
        source,
    })?;
    restrict(home);
    let home_str = home
        .to_str()
        .ok_or_else(|| SignError::Import("keyring path is not UTF-8".into()))?;
    let process_keyring = lean_engine(home_str);
    let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(gpg("starting gpg"))?;
    if !process_keyring {
        ctx.set_engine_home_dir(home_str)
            .map_err(gpg("selecting the keyring"))?;
    }
    ctx.set_armor(true);
    if passphrase.is_some() {
        ctx.set_pinentry_mode(PinentryMode::Loopback)
            .map_err(gpg("pinentry loopback"))?;
    }
    Ok(ctx)
}

/// Tells gpgme, before its first use, where gpg is and which keyring the process uses, instead
/// of letting it ask gpgconf and probe every engine (gpgconf, gpgsm and gpg `--version`, seven
/// processes — most of a small publish's time), and once instead of again for each context.
/// Returns whether `home` is that process-wide keyring (else a context must name its own).
fn lean_engine(home: &str) -> bool {
    static HOME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let global = HOME.get_or_init(|| {
        let gpg = ["/usr/bin/gpg", "/bin/gpg", "/usr/local/bin/gpg"]
            .into_iter()
            .find(|p| Path::new(p).is_file())?;
        gpgme::set_flag("disable-gpgconf", "1").ok()?;
        gpgme::set_flag("gpg-name", gpg).ok()?;
        gpgme::init()
            .set_engine_info(Protocol::OpenPgp, Some(gpg), Some(home))
            .ok()?;
        Some(home.to_owned())
    });
    global.as_deref() == Some(home)
}

fn restrict(home: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs_err::set_permissions(home, std::fs::Permissions::from_mode(0o700));
}

fn with_passphrase<R>(
    ctx: Context,
    passphrase: Option<&str>,
    f: impl FnOnce(&mut Context) -> Result<R, SignError>,
) -> Result<R, SignError> {
    match passphrase {
        None => {
            let mut ctx = ctx;
            f(&mut ctx)
        }
        Some(pass) => {
            let pass = pass.to_owned();
            let mut ctx = ctx;
            ctx.with_passphrase_provider(
                move |_: gpgme::PassphraseRequest<'_>, out: &mut dyn std::io::Write| {
                    out.write_all(pass.as_bytes())?;
                    Ok(())
                },
                |ctx| f(ctx),
            )
        }
    }
}

/// Where the armored export of `fingerprints` is kept (inside the keyring directory, which
/// gpg does not mind).
fn public_cache(home: &Path, fingerprints: &[String]) -> PathBuf {
    let id = hex::encode(&sha2::Sha256::digest(fingerprints.join(",").as_bytes())[..8]);
    home.join(format!("perestroika-public-{id}.asc"))
}

/// Drops every kept export: an import may change a public key (a new expiry, a new user id).
fn forget_public_exports(home: &Path) {
    for entry in fs_err::read_dir(home).into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("perestroika-public-")
        {
            let _ = fs_err::remove_file(entry.path());
        }
    }
}

/// Imports an ASCII-armored secret key into the keyring at `home`; returns the fingerprints
/// of the secret keys it holds afterwards.
pub fn import_secret_key(
    home: &Path,
    armored: &[u8],
    passphrase: Option<&str>,
) -> Result<Vec<String>, SignError> {
    if !armored.starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----") {
        return Err(SignError::Import(
            "expected an ASCII-armored secret key (`gpg --armor --export-secret-keys FPR`)".into(),
        ));
    }
    let ctx = context(home, passphrase)?;
    forget_public_exports(home);
    with_passphrase(ctx, passphrase, |ctx| {
        let result = ctx.import(armored).map_err(gpg("importing the key"))?;
        if result.secret_imported() == 0 && result.secret_unchanged() == 0 {
            return Err(SignError::Import("the file holds no secret key".into()));
        }
        let mut out = Vec::new();
        for key in ctx.secret_keys().map_err(gpg("listing keys"))? {
            let key = key.map_err(gpg("listing keys"))?;
            if let Ok(fpr) = key.fingerprint() {
                out.push(fpr.to_owned());
            }
        }
        Ok(out)
    })
}

thread_local! {
    /// One gpgme context per thread and keyring, reused: starting one probes the gpg engine
    /// (several processes), which would otherwise dominate a small publish.
    static SIGNING: std::cell::RefCell<Option<(PathBuf, Context)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's context for the keyring at `home` (made on first use).
fn with_thread_context<R>(
    home: &Path,
    f: impl FnOnce(&mut Context) -> Result<R, SignError>,
) -> Result<R, SignError> {
    SIGNING.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(h, _)| h != home) {
            *slot = Some((home.to_owned(), context(home, None)?));
        }
        let (_, ctx) = slot.as_mut().expect("just set");
        f(ctx)
    })
}

/// Work for a [`signing_helper`].
type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The helper thread this thread's signatures are made on (see [`on_helper`]).
    static HELPER: std::cell::RefCell<Option<std::sync::mpsc::Sender<Job>>> =
        const { std::cell::RefCell::new(None) };
}

/// A thread that runs the jobs it is sent, in order, keeping its own gpgme context between
/// them (see [`with_thread_context`]).
fn signing_helper() -> std::sync::mpsc::Sender<Job> {
    let (jobs, inbox) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("gpgme".into())
        .spawn(move || inbox.into_iter().for_each(|job| job()))
        .expect("starting the signing thread");
    jobs
}

/// Runs `f` on this thread's signing helper and waits at most `deadline` for it.
///
/// gpgme signs in this process, through gpg and gpg-agent, and either can hang (an agent
/// that stopped answering, a lock in the keyring): a local key does not make a signature
/// safe from that. So the wait is bounded: a helper that does not answer in time is
/// abandoned (it ends once gpg returns, if ever) and the next signature starts a fresh one,
/// and the publish that waited is returned for another try.
fn on_helper<R: Send + 'static>(
    deadline: Deadline,
    fingerprint: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, SignError> {
    let (answer, answered) = std::sync::mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = answer.send(f());
    });
    HELPER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let helper = slot.get_or_insert_with(signing_helper);
        if let Err(std::sync::mpsc::SendError(job)) = helper.send(job) {
            // The helper is gone (it panicked): a fresh one takes the job.
            let fresh = signing_helper();
            fresh.send(job).expect("a new signing thread takes work");
            *slot = Some(fresh);
        }
    });
    let timed_out = || SignError::TimedOut {
        fingerprint: fingerprint.to_owned(),
        limit: deadline.limit,
        key: deadline.key,
    };
    match answered.recv_timeout(deadline.limit) {
        Ok(r) => Ok(r),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            HELPER.with(|cell| cell.borrow_mut().take());
            tracing::warn!(fingerprint, limit = ?deadline.limit, "a signature did not finish in time; its signing thread is abandoned");
            Err(timed_out())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            HELPER.with(|cell| cell.borrow_mut().take());
            panic!("the signing thread panicked");
        }
    }
}

/// Signs with the configured keys (the primary one, plus any during a rotation).
pub struct Signer {
    home: PathBuf,
    fingerprints: Vec<String>,
    passphrase: Option<String>,
    /// The keys once checked.
    checked: std::sync::OnceLock<Checked>,
    /// A check still running on a thread of its own (see [`Signer::open_in_background`]).
    pending: std::sync::Mutex<Option<std::thread::JoinHandle<Result<Checked, SignError>>>>,
    /// What review and topic repositories are signed with, when not these keys: by customer,
    /// `""` for every customer without one of its own.
    reviews: std::collections::BTreeMap<String, Signer>,
    /// How long one signature may take (`publish.command_timeout_secs`).
    deadline: Deadline,
}

/// What checking the keys yields.
struct Checked {
    /// The armored public keys, exported once.
    public: Vec<u8>,
    /// The signing keys, looked up once.
    keys: Vec<gpgme::Key>,
}

impl Signer {
    /// Opens the keyring and checks that every key is there, has its secret part, can sign and
    /// has not expired or been revoked.
    pub fn open(
        home: &Path,
        fingerprints: &[String],
        passphrase: Option<String>,
    ) -> Result<Self, SignError> {
        let signer = Self::unchecked(home, fingerprints, passphrase, None);
        signer.checked()?;
        Ok(signer)
    }

    /// Like [`Signer::open`], with the check (which starts gpg several times) running on a
    /// thread of its own while the caller goes on; its outcome arrives with the first
    /// signature or [`Signer::ready`]. For one-shot use, where that start-up would otherwise
    /// add to every publish.
    pub fn open_in_background(
        home: &Path,
        fingerprints: &[String],
        passphrase: Option<String>,
    ) -> Self {
        let (h, f, p) = (home.to_owned(), fingerprints.to_vec(), passphrase.clone());
        let check = std::thread::spawn(move || Self::check_keys(&h, &f, p.as_deref()));
        Self::unchecked(home, fingerprints, passphrase, Some(check))
    }

    fn unchecked(
        home: &Path,
        fingerprints: &[String],
        passphrase: Option<String>,
        pending: Option<std::thread::JoinHandle<Result<Checked, SignError>>>,
    ) -> Self {
        Self {
            home: home.to_owned(),
            fingerprints: fingerprints.to_vec(),
            passphrase,
            checked: std::sync::OnceLock::new(),
            pending: std::sync::Mutex::new(pending),
            reviews: std::collections::BTreeMap::new(),
            deadline: PublishSettings::default().command_deadline(),
        }
    }

    /// Bounds each signature by `deadline` (this signer's and its review signers').
    pub fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = deadline;
        for review in self.reviews.values_mut() {
            review.deadline = deadline;
        }
        self
    }

    /// Signs the review and topic repositories of `customer` (of every customer without a key
    /// of its own, for `None`) with `review` rather than these keys.
    pub fn with_review(mut self, customer: Option<&str>, review: Signer) -> Self {
        self.reviews
            .insert(customer.unwrap_or_default().to_owned(), review);
        self
    }

    /// What signs `customer`'s review and topic repositories: its own review key, else the
    /// farm's, else these keys.
    pub fn for_review(&self, customer: &str) -> &Signer {
        self.reviews
            .get(customer)
            .or_else(|| self.reviews.get(""))
            .unwrap_or(self)
    }

    /// Waits for the keys' check (the review keys' too); an error says what is wrong.
    pub fn ready(&self) -> Result<(), SignError> {
        self.checked()?;
        self.reviews.values().try_for_each(Signer::ready)
    }

    fn checked(&self) -> Result<&Checked, SignError> {
        if let Some(c) = self.checked.get() {
            return Ok(c);
        }
        let pending = self.pending.lock().expect("signer lock").take();
        let checked = match pending {
            Some(thread) => thread.join().expect("the key check does not panic")?,
            None => Self::check_keys(&self.home, &self.fingerprints, self.passphrase.as_deref())?,
        };
        Ok(self.checked.get_or_init(|| checked))
    }

    fn check_keys(
        home: &Path,
        fingerprints: &[String],
        passphrase: Option<&str>,
    ) -> Result<Checked, SignError> {
        if passphrase.is_none() {
            return with_thread_context(home, |ctx| Self::check(ctx, home, fingerprints));
        }
        let mut ctx = context(home, passphrase)?;
        Self::check(&mut ctx, home, fingerprints)
    }

    fn check(
        ctx: &mut Context,
        home: &Path,
        fingerprints: &[String],
    ) -> Result<Checked, SignError> {
        let mut keys = Vec::new();
        for fpr in fingerprints {
            let key = ctx
                .get_secret_key(fpr.as_str())
                .map_err(|_| SignError::Missing {
                    fingerprint: fpr.clone(),
                    home: home.to_owned(),
                })?;
            let unusable = |why: &str| SignError::Unusable {
                fingerprint: fpr.clone(),
                why: why.to_owned(),
            };
            if key.is_revoked() {
                return Err(unusable("it is revoked"));
            }
            if key.is_expired() {
                return Err(unusable(
                    "it has expired; extend it (`gpg --quick-set-expire`) and import it again",
                ));
            }
            if key.is_disabled() || key.is_invalid() {
                return Err(unusable("it is disabled or invalid"));
            }
            let now = SystemTime::now();
            let usable_subkey = key.subkeys().any(|s| {
                s.can_sign()
                    && !s.is_revoked()
                    && !s.is_expired()
                    && s.expiration_time().is_none_or(|t| t > now)
            });
            if !usable_subkey {
                return Err(unusable("no subkey can sign (all expired or revoked)"));
            }
            keys.push(key);
        }
        // The export is kept beside the keyring until the next key import.
        let cache = public_cache(home, fingerprints);
        let public = match fs_err::read(&cache) {
            Ok(bytes) if !bytes.is_empty() => bytes,
            _ => {
                let mut public = Vec::new();
                ctx.export(
                    fingerprints.iter().map(String::as_str),
                    ExportMode::empty(),
                    &mut public,
                )
                .map_err(gpg("exporting the public key"))?;
                let _ = perestroika_host::files::write_atomic(&cache, &public);
                public
            }
        };
        Ok(Checked { public, keys })
    }

    /// One signature, made on this thread's signing helper within the deadline (see
    /// [`on_helper`]).
    fn sign(&self, mode: SignMode, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let keys = self.checked()?.keys.clone();
        let (home, fingerprints, passphrase, data) = (
            self.home.clone(),
            self.fingerprints.clone(),
            self.passphrase.clone(),
            data.to_vec(),
        );
        on_helper(self.deadline, self.fingerprint(), move || {
            sign_with(
                &home,
                &fingerprints,
                passphrase.as_deref(),
                &keys,
                mode,
                &data,
            )
        })?
    }

    /// An inline clear-text signature (`InRelease`).
    pub fn clearsign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        self.checked_sign(SignMode::Clear, data)
    }

    /// A detached armored signature (`Release.gpg`, `repomd.xml.asc`).
    pub fn detach_sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        self.checked_sign(SignMode::Detached, data)
    }

    /// Signs, and checks gpg's output before anyone publishes it; output that is not well
    /// formed is made once more before it is an error.
    fn checked_sign(&self, mode: SignMode, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let inline = matches!(mode, SignMode::Clear);
        let first = self.sign(mode, data)?;
        let Err(err) = well_formed(&first, inline) else {
            return Ok(first);
        };
        tracing::warn!("{err}; signing again");
        let second = self.sign(mode, data)?;
        well_formed(&second, inline)?;
        Ok(second)
    }

    /// The public halves of the signing keys, armored (`KEY.asc`).
    pub fn export_public(&self) -> Result<Vec<u8>, SignError> {
        Ok(self.checked()?.public.clone())
    }

    /// The keyring directory (for tools that call gpg themselves, such as rpmsign).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The primary signing key's fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprints[0]
    }
}

/// Signs `data` with `keys` (their `fingerprints`) from the keyring at `home`.
fn sign_with(
    home: &Path,
    fingerprints: &[String],
    passphrase: Option<&str>,
    keys: &[gpgme::Key],
    mode: SignMode,
    data: &[u8],
) -> Result<Vec<u8>, SignError> {
    if passphrase.is_none() {
        return with_thread_context(home, |ctx| {
            ctx.clear_signers();
            for (key, fpr) in keys.iter().zip(fingerprints) {
                ctx.add_signer(key)
                    .map_err(gpg(format!("selecting key {fpr}")))?;
            }
            let mut out = Vec::new();
            ctx.sign(mode, data, &mut out).map_err(gpg("signing"))?;
            Ok(out)
        });
    }
    let mut ctx = context(home, passphrase)?;
    for (key, fpr) in keys.iter().zip(fingerprints) {
        ctx.add_signer(key)
            .map_err(gpg(format!("selecting key {fpr}")))?;
    }
    with_passphrase(ctx, passphrase, |ctx| {
        let mut out = Vec::new();
        ctx.sign(mode, data, &mut out).map_err(gpg("signing"))?;
        Ok(out)
    })
}

/// Checks the armor of gpg's output: a detached signature is one signature block; a
/// clear-signed file is its header, the text and one signature block at the end. A client
/// refuses anything else as unsigned, so it is never published.
fn well_formed(armored: &[u8], inline: bool) -> Result<(), SignError> {
    const HEADER: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----\n";
    const BLOCK: &[u8] = b"-----BEGIN PGP SIGNATURE-----\n";
    const END: &[u8] = b"\n-----END PGP SIGNATURE-----\n";
    let blocks = armored.windows(BLOCK.len()).filter(|w| *w == BLOCK).count();
    let starts = if inline { HEADER } else { BLOCK };
    if armored.starts_with(starts) && armored.ends_with(END) && blocks == 1 {
        return Ok(());
    }
    Err(SignError::Malformed {
        what: if inline {
            "clear-signed file"
        } else {
            "detached signature"
        },
        len: armored.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature that does not come back in time is abandoned with an error naming the key
    /// to raise, and the next one is made on a fresh helper.
    #[test]
    fn a_signature_that_hangs_is_abandoned_at_the_deadline() {
        let deadline = Deadline::new(
            std::time::Duration::from_millis(200),
            "publish.command_timeout_secs",
        );
        let started = std::time::Instant::now();
        let err = on_helper(deadline, "ABCD", || {
            std::thread::sleep(std::time::Duration::from_secs(30))
        })
        .unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(err.is_timeout(), "{err}");
        assert!(
            err.to_string().contains("publish.command_timeout_secs"),
            "{err}"
        );
        assert_eq!(on_helper(deadline, "ABCD", || 7).unwrap(), 7);
    }
    use std::process::Command;

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
    fn gpgv_status(
        keyring_armored: &[u8],
        signature: &[u8],
        data: Option<&[u8]>,
    ) -> (bool, String) {
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
    fn only_complete_armor_passes_the_check() {
        let block = "-----BEGIN PGP SIGNATURE-----\n\niHUE\n=abcd\n-----END PGP SIGNATURE-----\n";
        let inline =
            format!("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: x\n{block}");
        assert!(well_formed(inline.as_bytes(), true).is_ok());
        assert!(well_formed(block.as_bytes(), false).is_ok());
        // Cut short, without its signature, twice signed in two blocks, or of the other kind.
        let cut = &inline.as_bytes()[..inline.len() - 10];
        let unsigned = inline.replace(block, "");
        let two = format!("{inline}{block}");
        for bad in [cut, unsigned.as_bytes(), two.as_bytes(), block.as_bytes()] {
            let err = well_formed(bad, true).unwrap_err();
            assert!(
                err.to_string().contains("malformed clear-signed file"),
                "{err}"
            );
        }
        assert!(well_formed(inline.as_bytes(), false).is_err());
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
}
