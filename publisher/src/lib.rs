//! The publisher: signed deb and rpm repositories, switched live atomically.

pub mod crash;
pub mod deb;
pub mod farm;
pub mod history;
pub mod promote;
pub mod publish;
pub mod release_file;
pub mod retention;
pub mod rpm;
pub mod signing;
pub mod staged;
pub mod tree;
