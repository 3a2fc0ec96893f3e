//! `perestroika-publisher check`: what the publisher needs to run, reported before it starts.

use perestroika_config::preflight::Report;
use perestroika_config::FarmConfig;
use perestroika_protocol::Stage;

use crate::keys::signer;

/// What the publisher needs to run: the signing section, a passphrase file only its owner
/// reads, and every key it signs with present and usable in its keyring.
pub fn preflight(farm: &FarmConfig) -> Report {
    let mut report =
        perestroika_protocol::queues::consuming_report(farm, "publisher", Stage::Publish);
    if !farm.fetch.workers.is_empty() {
        for tool in ["rsync", "prlimit"] {
            if !perestroika_host::command::on_path(tool) {
                report.error(
                    Some("fetch.workers"),
                    format!("{tool} is not installed; fetching from workers needs it (apt-get install rsync util-linux)"),
                );
            }
        }
    }
    let Some(signing) = &farm.signing else {
        report.error(
            None,
            "no [signing] section; the publisher needs the fingerprint of the key it signs with",
        );
        return report;
    };
    if let Some(file) = &signing.passphrase_file {
        report.readable_file("signing.passphrase_file", file, true);
        if report.has_errors() {
            return report;
        }
    }
    let signer = match signer(farm) {
        Ok(signer) => signer,
        Err(e) => {
            let mut causes = vec![e.to_string()];
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                causes.push(c.to_string());
                cause = c.source();
            }
            report.error(Some("signing.fingerprint"), causes.join(": "));
            return report;
        }
    };
    report.note(format!(
        "signing key {} is present and can sign",
        signer.fingerprint()
    ));
    for customer in &farm.customers {
        let review = signer.for_review(&customer.name);
        if std::ptr::eq(review, &signer) {
            report.warn(
                Some("signing.review_fingerprint"),
                format!(
                    "{}'s review and topic repositories are signed with the release's key, so \
                     whoever serves them can pass one off as the release; set it to a key of \
                     their own",
                    customer.name
                ),
            );
        } else {
            report.note(format!(
                "review key {} is present and signs {}'s review and topic repositories",
                review.fingerprint(),
                customer.name
            ));
        }
    }
    report
}
