//! Base images through an OCI registry: `image build`, `image refresh` and `image push` push a
//! distro's image as `<registry>/perestroika-build/<distro>:latest` (and its date); workers
//! resolve that tag to a digest when they take a job (kept for `[images] resolve_secs`) and
//! pull by digest, which Docker checks the content against. The last digest resolved of each
//! distro is kept in the worker's state: a worker that cannot reach the registry builds with
//! it if the image is here, and never on another base.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    CreateImageOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::TryStreamExt;
use perestroika_config::settings::{is_image_digest, ImageSettings};

use super::error::ImageError;
use super::store::{self, BaseImage, IMAGE_REPO};

/// The tag that names a distro's current base in the registry.
pub const LATEST: &str = "latest";
/// How long asking the registry for a tag's digest may take.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(20);
/// How long pulling or pushing one base image may take.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// The most the state file of resolved digests is read of.
const STATE_LIMIT: u64 = 64 * 1024;
/// Name of the state file of resolved digests.
pub const STATE_FILE: &str = "base-digests.json";

/// A registry of base images, as one worker uses it.
#[derive(Debug)]
pub struct Registry {
    address: String,
    ttl: Duration,
    /// `distro → digest` last resolved, kept across restarts.
    state: PathBuf,
    resolved: Mutex<HashMap<String, (Instant, String)>>,
    /// Held while the state file is rewritten (builds in parallel slots resolve at once).
    writing: Mutex<()>,
}

impl Registry {
    /// The registry of `[images]`, if one is configured; what it resolves is kept in
    /// `state_dir`.
    pub fn configured(settings: &ImageSettings, state_dir: &Path) -> Option<Self> {
        settings.registry.as_ref().map(|address| Self {
            address: address.clone(),
            ttl: Duration::from_secs(settings.resolve_secs),
            state: state_dir.join(STATE_FILE),
            resolved: Mutex::new(HashMap::new()),
            writing: Mutex::new(()),
        })
    }

    /// `<registry>/perestroika-build/<distro>`.
    pub fn repository(&self, distro: &str) -> String {
        format!("{}/{IMAGE_REPO}/{distro}", self.address)
    }

    /// The image a build of `distro` uses: the release's `pinned` digest, else the digest the
    /// registry's `latest` names now (or, unreachable, the one last resolved); pulled by digest
    /// unless Docker has it.
    pub async fn for_build(
        &self,
        docker: &Docker,
        distro: &str,
        pinned: Option<&str>,
    ) -> Result<BaseImage, ImageError> {
        let digest = match pinned {
            Some(digest) => digest.to_owned(),
            None => self.resolve(docker, distro).await?,
        };
        self.local(docker, distro, &digest).await
    }

    /// The digest `distro`'s `latest` names: from the cache while it is fresh, else from the
    /// registry, else (the registry unreachable) the one this worker resolved last.
    pub async fn resolve(&self, docker: &Docker, distro: &str) -> Result<String, ImageError> {
        if let Some((at, digest)) = self.lock().get(distro) {
            if at.elapsed() < self.ttl {
                return Ok(digest.clone());
            }
        }
        match self.ask(docker, distro).await {
            Ok(Some(digest)) => {
                self.lock()
                    .insert(distro.to_owned(), (Instant::now(), digest.clone()));
                self.remember(distro, &digest);
                Ok(digest)
            }
            Ok(None) => Err(ImageError::NotInRegistry {
                registry: self.address.clone(),
                distro: distro.to_owned(),
            }),
            Err(why) => match self.remembered().remove(distro) {
                Some(digest) => {
                    tracing::warn!(%distro, %digest, registry = %self.address, error = %why,
                        "the registry is unreachable; using the base digest resolved last");
                    Ok(digest)
                }
                None => Err(ImageError::Unresolved {
                    registry: self.address.clone(),
                    distro: distro.to_owned(),
                    detail: why,
                }),
            },
        }
    }

    /// The registry's digest of `distro`'s `latest`; `None` when it has no such tag.
    async fn ask(&self, docker: &Docker, distro: &str) -> Result<Option<String>, String> {
        let reference = format!("{}:{LATEST}", self.repository(distro));
        let answer = tokio::time::timeout(
            RESOLVE_DEADLINE,
            docker.inspect_registry_image(&reference, None),
        )
        .await
        .map_err(|_| format!("no answer within {} s", RESOLVE_DEADLINE.as_secs()))?;
        match answer {
            Ok(inspect) => match inspect.descriptor.digest {
                Some(digest) if is_image_digest(&digest) => Ok(Some(digest)),
                other => Err(format!("{reference} has no valid digest: {other:?}")),
            },
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The base image `repository@digest`, pulled unless Docker has it.
    async fn local(
        &self,
        docker: &Docker,
        distro: &str,
        digest: &str,
    ) -> Result<BaseImage, ImageError> {
        let reference = format!("{}@{digest}", self.repository(distro));
        let image = match store::inspect(docker, &reference).await? {
            Some(image) => image,
            None => {
                tracing::info!(%reference, "pulling the base image");
                let options = CreateImageOptionsBuilder::new()
                    .from_image(&reference)
                    .build();
                let pull = docker
                    .create_image(Some(options), None, None)
                    .try_collect::<Vec<_>>();
                match tokio::time::timeout(TRANSFER_DEADLINE, pull).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        return Err(ImageError::Pull {
                            reference,
                            detail: e.to_string(),
                        })
                    }
                    Err(_) => {
                        return Err(ImageError::Pull {
                            reference,
                            detail: format!("not done within {} s", TRANSFER_DEADLINE.as_secs()),
                        })
                    }
                }
                store::inspect(docker, &reference)
                    .await?
                    .ok_or_else(|| ImageError::NotABase {
                        reference: reference.clone(),
                        distro: distro.to_owned(),
                    })?
            }
        };
        if image.distro != distro {
            return Err(ImageError::NotABase {
                reference,
                distro: distro.to_owned(),
            });
        }
        Ok(BaseImage {
            digest: Some(digest.to_owned()),
            ..image
        })
    }

    /// Pushes `image` as its distro's `latest` (and its date); returns its digest.
    pub async fn push(&self, docker: &Docker, image: &BaseImage) -> Result<String, ImageError> {
        let repo = self.repository(&image.distro);
        let failed = |detail: String| ImageError::Push {
            repository: repo.clone(),
            detail,
        };
        for tag in [image.created.to_lowercase(), LATEST.to_owned()] {
            let options = TagImageOptionsBuilder::new().repo(&repo).tag(&tag).build();
            docker
                .tag_image(&image.id, Some(options))
                .await
                .map_err(|e| failed(e.to_string()))?;
            let options = PushImageOptionsBuilder::new().tag(&tag).build();
            let push = docker
                .push_image(&repo, Some(options), None)
                .try_collect::<Vec<_>>();
            tokio::time::timeout(TRANSFER_DEADLINE, push)
                .await
                .map_err(|_| failed(format!("not done within {} s", TRANSFER_DEADLINE.as_secs())))?
                .map_err(|e| failed(e.to_string()))?;
        }
        let inspected = docker
            .inspect_image(&image.id)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let prefix = format!("{repo}@");
        inspected
            .repo_digests
            .unwrap_or_default()
            .iter()
            .find_map(|d| d.strip_prefix(&prefix).map(str::to_owned))
            .ok_or_else(|| failed("Docker names no digest of the pushed image".into()))
    }

    /// The image the registry's `latest` of `distro` names, pulled; `None` when it has none.
    pub async fn current(
        &self,
        docker: &Docker,
        distro: &str,
    ) -> Result<Option<BaseImage>, ImageError> {
        match self.ask(docker, distro).await {
            Ok(Some(digest)) => Ok(Some(self.local(docker, distro, &digest).await?)),
            Ok(None) => Ok(None),
            Err(detail) => Err(ImageError::Unresolved {
                registry: self.address.clone(),
                distro: distro.to_owned(),
                detail,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, String)>> {
        self.resolved.lock().expect("resolved digests lock")
    }

    /// The digests resolved last, by distro (none when the state is missing or unreadable;
    /// entries that are not digests are dropped).
    fn remembered(&self) -> BTreeMap<String, String> {
        let mut text = String::new();
        let read = fs_err::File::open(&self.state)
            .and_then(|f| f.take(STATE_LIMIT).read_to_string(&mut text));
        if read.is_err() {
            return BTreeMap::new();
        }
        let mut digests: BTreeMap<String, String> = serde_json::from_str(&text).unwrap_or_default();
        digests.retain(|_, d| is_image_digest(d));
        digests
    }

    /// Keeps `digest` as the one last resolved of `distro`.
    fn remember(&self, distro: &str, digest: &str) {
        let _writing = self.writing.lock().expect("state lock");
        let mut digests = self.remembered();
        if digests.get(distro).map(String::as_str) == Some(digest) {
            return;
        }
        digests.insert(distro.to_owned(), digest.to_owned());
        let json = serde_json::to_vec_pretty(&digests).expect("digests serialise");
        if let Err(e) = perestroika_host::files::write_durable(&self.state, &json) {
            tracing::warn!(path = %self.state.display(), error = %e,
                "cannot keep the resolved base digest; an offline restart will not know it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(dir: &Path) -> Registry {
        let settings = ImageSettings {
            registry: Some("127.0.0.1:5000".into()),
            resolve_secs: 30,
        };
        Registry::configured(&settings, dir).unwrap()
    }

    #[test]
    fn resolved_digests_are_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            format!("sha256:{}", "a".repeat(64)),
            format!("sha256:{}", "b".repeat(64)),
        );
        registry(dir.path()).remember("bookworm", &a);
        registry(dir.path()).remember("trixie", &b);
        let kept = registry(&dir.path().join("other")).remembered();
        assert!(kept.is_empty());
        let kept = registry(dir.path()).remembered();
        assert_eq!(kept.get("bookworm"), Some(&a));
        assert_eq!(kept.get("trixie"), Some(&b));
        assert_eq!(
            registry(dir.path()).repository("bookworm"),
            "127.0.0.1:5000/perestroika-build/bookworm"
        );
    }

    #[test]
    fn a_state_file_of_other_content_names_no_digest() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(STATE_FILE);
        fs_err::write(
            &state,
            r#"{"bookworm": "latest", "trixie": "sha256:../../x"}"#,
        )
        .unwrap();
        assert!(registry(dir.path()).remembered().is_empty());
        fs_err::write(&state, "x".repeat(2 * STATE_LIMIT as usize)).unwrap();
        assert!(registry(dir.path()).remembered().is_empty());
    }
}
