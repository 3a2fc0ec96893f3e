//! Signatures made on a helper thread and waited for at most a deadline: gpgme signs in this
//! process, through gpg and gpg-agent, and either can hang.

use perestroika_host::command::Deadline;

use super::error::SignError;

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
pub(super) fn on_helper<R: Send + 'static>(
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
}
