//! The example configuration shipped in deploy/ stays valid and matches the defaults where it
//! says so.

use std::path::Path;

use umbrald_server::Config;

#[test]
fn the_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/umbrald.toml");
    let config = Config::from_file(&path).expect("example parses");
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
fn the_gpu_example_config_is_valid_and_departs_only_where_it_says() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/umbrald-gpu.toml");
    let config = Config::from_file(&path).expect("GPU example parses");
    config.validate().expect("GPU example validates");
    let defaults = Config::default();
    assert_eq!(config.server.io_threads, 6);
    assert_eq!(config.batcher.max_queue_items, 262_144);
    assert_eq!(config.workers.backend, umbrald_server::BackendKind::Gpu);
    assert_eq!(config.gpu.batches_in_flight, 3);
    assert_eq!(config.gpu.host_threads, 8);
    assert_eq!(config.gpu.pipelines, 32);
    let mut gpu = config.gpu.clone();
    gpu.batches_in_flight = defaults.gpu.batches_in_flight;
    gpu.host_threads = defaults.gpu.host_threads;
    gpu.pipelines = defaults.gpu.pipelines;
    assert_eq!(gpu, defaults.gpu, "only the keys the file names differ");
    assert_eq!(config.limits, defaults.limits);
    assert_eq!(config.metrics, defaults.metrics);
}
