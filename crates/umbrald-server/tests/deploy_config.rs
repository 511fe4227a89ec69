//! The example configurations shipped in deploy/ stay valid, document every key, and match the
//! defaults where they say so.

use std::path::{Path, PathBuf};

use umbrald_server::config::{settings, GpuProfile};
use umbrald_server::Config;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

#[test]
fn the_example_config_is_valid() {
    let config = Config::from_file(&deploy("umbrald.toml")).expect("example parses");
    config.validate().expect("example validates");
    let defaults = Config::default();
    // The example only departs from the defaults where its comments say so.
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:4433");
    assert_eq!(config.server.data_dir, Path::new("/var/lib/umbrald"));
    assert_eq!(config.limits, defaults.limits);
    assert_eq!(config.batcher, defaults.batcher);
    assert_eq!(config.workers, defaults.workers);
    assert_eq!(config.gpu, defaults.gpu);
    assert_eq!(config.metrics, defaults.metrics);
    assert_eq!(config.log, defaults.log);
}

#[test]
fn the_example_config_documents_every_key() {
    let text = std::fs::read_to_string(deploy("umbrald.toml")).expect("example reads");
    for setting in settings() {
        let (section, key) = setting.path.rsplit_once('.').expect("a section");
        let header = format!("[{section}]\n");
        let start = text.find(&header).unwrap_or_else(|| panic!("no {header}"));
        let body = &text[start + header.len()..];
        let body = body.find("\n[").map_or(body, |end| &body[..end]);
        let set = body.lines().any(|line| {
            let line = line.trim_start_matches("# ");
            line.starts_with(&format!("{key} = "))
        });
        assert!(set, "{} is not in deploy/umbrald.toml", setting.path);
        assert!(
            body.contains(&setting.env_var()),
            "{} does not name {}",
            setting.path,
            setting.env_var()
        );
    }
}

#[test]
fn the_gpu_example_config_is_the_throughput_profile() {
    let config = Config::from_file(&deploy("umbrald-gpu.toml")).expect("GPU example parses");
    config.validate().expect("GPU example validates");
    let defaults = Config::default();
    assert_eq!(config.gpu.profile, GpuProfile::Throughput);
    assert_eq!(config.server.io_threads, 6);
    assert_eq!(config.batcher.max_queue_items, 262_144);
    assert_eq!(config.workers.backend, umbrald_server::BackendKind::Gpu);
    assert_eq!(config.gpu.tuning.batches_in_flight, 3);
    assert_eq!(config.gpu.tuning.host_threads, 8);
    assert_eq!(config.gpu.tuning.pipelines, 32);
    let mut gpu = config.gpu.clone();
    gpu.profile = defaults.gpu.profile;
    gpu.tuning.batches_in_flight = defaults.gpu.tuning.batches_in_flight;
    gpu.tuning.host_threads = defaults.gpu.tuning.host_threads;
    gpu.tuning.pipelines = defaults.gpu.tuning.pipelines;
    assert_eq!(gpu, defaults.gpu, "only the profile's keys differ");
    assert_eq!(config.limits, defaults.limits);
    assert_eq!(config.metrics, defaults.metrics);
}
