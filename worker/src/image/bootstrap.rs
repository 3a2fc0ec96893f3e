//! What every bootstrap of a base root shares: the package list it leaves in the root, and
//! its command run with the progress on stderr.

use tokio::io::{AsyncBufReadExt, BufReader};

/// Inside every base image: the packages it holds, `name version` per line.
pub const PACKAGE_LIST: &str = "/etc/perestroika-base.list";

/// Runs a bootstrap command, copying its stderr (progress) to ours; on failure returns its
/// exit code and last lines.
pub(super) async fn run_streaming(
    cmd: &mut tokio::process::Command,
) -> Result<Option<(i32, String)>, std::io::Error> {
    let mut child = cmd.spawn()?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut tail = Vec::new();
    while let Some(line) = lines.next_line().await? {
        eprintln!("{line}");
        tail.push(line);
        if tail.len() > 10 {
            tail.remove(0);
        }
    }
    let status = child.wait().await?;
    Ok((!status.success()).then(|| (status.code().unwrap_or(-1), tail.join("\n"))))
}
