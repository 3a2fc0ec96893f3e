//! `broker-users`: the broker user of each part and what RabbitMQ should let it do.

use clap::Args;
use perestroika_config::FarmConfig;
use perestroika_protocol::broker::vhost_of;
use perestroika_protocol::queues::Part;

#[derive(Args)]
pub struct BrokerUsersArgs {
    /// The users' names are `<prefix>-reactor`, `<prefix>-worker`, ….
    #[arg(long, default_value = "perestroika")]
    pub prefix: String,
}

/// Prints each part's user and permissions, as `rabbitmqctl` commands or as JSON.
pub fn print(farm: &FarmConfig, args: &BrokerUsersArgs, json: bool) -> anyhow::Result<()> {
    let prefix = &args.prefix;
    let vhost = vhost_of(&farm.broker.url);
    let users: Vec<serde_json::Value> = Part::ALL
        .iter()
        .map(|part| {
            let p = part.permissions();
            serde_json::json!({
                "part": part.name(),
                "user": format!("{prefix}-{}", part.name()),
                "vhost": vhost,
                "configure": p.configure,
                "write": p.write,
                "read": p.read,
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&users)?);
        return Ok(());
    }
    println!("# As the broker's administrator, after `perestroika-queue bootstrap`; each part's");
    println!("# [broker] url (or PERESTROIKA_BROKER__URL) then names its own user.");
    for u in &users {
        let field = |k: &str| u[k].as_str().unwrap_or_default().to_owned();
        println!(
            "rabbitmqctl add_user {} \"$(cat {}.password)\"",
            field("user"),
            field("user")
        );
        println!(
            "rabbitmqctl set_permissions -p '{}' {} '{}' '{}' '{}'",
            field("vhost"),
            field("user"),
            field("configure"),
            field("write"),
            field("read")
        );
    }
    Ok(())
}
