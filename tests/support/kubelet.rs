//! A directory laid out as the kubelet's atomic writer lays out a projected volume, so tests exercise
//! exactly what a pod sees: `..<timestamp>/` holding the files, a `..data` symlink to it swapped with one
//! rename, and one `<key> -> ..data/<key>` symlink per key.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Publishes `files` into `dir` as one atomic update, removing the previous generation.
pub fn write(dir: &Path, files: &[(&str, String)]) {
    static GENERATION: AtomicUsize = AtomicUsize::new(0);
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst);
    let stamp = format!("..2026_11_25_00_00_00.{}_{generation}", std::process::id());
    let target = dir.join(&stamp);
    std::fs::create_dir(&target).unwrap();
    for (name, content) in files {
        std::fs::write(target.join(name), content).unwrap();
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&stamp, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
}
