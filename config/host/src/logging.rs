//! Log setup shared by the binaries: human-readable lines on stderr, `RUST_LOG` to filter.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `default` applies when `RUST_LOG` is unset (e.g. `info`).
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Colours only on a terminal: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
