//! Base images: bootstrapped from the host's mirror (mmdebstrap, [`debian`]) or an rpm
//! distro's own repositories (`dnf --installroot`, [`dnf_root`]) by a [`Recipe`], imported into
//! Docker and labelled there ([`store`]). A build always uses the newest image of its distro;
//! a new one only comes from `image build` or `image refresh`.

pub mod apt_sources;
pub mod bootstrap;
pub mod debian;
pub mod dnf_root;
pub mod error;
pub mod recipe;
pub mod store;

use std::path::{Path, PathBuf};

use bollard::Docker;

pub use bootstrap::PACKAGE_LIST;
pub use error::ImageError;
pub use recipe::{NamedRoot, Recipe, RecipeError};
pub use store::{for_build, latest, list, prune, BaseImage, IMAGE_REPO};

use crate::container::rootfs;

/// Bootstraps a base root for `distro` by `recipe` and imports it. Progress goes to stderr.
pub async fn build(
    docker: &Docker,
    distro: &str,
    recipe: &Recipe,
    scratch: &Path,
) -> Result<BaseImage, ImageError> {
    let (tarball, list) = make_root(distro, recipe, scratch).await?;
    let image = store::import(docker, distro, recipe.family(), &tarball, &list).await;
    let _ = fs_err::remove_file(&tarball);
    image
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

/// Bootstraps `distro` afresh and imports it only if its packages differ from the newest image.
pub async fn refresh(
    docker: &Docker,
    distro: &str,
    recipe: &Recipe,
    scratch: &Path,
) -> Result<Refresh, ImageError> {
    let (tarball, list) = make_root(distro, recipe, scratch).await?;
    let current = store::latest(docker, distro).await?;
    let result = match current {
        Some(image) if image.packages_sha256 == store::packages_hash(&list) => {
            Refresh::Unchanged { image }
        }
        _ => Refresh::New {
            image: store::import(docker, distro, recipe.family(), &tarball, &list).await?,
        },
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
