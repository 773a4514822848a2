//! The alerting rules shipped with the product (`charts/livekit-operator/files/prometheus-rules.yaml`):
//! valid for Prometheus (`promtool check rules`), behaving as their unit tests say (`promtool test
//! rules tests/alerts/rules.test.yaml`), and written against metrics the binaries really export.
//! promtool comes from Debian's `prometheus` package, installed by `scripts/test-deps.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository")
        .to_path_buf()
}

fn rules_file() -> PathBuf {
    repo().join("charts/livekit-operator/files/prometheus-rules.yaml")
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}); ./scripts/test-deps.sh installs it (Debian prometheus)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules() {
    let text = promtool(&["check", "rules", rules_file().to_str().unwrap()]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn promtool_unit_tests_of_the_rules_pass() {
    let text = promtool(&["test", "rules", "tests/alerts/rules.test.yaml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Every alert has a unit test that expects it to fire, so a rule cannot be added untested.
#[test]
fn every_alert_is_unit_tested() {
    let rules = std::fs::read_to_string(rules_file()).unwrap();
    let tests = std::fs::read_to_string(repo().join("tests/alerts/rules.test.yaml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    for alert in alerts {
        assert!(
            tests.contains(&format!(
                "alertname: {alert}\n    exp_alerts:\n    - exp_labels:"
            )) || tests.contains(&format!(
                "alertname: {alert}\n      exp_alerts:\n      - exp_labels:"
            )),
            "no unit test expects {alert} to fire"
        );
    }
}

/// Every metric a rule uses is registered, by that exact name, in the metrics module of the binary
/// it belongs to (a renamed metric would silently turn its alert off).
#[test]
fn rules_use_metrics_the_binaries_register() {
    let rules = std::fs::read_to_string(rules_file()).unwrap();
    for (prefix, source) in [
        ("livekit_sidecar_", "sidecar/src/metrics.rs"),
        ("livekit_operator_", "operator/src/metrics.rs"),
    ] {
        let registered = std::fs::read_to_string(repo().join(source)).unwrap();
        let used = metric_names(&rules, prefix);
        assert!(used.len() >= 4, "{used:?}");
        for name in used {
            assert!(
                registered.contains(&format!("\"{name}\"")),
                "{name} is used by an alert but not registered in {source}"
            );
        }
    }
}

/// Distinct metric names with `prefix` in `text`.
fn metric_names(text: &str, prefix: &str) -> std::collections::BTreeSet<String> {
    text.match_indices(prefix)
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}
