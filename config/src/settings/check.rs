//! Checks of a loaded configuration that serde cannot express.

use std::collections::BTreeSet;

use super::*;
use crate::error::ConfigError;
use crate::names::{check_customer, check_token, check_version};

impl FarmConfig {
    pub(super) fn invalid(
        &self,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.source.clone(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.broker.url;
        for (key, node) in std::iter::once(("broker.url", url))
            .chain(self.broker.urls.iter().map(|u| ("broker.urls", u)))
        {
            if !(node.starts_with("amqp://") || node.starts_with("amqps://")) {
                return Err(self.invalid(
                    key,
                    format!("expected an amqp:// or amqps:// URL, found {node:?}"),
                ));
            }
        }
        let tls_files = self.broker.ca_file.is_some()
            || self.broker.client_cert_file.is_some()
            || self.broker.client_key_file.is_some();
        if tls_files && !url.starts_with("amqps://") {
            return Err(self.invalid(
                "broker.url",
                "ca_file and client certificates are for TLS: use an amqps:// URL",
            ));
        }
        if self.broker.client_cert_file.is_some() != self.broker.client_key_file.is_some() {
            return Err(self.invalid(
                "broker.client_key_file",
                "a client certificate needs its key, and a key its certificate: set both client_cert_file and client_key_file",
            ));
        }
        if let Some(url) = &self.public.url {
            BaseUrl::parse(url).map_err(|e| self.invalid("public.url", e))?;
            if self.public.keys.is_empty() {
                return Err(self.invalid(
                    "public.url",
                    "reading the public tree over http needs the farm's public key pinned: set \
                     [public] keys to the file(s) `perestroika-publisher export-key` wrote",
                ));
            }
        }
        if self.public.timeout_secs == 0 {
            return Err(self.invalid("public.timeout_secs", "expected at least 1"));
        }
        if self.broker.delivery_limit == 0 {
            return Err(self.invalid("broker.delivery_limit", "expected at least 1"));
        }
        for (key, size) in [
            ("build.tmpfs_size", &self.build.tmpfs_size),
            ("build.tmp_size", &self.build.tmp_size),
            ("build.memory", &self.build.memory),
        ] {
            if size_bytes(size).is_none_or(|b| b == 0) {
                return Err(self.invalid(
                    key,
                    format!("expected a size such as \"8g\" or \"512m\", found {size:?}"),
                ));
            }
        }
        let publish = &self.publish;
        if publish.keep_snapshots != 0 && publish.keep_snapshots <= publish.keep_generations.max(1)
        {
            return Err(self.invalid(
                "publish.keep_snapshots",
                format!(
                    "{} snapshots cannot hold the live one and the {} previous ones whose indexes \
                     stay reachable by hash (publish.keep_generations, and at least the previous \
                     one, which a mirror may still be copying); set it to {} or more, or 0 to keep \
                     every snapshot",
                    publish.keep_snapshots,
                    publish.keep_generations.max(1),
                    publish.keep_generations.max(1) + 1
                ),
            ));
        }
        if self.build.slots == 0 {
            return Err(self.invalid("build.slots", "expected at least 1"));
        }
        if self.customers.is_empty() {
            return Err(self.invalid("customers", "expected at least one [[customers]] entry"));
        }
        let mut customers = BTreeSet::new();
        for (ci, customer) in self.customers.iter().enumerate() {
            let key = format!("customers[{ci}].name");
            check_customer(&customer.name).map_err(|e| self.invalid(&key, e.to_string()))?;
            if !customers.insert(&customer.name) {
                return Err(
                    self.invalid(key, format!("customer {:?} appears twice", customer.name))
                );
            }
            if customer.versions.is_empty() {
                return Err(self.invalid(
                    format!("customers[{ci}].versions"),
                    format!("customer {:?} has no versions", customer.name),
                ));
            }
            let mut versions = BTreeSet::new();
            for (vi, release) in customer.versions.iter().enumerate() {
                let key = format!("customers[{ci}].versions[{vi}]");
                check_version(&release.name)
                    .map_err(|e| self.invalid(format!("{key}.name"), e.to_string()))?;
                if !versions.insert(&release.name) {
                    return Err(self.invalid(
                        format!("{key}.name"),
                        format!("version {:?} appears twice", release.name),
                    ));
                }
                if release.deb.is_empty() && release.rpm.is_empty() {
                    return Err(self.invalid(
                        key,
                        "expected at least one distro in `deb` (e.g. \"bookworm\") or `rpm` (e.g. \"el9\")",
                    ));
                }
                let mut distros = BTreeSet::new();
                for (family, distro) in release.distros() {
                    check_token("distro", distro)
                        .map_err(|e| self.invalid(format!("{key}.{family}"), e.to_string()))?;
                    if !distros.insert(distro) {
                        return Err(self.invalid(
                            format!("{key}.{family}"),
                            format!("distro {distro:?} is listed twice"),
                        ));
                    }
                }
                for arch in &release.arches {
                    check_token("architecture", arch)
                        .map_err(|e| self.invalid(format!("{key}.arches"), e.to_string()))?;
                }
            }
        }
        self.validate_images()?;
        for (distro, root) in &self.rpm_roots {
            let key = format!("rpm_roots.{distro}");
            check_token("distro", distro).map_err(|e| self.invalid(&key, e.to_string()))?;
            if root.repos.is_empty() {
                return Err(self.invalid(
                    format!("{key}.repos"),
                    "expected at least one repository URL to bootstrap from",
                ));
            }
            check_token("release version", &root.releasever)
                .map_err(|e| self.invalid(format!("{key}.releasever"), e.to_string()))?;
        }
        for (i, suite) in self.publish.suites.iter().enumerate() {
            check_token("suite", suite)
                .map_err(|e| self.invalid(format!("publish.suites[{i}]"), e.to_string()))?;
        }
        // `promote --from` defaults to the proposed suite, and releases in maintenance
        // publish into it: it must be one of the suites whether or not one is in maintenance.
        if !self.publish.suites.contains(&self.publish.proposed) {
            let maintained = self
                .releases()
                .find(|(_, r)| r.state == ReleaseState::Maintenance)
                .map(|(c, r)| {
                    format!(
                        "{} {} is in maintenance, so its merges publish into it; ",
                        c.name, r.name
                    )
                })
                .unwrap_or_default();
            return Err(self.invalid(
                "publish.proposed",
                format!(
                    "the suite {:?} is not among publish.suites ({}), which lacks it; {maintained}\
                     add it there or name one of them here",
                    self.publish.proposed,
                    self.publish.suites.join(", ")
                ),
            ));
        }
        if let Some(signing) = &self.signing {
            let fpr = &signing.fingerprint;
            for (key, fpr) in std::iter::once(("signing.fingerprint".to_owned(), fpr)).chain(
                signing
                    .also_sign_with
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (format!("signing.also_sign_with[{i}]"), f)),
            ) {
                if let Err(e) = fingerprint(fpr) {
                    return Err(self.invalid(key, e.to_string()));
                }
            }
            let reviews = std::iter::once((
                "signing.review_fingerprint".to_owned(),
                &signing.review_fingerprint,
            ))
            .chain(self.customers.iter().enumerate().map(|(i, c)| {
                (
                    format!("customers[{i}].review_fingerprint"),
                    &c.review_fingerprint,
                )
            }));
            for (key, review) in reviews {
                let Some(review) = review else { continue };
                let review = fingerprint(review).map_err(|e| self.invalid(&key, e.to_string()))?;
                if signing.pinned().contains(&review) {
                    return Err(self.invalid(
                        key,
                        "a review key must not be a key releases are signed with: a client \
                         trusting the release would take review repositories for it",
                    ));
                }
            }
        } else if let Some(i) = self
            .customers
            .iter()
            .position(|c| c.review_fingerprint.is_some())
        {
            return Err(self.invalid(
                format!("customers[{i}].review_fingerprint"),
                "a review key needs a [signing] section (the release's key)",
            ));
        }
        for (key, value) in [
            (
                "serve.max_connections",
                u64::from(self.serve.max_connections),
            ),
            ("serve.header_timeout_secs", self.serve.header_timeout_secs),
            ("serve.stall_timeout_secs", self.serve.stall_timeout_secs),
            ("build.git_timeout_secs", self.build.git_timeout_secs),
            (
                "publish.command_timeout_secs",
                self.publish.command_timeout_secs,
            ),
            (
                "gerrit.command_timeout_secs",
                self.gerrit.as_ref().map_or(1, |g| g.command_timeout_secs),
            ),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "expected at least 1"));
            }
        }
        if let Some(gerrit) = &self.gerrit {
            if gerrit.host.is_empty() {
                return Err(self.invalid("gerrit.host", "expected a host name"));
            }
            if gerrit.recheck_phrase.trim().is_empty() {
                return Err(self.invalid("gerrit.recheck_phrase", "expected a non-empty phrase"));
            }
            if !(1..=MAX_RECHECK_WINDOW_SECS).contains(&gerrit.recheck_window_secs) {
                return Err(self.invalid(
                    "gerrit.recheck_window_secs",
                    format!("expected 1 to {MAX_RECHECK_WINDOW_SECS} seconds (a year)"),
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (i, mirror) in self.mirrors.iter().enumerate() {
            check_token("mirror", &mirror.name)
                .map_err(|e| self.invalid(format!("mirrors[{i}].name"), e.to_string()))?;
            if !names.insert(&mirror.name) {
                return Err(self.invalid(
                    format!("mirrors[{i}].name"),
                    format!("mirror {:?} appears twice", mirror.name),
                ));
            }
        }
        self.validate_staging()?;
        self.mapping()?;
        Ok(())
    }
}

impl FarmConfig {
    /// The `[worker]` staging daemon and the `[fetch]` table of workers.
    fn validate_staging(&self) -> Result<(), ConfigError> {
        let w = &self.worker;
        if let Some(name) = &w.name {
            check_token("worker", name).map_err(|e| self.invalid("worker.name", e.to_string()))?;
        }
        if w.serve_staging.is_some() {
            if w.name.is_none() {
                return Err(self.invalid(
                    "worker.name",
                    "serve_staging needs the name the publisher's [fetch.workers] knows this worker by",
                ));
            }
            if w.publisher_hosts.is_empty() {
                return Err(self.invalid(
                    "worker.publisher_hosts",
                    "serve_staging needs the publisher's address(es): nobody else may fetch",
                ));
            }
        }
        for (i, host) in w.publisher_hosts.iter().enumerate() {
            let ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".:/-_".contains(c));
            if !ok {
                return Err(self.invalid(
                    format!("worker.publisher_hosts[{i}]"),
                    format!("expected an address or network such as 10.0.0.7 or 10.0.0.0/24, found {host:?}"),
                ));
            }
        }
        for (key, value) in [
            ("worker.max_connections", u64::from(w.max_connections)),
            ("fetch.timeout_secs", self.fetch.timeout_secs),
            ("fetch.max_bytes", self.fetch.max_bytes),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "expected at least 1"));
            }
        }
        for (name, url) in &self.fetch.workers {
            let key = format!("fetch.workers.{name}");
            check_token("worker", name).map_err(|e| self.invalid(&key, e.to_string()))?;
            let rest = url.strip_prefix("rsync://").unwrap_or_default();
            let ok = !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".:/-_[]".contains(c));
            if !ok {
                return Err(self.invalid(
                    key,
                    format!("expected the worker's staging module as rsync://host:port/{STAGING_MODULE}, found {url:?}"),
                ));
            }
        }
        Ok(())
    }
}

impl FarmConfig {
    /// `[images]` and the releases' pinned base digests.
    fn validate_images(&self) -> Result<(), ConfigError> {
        if let Some(registry) = &self.images.registry {
            if !is_registry_address(registry) {
                return Err(self.invalid(
                    "images.registry",
                    format!("expected host[:port] of a registry, such as \"127.0.0.1:5000\", found {registry:?}"),
                ));
            }
        }
        for (customer, release) in self.releases() {
            let key = format!(
                "customers.{}.versions.{}.base_digests",
                customer.name, release.name
            );
            for (distro, digest) in &release.base_digests {
                if release.family_of(distro).is_none() {
                    return Err(self.invalid(
                        &key,
                        format!("{distro:?} is not one of the release's distros"),
                    ));
                }
                if !is_image_digest(digest) {
                    return Err(self.invalid(
                        format!("{key}.{distro}"),
                        format!("expected \"sha256:\" and 64 hex digits, found {digest:?}"),
                    ));
                }
                if self.images.registry.is_none() {
                    return Err(self.invalid(
                        format!("{key}.{distro}"),
                        "a pinned base digest names an image of the registry: set [images] registry",
                    ));
                }
            }
        }
        Ok(())
    }
}
