//! Farm mode: consume `publish.<customer>.<version>` (one active consumer per queue), check the
//! staged files, publish, announce the new state on `mirror.<customer>.<version>`, and only then
//! acknowledge. Bad input is dead-lettered with its reason; a failure of the publisher itself
//! returns the job to the queue.
//!
//! - `consumer`: the queues consumed, each message handed to what handles its kind;
//! - `job`: a build's packages published (`failure`: a failed build's log), with the hand-over
//!   of its staged files (`staging`), and a job whose worker is gone built again (`gone`);
//! - `promote`, `retire`, `refresh`: promotions, review retirements, signature refreshes;
//! - `announce`: the mirrors told of a new generation, the reactor of a build's outcome;
//! - `records`: what became of each job, and the refusal of a message.

mod announce;
mod consumer;
mod failure;
mod gone;
mod job;
mod promote;
mod records;
mod refresh;
mod retire;
mod staging;

pub use consumer::run;
pub use records::record_path;
