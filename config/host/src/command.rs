//! Running an external tool with a deadline: the one place the farm starts git, reprepro,
//! createrepo_c, rpmsign, dpkg-deb or gpg. Each runs in a process group of its own; when the
//! deadline passes the group is sent SIGTERM, then SIGKILL two seconds later, so a tool that
//! hangs (a dead network peer, a stuck lock, an agent that never answers) cannot stop a queue
//! for good. A timeout is an error of its own ([`CommandError::TimedOut`]) that names the
//! command, the limit and the configuration key that raises it; callers treat it as "the farm
//! could not do it now", never as broken input.
//!
//! These functions block the calling thread: call them from a blocking thread
//! (`tokio::task::spawn_blocking`), never directly on the async runtime.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};

/// How long a killed tool is given between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);
/// The longest pause between two looks at a running tool.
const POLL_MAX: Duration = Duration::from_millis(20);

pub use perestroika_config::deadline::Deadline;

/// A command could not be started, or did not finish in time.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{command}`: {source}; is it installed and on the PATH?")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {} s and was killed; raise `{key}` if it needs longer", limit.as_secs())]
    TimedOut {
        command: String,
        limit: Duration,
        key: &'static str,
    },
    #[error("`{command}`: {source}")]
    Io {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

impl CommandError {
    /// Whether the command ran out of time (transient: the farm could not do it now).
    pub fn is_timeout(&self) -> bool {
        matches!(self, CommandError::TimedOut { .. })
    }
}

/// Whether `program` is an executable file in a directory of `PATH`.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Runs `cmd` (standard input closed) to completion within `deadline` and collects its
/// output, as [`Command::output`] does; the exit status is the caller's to judge.
pub fn output(cmd: &mut Command, deadline: Deadline) -> Result<Output, CommandError> {
    let mut stdout = Vec::new();
    let run = run(cmd, deadline, &mut stdout, u64::MAX)?;
    Ok(Output {
        status: run.status,
        stdout,
        stderr: run.stderr,
    })
}

/// What [`output_to`] leaves besides the bytes it wrote.
#[derive(Debug)]
pub struct Streamed {
    pub status: ExitStatus,
    pub stderr: Vec<u8>,
    /// Bytes written to the sink.
    pub written: u64,
    /// The tool wrote more than the limit and was stopped; the sink holds the first
    /// `limit + 1` bytes.
    pub too_large: bool,
}

/// Like [`output`], with standard output copied into `sink` as it comes; more than `max`
/// bytes stops the tool (see [`Streamed::too_large`]).
pub fn output_to(
    cmd: &mut Command,
    deadline: Deadline,
    sink: &mut (dyn Write + Send),
    max: u64,
) -> Result<Streamed, CommandError> {
    run(cmd, deadline, sink, max)
}

/// The command line as an operator would type it (program and arguments, shortened).
fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
        if text.len() > 200 {
            text.truncate(200);
            text.push('…');
            break;
        }
    }
    text
}

fn run(
    cmd: &mut Command,
    deadline: Deadline,
    sink: &mut (dyn Write + Send),
    max: u64,
) -> Result<Streamed, CommandError> {
    let command = describe(cmd);
    let io_err = |source| CommandError::Io {
        command: command.clone(),
        source,
    };
    let started = Instant::now();
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CommandError::Spawn {
            command: command.clone(),
            source,
        })?;
    let group = Pid::from_child(&child);
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let too_large = AtomicBool::new(false);
    let (waited, written, errors) = std::thread::scope(|s| {
        let out = s.spawn(|| {
            let copied = std::io::copy(&mut (&mut stdout).take(max.saturating_add(1)), sink);
            if matches!(copied, Ok(n) if n > max) {
                too_large.store(true, Ordering::Relaxed);
            }
            drop(stdout);
            copied
        });
        let err = s.spawn(|| {
            let mut bytes = Vec::new();
            let read = stderr.read_to_end(&mut bytes);
            read.map(|_| bytes)
        });
        let waited = wait(
            &mut child,
            group,
            started,
            deadline.limit,
            &too_large,
            || out.is_finished() && err.is_finished(),
        );
        (
            waited,
            out.join().expect("reader"),
            err.join().expect("reader"),
        )
    });
    let (status, timed_out) = waited.map_err(io_err)?;
    if timed_out {
        return Err(CommandError::TimedOut {
            command,
            limit: deadline.limit,
            key: deadline.key,
        });
    }
    let too_large = too_large.load(Ordering::Relaxed);
    let written = match written {
        Ok(n) => n,
        // The tool was stopped because of its size, or its output went nowhere.
        Err(_) if too_large => max.saturating_add(1),
        Err(e) => return Err(io_err(e)),
    };
    Ok(Streamed {
        status,
        stderr: errors.map_err(io_err)?,
        written,
        too_large,
    })
}

/// Waits for the child and for its output to be read (`drained`), killing its process group
/// at the deadline or when its output grew too large. Returns the status and whether the
/// deadline passed.
fn wait(
    child: &mut Child,
    group: Pid,
    started: Instant,
    limit: Duration,
    too_large: &AtomicBool,
    drained: impl Fn() -> bool,
) -> std::io::Result<(ExitStatus, bool)> {
    let mut pause = Duration::from_millis(1);
    let mut status = None;
    loop {
        if status.is_none() {
            status = child.try_wait()?;
        }
        // Output still open after the tool ended belongs to something it left running.
        if let Some(done) = status.filter(|_| drained()) {
            return Ok((done, false));
        }
        if too_large.load(Ordering::Relaxed) && status.is_none() {
            let _ = kill_process_group(group, Signal::KILL);
            return child.wait().map(|s| (s, false));
        }
        let Some(left) = limit
            .checked_sub(started.elapsed())
            .filter(|l| !l.is_zero())
        else {
            return terminate(child, group, status).map(|s| (s, true));
        };
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// SIGTERM to the whole group, SIGKILL after [`GRACE`]; reaps the child.
fn terminate(
    child: &mut Child,
    group: Pid,
    status: Option<ExitStatus>,
) -> std::io::Result<ExitStatus> {
    let _ = kill_process_group(group, Signal::TERM);
    let until = Instant::now() + GRACE;
    let mut status = status;
    while status.is_none() && Instant::now() < until {
        std::thread::sleep(POLL_MAX);
        status = child.try_wait()?;
    }
    // Whatever of the group is left (the tool itself, or what it started) goes now.
    let _ = kill_process_group(group, Signal::KILL);
    match status {
        Some(s) => Ok(s),
        None => child.wait(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline(ms: u64) -> Deadline {
        Deadline::new(Duration::from_millis(ms), "test.timeout_secs")
    }

    #[test]
    fn collects_output_and_status() {
        let out = output(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            deadline(10_000),
        )
        .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    /// A hung tool and what it started are killed at the deadline, and the error says which
    /// key raises it.
    #[test]
    fn a_hung_tool_and_its_children_are_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
        let started = Instant::now();
        let err = output(Command::new("sh").args(["-c", &script]), deadline(300)).unwrap_err();
        let took = started.elapsed();
        assert!(err.is_timeout(), "{err}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        let text = err.to_string();
        assert!(
            text.contains("sh -c") && text.contains("test.timeout_secs"),
            "{text}"
        );
        let pid = fs_err::read_to_string(&pid_file).unwrap();
        let alive = std::path::Path::new("/proc").join(pid.trim()).join("stat");
        // A killed child of ours may linger as a zombie of init's until reaped; it must not run.
        let state = fs_err::read_to_string(&alive).unwrap_or_default();
        assert!(
            state.is_empty() || state.split_whitespace().nth(2) == Some("Z"),
            "the grandchild still runs: {state}"
        );
    }

    /// A tool that ended but left something holding its output open is stopped at the deadline
    /// too, rather than waited for.
    #[test]
    fn output_held_open_by_a_leftover_is_bounded() {
        let started = Instant::now();
        let err = output(
            Command::new("sh").args(["-c", "sleep 300 & exit 0"]),
            deadline(300),
        )
        .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn streams_with_a_size_limit() {
        let mut sink = Vec::new();
        let run = output_to(
            Command::new("sh").args(["-c", "yes | head -c 100000; sleep 300"]),
            deadline(30_000),
            &mut sink,
            1000,
        )
        .unwrap();
        assert!(run.too_large);
        assert_eq!(sink.len(), 1001);
        let mut sink = Vec::new();
        let run = output_to(
            Command::new("printf").arg("abc"),
            deadline(10_000),
            &mut sink,
            1000,
        )
        .unwrap();
        assert!(!run.too_large && run.status.success());
        assert_eq!((sink.as_slice(), run.written), (&b"abc"[..], 3));
    }

    #[test]
    fn a_missing_tool_says_so() {
        let err = output(&mut Command::new("no-such-tool-here"), deadline(1000)).unwrap_err();
        assert!(
            matches!(err, CommandError::Spawn { .. }) && !err.is_timeout(),
            "{err}"
        );
    }
}
