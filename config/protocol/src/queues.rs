//! Queue names: `build.<customer>.<version>`, `publish.…`, `mirror.…`, each with a `.dead` twin;
//! and the exchanges messages reach them through. Every message goes through a named direct
//! exchange (routing key: the queue's name) — one per stage, one for dead letters, one for
//! answers — never the default exchange, so that RabbitMQ's write permission, which is granted
//! per exchange, says which part may send what (see [`Part::permissions`]).

use std::fmt;

use perestroika_config::names::{check_customer, check_version};
use perestroika_config::preflight::Report;
use perestroika_config::settings::FarmConfig;

/// The stage a queue feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Build jobs, consumed by workers.
    Build,
    /// Publish jobs, consumed by the publisher (one active consumer per queue).
    Publish,
    /// Announcements of a new public state, consumed by the mirror daemon.
    Mirror,
    /// Build outcomes for Gerrit changes, consumed by the reactor (which votes and comments).
    Feedback,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Build, Stage::Publish, Stage::Mirror, Stage::Feedback];

    /// The exchange this stage's queues take messages from.
    pub fn exchange(self) -> String {
        format!("{EXCHANGE_PREFIX}{}", self.prefix())
    }

    /// The stage's name, the first element of its queues' names.
    pub fn prefix(self) -> &'static str {
        match self {
            Stage::Build => "build",
            Stage::Publish => "publish",
            Stage::Mirror => "mirror",
            Stage::Feedback => "feedback",
        }
    }

    /// Whether only one consumer at a time may take from the queue (so that two publishers
    /// never write one repository, and mirror syncs of one release never overlap).
    pub fn single_active_consumer(self) -> bool {
        !matches!(self, Stage::Build)
    }
}

/// The name of a work queue of one customer and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueName {
    pub stage: Stage,
    pub customer: String,
    pub version: String,
}

pub use perestroika_config::names::DEAD_SUFFIX;
/// What every exchange of the farm's is named with.
pub const EXCHANGE_PREFIX: &str = "perestroika.";
/// The exchange dead letters go through (the farm's own and the broker's).
pub const DEAD_EXCHANGE: &str = "perestroika.dead";
/// The exchange the broker dead-letters a work queue's rejected messages to: each goes to the
/// queue's `later.<queue>`, waits [`LATER_DELAY`] there and returns to the back of its queue.
/// No part may send to it; only the broker does, with the message as it was received.
pub const LATER_EXCHANGE: &str = "perestroika.later";
/// What a work queue's waiting room is named with.
pub const LATER_PREFIX: &str = "later.";
/// How long a message the farm could not handle now waits before it is delivered again.
pub const LATER_DELAY: std::time::Duration = std::time::Duration::from_secs(20);
/// The exchange answers to a CLI's private reply queue go through.
pub const REPLY_EXCHANGE: &str = "perestroika.reply";
/// What the queues a worker makes for itself are named with: `worker.lease.<job id>` (held
/// while it builds the job), `worker.done.<job id>` (the job was built but its delivery could
/// not be acknowledged) and `worker.bell.<host>.<pid>` (its doorbell).
pub const WORKER_PREFIX: &str = "worker.";
/// What a CLI's private reply queue is named with.
pub const REPLY_PREFIX: &str = "reply.";

/// The exchange a message for `queue` is published to; `None` for a name that is none of the
/// farm's queues (published through the default exchange, which no part's user may write).
pub fn exchange_of(queue: &str) -> Option<String> {
    if let Some(q) = QueueName::parse(queue) {
        return Some(q.stage.exchange());
    }
    if QueueName::parse_dead_letter(queue).is_some() {
        return Some(DEAD_EXCHANGE.to_owned());
    }
    queue
        .starts_with(REPLY_PREFIX)
        .then(|| REPLY_EXCHANGE.to_owned())
}

/// A part of the farm that talks to the broker with a user of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Reactor,
    Worker,
    Publisher,
    Mirror,
}

/// What one broker user may do, as RabbitMQ's three regular expressions on resource names
/// (exchanges and queues) of the farm's virtual host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Permissions {
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl Part {
    pub const ALL: [Part; 4] = [Part::Reactor, Part::Worker, Part::Publisher, Part::Mirror];

    pub fn name(self) -> &'static str {
        match self {
            Part::Reactor => "reactor",
            Part::Worker => "worker",
            Part::Publisher => "publisher",
            Part::Mirror => "mirror",
        }
    }

    /// What the part's broker user may do: consume its own queues, publish to the exchanges
    /// of what it sends, dead-letter; declare nothing (`perestroika-queue bootstrap`, run with
    /// the administrator's user, makes the topology). Writing a queue resource only allows
    /// binding it, which the part's own queues need on reconnect.
    pub fn permissions(self) -> Permissions {
        let (sends, reads): (&[&str], Stage) = match self {
            // Build jobs, retirements; reads the build outcomes it reports.
            Part::Reactor => (&["build", "publish"], Stage::Feedback),
            // Publish jobs.
            Part::Worker => (&["publish"], Stage::Build),
            // Announcements, feedback, answers to promotions, its own signature refreshes.
            Part::Publisher => (&["mirror", "feedback", "reply", "publish"], Stage::Publish),
            Part::Mirror => (&[], Stage::Mirror),
        };
        let exchanges: Vec<&str> = sends.iter().copied().chain(["dead"]).collect();
        let mut queue = format!("{}\\.[^.]+\\..+", reads.prefix());
        let mut configure = "^$".to_owned();
        if self == Part::Worker {
            // Its own leases, done marks and doorbell (see `WORKER_PREFIX`).
            let own = format!("{}.+", WORKER_PREFIX.replace('.', "\\."));
            configure = format!("^{own}$");
            queue = format!("{queue}|{own}");
        }
        Permissions {
            configure,
            write: format!("^(perestroika\\.({})|{queue})$", exchanges.join("|")),
            read: format!("^({queue}|{})$", reads.exchange().replace('.', "\\.")),
        }
    }
}

impl QueueName {
    pub fn new(stage: Stage, customer: &str, version: &str) -> Self {
        Self {
            stage,
            customer: customer.to_owned(),
            version: version.to_owned(),
        }
    }

    /// The name of the queue where a message the farm could not handle now waits
    /// ([`LATER_EXCHANGE`]).
    pub fn later(&self) -> String {
        format!("{LATER_PREFIX}{self}")
    }

    /// The name of the queue that takes this queue's dead letters.
    pub fn dead_letter(&self) -> String {
        format!("{self}{DEAD_SUFFIX}")
    }

    /// Parses a work queue's name `stage.customer.version` back: customers have no `.` and
    /// versions never end in `.dead` nor are reserved words ([`perestroika_config::names::check_customer`],
    /// [`perestroika_config::names::check_version`]), so the second dot ends the customer and a dead-letter
    /// queue's name is never taken for a work queue's. Names the configuration could not hold
    /// give `None`.
    pub fn parse(name: &str) -> Option<Self> {
        let (stage, rest) = name.split_once('.')?;
        let stage = Stage::ALL.into_iter().find(|s| s.prefix() == stage)?;
        let (customer, version) = rest.split_once('.')?;
        check_customer(customer).ok()?;
        check_version(version).ok()?;
        Some(Self::new(stage, customer, version))
    }

    /// Parses a dead-letter queue's name `<work queue>.dead` into its work queue.
    pub fn parse_dead_letter(name: &str) -> Option<Self> {
        Self::parse(name.strip_suffix(DEAD_SUFFIX)?)
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.stage.prefix(),
            self.customer,
            self.version
        )
    }
}

/// Every work queue the configuration calls for, in a stable order.
pub fn all_queues(farm: &FarmConfig) -> Vec<QueueName> {
    let mut out = Vec::new();
    for (customer, release) in farm.releases() {
        for stage in Stage::ALL {
            out.push(QueueName::new(stage, &customer.name, &release.name));
        }
    }
    out
}

/// A preflight report for a part that consumes `stage` queues, noting each of them.
pub fn consuming_report(farm: &FarmConfig, part: &str, stage: Stage) -> Report {
    let mut report = Report::new(farm, part);
    for q in all_queues(farm).into_iter().filter(|q| q.stage == stage) {
        report.note(format!(
            "{part} consumes {q} (dead letters: {})",
            q.dead_letter()
        ));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let q = QueueName::new(Stage::Publish, "acme", "9.0");
        assert_eq!(q.to_string(), "publish.acme.9.0");
        assert_eq!(q.dead_letter(), "publish.acme.9.0.dead");
        assert_eq!(QueueName::parse("publish.acme.9.0"), Some(q));
        assert_eq!(QueueName::parse("publish.acme.9.0.dead"), None);
        assert_eq!(QueueName::parse("other.acme.9.0"), None);
        assert_eq!(
            QueueName::parse_dead_letter("publish.acme.9.0.dead"),
            Some(QueueName::new(Stage::Publish, "acme", "9.0"))
        );
        assert_eq!(QueueName::parse_dead_letter("publish.acme.9.0"), None);
    }

    /// Every name a valid customer and version make parses back to them, and to nothing else:
    /// no work queue's name is another's, nor a dead-letter queue's.
    #[test]
    fn queue_names_are_unambiguous() {
        let customers = ["a", "acme", "a-b"];
        let versions = ["b", "b.c", "9.0", "deadline", "x.deadx"];
        let mut seen = std::collections::HashSet::new();
        for stage in Stage::ALL {
            for c in customers {
                for v in versions {
                    let q = QueueName::new(stage, c, v);
                    assert_eq!(QueueName::parse(&q.to_string()), Some(q.clone()));
                    assert_eq!(QueueName::parse(&q.dead_letter()), None, "{q}");
                    assert_eq!(
                        QueueName::parse_dead_letter(&q.dead_letter()),
                        Some(q.clone())
                    );
                    assert!(seen.insert(q.to_string()), "{q} made twice");
                    assert!(seen.insert(q.dead_letter()), "{q}: dead letter made twice");
                }
            }
        }
        // What the old rules allowed and the new ones refuse, read as no queue at all.
        assert_eq!(QueueName::parse("build.a.b.c.dead"), None);
        assert_eq!(QueueName::parse("build.a.dead"), None);
        assert_eq!(QueueName::parse("build.a.review"), None);
    }
}
