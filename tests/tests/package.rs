//! The Debian package `scripts/package` builds (`make package` for the
//! release one; `make test` builds the debug one first), installed into a
//! throwaway root with `dpkg-deb -x` and checked as a distribution would:
//! the control file, the desktop entry (`desktop-file-validate`), its icon,
//! and the installed `veil` answering `--version`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn debug_deb() -> PathBuf {
    let deb = target_dir().join(format!(
        "debug/bundle/deb/Veil_{}_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(
        deb.exists(),
        "{} is missing: run `scripts/package --debug` first (make test does)",
        deb.display()
    );
    deb
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} did not start: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value of `key` in a `Key=Value` (desktop entry) or `Key: Value`
/// (control file) text.
fn field<'a>(text: &'a str, key: &str, separator: char) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(separator)?;
        (k.trim() == key).then(|| v.trim())
    })
}

#[test]
fn the_deb_installs_the_app_the_cli_a_desktop_entry_and_icons() {
    let deb = debug_deb();
    let root = tempfile::tempdir().expect("temp dir");

    let control = run(Command::new("dpkg-deb").arg("--field").arg(&deb));
    assert_eq!(field(&control, "Package", ':'), Some("veil"), "{control}");
    assert_eq!(
        field(&control, "Version", ':'),
        Some(env!("CARGO_PKG_VERSION")),
        "{control}"
    );
    let depends = field(&control, "Depends", ':').unwrap_or_default();
    assert!(
        depends.contains("libwebkit2gtk-4.1-0"),
        "the app needs WebKitGTK at run time: {control}"
    );

    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path()));
    let usr = root.path().join("usr");

    let installed_cli = usr.join("bin/veil");
    let version = run(Command::new(&installed_cli).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("veil {}", env!("CARGO_PKG_VERSION")),
        "installed veil --version"
    );

    let desktop = usr.join("share/applications/Veil.desktop");
    run(Command::new("desktop-file-validate").arg(&desktop));
    let entry = std::fs::read_to_string(&desktop).expect("desktop entry");
    assert_eq!(field(&entry, "Name", '='), Some("Veil"), "{entry}");
    let exec = field(&entry, "Exec", '=').expect("Exec line");
    let program = exec.split_whitespace().next().expect("Exec program");
    assert!(
        usr.join("bin").join(program).is_file(),
        "Exec={exec} names a program the package does not install"
    );
    let icon = field(&entry, "Icon", '=').expect("Icon line");
    let icons = usr.join("share/icons/hicolor");
    let sizes: Vec<String> = std::fs::read_dir(&icons)
        .expect("hicolor icons")
        .filter_map(|d| d.ok())
        .filter(|d| d.path().join(format!("apps/{icon}.png")).is_file())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        sizes.iter().any(|s| s == "128x128"),
        "no 128x128 {icon}.png among {sizes:?}"
    );
}
