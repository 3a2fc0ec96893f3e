//! Base images in the local Docker engine: imported through its API,
//! tagged `perestroika-build/<distro>:<date>` and labelled with what they contain and the
//! package family they build; listed newest first, and pruned.

use std::collections::HashMap;
use std::path::Path;

use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::TryStreamExt;
use perestroika_config::Family;
use sha2::{Digest, Sha256};

use super::error::{docker_err, ImageError};

/// Docker repository prefix of base images.
pub const IMAGE_REPO: &str = "perestroika-build";
const DISTRO_LABEL: &str = "perestroika.distro";
const CREATED_LABEL: &str = "perestroika.created";
const PACKAGES_LABEL: &str = "perestroika.packages-sha256";
const COUNT_LABEL: &str = "perestroika.package-count";
const FAMILY_LABEL: &str = "perestroika.family";
/// Changes whenever what goes into a base image changes; images of another recipe are not used.
const RECIPE: &str = "1";
const RECIPE_LABEL: &str = "perestroika.recipe";

/// A base image in the local Docker engine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BaseImage {
    pub id: String,
    /// `perestroika-build/<distro>:<date>`.
    pub tag: String,
    pub distro: String,
    /// UTC creation time, `YYYYmmddTHHMMSSZ`.
    pub created: String,
    /// sha256 of the package list: equal lists, equal content.
    pub packages_sha256: String,
    pub package_count: usize,
    /// The package family its builds make.
    pub family: Family,
    /// The registry's digest it was pulled by or pushed as (`sha256:…`); none for an image
    /// only this host has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl BaseImage {
    /// The image `id` labelled `labels`, named `tag`.
    pub(super) fn from_labels(id: String, tag: String, labels: &HashMap<String, String>) -> Self {
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        BaseImage {
            tag,
            id,
            distro: label(DISTRO_LABEL),
            created: label(CREATED_LABEL),
            packages_sha256: label(PACKAGES_LABEL),
            package_count: label(COUNT_LABEL).parse().unwrap_or(0),
            // Images from before the label build debs.
            family: match label(FAMILY_LABEL).as_str() {
                "rpm" => Family::Rpm,
                _ => Family::Deb,
            },
            digest: None,
        }
    }
}

/// The base image Docker knows as `reference` (a tag, an id, or `repository@digest`), if it
/// has it and it is a base image of the current recipe.
pub(super) async fn inspect(
    docker: &Docker,
    reference: &str,
) -> Result<Option<BaseImage>, ImageError> {
    let inspected = match docker.inspect_image(reference).await {
        Ok(inspected) => inspected,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => return Ok(None),
        Err(e) => return Err(docker_err(format!("inspecting {reference}"))(e)),
    };
    let labels = inspected.config.and_then(|c| c.labels).unwrap_or_default();
    if labels.get(RECIPE_LABEL).map(String::as_str) != Some(RECIPE) {
        return Ok(None);
    }
    Ok(Some(BaseImage::from_labels(
        inspected.id.unwrap_or_default(),
        reference.to_owned(),
        &labels,
    )))
}

/// The sha256 of a package list: equal lists, equal content.
pub(super) fn packages_hash(list: &str) -> String {
    hex::encode(Sha256::digest(list.as_bytes()))
}

/// Imports the root in `tarball` as the newest image of `distro`, labelled with its package
/// list `list` and the family its builds make.
pub(super) async fn import(
    docker: &Docker,
    distro: &str,
    family: Family,
    tarball: &Path,
    list: &str,
) -> Result<BaseImage, ImageError> {
    let created = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let hash = packages_hash(list);
    let count = list.lines().count();
    let repo = format!("{IMAGE_REPO}/{distro}");
    let changes = vec![
        format!("LABEL {DISTRO_LABEL}={distro}"),
        format!("LABEL {CREATED_LABEL}={created}"),
        format!("LABEL {PACKAGES_LABEL}={hash}"),
        format!("LABEL {COUNT_LABEL}={count}"),
        format!("LABEL {RECIPE_LABEL}={RECIPE}"),
        format!("LABEL {FAMILY_LABEL}={family}"),
        "ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC".to_owned(),
    ];
    let options = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(&repo)
        .tag(&created.to_lowercase())
        .changes(changes)
        .build();
    let file = tokio::fs::File::open(tarball).await?;
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
    tracing::info!(%distro, "importing the base root into Docker");
    docker
        .create_image(Some(options), Some(body), None)
        .try_collect::<Vec<_>>()
        .await
        .map_err(docker_err(format!("importing {}", tarball.display())))?;
    let tag = format!("{repo}:{}", created.to_lowercase());
    let inspected = docker
        .inspect_image(&tag)
        .await
        .map_err(docker_err(format!("inspecting {tag}")))?;
    Ok(BaseImage {
        id: inspected.id.unwrap_or_default(),
        tag,
        distro: distro.to_owned(),
        created,
        packages_sha256: hash,
        package_count: count,
        family,
        digest: None,
    })
}

/// Base images of the current recipe (of one distro, or all), newest first.
pub async fn list(docker: &Docker, distro: Option<&str>) -> Result<Vec<BaseImage>, ImageError> {
    let mut labels = vec![format!("{RECIPE_LABEL}={RECIPE}")];
    labels.push(match distro {
        Some(d) => format!("{DISTRO_LABEL}={d}"),
        None => DISTRO_LABEL.to_owned(),
    });
    let filters = HashMap::from([("label".to_owned(), labels)]);
    let summaries = docker
        .list_images(Some(
            ListImagesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(docker_err("listing images"))?;
    let mut images: Vec<BaseImage> = summaries
        .into_iter()
        .map(|s| {
            // Its own tag; else a registry's name of it (an image pulled by digest has no tag).
            let tag = s
                .repo_tags
                .iter()
                .find(|t| t.starts_with(IMAGE_REPO))
                .or_else(|| s.repo_tags.first())
                .or_else(|| s.repo_digests.first())
                .cloned()
                .unwrap_or_default();
            BaseImage {
                // The digest a registry knows it by, if it was pushed or pulled.
                digest: s
                    .repo_digests
                    .iter()
                    .find_map(|d| d.split_once('@').map(|(_, digest)| digest.to_owned())),
                ..BaseImage::from_labels(s.id.clone(), tag, &s.labels)
            }
        })
        .collect();
    images.sort_by(|a, b| a.distro.cmp(&b.distro).then(b.created.cmp(&a.created)));
    Ok(images)
}

/// The newest base image of `distro` that this host made or holds.
pub async fn latest(docker: &Docker, distro: &str) -> Result<Option<BaseImage>, ImageError> {
    Ok(list(docker, Some(distro)).await?.into_iter().next())
}

/// The newest image of `distro` on this host, or a clear error if there is none. It names no
/// digest: a build without a registry did not take its base from one, even if it was pushed.
pub(super) async fn for_build(docker: &Docker, distro: &str) -> Result<BaseImage, ImageError> {
    let image = latest(docker, distro)
        .await?
        .ok_or_else(|| ImageError::Missing {
            distro: distro.to_owned(),
        })?;
    Ok(BaseImage {
        digest: None,
        ..image
    })
}

/// Removes all but the newest `keep` images of each distro (or of `distro` only); returns the
/// removed tags. An image still used by a container is kept.
pub async fn prune(
    docker: &Docker,
    keep: usize,
    distro: Option<&str>,
) -> Result<Vec<String>, ImageError> {
    let mut removed = Vec::new();
    let images = list(docker, distro).await?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for image in images {
        let n = seen.entry(image.distro.clone()).or_default();
        *n += 1;
        if *n <= keep {
            continue;
        }
        match docker
            .remove_image(
                &image.id,
                Some(RemoveImageOptionsBuilder::new().build()),
                None,
            )
            .await
        {
            Ok(_) => removed.push(image.tag),
            Err(e) => tracing::warn!(image = %image.tag, error = %e, "kept: still in use"),
        }
    }
    Ok(removed)
}
