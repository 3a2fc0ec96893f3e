use super::*;
use std::time::Duration;

fn deadline(secs: u64) -> Deadline {
    Deadline::new(Duration::from_secs(secs), "build.git_timeout_secs")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=T", "-c", "user.email=t@example.invalid"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Two builds of one repository at once (two slots of one worker) both get its commits.
#[test]
fn builds_at_once_share_one_repository_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    fs_err::create_dir_all(&source).unwrap();
    git(&source, &["init", "-q", "-b", "main"]);
    let mut commits = Vec::new();
    for n in 0..4 {
        fs_err::write(source.join("file"), n.to_string()).unwrap();
        git(&source, &["add", "file"]);
        git(&source, &["commit", "-q", "-m", &n.to_string()]);
        commits.push(git(&source, &["rev-parse", "HEAD"]));
    }
    let cache = GitCache::new(&dir.path().join("cache"), deadline(60));
    let url = format!("file://{}", source.display());
    let fetched: Vec<Result<Repo, GitError>> = std::thread::scope(|s| {
        let threads: Vec<_> = commits
            .iter()
            .map(|c| s.spawn(|| cache.fetch(&url, c, None)))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (result, commit) in fetched.into_iter().zip(&commits) {
        let repo = result.unwrap_or_else(|e| panic!("{commit}: {e}"));
        assert_eq!(
            repo.read(commit, "file").unwrap().as_deref(),
            Some(
                &*commits
                    .iter()
                    .position(|c| c == commit)
                    .unwrap()
                    .to_string()
            )
        );
    }
}

/// A mirror unused for longer than the limit goes, one used recently or held by a build
/// stays, and a removed mirror is cloned again when a build needs it.
#[test]
fn mirrors_unused_for_too_long_are_removed_unless_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(&dir.path().join("cache"), deadline(60));
    let mut repos = Vec::new();
    for name in ["old", "recent", "busy"] {
        let source = dir.path().join(name);
        fs_err::create_dir_all(&source).unwrap();
        git(&source, &["init", "-q", "-b", "main"]);
        fs_err::write(source.join("file"), name).unwrap();
        git(&source, &["add", "file"]);
        git(&source, &["commit", "-q", "-m", name]);
        let commit = git(&source, &["rev-parse", "HEAD"]);
        let url = format!("file://{}", source.display());
        let repo = cache.fetch(&url, &commit, None).unwrap();
        repos.push((url, commit, repo));
    }
    let day = std::time::Duration::from_secs(24 * 3600);
    let key = |repo: &Repo| {
        let name = repo.path.file_name().unwrap().to_string_lossy();
        name.trim_end_matches(".git").to_owned()
    };
    let long_ago = std::time::SystemTime::now() - 40 * day;
    for (_, _, repo) in [&repos[0], &repos[2]] {
        let stamp = fs_err::File::options()
            .write(true)
            .open(cache.stamp(&key(repo)))
            .unwrap();
        stamp.set_modified(long_ago).unwrap();
    }
    // A build holds the third one's lock.
    let held = fs_err::File::options()
        .write(true)
        .open(cache.root.join(format!("{}.lock", key(&repos[2].2))))
        .unwrap();
    held.file().lock().unwrap();
    assert_eq!(
        cache.prune_unused(30 * day),
        std::slice::from_ref(&repos[0].2.path)
    );
    assert!(!repos[0].2.path.exists());
    assert!(!cache.stamp(&key(&repos[0].2)).exists());
    assert!(repos[1].2.path.join("HEAD").is_file());
    assert!(repos[2].2.path.join("HEAD").is_file());
    drop(held);
    let (url, commit, _) = &repos[0];
    let again = cache.fetch(url, commit, None).unwrap();
    assert_eq!(again.read(commit, "file").unwrap().as_deref(), Some("old"));
}
