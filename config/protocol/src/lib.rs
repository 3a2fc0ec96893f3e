//! What crosses the broker: queue names and exchanges, the messages and what each may ask for,
//! and the AMQP plumbing that carries them: declaring the topology, reporting on it, dead
//! letters, and asking the publisher for a promotion.

pub mod broker;
pub mod dead_letters;
pub mod management;
pub mod messages;
pub mod promotion;
pub mod queues;
pub mod topology;
pub mod validate;

pub use queues::{QueueName, Stage};
