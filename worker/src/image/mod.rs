//! Base images: bootstrapped from the host's mirror (mmdebstrap, [`debian`]) or an rpm
//! distro's own repositories (`dnf --installroot`, [`dnf_root`]) by a [`Recipe`], imported into
//! Docker and labelled there ([`store`]), and with `[images] registry` pushed to a registry
//! that every worker pulls from by digest ([`registry`]). A build uses its release's pinned
//! digest, else the registry's current one, else (no registry) the host's newest image of its
//! distro; a new one only comes from `image build`, `image refresh` or `image push`.

pub mod apt_sources;
pub mod bootstrap;
pub mod debian;
pub mod dnf_root;
pub mod error;
pub mod recipe;
pub mod registry;
pub mod store;

use std::path::{Path, PathBuf};

use bollard::Docker;

pub use bootstrap::PACKAGE_LIST;
pub use error::ImageError;
pub use recipe::{NamedRoot, Recipe, RecipeError};
pub use registry::Registry;
pub use store::{latest, list, prune, BaseImage, IMAGE_REPO};

use crate::container::rootfs;

/// Bootstraps a base root for `distro` by `recipe`, imports it, and pushes it to `registry` as
/// the distro's current base. Progress goes to stderr.
pub async fn build(
    docker: &Docker,
    distro: &str,
    recipe: &Recipe,
    scratch: &Path,
    registry: Option<&Registry>,
) -> Result<BaseImage, ImageError> {
    let (tarball, list) = make_root(distro, recipe, scratch).await?;
    let image = store::import(docker, distro, recipe.family(), &tarball, &list).await;
    let _ = fs_err::remove_file(&tarball);
    let mut image = image?;
    if let Some(registry) = registry {
        image.digest = Some(registry.push(docker, &image).await?);
    }
    Ok(image)
}

/// The image a build of `distro` uses: with a registry, the `pinned` digest or the registry's
/// current one; without, the host's newest image (a pinned digest then is an error).
pub async fn for_build(
    docker: &Docker,
    registry: Option<&Registry>,
    distro: &str,
    pinned: Option<&str>,
) -> Result<BaseImage, ImageError> {
    match (registry, pinned) {
        (Some(registry), pinned) => registry.for_build(docker, distro, pinned).await,
        (None, Some(digest)) => Err(ImageError::PinWithoutRegistry {
            distro: distro.to_owned(),
            digest: digest.to_owned(),
        }),
        (None, None) => store::for_build(docker, distro).await,
    }
}

/// Whether `refresh` made a new image.
#[derive(Debug, serde::Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Refresh {
    /// The distro has not changed since the newest image.
    Unchanged { image: BaseImage },
    /// A new image, because the distro changed (or there was none).
    New { image: BaseImage },
}

/// Bootstraps `distro` afresh and imports it only if its packages differ from the newest image
/// (the registry's current one, with a registry: a new image is then pushed there).
pub async fn refresh(
    docker: &Docker,
    registry: Option<&Registry>,
    distro: &str,
    recipe: &Recipe,
    scratch: &Path,
) -> Result<Refresh, ImageError> {
    perestroika_config::names::check_token("distro", distro)?;
    // Asked first: a registry out of reach is known before the long bootstrap.
    let current = match registry {
        Some(registry) => registry.current(docker, distro).await?,
        None => store::latest(docker, distro).await?,
    };
    let (tarball, list) = make_root(distro, recipe, scratch).await?;
    let result = match current {
        Some(image) if image.packages_sha256 == store::packages_hash(&list) => {
            Refresh::Unchanged { image }
        }
        _ => {
            let image = store::import(docker, distro, recipe.family(), &tarball, &list).await;
            let _ = fs_err::remove_file(&tarball);
            let mut image = image?;
            if let Some(registry) = registry {
                image.digest = Some(registry.push(docker, &image).await?);
            }
            return Ok(Refresh::New { image });
        }
    };
    let _ = fs_err::remove_file(&tarball);
    Ok(result)
}

/// Makes the root file system of `distro` by `recipe`; returns the tarball and the package
/// list (`name version` per line, sorted).
async fn make_root(
    distro: &str,
    recipe: &Recipe,
    scratch: &Path,
) -> Result<(PathBuf, String), ImageError> {
    perestroika_config::names::check_token("distro", distro)?;
    fs_err::create_dir_all(scratch)?;
    let tarball = scratch.join(format!("{distro}.{}.tar", std::process::id()));
    match recipe {
        Recipe::Deb => debian::debian_root(distro, scratch, &tarball).await?,
        Recipe::RpmOnDebian => debian::rpm_on_debian(distro, scratch, &tarball).await?,
        Recipe::Rpm(root) => {
            return dnf_root::bootstrap(distro, root, scratch, &tarball)
                .await
                .map(|list| (tarball, list))
        }
    }
    let copied = scratch.join(Path::new(PACKAGE_LIST).file_name().expect("file name"));
    let list = fs_err::read_to_string(&copied)?;
    let _ = fs_err::remove_file(&copied);
    Ok((tarball, list))
}

/// Removes the exported roots in `dirs` of images Docker no longer has; returns how many went.
pub async fn prune_roots(docker: &Docker, dirs: &[PathBuf]) -> Result<usize, ImageError> {
    let live: Vec<String> = list(docker, None)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    Ok(dirs.iter().map(|dir| rootfs::prune_roots(dir, &live)).sum())
}
