//! Log setup shared by the binaries: lines on stderr, `RUST_LOG` to filter, and
//! `PERESTROIKA_LOG_FORMAT` to choose between human-readable text (the default) and one JSON
//! object a line for machines (log collectors, the test harness, the benchmarks).
//!
//! The events other tools read carry their facts as fields, not only in the wording: `job`,
//! `queue`, `stage` (`queued`, `build`, `publish`, `mirror`) and, where a stage ends, its
//! duration `secs`.

use tracing_subscriber::EnvFilter;

/// The environment variable that picks the log format.
pub const FORMAT_VAR: &str = "PERESTROIKA_LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `time LEVEL message key=value …`, for people.
    Text,
    /// One JSON object a line: `timestamp`, `level` and the event's `fields` (with `message`).
    Json,
}

/// A `PERESTROIKA_LOG_FORMAT` value that names no format.
#[derive(Debug, thiserror::Error)]
#[error("{FORMAT_VAR}={0:?} is not a log format; use `text` or `json`")]
pub struct UnknownFormat(pub String);

impl LogFormat {
    /// The format a `PERESTROIKA_LOG_FORMAT` value asks for; unset or empty means text.
    pub fn from_setting(value: Option<&str>) -> Result<Self, UnknownFormat> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::Text),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(Self::Text),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(Self::Json),
            Some(v) => Err(UnknownFormat(v.to_owned())),
        }
    }

    /// The format the environment asks for, with the complaint if its value is unknown (the
    /// format then falls back to text).
    pub fn from_env() -> (Self, Option<UnknownFormat>) {
        let value = std::env::var(FORMAT_VAR).ok();
        match Self::from_setting(value.as_deref()) {
            Ok(format) => (format, None),
            Err(e) => (Self::Text, Some(e)),
        }
    }
}

/// Installs the global subscriber in the format the environment asks for; `default` applies
/// when `RUST_LOG` is unset (e.g. `info`).
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let (format, unknown) = LogFormat::from_env();
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ =
        tracing::subscriber::set_global_default(subscriber(format, filter, ansi, std::io::stderr));
    if let Some(e) = unknown {
        tracing::warn!("{e}; logging text");
    }
}

/// A subscriber writing `format` to `writer`, filtered by `filter`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_unless_json_is_asked_for() {
        assert_eq!(LogFormat::from_setting(None).unwrap(), LogFormat::Text);
        assert_eq!(LogFormat::from_setting(Some("")).unwrap(), LogFormat::Text);
        assert_eq!(
            LogFormat::from_setting(Some("text")).unwrap(),
            LogFormat::Text
        );
        assert_eq!(
            LogFormat::from_setting(Some("json")).unwrap(),
            LogFormat::Json
        );
        assert_eq!(
            LogFormat::from_setting(Some(" JSON ")).unwrap(),
            LogFormat::Json
        );
    }

    /// What `format` makes of one event with fields.
    fn written(format: LogFormat) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let out = buffer.clone();
        let sub = subscriber(format, EnvFilter::new("info"), false, move || out.clone());
        tracing::subscriber::with_default(sub, || {
            tracing::info!(job = %"j1", stage = "build", secs = 1.5, "built and handed");
        });
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_carry_the_fields() {
        let line = written(LogFormat::Json);
        assert_eq!(line.lines().count(), 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "INFO");
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
        let fields = &v["fields"];
        assert_eq!(fields["message"], "built and handed");
        assert_eq!(fields["job"], "j1");
        assert_eq!(fields["stage"], "build");
        assert_eq!(fields["secs"], 1.5);
    }

    #[test]
    fn text_lines_stay_for_people() {
        let line = written(LogFormat::Text);
        assert!(
            line.contains("INFO built and handed job=j1 stage=\"build\" secs=1.5"),
            "{line}"
        );
        assert!(!line.contains('{'), "{line}");
    }

    #[test]
    fn an_unknown_format_is_named() {
        let e = LogFormat::from_setting(Some("xml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "PERESTROIKA_LOG_FORMAT=\"xml\" is not a log format; use `text` or `json`"
        );
    }
}
