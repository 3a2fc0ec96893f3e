//! Base images: bootstrapped from the host's mirror (mmdebstrap) or an rpm distro's own
//! repositories (`dnf --installroot`, see [`crate::dnf_root`]), imported into Docker through
//! its API (no registry involved), tagged `perestroika-build/<distro>:<date>` and labelled with
//! what they contain and the package family they build. A build always uses the newest image
//! of its distro; a new one only comes from `image build` or `image refresh`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;

use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use perestroika_config::settings::RpmRoot;
use perestroika_config::Family;

use crate::apt_sources::{host_codename, HostMirrors};

/// Docker repository prefix of base images.
pub const IMAGE_REPO: &str = "perestroika-build";
const DISTRO_LABEL: &str = "perestroika.distro";
const CREATED_LABEL: &str = "perestroika.created";
const PACKAGES_LABEL: &str = "perestroika.packages-sha256";
const COUNT_LABEL: &str = "perestroika.package-count";
const FAMILY_LABEL: &str = "perestroika.family";
/// Inside every base image: the packages it holds, `name version` per line.
pub const PACKAGE_LIST: &str = "/etc/perestroika-base.list";

/// Packages every base image holds beyond mmdebstrap's buildd variant (fakeroot for packages
/// that do not declare `Rules-Requires-Root: no`).
const EXTRA_PACKAGES: &str = "ca-certificates,fakeroot";
/// Debian packages an rpm build image made from a Debian root holds beyond the buildd variant.
const RPM_ON_DEBIAN_PACKAGES: &str = "rpm,dnf,dnf-plugins-core,createrepo-c,file";
/// Run chrooted in that root: makes the Debian packages visible to rpm (see the script).
const RPM_ON_DEBIAN: &str = include_str!("../scripts/rpm-on-debian.sh");
/// Changes whenever what goes into a base image changes; images of another recipe are not used.
const RECIPE: &str = "1";
const RECIPE_LABEL: &str = "perestroika.recipe";

/// Something went wrong with base images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("mmdebstrap failed for {distro} (exit {code}): {tail}")]
    Bootstrap {
        distro: String,
        code: i32,
        tail: String,
    },
    #[error("Docker: {what}: {source}")]
    Docker {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("no base image for {distro}; make one with `perestroika-worker image build --distro {distro}` (add --rpm for an rpm distro)")]
    Missing { distro: String },
    #[error("bootstrapping the {distro} root with dnf failed: {detail}")]
    Dnf { distro: String, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn docker_err(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Docker { what, source }
}

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
}

/// How a base image is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipe {
    /// A Debian root of that codename (mmdebstrap, buildd variant).
    Deb,
    /// An rpm build root made from a Debian root of the host's own release, with Debian's rpm,
    /// dnf and createrepo-c: for farms that cannot reach an rpm distribution's mirror.
    RpmOnDebian,
    /// An rpm distro's own root, installed with `dnf --installroot` the way mock does it.
    Rpm(RpmRoot),
}

impl Recipe {
    /// The family the image's builds make.
    pub fn family(&self) -> Family {
        match self {
            Recipe::Deb => Family::Deb,
            Recipe::RpmOnDebian | Recipe::Rpm(_) => Family::Rpm,
        }
    }
}

/// Bootstraps a base root for `distro` by `recipe` and imports it. Progress goes to stderr.
pub async fn build(
    docker: &Docker,
    distro: &str,
    recipe: &Recipe,
    scratch: &Path,
) -> Result<BaseImage, ImageError> {
    let (tarball, list) = bootstrap(distro, recipe, scratch).await?;
    let image = import(docker, distro, recipe.family(), &tarball, &list).await;
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
    let (tarball, list) = bootstrap(distro, recipe, scratch).await?;
    let current = latest(docker, distro).await?;
    let result = match current {
        Some(image) if image.packages_sha256 == packages_hash(&list) => {
            Refresh::Unchanged { image }
        }
        _ => Refresh::New {
            image: import(docker, distro, recipe.family(), &tarball, &list).await?,
        },
    };
    let _ = fs_err::remove_file(&tarball);
    Ok(result)
}

fn packages_hash(list: &str) -> String {
    hex::encode(Sha256::digest(list.as_bytes()))
}

/// Makes the root file system of `distro` by `recipe`; returns the tarball and the package
/// list (`name version` per line, sorted).
async fn bootstrap(
    distro: &str,
    recipe: &Recipe,
    scratch: &Path,
) -> Result<(std::path::PathBuf, String), ImageError> {
    perestroika_config::names::check_token("distro", distro)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    fs_err::create_dir_all(scratch)?;
    let tarball = scratch.join(format!("{distro}.{}.tar", std::process::id()));
    match recipe {
        Recipe::Deb => mmdebstrap(distro, distro, &[], scratch, &tarball).await?,
        Recipe::RpmOnDebian => {
            let debian = host_codename().ok_or_else(|| {
                std::io::Error::other(
                    "cannot tell the host's Debian release (no VERSION_CODENAME in /etc/os-release)",
                )
            })?;
            let script = scratch.join(format!("rpm-on-debian.{}.sh", std::process::id()));
            fs_err::write(&script, RPM_ON_DEBIAN)?;
            let extra = [
                format!("--include={RPM_ON_DEBIAN_PACKAGES}"),
                format!(
                    "--customize-hook=upload {} /tmp/rpm-on-debian.sh",
                    script.display()
                ),
                format!("--customize-hook=chroot \"$1\" sh /tmp/rpm-on-debian.sh {distro}"),
                "--customize-hook=rm -f \"$1/tmp/rpm-on-debian.sh\"".to_owned(),
            ];
            let made = mmdebstrap(distro, &debian, &extra, scratch, &tarball).await;
            let _ = fs_err::remove_file(&script);
            made?
        }
        Recipe::Rpm(root) => {
            return crate::dnf_root::bootstrap(distro, root, scratch, &tarball)
                .await
                .map(|list| (tarball, list))
        }
    }
    let copied = scratch.join(Path::new(PACKAGE_LIST).file_name().expect("file name"));
    let list = fs_err::read_to_string(&copied)?;
    let _ = fs_err::remove_file(&copied);
    Ok((tarball, list))
}

/// Runs mmdebstrap for a Debian root of `suite` into `tarball`, with `extra` options; the
/// package list is copied out to `scratch`.
async fn mmdebstrap(
    distro: &str,
    suite: &str,
    extra: &[String],
    scratch: &Path,
    tarball: &Path,
) -> Result<(), ImageError> {
    let mirrors = HostMirrors::from_host().lines_for(suite);
    let mut cmd = tokio::process::Command::new("mmdebstrap");
    cmd.arg("--variant=buildd")
        .arg(format!("--include={EXTRA_PACKAGES}"))
        .arg("--skip=cleanup/apt/lists")
        .arg("--customize-hook=chroot \"$1\" useradd --create-home --uid 1000 --user-group builder")
        .args(extra)
        .arg(format!(
            "--customize-hook=chroot \"$1\" dpkg-query -W -f='${{Package}} ${{Version}}\\n' | LC_ALL=C sort > \"$1{PACKAGE_LIST}\""
        ))
        .arg(format!("--customize-hook=copy-out {PACKAGE_LIST} {}", scratch.display()))
        .arg(suite)
        .arg(tarball)
        .args(&mirrors)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    tracing::info!(%distro, %suite, mirrors = %mirrors.join(" "), "bootstrapping a base root with mmdebstrap");
    if let Some((code, tail)) = run_streaming(&mut cmd).await? {
        let _ = fs_err::remove_file(tarball);
        return Err(ImageError::Bootstrap {
            distro: distro.to_owned(),
            code,
            tail,
        });
    }
    Ok(())
}

/// Runs a bootstrap command, copying its stderr (progress) to ours; on failure returns its
/// exit code and last lines.
pub(crate) async fn run_streaming(
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

async fn import(
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
            let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            BaseImage {
                tag: s
                    .repo_tags
                    .iter()
                    .find(|t| t.starts_with(IMAGE_REPO))
                    .cloned()
                    .unwrap_or_default(),
                id: s.id.clone(),
                distro: label(DISTRO_LABEL),
                created: label(CREATED_LABEL),
                packages_sha256: label(PACKAGES_LABEL),
                package_count: label(COUNT_LABEL).parse().unwrap_or(0),
                // Images from before the label build debs.
                family: match label(FAMILY_LABEL).as_str() {
                    "rpm" => Family::Rpm,
                    _ => Family::Deb,
                },
            }
        })
        .collect();
    images.sort_by(|a, b| a.distro.cmp(&b.distro).then(b.created.cmp(&a.created)));
    Ok(images)
}

/// The newest base image of `distro`.
pub async fn latest(docker: &Docker, distro: &str) -> Result<Option<BaseImage>, ImageError> {
    Ok(list(docker, Some(distro)).await?.into_iter().next())
}

/// The image a build of `distro` uses, or a clear error if there is none.
pub async fn for_build(docker: &Docker, distro: &str) -> Result<BaseImage, ImageError> {
    latest(docker, distro)
        .await?
        .ok_or_else(|| ImageError::Missing {
            distro: distro.to_owned(),
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
