//! `client`: how a client uses a release, as the commands to run on it.

use clap::Args;
use perestroika_config::client::{self, AptClient};
use perestroika_config::{Family, FarmConfig};
use perestroika_host::cli::{known_release, UsageError};
use perestroika_protocol::messages::Target;

#[derive(Args)]
pub struct ClientArgs {
    /// The customer (as in `[[customers]] name`, e.g. acme).
    pub customer: String,
    /// The release series (e.g. 9.0).
    pub version: String,
    /// A suite of `publish.suites` (updates, proposed, …); default: the release suite.
    #[arg(long)]
    pub suite: Option<String>,
    /// Only this distro (default: every distro of the release).
    #[arg(long)]
    pub distro: Option<String>,
}

/// How a client uses suite `suite` of distro `distro` of a release (see
/// `perestroika_config::client`): the apt commands for a deb distro, the dnf command for an rpm
/// one.
pub fn client_lines(
    farm: &FarmConfig,
    customer: &str,
    version: &str,
    distro: &str,
    suite: &str,
) -> Vec<String> {
    let url = client::public_url(farm);
    let tree = Target::Release.tree(customer, version);
    let family = farm
        .release(customer, version)
        .and_then(|r| r.family_of(distro));
    match family {
        Some(Family::Rpm) => vec![client::dnf_install(url.as_deref(), &tree, suite, "PACKAGE")],
        _ => {
            let apt = AptClient::new(url.as_deref(), &tree, suite);
            let mut lines = apt.commands().to_vec();
            lines.push("apt-get update".into());
            lines
        }
    }
}

/// Prints the commands for each distro of the release (or the one asked for).
pub fn print(farm: &FarmConfig, args: &ClientArgs, json: bool) -> anyhow::Result<()> {
    let (customer, version) = (args.customer.as_str(), args.version.as_str());
    let (suite, distro) = (args.suite.as_deref(), args.distro.as_deref());
    let release = known_release(farm, customer, version)?;
    if let Some(name) = suite {
        if !farm.publish.suites.iter().any(|s| s == name) {
            return Err(UsageError(format!(
                "--suite {name} is not one of publish.suites ({})",
                farm.publish.suites.join(", ")
            ))
            .into());
        }
    }
    if let Some(d) = distro {
        if release.family_of(d).is_none() {
            return Err(UsageError(format!("{d} is not a distro of {customer} {version}")).into());
        }
    }
    let mut out = Vec::new();
    for (_, d) in release
        .distros()
        .filter(|(_, d)| distro.is_none_or(|w| w == *d))
    {
        let full = perestroika_tree::suite_name(d, suite);
        let lines = client_lines(farm, customer, version, d, &full);
        if !json {
            println!("# {full}");
            for line in &lines {
                println!("{line}");
            }
        }
        out.push(serde_json::json!({ "distro": d, "suite": full, "commands": lines }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
