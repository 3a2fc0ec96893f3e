//! A Gerrit stand-in made of real parts: OpenSSH's sshd on a loopback port with its own host
//! key, whose forced command (`tests/gerrit/gerrit-shell`) answers `gerrit stream-events`,
//! `gerrit query` and `git-upload-pack` from files this helper writes, plus real bare git
//! repositories.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::debian::GitRepo;
use crate::{free_port, repo_root, sh, wait_for_listener};

/// A running stand-in. Dropping it stops sshd and everything it started.
pub struct Gerrit {
    pub dir: tempfile::TempDir,
    /// Its data: events, changes, reviews and the bare repositories.
    files: StandIn,
    pub port: u16,
    /// The client's private key, authorised for the current user.
    pub key_file: PathBuf,
    /// A known-hosts file holding the server's host key.
    pub known_hosts: PathBuf,
    pub user: String,
    host_key: PathBuf,
    sshd: Option<Child>,
    /// sshd's ForceCommand: the Gerrit stand-in, or none for a plain SSH host.
    force_command: Option<String>,
}

fn keygen(path: &Path) {
    sh(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "perestroika-test",
            "-f",
        ])
        .arg(path));
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

impl Gerrit {
    /// Generates keys, writes sshd's configuration and starts it.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// A plain SSH host (no Gerrit commands, a normal shell): an rsync-over-SSH mirror host.
    pub fn start_ssh_host() -> Self {
        Self::start_with(false)
    }

    fn start_with(gerrit: bool) -> Self {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is missing: install openssh-server (`.ci/setup` does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("gerrit");
        fs_err::create_dir_all(root.join("git")).unwrap();
        fs_err::write(root.join("events.jsonl"), "").unwrap();
        let key_file = dir.path().join("client_key");
        keygen(&key_file);
        let host_key = dir.path().join("host_key");
        keygen(&host_key);
        fs_err::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        let user = sh(Command::new("id").arg("-un")).trim().to_owned();
        let mut gerrit = Self {
            port: free_port(),
            known_hosts: dir.path().join("known_hosts"),
            key_file,
            user,
            force_command: gerrit.then(|| {
                format!(
                    "/usr/bin/python3 {} {}",
                    repo_root().join("tests/gerrit/gerrit-shell").display(),
                    root.display()
                )
            }),
            files: StandIn { root },
            host_key,
            sshd: None,
            dir,
        };
        gerrit.trust_current_host_key();
        gerrit.start_sshd();
        gerrit
    }

    /// Writes the current host key into the known-hosts file.
    pub fn trust_current_host_key(&self) {
        let public = fs_err::read_to_string(self.host_key.with_extension("pub")).unwrap();
        let mut parts = public.split_whitespace();
        let (kind, key) = (parts.next().unwrap(), parts.next().unwrap());
        fs_err::write(
            &self.known_hosts,
            format!("[127.0.0.1]:{} {kind} {key}\n", self.port),
        )
        .unwrap();
    }

    /// Replaces the server's host key (as a man in the middle would) and restarts sshd; the
    /// known-hosts file keeps the old key.
    pub fn change_host_key(&mut self) {
        self.stop();
        let _ = fs_err::remove_file(&self.host_key);
        let _ = fs_err::remove_file(self.host_key.with_extension("pub"));
        keygen(&self.host_key);
        self.start_sshd();
    }

    /// Starts sshd (again), in its own process group.
    pub fn start_sshd(&mut self) {
        if Command::new("id").arg("-u").output().unwrap().stdout == b"0\n" {
            // sshd's privilege separation directory, when running as root.
            let _ = fs_err::create_dir_all("/run/sshd");
        }
        let config = self.dir.path().join("sshd_config");
        let force = self
            .force_command
            .as_ref()
            .map(|c| format!("ForceCommand {c}\n"))
            .unwrap_or_default();
        let template =
            fs_err::read_to_string(repo_root().join("tests/gerrit/sshd_config.in")).unwrap();
        let text = template
            .replace("@PORT@", &self.port.to_string())
            .replace("@HOST_KEY@", &self.host_key.display().to_string())
            .replace("@DIR@", &self.dir.path().display().to_string());
        fs_err::write(&config, format!("{text}{force}")).unwrap();
        let log = fs_err::File::create(self.dir.path().join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stderr(log.into_parts().0)
            .process_group(0)
            .spawn()
            .expect("start sshd");
        self.sshd = Some(child);
        let log = self.dir.path().join("sshd.log");
        wait_for_listener(&format!("127.0.0.1:{}", self.port), "sshd", || {
            fs_err::read_to_string(&log).unwrap_or_default()
        });
    }

    /// Stops sshd and every session it serves (SIGKILL to its process group).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.sshd.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
        // Sessions whose processes left the group (none expected), by their data root.
        self.kill_commands();
    }

    /// Freezes (SIGSTOP) every connection sshd serves now, as a network partition would:
    /// the TCP connections stay open and nothing answers. New connections are served.
    /// Returns the frozen processes, for [`Gerrit::thaw`].
    pub fn freeze_connections(&self) -> Vec<String> {
        let listener = self.sshd.as_ref().expect("sshd runs").id().to_string();
        // Every descendant of the listening sshd: its per-connection processes and commands.
        let table = sh(Command::new("ps").args(["-e", "-o", "pid=,ppid="]));
        let pairs: Vec<(String, String)> = table
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.to_owned(), w.next()?.to_owned()))
            })
            .collect();
        let mut frozen: Vec<String> = Vec::new();
        let mut parents = vec![listener];
        while let Some(parent) = parents.pop() {
            for (pid, _) in pairs.iter().filter(|(_, ppid)| *ppid == parent) {
                frozen.push(pid.clone());
                parents.push(pid.clone());
            }
        }
        assert!(!frozen.is_empty(), "no connection to freeze");
        for pid in &frozen {
            let _ = Command::new("kill").args(["-STOP", pid]).status();
        }
        frozen
    }

    /// Ends processes frozen by [`Gerrit::freeze_connections`].
    pub fn thaw(&self, frozen: &[String]) {
        for pid in frozen {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
            let _ = Command::new("kill").args(["-CONT", pid]).status();
        }
    }

    /// Ends every running `gerrit` command (the stream included) without touching sshd.
    pub fn kill_commands(&self) {
        let _ = Command::new("pkill")
            .args([
                "-KILL",
                "-f",
                &format!("gerrit-shell {}", self.root.display()),
            ])
            .status();
    }

    /// The `[gerrit]` section of a farm configuration for this stand-in; projects clone from
    /// the bare repositories directly.
    pub fn config_section(&self) -> String {
        format!(
            "[gerrit]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\nkey_file = \"{}\"\n\
             known_hosts = \"{}\"\ngit_url = \"file://{}/git\"\nkeepalive_secs = 2\ncatchup_margin_secs = 60\n",
            self.port,
            self.user,
            self.key_file.display(),
            self.known_hosts.display(),
            self.root.display()
        )
    }
}

impl std::ops::Deref for Gerrit {
    type Target = StandIn;

    fn deref(&self) -> &StandIn {
        &self.files
    }
}

/// The stand-in's data under one root, whoever runs its sshd (a test's [`Gerrit`], or the
/// demo's long-lived one): `events.jsonl` (the stream), `changes.jsonl` (what `gerrit query`
/// answers), `reviews.jsonl`, `streams.log`, `commands.log` and `git/<project>` (bare).
#[derive(Debug, Clone)]
pub struct StandIn {
    pub root: PathBuf,
}

impl StandIn {
    /// The data under `root` (created by the stand-in's first use).
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// Where the projects' bare repositories are (the workers' `git_url`).
    pub fn git_root(&self) -> PathBuf {
        self.root.join("git")
    }

    /// The bare repository of a project (created on first use).
    pub fn repo(&self, project: &str) -> PathBuf {
        let path = self.root.join("git").join(project);
        if !path.exists() {
            fs_err::create_dir_all(&path).unwrap();
            sh(Command::new("git")
                .args(["init", "-q", "--bare", "-b", "main"])
                .arg(&path));
        }
        path
    }

    /// Commits files on top of `branch` of `project` and pushes; returns the commit id.
    pub fn push(
        &self,
        project: &str,
        branch: &str,
        files: &[(String, String)],
        message: &str,
    ) -> String {
        self.push_to(project, branch, None, files, message, |_| {}, false)
    }

    /// Commits a directory's content (replacing the branch's files) on top of `branch` of
    /// `project` and pushes it to the branch; returns the commit id.
    pub fn push_dir(&self, project: &str, branch: &str, dir: &Path, message: &str) -> String {
        self.push_dir_to(project, branch, dir, message, false)
    }

    /// Like [`StandIn::push_dir`], but pushes nothing when the branch already holds the
    /// directory's content; returns the branch's (possibly unchanged) head.
    pub fn push_dir_if_changed(
        &self,
        project: &str,
        branch: &str,
        dir: &Path,
        message: &str,
    ) -> String {
        self.push_dir_to(project, branch, dir, message, true)
    }

    fn push_dir_to(
        &self,
        project: &str,
        branch: &str,
        dir: &Path,
        message: &str,
        only_if_changed: bool,
    ) -> String {
        let copy = |w: &Path| {
            sh(Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", dir.display()))
                .arg(w));
        };
        self.push_to(project, branch, None, &[], message, copy, only_if_changed)
    }

    /// Commits files on top of `branch` of `project` as patch set `patch_set` of change
    /// `change`: pushed to `refs/changes/NN/<change>/<patch set>`, not to the branch.
    pub fn push_change(
        &self,
        project: &str,
        branch: &str,
        (change, patch_set): (u64, u32),
        files: &[(String, String)],
        message: &str,
    ) -> String {
        let refname = format!("refs/changes/{:02}/{change}/{patch_set}", change % 100);
        self.push_to(
            project,
            branch,
            Some(&refname),
            files,
            message,
            |_| {},
            false,
        )
    }

    /// Clones `project`, checks out `branch` (new if missing), lets `prepare` change the work
    /// tree, commits it with `files` written, and pushes to `refname` (default: the branch).
    /// With `only_if_changed`, a work tree equal to the branch's head is neither committed
    /// nor pushed, and the head is returned.
    #[allow(clippy::too_many_arguments)]
    fn push_to(
        &self,
        project: &str,
        branch: &str,
        refname: Option<&str>,
        files: &[(String, String)],
        message: &str,
        prepare: impl FnOnce(&Path),
        only_if_changed: bool,
    ) -> String {
        let bare = self.repo(project);
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        sh(Command::new("git").arg("clone").arg("-q").arg(&bare).arg(w));
        let has_branch = !sh(Command::new("git")
            .args(["ls-remote", "--heads", "origin", branch])
            .current_dir(w))
        .trim()
        .is_empty();
        let checkout: &[&str] = if has_branch {
            &["checkout", "-q"]
        } else {
            &["checkout", "-q", "--orphan"]
        };
        sh(Command::new("git")
            .args(checkout)
            .arg(branch)
            .current_dir(w));
        prepare(w);
        if only_if_changed && has_branch && files.is_empty() {
            sh(Command::new("git").args(["add", "-A"]).current_dir(w));
            let status = sh(Command::new("git")
                .args(["status", "--porcelain"])
                .current_dir(w));
            if status.trim().is_empty() {
                return GitRepo::open(w).head();
            }
        }
        let commit = GitRepo::open(w).commit(files, message);
        let target = refname
            .map(str::to_owned)
            .unwrap_or_else(|| format!("refs/heads/{branch}"));
        sh(Command::new("git")
            .args(["push", "-q", "origin", &format!("HEAD:{target}")])
            .current_dir(w));
        commit
    }

    /// Uploads patch set `patch_set` of change `number`: `files` committed on top of the
    /// branch's head, pushed to the change's ref, the change recorded as open and
    /// `patchset-created` sent, as Gerrit does on `git push origin HEAD:refs/for/<branch>`.
    pub fn upload(
        &self,
        project: &str,
        branch: &str,
        (number, patch_set): (u64, u32),
        files: &[(String, String)],
    ) -> ChangeSpec {
        let message = format!("change {number}");
        let revision = self.push_change(project, branch, (number, patch_set), files, &message);
        let change = ChangeSpec {
            project: project.to_owned(),
            branch: branch.to_owned(),
            number,
            patch_set,
            revision,
            topic: None,
        };
        self.record(&change.row("NEW"));
        self.emit(&change.event("patchset-created", json!({})));
        change
    }

    /// The commit `branch` of `project` points at, if the branch exists.
    pub fn branch_head(&self, project: &str, branch: &str) -> Option<String> {
        let out = Command::new("git")
            .args([
                "rev-parse",
                "-q",
                "--verify",
                &format!("refs/heads/{branch}"),
            ])
            .current_dir(self.repo(project))
            .output()
            .unwrap_or_else(|e| panic!("git rev-parse: {e}"));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `git rev-list --count` of `commit` in `project`: the count the farm's versions use.
    pub fn commit_count(&self, project: &str, commit: &str) -> u64 {
        sh(Command::new("git")
            .args(["rev-list", "--count", commit])
            .current_dir(self.repo(project)))
        .trim()
        .parse()
        .expect("git rev-list --count prints a number")
    }

    /// The number a new change gets: one more than the highest recorded.
    pub fn next_change_number(&self) -> u64 {
        self.changes()
            .iter()
            .filter_map(|row| row["number"].as_u64())
            .max()
            .unwrap_or(0)
            + 1
    }

    /// Sets a project's submit type where Gerrit keeps it: `submit.action` of
    /// `project.config` on `refs/meta/config` (e.g. "merge if necessary", "cherry pick").
    pub fn set_submit_type(&self, project: &str, action: &str) {
        let bare = self.repo(project);
        let git = |args: &[&str], input: &str| {
            use std::io::Write;
            let mut child = Command::new("git")
                .args(args)
                .current_dir(&bare)
                .env("GIT_AUTHOR_NAME", "Admin")
                .env("GIT_AUTHOR_EMAIL", "admin@example.invalid")
                .env("GIT_COMMITTER_NAME", "Admin")
                .env("GIT_COMMITTER_EMAIL", "admin@example.invalid")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "git {args:?} failed");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let blob = git(
            &["hash-object", "-w", "--stdin"],
            &format!("[submit]\n\taction = {action}\n"),
        );
        let tree = git(
            &["mktree"],
            &format!("100644 blob {blob}\tproject.config\n"),
        );
        let commit = git(&["commit-tree", &tree, "-m", "Set the submit type"], "");
        git(&["update-ref", "refs/meta/config", &commit], "");
    }

    /// Submits patch set `patch_set` of change `number` as a user would (`gerrit review
    /// N,P --submit`): the stand-in merges it with the project's submit type and sends
    /// `ref-updated` and `change-merged`. Returns the branch's new head, or Gerrit's refusal.
    pub fn submit(&self, number: u64, patch_set: u32) -> Result<String, String> {
        let out = Command::new("python3")
            .arg(repo_root().join("tests/gerrit/gerrit-shell"))
            .arg(&self.root)
            .args([
                "gerrit",
                "review",
                &format!("{number},{patch_set}"),
                "--submit",
            ])
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let row = self
            .changes()
            .into_iter()
            .rev()
            .find(|r| r["number"] == json!(number))
            .expect("the submitted change is recorded");
        let (project, branch) = (
            row["project"].as_str().unwrap(),
            row["branch"].as_str().unwrap(),
        );
        Ok(self.head(project, branch))
    }

    /// The commit `branch` of `project` points at.
    pub fn head(&self, project: &str, branch: &str) -> String {
        sh(Command::new("git")
            .args(["rev-parse", &format!("refs/heads/{branch}")])
            .current_dir(self.repo(project)))
        .trim()
        .to_owned()
    }

    /// The change rows recorded so far, oldest first (a change's last row is its state).
    pub fn changes(&self) -> Vec<Value> {
        fs_err::read_to_string(self.root.join("changes.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("a change row is JSON"))
            .collect()
    }

    /// Sets how the stand-in's server behaves on submit (`ROOT/server.json`): `new_rev`
    /// (`false`: `change-merged` without `newRev`, as before Gerrit 2.13) and `drop_events`
    /// (`true`: the submit's events never reach the stream, as when Gerrit drops them), and
    /// `hang_review` (`true`: `gerrit review` never answers).
    pub fn server_option(&self, key: &str, value: bool) {
        let path = self.root.join("server.json");
        let mut options: Value = fs_err::read(&path)
            .ok()
            .map(|b| serde_json::from_slice(&b).expect("server.json is JSON"))
            .unwrap_or_else(|| json!({}));
        options[key] = json!(value);
        fs_err::write(&path, options.to_string()).unwrap();
    }

    /// Appends raw lines to the event stream.
    pub fn emit_raw(&self, lines: &[String]) {
        use std::io::Write;
        let mut f = fs_err::OpenOptions::new()
            .append(true)
            .open(self.root.join("events.jsonl"))
            .unwrap();
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Appends one event to the stream.
    pub fn emit(&self, event: &Value) {
        self.emit_raw(&[event.to_string()]);
    }

    /// Records a change as `gerrit query` will report it.
    pub fn record(&self, row: &Value) {
        use std::io::Write;
        let mut f = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("changes.jsonl"))
            .unwrap();
        writeln!(f, "{row}").unwrap();
    }

    /// Waits until `n` stream-events sessions have started in all (each sees events
    /// emitted after its start, as on Gerrit).
    pub fn wait_for_streams(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let started = fs_err::read_to_string(self.root.join("streams.log"))
                .unwrap_or_default()
                .lines()
                .count();
            if started >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {started} of {n} stream-events sessions started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `within` until the newest stream-events session is still alive (a
    /// long-lived stand-in's log also names sessions that ended); false if none is.
    pub fn wait_for_live_stream(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let log = fs_err::read_to_string(self.root.join("streams.log")).unwrap_or_default();
            let pid = log.lines().last().and_then(|l| l.split_whitespace().next());
            if pid.is_some_and(|pid| Path::new("/proc").join(pid).exists()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `gerrit review` commands the stand-in received, in order: each with `target`
    /// (`CHANGE,PS`), `message`, `labels` (name → value) and `argv`.
    pub fn reviews(&self) -> Vec<Value> {
        fs_err::read_to_string(self.root.join("reviews.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a review line is JSON"))
            .collect()
    }

    /// Commands the stand-in was asked to run, one per line.
    pub fn commands(&self) -> String {
        fs_err::read_to_string(self.root.join("commands.log")).unwrap_or_default()
    }
}

impl Drop for Gerrit {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A change of `project` on `branch` at one patch set.
#[derive(Debug, Clone)]
pub struct ChangeSpec {
    pub project: String,
    pub branch: String,
    pub number: u64,
    pub patch_set: u32,
    pub revision: String,
    /// The change's Gerrit topic, if any.
    pub topic: Option<String>,
}

impl ChangeSpec {
    fn change(&self, status: &str) -> Value {
        let mut change = json!({
            "project": self.project,
            "branch": self.branch,
            "id": format!("I{:040x}", self.number),
            "number": self.number,
            "subject": format!("change {}", self.number),
            "owner": {"name": "Dev", "email": "dev@example.invalid", "username": "dev"},
            "url": format!("http://gerrit.invalid/{}", self.number),
            "status": status,
        });
        if let Some(topic) = &self.topic {
            change["topic"] = json!(topic);
        }
        change
    }

    fn patch_set(&self) -> Value {
        json!({
            "number": self.patch_set,
            "revision": self.revision,
            "parents": [],
            "ref": format!("refs/changes/{:02}/{}/{}", self.number % 100, self.number, self.patch_set),
            "uploader": {"name": "Dev", "email": "dev@example.invalid", "username": "dev"},
            "createdOn": now(),
        })
    }

    /// A stream event of this change (`change-merged`, `patchset-created`, …) in Gerrit 3's
    /// shape; `extra` fields are merged in. A `change-merged` names the patch set's revision
    /// as the branch's new state (`newRev`), as a fast-forward submit does.
    pub fn event(&self, kind: &str, extra: Value) -> Value {
        let status = match kind {
            "change-merged" => "MERGED",
            "change-abandoned" => "ABANDONED",
            _ => "NEW",
        };
        let mut v = json!({
            "type": kind,
            "change": self.change(status),
            "patchSet": self.patch_set(),
            "project": self.project,
            "refName": format!("refs/heads/{}", self.branch),
            "changeKey": {"id": format!("I{:040x}", self.number)},
            "eventCreatedOn": now(),
        });
        if kind == "change-merged" {
            // A fast-forward: the branch now holds the patch set's own revision.
            v["newRev"] = json!(self.revision);
        }
        if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
            v.extend(extra);
        }
        v
    }

    /// The row `gerrit query --current-patch-set` gives for this change.
    pub fn row(&self, status: &str) -> Value {
        let mut row = self.change(status);
        row["currentPatchSet"] = self.patch_set();
        row["patchSets"] = json!([self.patch_set()]);
        row["lastUpdated"] = json!(now());
        row["open"] = json!(status == "NEW");
        row
    }
}
