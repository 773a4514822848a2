//! A directory laid out as the kubelet's atomic writer lays out a projected volume, so tests exercise
//! exactly what a pod sees: `..<timestamp>/` holding the files, a `..data` symlink to it swapped with one
//! rename, and one `<key> -> ..data/<key>` symlink per key.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Publishes `files` into `dir` as one atomic update, removing the previous generation, with the
/// kubelet's default file mode (`defaultMode: 0644`).
pub fn write(dir: &Path, files: &[(&str, String)]) {
    write_with_mode(dir, files, 0o644);
}

/// As [`write`], with the volume's `defaultMode` (livekit-server refuses a key file readable by
/// "other", so its volume uses a mode such as `0440`).
pub fn write_with_mode(dir: &Path, files: &[(&str, String)], mode: u32) {
    static GENERATION: AtomicUsize = AtomicUsize::new(0);
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst);
    let stamp = format!("..2026_11_25_00_00_00.{}_{generation}", std::process::id());
    let target = dir.join(&stamp);
    std::fs::create_dir(&target).unwrap();
    for (name, content) in files {
        std::fs::write(target.join(name), content).unwrap();
        std::fs::set_permissions(target.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
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

/// The files a projected volume of a Secret and a ConfigMap holds, one per key (Secret `data` and
/// `stringData`, ConfigMap `data`), as the kubelet would write them.
pub fn projected(
    secret: &k8s_openapi::api::core::v1::Secret,
    config_map: &k8s_openapi::api::core::v1::ConfigMap,
) -> Vec<(String, String)> {
    let mut files = std::collections::BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        files.insert(
            k.clone(),
            String::from_utf8(v.0.clone()).expect("UTF-8 data"),
        );
    }
    for (k, v) in secret.string_data.iter().flatten() {
        files.insert(k.clone(), v.clone());
    }
    for (k, v) in config_map.data.iter().flatten() {
        files.insert(k.clone(), v.clone());
    }
    files.into_iter().collect()
}
