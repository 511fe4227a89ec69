//! The metrics that `deploy/` refers to (the Grafana dashboard, the Prometheus rules and their
//! tests, the scrape configuration's example queries, the Kubernetes manifests and the
//! Prometheus adapter's rules) are the server's: every metric name is registered, every label
//! a selector matches on exists on that metric, and every label value it names exactly is one
//! the server exposes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use umbrald_server::Metrics;

/// Labels that Prometheus or the Kubernetes service discovery adds to every target.
const TARGET_LABELS: [&str; 7] = [
    "job",
    "instance",
    "namespace",
    "pod",
    "service",
    "endpoint",
    "container",
];

/// Suffixes of a histogram's series.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

type Series = BTreeMap<String, Vec<BTreeMap<String, String>>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The exposition's series, with each backend label value set once.
fn exposition() -> Series {
    let mut series = Series::new();
    for backend in ["cpu", "gpu", "gpu+cpu"] {
        let metrics = Metrics::new();
        metrics.set_backend(backend);
        metrics.set_lane_rate("cpu", 1.0);
        metrics.set_lane_rate("gpu", 1.0);
        for line in metrics.encode().lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let mut labels = BTreeMap::new();
            if line[name_end..].starts_with('{') {
                let close = line.rfind('}').expect("closing brace");
                for matcher in split_matchers(&line[name_end + 1..close]) {
                    if let Some((name, _, value)) = parse_matcher(&matcher) {
                        labels.insert(name, value);
                    }
                }
            }
            series
                .entry(line[..name_end].to_owned())
                .or_default()
                .push(labels);
        }
    }
    series
}

/// Metric names registered in the server's source (a vector with no child yet has no series).
fn registered() -> BTreeSet<String> {
    let source = read(&root().join("crates/umbrald-server/src/observe/metrics.rs"));
    source
        .split('"')
        .filter(|s| s.starts_with("umbrald_") && s.bytes().all(is_name_byte))
        .map(str::to_owned)
        .collect()
}

/// Names that the Prometheus adapter makes (`as: "NAME"`), not the server.
fn adapter_names() -> BTreeSet<String> {
    read(&root().join("deploy/k8s/prometheus-adapter.yaml"))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("as:"))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .collect()
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// Splits `a="x", b=~"y|z"` at the commas outside quotes.
fn split_matchers(text: &str) -> Vec<String> {
    let (mut parts, mut current, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                current.push(c);
                current.extend(chars.next());
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `name op "value"`, or `None` for anything else (a template's placeholder).
fn parse_matcher(matcher: &str) -> Option<(String, &'static str, String)> {
    let name_end = matcher.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let (name, rest) = matcher.split_at(name_end);
    let rest = rest.trim_start();
    let op = ["=~", "!~", "!=", "="]
        .into_iter()
        .find(|op| rest.starts_with(op))?;
    let value = rest[op.len()..]
        .trim()
        .strip_prefix('"')?
        .strip_suffix('"')?;
    Some((name.to_owned(), op, value.replace("\\\"", "\"")))
}

/// Every `umbrald_*` or `process_*` metric in `text`, with the matchers of its selector.
fn references(text: &str) -> Vec<(String, Vec<String>)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !(is_name_byte(bytes[i - 1]) || bytes[i - 1] == b'$');
        let rest = &text[i..];
        if boundary && (rest.starts_with("umbrald_") || rest.starts_with("process_")) {
            let end = i + rest.bytes().take_while(|b| is_name_byte(*b)).count();
            let name = text[i..end].to_owned();
            let mut matchers = Vec::new();
            if bytes.get(end) == Some(&b'{') {
                if let Some(close) = text[end..].find('}') {
                    matchers = split_matchers(&text[end + 1..end + close]);
                }
            }
            found.push((name, matchers));
            i = end;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// The files of `deploy/` that name metrics.
fn deploy_files() -> Vec<PathBuf> {
    let mut files = vec![
        root().join("deploy/grafana/umbrald.json"),
        root().join("deploy/prometheus/rules.yml"),
        root().join("deploy/prometheus/rules_test.yml"),
        root().join("deploy/prometheus/prometheus.yml"),
    ];
    let mut dirs = vec![root().join("deploy/k8s")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("deploy/k8s") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// What is wrong with one reference to `name` with `matchers`.
fn check_reference(
    name: &str,
    matchers: &[String],
    series: &Series,
    registered: &BTreeSet<String>,
) -> Vec<String> {
    let base = HISTOGRAM_SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .filter(|b| registered.contains(*b))
        .unwrap_or(name);
    if !series.contains_key(name) && !registered.contains(base) {
        return vec![format!("{name}: no such metric")];
    }
    // A vector with no child yet has no series to check the labels against.
    let Some(label_sets) = series.get(name) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for matcher in matchers {
        let Some((label, op, value)) = parse_matcher(matcher) else {
            continue;
        };
        if TARGET_LABELS.contains(&label.as_str()) {
            continue;
        }
        let values: BTreeSet<&str> = label_sets
            .iter()
            .filter_map(|l| l.get(&label).map(String::as_str))
            .collect();
        if values.is_empty() {
            problems.push(format!("{name}: no label {label}"));
            continue;
        }
        // Exact values, and regular expressions that are plain alternatives, must exist.
        let plain = |v: &str| v.bytes().all(|b| is_name_byte(b) || b == b'+');
        let wanted: Vec<&str> = match op {
            "=" | "!=" if plain(&value) || value.parse::<f64>().is_ok() || value == "+Inf" => {
                vec![value.as_str()]
            }
            "=~" | "!~" if value.split('|').all(plain) => value.split('|').collect(),
            _ => Vec::new(),
        };
        for v in wanted {
            if !values.contains(v) {
                problems.push(format!("{name}: {label}=\"{v}\" is not among {values:?}"));
            }
        }
    }
    problems
}

#[test]
fn deploy_names_only_metrics_and_labels_the_server_exposes() {
    let series = exposition();
    let registered = registered();
    let made_by_adapter = adapter_names();
    assert!(registered.len() > 40, "metrics.rs registers {registered:?}");
    let root = root();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in deploy_files() {
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for (name, matchers) in references(&read(&file)) {
            if made_by_adapter.contains(&name) {
                continue;
            }
            checked += 1;
            for problem in check_reference(&name, &matchers, &series, &registered) {
                problems.push(format!("{shown}: {problem}"));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} references found under deploy/"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_finds_a_wrong_name_label_and_value() {
    let series = exposition();
    let registered = registered();
    let text = r#"rate(umbrald_itemz_total[1m]) umbrald_items_total{outcome="okay"}
        umbrald_requests_total{code=~"internal|overload"} umbrald_ready{color="red"}
        umbrald_gpu_call_seconds_bucket{call="x"} umbrald_queue_depth{instance=~"$instance"}"#;
    let problems: Vec<String> = references(text)
        .iter()
        .flat_map(|(n, m)| check_reference(n, m, &series, &registered))
        .collect();
    assert_eq!(
        problems,
        [
            "umbrald_itemz_total: no such metric",
            "umbrald_items_total: outcome=\"okay\" is not among {\"error\", \"ok\"}",
            "umbrald_requests_total: code=\"overload\" is not among {\"conditions_unsupported\", \
             \"deadline_exceeded\", \"internal\", \"invalid_capsule\", \"invalid_kfrag\", \
             \"kfrag_verification_failed\", \"malformed\", \"none\", \"overloaded\", \
             \"rate_limited\", \"too_large\", \"unsupported_version\"}",
            "umbrald_ready: no label color",
        ],
    );
}
