//! What an AMQP URL says: its user, virtual host and credentials, and the TLS it asks for.

use perestroika_config::settings::BrokerSettings;

use super::*;

/// The `user:password` an AMQP URL logs in with (`guest:guest` when it names none, as
/// RabbitMQ does).
pub fn credentials_of(url: &str) -> &str {
    url.split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .map_or("guest:guest", |(credentials, _)| credentials)
}

/// The user an AMQP URL logs in as.
pub(super) fn user_of(url: &str) -> String {
    let credentials = credentials_of(url);
    credentials
        .split_once(':')
        .map_or(credentials, |(user, _)| user)
        .to_owned()
}

/// The virtual host of an AMQP URL (`/` when it names none).
pub fn vhost_of(url: &str) -> String {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, path)| path.split('?').next().unwrap_or_default())
        .unwrap_or_default();
    if path.is_empty() {
        return "/".into();
    }
    path.replace("%2f", "/").replace("%2F", "/")
}

pub(super) fn strip_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The TLS settings of an `amqps://` connection: the configured certificate authorities (PEM,
/// besides the system's) and client certificate.
pub(super) fn tls_config(
    settings: &BrokerSettings,
) -> Result<lapin::tcp::OwnedTLSConfig, BrokerError> {
    let read = |path: &std::path::Path| {
        fs_err::read(path).map_err(|source| BrokerError::TlsFile {
            path: path.to_owned(),
            source,
        })
    };
    let cert_chain = match &settings.ca_file {
        Some(path) => Some(String::from_utf8_lossy(&read(path)?).into_owned()),
        None => None,
    };
    let identity = match (&settings.client_cert_file, &settings.client_key_file) {
        (Some(cert), Some(key)) => Some(lapin::tcp::OwnedIdentity::PKCS8 {
            pem: read(cert)?,
            key: read(key)?,
        }),
        _ => None,
    };
    Ok(lapin::tcp::OwnedTLSConfig {
        identity,
        cert_chain,
    })
}
