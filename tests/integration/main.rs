//! End-to-end tests against real services. Run with `.ci/test` (or `cargo test --workspace
//! --features perestroika-tests/services` once `cargo build --workspace` and a broker are up).

mod broker_ops;
mod broker_users;
mod cli;
mod cluster;
mod cut_off;
mod durability;
mod farm;
mod hostile;
#[cfg(feature = "hosts")]
mod hosts;
mod lifecycle;
mod mirror;
mod outages;
mod pinned;
mod poison;
mod published;
mod published_farm;
mod publisher;
mod publisher_farm;
mod publisher_rpm;
mod reactor;
mod rebuild;
mod registry;
mod remote_staging;
mod retention;
mod review;
mod signing_trust;
mod submit;
mod topology;
mod worker;
mod worker_farm;
mod worker_rpm;
