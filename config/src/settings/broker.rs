//! The `[broker]` section: how to reach RabbitMQ and how queues behave.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::*;

/// How to reach RabbitMQ and how queues behave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    /// AMQP URL, e.g. `amqp://user:pass@127.0.0.1:5672/%2f`.
    pub url: String,
    /// The other nodes of the broker's cluster, as AMQP URLs of the same user and virtual
    /// host: tried in turn when the node at `url` cannot be reached, at the start and at every
    /// reconnection.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Deliveries of one message before it is dead-lettered.
    #[serde(default = "default_delivery_limit")]
    pub delivery_limit: u32,
    /// Longest pause between reconnection attempts, in seconds.
    #[serde(default = "default_reconnect_max_secs")]
    pub reconnect_max_secs: u64,
    /// With `amqps://`: PEM file of the certificate authorities the broker's certificate is
    /// checked against, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// With `amqps://`: PEM client certificate to present (with `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// With `amqps://`: PEM (PKCS#8) private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// RabbitMQ's management API (`http://host:15672`), read with the URL's user: lets
    /// `perestroika-queue queues` show the messages in progress (delivered, not yet
    /// acknowledged), which AMQP does not tell.
    #[serde(default)]
    pub management_url: Option<String>,
}

impl BrokerSettings {
    /// Every node's URL: `url` first, then `urls`.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.url.as_str()).chain(self.urls.iter().map(String::as_str))
    }
}
