//! The Docker engine as the worker uses it: connecting, and the containers a worker owns,
//! labelled so that a restarted worker finds and removes what a crash left behind.

use std::collections::HashMap;

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;

use super::error::{docker_err, SandboxError};

/// Label naming the worker that owns a container (to clean up after a crash).
pub const OWNER_LABEL: &str = "perestroika.owner";
/// Label naming the job a container builds.
pub const JOB_LABEL: &str = "perestroika.job";

/// Kills and removes a container with its volumes.
pub(super) async fn remove_container(
    docker: &Docker,
    id: &str,
) -> Result<(), bollard::errors::Error> {
    docker
        .remove_container(
            id,
            Some(
                RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await
}

/// The containers of `owner` (all of them when `None`), running or not.
pub async fn list_owned(docker: &Docker, owner: Option<&str>) -> Result<Vec<String>, SandboxError> {
    let label = match owner {
        Some(o) => format!("{OWNER_LABEL}={o}"),
        None => OWNER_LABEL.to_owned(),
    };
    let filters = HashMap::from([("label".to_owned(), vec![label])]);
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(docker_err("listing build containers"))?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}

/// Removes the containers of `owner` that build `job_id` (a build abandoned midway).
pub async fn remove_job(docker: &Docker, owner: &str, job_id: &str) -> Result<usize, SandboxError> {
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![
            format!("{OWNER_LABEL}={owner}"),
            format!("{JOB_LABEL}={job_id}"),
        ],
    )]);
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(docker_err("listing build containers"))?;
    let ids: Vec<String> = list.into_iter().filter_map(|c| c.id).collect();
    for id in &ids {
        let _ = remove_container(docker, id).await;
    }
    Ok(ids.len())
}

/// Removes the containers a previous run of this worker left behind (after a crash or kill).
pub async fn remove_leftovers(docker: &Docker, owner: &str) -> Result<usize, SandboxError> {
    let ids = list_owned(docker, Some(owner)).await?;
    for id in &ids {
        tracing::info!(container = %id, "removing a leftover build container");
        let _ = remove_container(docker, id).await;
    }
    Ok(ids.len())
}

/// Connects to the local Docker engine.
pub fn connect() -> Result<Docker, SandboxError> {
    Docker::connect_with_local_defaults().map_err(docker_err("connecting"))
}
