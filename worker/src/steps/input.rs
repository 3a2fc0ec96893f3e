//! Sending a build's prepared input into its container.

use std::path::Path;

use super::failure::Step;
use crate::container::buildlog::BuildLog;
use crate::container::sandbox::{As, Sandbox};

/// Unpacks the input's tar (on stdin) into /build and hands it to the builder.
const UNPACK: &str = include_str!("../../scripts/steps/unpack.sh");

/// Sends the prepared `in/` directory into the container's /build and hands it to the builder.
pub(crate) async fn send_input(
    sandbox: &Sandbox,
    dir: &Path,
    log: &mut BuildLog,
) -> Result<(), Step> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all("in", dir).map_err(Step::io(dir))?;
    let input = builder.into_inner().map_err(Step::io(dir))?;
    let code = sandbox
        .exec(As::Root, &["sh", "-c", UNPACK], &[], Some(input), log)
        .await?;
    if code != 0 {
        return Err(Step::failed("unpack", log, "unpacking the sources failed"));
    }
    Ok(())
}
