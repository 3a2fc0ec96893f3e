//! One module per subcommand of `perestroika-queue`: its arguments, what it does, and what it
//! prints.

pub mod broker_users;
pub mod client;
pub mod dead;
pub mod promote;
pub mod rebuild_release;
pub mod retrigger;
pub mod topology;
