//! The [`Signer`]: the configured keys (and the review keys), checked once, signing each file
//! on a helper thread within the deadline.

use std::path::{Path, PathBuf};

use gpgme::SignMode;
use perestroika_config::settings::PublishSettings;
use perestroika_host::command::Deadline;

use super::armor::well_formed;
use super::check::{check_keys, Checked};
use super::context::{context, with_passphrase, with_thread_context};
use super::error::{gpg, SignError};
use super::helper::on_helper;

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
        let check = std::thread::spawn(move || check_keys(&h, &f, p.as_deref()));
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
            None => check_keys(&self.home, &self.fingerprints, self.passphrase.as_deref())?,
        };
        Ok(self.checked.get_or_init(|| checked))
    }

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
