//! The acceptance fixtures, read from files exactly as `herald check` reads them.

use model::file::load_files;
use model::{Diagnostic, validate};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn check(paths: &[PathBuf]) -> Vec<Diagnostic> {
    let loaded = load_files(paths);
    let mut all = loaded.diagnostics;
    all.extend(validate(&loaded.resources).diagnostics);
    all
}

#[test]
fn every_field_of_every_kind_is_accepted() {
    let paths = [
        fixture("every-field.yaml"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../systemd/herald.example.yaml"),
    ];
    for path in paths {
        let problems: Vec<String> = check(std::slice::from_ref(&path))
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        assert!(
            problems.is_empty(),
            "{} was rejected:\n{}",
            path.display(),
            problems.join("\n")
        );
    }
}

#[test]
fn five_mistakes_give_five_located_errors() {
    let path = fixture("five-mistakes.yaml");
    let errors: Vec<Diagnostic> = check(std::slice::from_ref(&path))
        .into_iter()
        .filter(|d| d.is_error())
        .collect();
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 5, "{}", shown.join("\n"));
    let mut found: Vec<(usize, &str, &str)> = errors
        .iter()
        .map(|d| {
            (
                d.origin.document.unwrap_or(0),
                d.field.as_str(),
                d.value.as_deref().unwrap_or(""),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (1, "spec.addresses[0]", "2001:db8:prod::/64"),
            (2, "spec.communities[0]", "64512:70000"),
            (3, "spec.holdTime", "2s"),
            (3, "spec.passwordSecret.key", "key"),
            (4, "spec.ipAddressPools[1]", "prod"),
        ]
    );
    for d in &errors {
        assert_eq!(d.origin.file.as_deref(), Some(path.as_path()), "{d}");
        assert!(d.origin.line.is_some() && d.fix.is_some(), "{d}");
    }
    let address = shown
        .iter()
        .find(|s| s.contains("spec.addresses[0]"))
        .unwrap();
    assert!(
        address.contains("\"prod\""),
        "the bad IPv6 group is named: {address}"
    );
}
