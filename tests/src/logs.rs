//! The daemons' JSON log lines (`PERESTROIKA_LOG_FORMAT=json`) read back: the one log parser
//! of the tests, the demo and the benchmarks. Job ids, stages and their durations come from
//! the events' fields, never from their wording.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// One logged event.
#[derive(Debug, Clone)]
pub struct Event {
    /// When it was logged.
    pub timestamp: DateTime<Utc>,
    /// `INFO`, `WARN`, …
    pub level: String,
    /// Its fields, `message` included.
    pub fields: Map<String, Value>,
}

impl Event {
    /// Parses one JSON log line; `None` for anything else (a panic, a child's output).
    pub fn parse(line: &str) -> Option<Self> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        let mut v: Map<String, Value> = serde_json::from_str(line).ok()?;
        let timestamp = DateTime::parse_from_rfc3339(v.get("timestamp")?.as_str()?)
            .ok()?
            .with_timezone(&Utc);
        let level = v.get("level")?.as_str()?.to_owned();
        let Value::Object(fields) = v.remove("fields")? else {
            return None;
        };
        Some(Self {
            timestamp,
            level,
            fields,
        })
    }

    /// The event's message.
    pub fn message(&self) -> &str {
        self.str("message").unwrap_or_default()
    }

    /// A field's text (strings as they are, other values as JSON).
    pub fn field(&self, key: &str) -> Option<String> {
        self.fields.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key)?.as_str()
    }

    /// A numeric field.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.fields.get(key)?.as_f64()
    }

    /// The job the event is about (`job`).
    pub fn job(&self) -> Option<&str> {
        self.str("job")
    }

    /// The queue the event is about (`queue`).
    pub fn queue(&self) -> Option<&str> {
        self.str("queue")
    }

    /// The stage of a job the event marks (`queued`, `build`, `publish`, `mirror`).
    pub fn stage(&self) -> Option<&str> {
        self.str("stage")
    }

    /// How long the stage took, on the event that ends it (`secs`).
    pub fn secs(&self) -> Option<f64> {
        self.number("secs")
    }

    /// Whether this event starts `stage` (it names the stage and carries no duration).
    pub fn starts(&self, stage: &str) -> bool {
        self.stage() == Some(stage) && self.secs().is_none()
    }

    /// Whether this event ends `stage` (it names the stage and carries its duration).
    pub fn ends(&self, stage: &str) -> bool {
        self.stage() == Some(stage) && self.secs().is_some()
    }

    /// The event as a text log line: `time LEVEL message key=value …`.
    pub fn render(&self) -> String {
        let mut line = format!(
            "{} {:>5} {}",
            self.timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.level,
            self.message()
        );
        for (key, _) in self.fields.iter().filter(|(k, _)| *k != "message") {
            let value = self.field(key).unwrap_or_default();
            line.push_str(&format!(" {key}={value}"));
        }
        line
    }
}

/// Every JSON event in a log, in order; other lines are left out.
pub fn events(log: &str) -> Vec<Event> {
    log.lines().filter_map(Event::parse).collect()
}

/// A log made readable: JSON events as text lines, other lines as they are. What tests print
/// when they fail and search for wording that is not a field.
pub fn render(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    for line in log.lines() {
        match Event::parse(line) {
            Some(event) => out.push_str(&event.render()),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The build jobs queued (events of stage `queued` on a `build.` queue), in order.
pub fn queued_build_jobs(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.stage() == Some("queued"))
        .filter(|e| e.queue().is_some_and(|q| q.starts_with("build.")))
        .filter_map(|e| e.job().map(str::to_owned))
        .collect()
}

/// The first event of `job` that starts `stage`.
pub fn started<'a>(events: &'a [Event], job: &str, stage: &str) -> Option<&'a Event> {
    events
        .iter()
        .find(|e| e.job() == Some(job) && e.starts(stage))
}

/// The first event of `job` that ends `stage`.
pub fn ended<'a>(events: &'a [Event], job: &str, stage: &str) -> Option<&'a Event> {
    events
        .iter()
        .find(|e| e.job() == Some(job) && e.ends(stage))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"timestamp":"2026-12-03T06:00:00.250000Z","level":"INFO","fields":{"message":"queueing","event":"change-merged 7","job":"j1","queue":"build.acme.9.0","stage":"queued","what":"build greet"}}
{"timestamp":"2026-12-03T06:00:01Z","level":"INFO","fields":{"message":"queueing","job":"r1","queue":"publish.acme.9.0","stage":"queued"}}
{"timestamp":"2026-12-03T06:00:02Z","level":"INFO","fields":{"message":"starting the build","job":"j1","queue":"build.acme.9.0","stage":"build"}}
thread 'main' panicked at src/main.rs:1:1: not JSON
{"timestamp":"2026-12-03T06:00:09.5Z","level":"INFO","fields":{"message":"built and handed to the publisher","job":"j1","stage":"build","secs":7.5,"version":"1.0-1"}}
"#;

    #[test]
    fn events_are_read_and_other_lines_left_out() {
        let events = events(LOG);
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].message(), "queueing");
        assert_eq!(events[0].level, "INFO");
        assert_eq!(events[3].secs(), Some(7.5));
        assert_eq!(events[3].field("secs").as_deref(), Some("7.5"));
    }

    #[test]
    fn jobs_and_stages_come_from_fields() {
        let events = events(LOG);
        assert_eq!(queued_build_jobs(&events), ["j1"]);
        let start = started(&events, "j1", "build").unwrap();
        let end = ended(&events, "j1", "build").unwrap();
        assert_eq!(start.message(), "starting the build");
        assert_eq!((end.timestamp - start.timestamp).num_milliseconds(), 7500);
        assert!(started(&events, "j1", "publish").is_none());
        assert!(ended(&events, "r1", "build").is_none());
    }

    #[test]
    fn rendered_logs_read_like_text_logs() {
        let text = render(LOG);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("2026-12-03T06:00:00.250000Z  INFO queueing "),
            "{}",
            lines[0]
        );
        for part in [
            " job=j1",
            " queue=build.acme.9.0",
            " stage=queued",
            " what=build greet",
        ] {
            assert!(lines[0].contains(part), "{part} in {}", lines[0]);
        }
        assert_eq!(
            lines[3],
            "thread 'main' panicked at src/main.rs:1:1: not JSON"
        );
        for part in [
            "built and handed to the publisher",
            " secs=7.5",
            " stage=build",
            " job=j1",
        ] {
            assert!(lines[4].contains(part), "{part} in {}", lines[4]);
        }
    }
}
