//! The public tree's atomic switch: a generation becomes live whole, by renaming a new link
//! over the old one, and a reader never finds the tree missing or half-written.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::tree::Tree;

/// Writes generation N+1 holding `marker` and makes it live; returns N+1.
fn publish(tree: &Tree, state: &Path, marker: &str) -> u64 {
    let lock = tree.lock(&state.join("tree.lock")).unwrap();
    let (n, dir) = tree.begin(&lock).unwrap();
    fs_err::write(dir.join("marker"), marker).unwrap();
    tree.commit(n, &lock).unwrap();
    n
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn a_commit_makes_the_generation_live_through_a_relative_link() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let tree = Tree::new(root.path(), "9.0");
    assert_eq!(tree.current(), None);

    assert_eq!(publish(&tree, state.path(), "one"), 1);
    let live = tree.live();
    assert!(fs_err::symlink_metadata(&live)
        .unwrap()
        .file_type()
        .is_symlink());
    // Relative, so that a mirror's copy of the root resolves it too.
    assert_eq!(fs_err::read_link(&live).unwrap(), Path::new(".9.0.gen/1"));
    assert_eq!(fs_err::read_to_string(live.join("marker")).unwrap(), "one");
    assert_eq!(tree.current(), Some(1));
    // Nothing of the switch is left beside it: no temporary link, no unfinished generation.
    assert_eq!(names(root.path()), [".9.0.gen", "9.0"]);
    assert_eq!(names(&tree.generations_dir()), ["1"]);

    assert_eq!(publish(&tree, state.path(), "two"), 2);
    assert_eq!(fs_err::read_to_string(live.join("marker")).unwrap(), "two");
    assert_eq!(tree.current(), Some(2));
    // The old generation stays whole: it is a snapshot.
    assert_eq!(
        fs_err::read_to_string(tree.generation(1).join("marker")).unwrap(),
        "one"
    );
    assert_eq!(tree.generations(), [1, 2]);
}

#[test]
fn readers_never_see_the_tree_missing_during_switches() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let tree = Tree::new(root.path(), "9.0");
    publish(&tree, state.path(), "0");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (marker, done) = (tree.live().join("marker"), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut last = 0u64;
            while !done.load(Ordering::Relaxed) {
                let seen: u64 = fs_err::read_to_string(&marker)
                    .expect("the live tree is always there")
                    .parse()
                    .unwrap();
                assert!(seen >= last, "generation {seen} after {last}");
                last = seen;
                reads += 1;
            }
            reads
        })
    };
    for i in 1..=60 {
        publish(&tree, state.path(), &i.to_string());
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(tree.current(), Some(61));
}

#[test]
fn an_unfinished_generation_is_discarded_and_never_made_live() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let tree = Tree::new(root.path(), "9.0");
    publish(&tree, state.path(), "one");
    // A writer cut short: a half-written generation and a link that was never renamed.
    let lock = tree.lock(&state.path().join("tree.lock")).unwrap();
    let (n, dir) = tree.begin(&lock).unwrap();
    assert_eq!(n, 2);
    fs_err::write(dir.join("marker"), "half").unwrap();
    std::os::unix::fs::symlink(".9.0.gen/2.tmp", root.path().join(".9.0.next")).unwrap();
    drop(lock);
    assert_eq!(tree.current(), Some(1));
    assert_eq!(tree.generations(), [1]);

    // The next writer starts over at the same number and switches cleanly.
    assert_eq!(publish(&tree, state.path(), "two"), 2);
    assert_eq!(
        fs_err::read_to_string(tree.live().join("marker")).unwrap(),
        "two"
    );
    assert_eq!(names(&tree.generations_dir()), ["1", "2"]);
    assert_eq!(names(root.path()), [".9.0.gen", "9.0"]);
}

#[test]
fn the_live_generation_is_never_removed() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let tree = Tree::new(root.path(), "9.0");
    publish(&tree, state.path(), "one");
    publish(&tree, state.path(), "two");
    let lock = tree.lock(&state.path().join("tree.lock")).unwrap();
    tree.remove_generation(2, &lock).unwrap();
    assert_eq!(tree.generations(), [1, 2]);
    tree.remove_generation(1, &lock).unwrap();
    assert_eq!(tree.generations(), [2]);
    assert_eq!(names(&tree.generations_dir()), ["2"]);

    // Taking the tree down removes the link first, then everything else.
    assert!(tree.remove(&lock).unwrap());
    assert!(fs_err::symlink_metadata(tree.live()).is_err());
    assert!(names(root.path()).is_empty());
    assert!(!tree.remove(&lock).unwrap());
}
