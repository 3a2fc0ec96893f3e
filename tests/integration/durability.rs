//! Power loss during a publish. This machine offers no device-mapper (no `flakey` target to
//! drop unsynced writes), so a real publish is audited with strace instead: everything the
//! switch makes live — every file and directory of the new generation, every pool file its
//! indexes name that the publish added — is fsynced (or covered by a syncfs of its
//! filesystem) before the live link is replaced, and the link's directory after it.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use perestroika_tests::apt::{make_deb, signed_farm, AptRoot, OperatorKey, BOOKWORM_RELEASE};
use perestroika_tests::NO_BROKER;

/// One completed system call of the trace.
struct Call {
    name: String,
    /// The path of its first argument when that is a file descriptor (`strace -y`).
    fd_path: Option<PathBuf>,
    /// Its string arguments (paths of rename and symlink).
    strings: Vec<String>,
    /// The whole line, for finding where a path was written.
    line: String,
}

/// The successful calls of an `strace -f -y -s 4096` trace, in order (a call split by another
/// process's is joined at its end).
fn parse(trace: &str) -> Vec<Call> {
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut calls = Vec::new();
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let whole = if let Some(start) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid.to_owned(), start.to_owned());
            continue;
        } else if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some(start) = pending.remove(pid) else {
                continue;
            };
            let tail = resumed.split_once("resumed>").map_or("", |(_, t)| t);
            format!("{start}{tail}")
        } else {
            rest.to_owned()
        };
        let Some((name, args)) = whole.split_once('(') else {
            continue; // signals and exits
        };
        if !(whole.ends_with(" = 0") || whole.contains(") = 0<") || name == "openat") {
            continue;
        }
        let fd_path = args
            .split_once('<')
            .filter(|(fd, _)| fd.chars().all(|c| c.is_ascii_digit()))
            .and_then(|(_, p)| p.split_once('>'))
            .map(|(p, _)| PathBuf::from(p));
        let strings = args
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        calls.push(Call {
            name: name.to_owned(),
            fd_path,
            strings,
            line: whole.clone(),
        });
    }
    calls
}

/// Every regular file and directory under `dir` (itself included), never following links.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_owned());
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let kind = fs_err::symlink_metadata(&path).unwrap().file_type();
        if kind.is_dir() {
            walk(&path, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

/// Every pool path (`pool/…`) the deb indexes of a generation name.
fn named_pool_files(generation: &Path) -> BTreeSet<String> {
    let mut indexes = Vec::new();
    walk(&generation.join("deb/dists"), &mut indexes);
    let mut out = BTreeSet::new();
    for index in indexes.iter().filter(|p| p.ends_with("Packages")) {
        let text = fs_err::read_to_string(index).unwrap();
        out.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("Filename: "))
                .map(str::to_owned),
        );
    }
    out
}

struct Audit<'a> {
    calls: &'a [Call],
}

impl Audit<'_> {
    fn rename(&self, from: &Path, to: &Path) -> usize {
        let (from, to) = (from.to_str().unwrap(), to.to_str().unwrap());
        self.calls
            .iter()
            .position(|c| {
                c.name.starts_with("rename")
                    && c.strings.first().map(String::as_str) == Some(from)
                    && c.strings.last().map(String::as_str) == Some(to)
            })
            .unwrap_or_else(|| panic!("no rename of {from} to {to} in the trace"))
    }

    /// Whether `path` was fsynced within `range` of the trace.
    fn fsynced(&self, path: &Path, range: std::ops::Range<usize>) -> bool {
        self.calls[range]
            .iter()
            .any(|c| c.name == "fsync" && c.fd_path.as_deref() == Some(path))
    }

    /// Whether `path` was fsynced, or its filesystem synced after it was last written, before
    /// `before`.
    fn durable(&self, path: &Path, before: usize) -> bool {
        if self.fsynced(path, 0..before) {
            return true;
        }
        let text = path.to_str().unwrap();
        let written = self.calls[..before]
            .iter()
            .rposition(|c| c.name != "fsync" && c.line.contains(text));
        let dev = fs_err::metadata(path).unwrap().dev();
        self.calls[..before]
            .iter()
            .enumerate()
            .skip(written.map_or(0, |w| w + 1))
            .any(|(_, c)| {
                c.name == "syncfs"
                    && c.fd_path
                        .as_deref()
                        .is_some_and(|p| fs_err::metadata(p).is_ok_and(|m| m.dev() == dev))
            })
    }
}

#[test]
fn a_publish_syncs_everything_it_makes_live_before_the_switch_and_the_switch_after() {
    let key = OperatorKey::new();
    let farm = signed_farm(NO_BROKER, &[&key], "", BOOKWORM_RELEASE);
    let debs = tempfile::tempdir().unwrap();
    // A first generation, so that the audited one also reuses files of a previous one.
    farm.publish(
        "bookworm",
        &[make_deb(debs.path(), "first", "1.0", false, "a")],
    );
    let live = farm.release_tree();
    let root = fs_err::canonicalize(live.parent().unwrap()).unwrap();
    let live = root.join("9.0");
    let pool = root.join(".9.0.pool");
    let mut before = Vec::new();
    walk(&pool, &mut before);

    let deb = make_deb(debs.path(), "audited", "1.0", false, "b");
    let udeb = make_deb(debs.path(), "audited-udeb", "1.0", true, "b");
    let trace = farm.dir.path().join("publish.strace");
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-y", "-s", "4096", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2,symlink,symlinkat,openat,sendto,write",
        ]);
    let publish = farm.include("bookworm", &[], &[&deb, &udeb]);
    cmd.arg(publish.get_program()).args(publish.get_args());
    let out = cmd
        .output()
        .expect("strace runs (bash .ci/setup installs it)");
    assert!(
        out.status.success(),
        "the traced publish failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = parse(&fs_err::read_to_string(&trace).unwrap());
    let audit = Audit { calls: &calls };

    let target = fs_err::read_link(&live).unwrap();
    let n: u64 = target
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(n, 2, "the audited publish made generation 2");
    let gens = root.join(".9.0.gen");
    let (tmp, generation) = (gens.join(format!("{n}.tmp")), gens.join(n.to_string()));
    let completed = audit.rename(&tmp, &generation);
    let switched = audit.rename(&root.join(".9.0.next"), &live);
    assert!(completed < switched);

    // Every file and directory of the generation, before it was renamed complete (they are
    // fsynced under their temporary name).
    let mut contents = Vec::new();
    walk(&generation, &mut contents);
    assert!(contents.len() > 20, "a whole generation: {contents:?}");
    let unsynced: Vec<&PathBuf> = contents
        .iter()
        .filter(|p| {
            let at_tmp = tmp.join(p.strip_prefix(&generation).unwrap());
            !audit.fsynced(&at_tmp, 0..completed)
        })
        .collect();
    assert!(
        unsynced.is_empty(),
        "not fsynced before the generation was renamed complete: {unsynced:?}"
    );
    // The rename, before the switch; the switch, after it.
    assert!(
        audit.fsynced(&gens, completed..switched),
        "{} not fsynced between completing the generation and the switch",
        gens.display()
    );
    assert!(
        audit.fsynced(&root, switched..calls.len()),
        "{} not fsynced after the switch",
        root.display()
    );

    // Every pool file the new indexes name that this publish added, with the directories made
    // for it, on disk before the switch.
    let named = named_pool_files(&generation);
    let mut added: Vec<PathBuf> = Vec::new();
    for name in &named {
        let mut path = fs_err::canonicalize(generation.join("deb").join(name)).unwrap();
        while path != pool && !before.contains(&path) {
            added.push(path.clone());
            path.pop();
        }
    }
    for name in ["audited_1.0_all.deb", "audited-udeb_1.0_all.udeb"] {
        assert!(
            added.iter().any(|p| p.ends_with(name)),
            "{name} is not among the pool files added: {added:?}"
        );
    }
    let lost: Vec<&PathBuf> = added
        .iter()
        .filter(|p| !audit.durable(p, switched))
        .collect();
    assert!(
        lost.is_empty(),
        "pool files and directories neither fsynced nor covered by a syncfs before the switch: {lost:?}"
    );

    // And the tree is what a client accepts.
    let apt = AptRoot::new(
        &live.join("KEY.asc"),
        &format!("file:{}/deb bookworm main", live.display()),
    );
    apt.update();
    assert_eq!(apt.versions("audited"), ["1.0"]);
}
