//! A release's deb indexes signed again before their `Valid-Until` passes.

use perestroika_protocol::messages::Target;

use super::generation::Published;
use crate::error::PublishError;
use crate::publisher::Publisher;

impl Publisher<'_> {
    /// Signs a release's deb indexes again (a new generation, same contents) when less than
    /// half of their validity (`publish.valid_for_secs`) is left, or they have none. Returns
    /// the new generation, or `None` when nothing was due.
    pub fn refresh_signatures(
        &self,
        customer: &str,
        version: &str,
    ) -> Result<Option<Published>, PublishError> {
        self.release(customer, version)?;
        let Some(valid_for) = self.valid_for() else {
            return Ok(None);
        };
        let (tree, tree_name, lock) =
            self.trees()
                .lock_tree(customer, version, &Target::Release)?;
        let Some(current) = tree.current() else {
            return Ok(None);
        };
        let (deb, deb_suites) = self.open_deb(
            &tree,
            &lock,
            &tree_name,
            customer,
            version,
            &Target::Release,
        )?;
        let Some(repo) = deb else {
            return Ok(None);
        };
        let now = chrono::Utc::now();
        let dists = tree.generation_dir(current).deb_dists();
        let due = deb_suites.iter().any(|suite| {
            fs_err::read_to_string(dists.join(suite).join("Release"))
                .ok()
                .is_some_and(|release| {
                    crate::release_file::valid_until(&release)
                        .is_none_or(|until| until - now <= valid_for / 2)
                })
        });
        if !due {
            return Ok(None);
        }
        let rpm_repos = self.rpm_repos(
            &tree,
            &tree_name,
            &self.tree_releases(customer, version, &Target::Release)?,
        );
        let generation = self.write_generation(
            &tree,
            &tree_name,
            &lock,
            Some(&repo),
            &deb_suites,
            &rpm_repos,
        )?;
        Ok(Some(Published {
            tree: tree_name,
            generation,
            changed: true,
        }))
    }
}
