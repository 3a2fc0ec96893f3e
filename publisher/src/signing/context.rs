//! gpgme contexts on the publisher's keyring: gpg found once, a passphrase given through the
//! loopback pinentry, and one context per thread reused between signatures.

use std::path::{Path, PathBuf};

use gpgme::{Context, PinentryMode, Protocol};

use super::error::{gpg, SignError};

pub(super) fn context(home: &Path, passphrase: Option<&str>) -> Result<Context, SignError> {
    fs_err::create_dir_all(home).map_err(|source| SignError::Io {
        path: home.to_owned(),
        source,
    })?;
    restrict(home);
    let home_str = home.to_str().ok_or_else(|| SignError::KeyringPath {
        home: home.to_owned(),
    })?;
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

/// Closes the keyring directory to everyone but its owner.
pub(super) fn restrict(home: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs_err::set_permissions(home, std::fs::Permissions::from_mode(0o700));
}

/// Runs `f` with `ctx`, answering gpg's passphrase requests with `passphrase`, if any.
pub(super) fn with_passphrase<R>(
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

thread_local! {
    /// One gpgme context per thread and keyring, reused: starting one probes the gpg engine
    /// (several processes), which would otherwise dominate a small publish.
    static SIGNING: std::cell::RefCell<Option<(PathBuf, Context)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's context for the keyring at `home` (made on first use).
pub(super) fn with_thread_context<R>(
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
