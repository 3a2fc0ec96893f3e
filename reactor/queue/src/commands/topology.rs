//! `bootstrap` and `queues`: declaring the farm's queues and showing their depths.

use anyhow::Context;
use perestroika_config::FarmConfig;
use perestroika_protocol::broker::Broker;
use perestroika_protocol::topology;

/// Declares every queue the configuration calls for and lists them.
pub async fn bootstrap(broker: &Broker, farm: &FarmConfig, json: bool) -> anyhow::Result<()> {
    let names = topology::bootstrap(broker, farm)
        .await
        .context("declaring the queue topology")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&names)?);
    } else {
        for name in &names {
            println!("declared {name}");
        }
        println!("{} queues ready", names.len());
    }
    Ok(())
}

/// Shows each queue's depth, jobs in progress and consumers.
pub async fn show(broker: &Broker, farm: &FarmConfig, json: bool) -> anyhow::Result<()> {
    let report = topology::report(broker, farm).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{:<40} {:>9} {:>11} {:>9}",
        "QUEUE", "WAITING", "IN PROGRESS", "CONSUMERS"
    );
    for r in &report {
        let progress = r
            .in_progress
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        match r.stats {
            Some(s) => println!(
                "{:<40} {:>9} {:>11} {:>9}",
                r.queue, s.messages, progress, s.consumers
            ),
            None => println!(
                "{:<40} missing (run `perestroika-queue bootstrap`)",
                r.queue
            ),
        }
    }
    if farm.broker.management_url.is_none() {
        println!("(jobs in progress show with [broker] management_url, RabbitMQ's management API)");
    }
    Ok(())
}
