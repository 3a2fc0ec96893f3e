//! `dead`: dead-lettered jobs listed with their reasons, or one sent back.

use clap::Subcommand;
use perestroika_config::FarmConfig;
use perestroika_protocol::broker::Broker;
use perestroika_protocol::dead_letters;

#[derive(Subcommand)]
pub enum DeadAction {
    /// List every dead-lettered message (the default).
    List,
    /// Send the dead-lettered message with this job id back to the queue it came from.
    Requeue {
        /// The job id, as `dead` lists it.
        job_id: String,
    },
}

/// Lists the dead letters, or requeues one.
pub async fn run(
    broker: &Broker,
    farm: &FarmConfig,
    action: Option<DeadAction>,
    json: bool,
) -> anyhow::Result<()> {
    match action.unwrap_or(DeadAction::List) {
        DeadAction::List => list(broker, farm, json).await,
        DeadAction::Requeue { job_id } => requeue(broker, farm, &job_id, json).await,
    }
}

async fn list(broker: &Broker, farm: &FarmConfig, json: bool) -> anyhow::Result<()> {
    let letters = dead_letters::list(broker, farm).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&letters)?);
    } else if letters.is_empty() {
        println!("no dead-lettered jobs");
    } else {
        for l in &letters {
            println!(
                "{}  {}  {}\n    reason: {}",
                l.job_id, l.origin, l.summary, l.reason
            );
        }
        println!(
            "{} dead-lettered; `perestroika-queue dead requeue JOB_ID` sends one back",
            letters.len()
        );
    }
    Ok(())
}

async fn requeue(
    broker: &Broker,
    farm: &FarmConfig,
    job_id: &str,
    json: bool,
) -> anyhow::Result<()> {
    match dead_letters::requeue(broker, farm, job_id).await? {
        Some(l) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&l)?);
            } else {
                println!("requeued {} to {} ({})", l.job_id, l.origin, l.summary);
            }
            Ok(())
        }
        None => {
            anyhow::bail!("no dead-lettered job {job_id}; `perestroika-queue dead` lists them")
        }
    }
}
