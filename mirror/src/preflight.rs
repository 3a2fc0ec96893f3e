//! What the mirror needs to run, checked by `check` and before `run` connects anywhere.

use perestroika_config::preflight::Report;
use perestroika_config::FarmConfig;
use perestroika_protocol::Stage;

use crate::rsync::Target;

/// At least one target, each of a supported form; for an SSH target its private key
/// (mode 0600 or stricter) and known_hosts; http URLs of http or https.
pub fn preflight(farm: &FarmConfig) -> Report {
    let mut report = perestroika_protocol::queues::consuming_report(farm, "mirror", Stage::Mirror);
    if farm.mirrors.is_empty() {
        report.error(
            Some("mirrors"),
            "no [[mirrors]] targets to copy the public tree to; add one with name and target",
        );
    }
    for (i, mirror) in farm.mirrors.iter().enumerate() {
        let key = |field: &str| format!("mirrors[{i}].{field}");
        let target = match Target::new(mirror) {
            Ok(target) => target,
            Err(e) => {
                report.error(Some(&key("target")), e.to_string());
                continue;
            }
        };
        report.note(format!(
            "mirror {} copies to {}",
            mirror.name,
            target.dest()
        ));
        if target.is_ssh() {
            match &mirror.ssh_key {
                Some(path) => report.readable_file(&key("ssh_key"), path, true),
                None => report.error(
                    Some(&key("ssh_key")),
                    format!(
                        "mirror {} is reached over SSH and needs `ssh_key`, the private key \
                         the mirror logs in with",
                        mirror.name
                    ),
                ),
            }
            match &mirror.known_hosts {
                Some(path) => report.readable_file(&key("known_hosts"), path, false),
                None => report.warn(
                    Some(&key("known_hosts")),
                    format!(
                        "mirror {}'s host key is looked up in this user's ~/.ssh/known_hosts; \
                         set `known_hosts` to a file holding it",
                        mirror.name
                    ),
                ),
            }
        } else {
            for (field, set) in [
                ("ssh_key", mirror.ssh_key.is_some()),
                ("known_hosts", mirror.known_hosts.is_some()),
            ] {
                if set {
                    report.warn(
                        Some(&key(field)),
                        format!(
                            "mirror {} is not reached over SSH, so `{field}` is not used",
                            mirror.name
                        ),
                    );
                }
            }
        }
        if let Some(url) = &mirror.http_url {
            report.url(&key("http_url"), url, &["http", "https"]);
        }
    }
    report
}
