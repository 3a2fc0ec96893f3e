//! What crosses the broker: queue names and exchanges, the messages and what each may ask for,
//! and the AMQP plumbing that carries them.

pub mod broker;
pub mod messages;
pub mod queues;
pub mod validate;

pub use queues::{QueueName, Stage};
