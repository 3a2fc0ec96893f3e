//! `promote`: a published package copied between suites of a release by the publisher, and its
//! answer shown.

use std::time::Duration;

use clap::Args;
use perestroika_config::FarmConfig;
use perestroika_host::cli::{known_release, UsageError};
use perestroika_protocol::broker::Broker;
use perestroika_protocol::messages::{Promotion, PromotionResult};
use perestroika_protocol::promotion::{self, PromotionError};

use super::client::client_lines;

#[derive(Args)]
pub struct PromoteArgs {
    /// The customer (as in `[[customers]] name`, e.g. acme).
    pub customer: String,
    /// The release series (e.g. 9.0).
    pub version: String,
    /// The source package, optionally with its version: greet or greet=1.1+p2.0.
    pub package: String,
    /// The suite to take it from (default: `publish.proposed`, where merges of a release in
    /// maintenance go).
    #[arg(long)]
    pub from: Option<String>,
    /// The suite to put it in (updates, security, holdback, …).
    #[arg(long)]
    pub to: String,
    /// Only these distros (repeatable; default: every distro that has the package).
    #[arg(long)]
    pub distro: Vec<String>,
    /// Promote even when dependencies are not satisfiable in the target suite.
    #[arg(long)]
    pub force: bool,
    /// Queue the promotion and return without waiting for its outcome.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the publisher's answer, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// Queues the promotion and, unless --no-wait, waits for the publisher's answer and shows it.
/// Fails when the publisher refused.
pub async fn run(
    broker: &Broker,
    farm: &FarmConfig,
    args: PromoteArgs,
    json: bool,
) -> anyhow::Result<()> {
    let from = args
        .from
        .clone()
        .unwrap_or_else(|| farm.publish.proposed.clone());
    let (name, wanted) = match args.package.split_once('=') {
        Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
        None => (args.package.clone(), None),
    };
    known_release(farm, &args.customer, &args.version)?;
    let promotion = Promotion::new(
        &args.customer,
        &args.version,
        &name,
        wanted.as_deref(),
        &from,
        &args.to,
        &args.distro,
        args.force,
    );
    let request = promotion::send(broker, promotion, !args.no_wait)
        .await
        .map_err(|e| match e {
            PromotionError::Invalid(e) => UsageError(e.to_string()).into(),
            other => anyhow::Error::from(other),
        })?;
    if args.no_wait {
        println!("queued promotion {} on {}", request.job_id, request.queue);
        return Ok(());
    }
    if !json {
        eprintln!(
            "queued promotion {} of {} from {from} to {}; waiting for the publisher",
            request.job_id, args.package, args.to
        );
    }
    let result = request
        .answer(broker, Duration::from_secs(args.timeout))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        show(farm, &args, &from, &result);
    }
    if let Some(e) = &result.error {
        anyhow::bail!("promotion refused: {e}");
    }
    if !result.promoted {
        anyhow::bail!(
            "promotion refused: {} relation(s) unsatisfiable in {}; promote what they need first, or use --force",
            result.missing.len(),
            args.to
        );
    }
    Ok(())
}

/// The publisher's answer for people: what was copied, what is unsatisfied, and how clients
/// of each suite that changed use it.
fn show(farm: &FarmConfig, args: &PromoteArgs, from: &str, result: &PromotionResult) {
    let (package, to) = (&args.package, &args.to);
    for line in &result.copied {
        println!("copied {line}");
    }
    for line in &result.missing {
        println!("unsatisfied {line}");
    }
    let Some(g) = result.generation else {
        return;
    };
    println!("promoted {package} from {from} to {to}: generation {g} is live");
    let mut suites: Vec<&str> = result
        .copied
        .iter()
        .filter_map(|l| l.split_once(':').map(|(suite, _)| suite))
        .collect();
    suites.dedup();
    for suite in suites {
        let distro = suite.strip_suffix(&format!("-{to}")).unwrap_or(suite);
        println!("clients of {suite} use it with (as root):");
        for line in client_lines(farm, &args.customer, &args.version, distro, suite) {
            println!("  {line}");
        }
    }
}
