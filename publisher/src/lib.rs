//! The publisher: signed deb and rpm repositories, switched live atomically.

pub mod signing;
