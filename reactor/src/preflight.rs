//! What the reactor needs to run, checked by `check` and before `run` connects anywhere.

use perestroika_config::preflight::Report;
use perestroika_config::FarmConfig;

/// The Gerrit section with a readable private key (mode 0600 or stricter) and known_hosts,
/// clone and link URLs of supported schemes, and the mapping rules in force.
pub fn preflight(farm: &FarmConfig) -> Report {
    let mut report = Report::new(farm, "reactor");
    let Some(gerrit) = &farm.gerrit else {
        report.error(
            None,
            "no [gerrit] section; the reactor needs host, user, key_file and known_hosts \
             (see config/examples/farm.toml)",
        );
        return report;
    };
    report.note(format!(
        "gerrit: {}@{}:{}",
        gerrit.user, gerrit.host, gerrit.port
    ));
    report.readable_file("gerrit.key_file", &gerrit.key_file, true);
    report.readable_file("gerrit.known_hosts", &gerrit.known_hosts, false);
    if let Some(url) = &gerrit.git_url {
        report.url(
            "gerrit.git_url",
            url,
            &["ssh", "https", "http", "git", "file"],
        );
    }
    if let Some(url) = &gerrit.public_url {
        report.url("gerrit.public_url", url, &["http", "https"]);
    }
    let rules = farm
        .mapping
        .clone()
        .unwrap_or_else(perestroika_config::mapping::default_rules);
    for rule in rules {
        let projects = match (&rule.combined, &rule.code, &rule.packaging) {
            (Some(c), _, _) => c.clone(),
            (None, Some(c), Some(p)) => format!("{c} + {p}"),
            _ => String::new(),
        };
        report.note(format!(
            "rule {}: {} on branch {}",
            rule.name, projects, rule.branch
        ));
    }
    report
}
