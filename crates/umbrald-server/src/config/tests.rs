use std::collections::{BTreeSet, HashMap};

use clap::Parser;

use super::layers::{Inputs, Layers, Toml};
use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    o: Overrides,
}

fn flags(args: &[&str]) -> Overrides {
    let mut argv = vec!["x"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect("flags parse").o
}

/// An environment of exactly `vars`.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.get(name).cloned()
}

fn load(overrides: &Overrides, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load_with_env(overrides, &env(vars))
}

fn problems(result: Result<Config, ConfigError>) -> Vec<Problem> {
    match result {
        Err(ConfigError::Invalid(Problems(problems))) => problems,
        other => panic!("expected invalid configuration, got {other:?}"),
    }
}

fn temp_file(tag: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("umbrald-cfg-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("umbrald.toml");
    std::fs::write(&path, text).expect("write");
    path
}

fn with_file(path: &Path) -> Overrides {
    Overrides {
        config: Some(path.to_owned()),
        ..Overrides::default()
    }
}

#[test]
fn defaults_are_valid_and_as_documented() {
    let c = Config::default();
    c.validate().expect("defaults validate");
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:4433");
    assert_eq!(c.metrics.listen.port(), 9464);
    assert_eq!(c.server.data_dir, PathBuf::from("./.umbrald"));
    assert_eq!(c.workers.backend, BackendKind::Cpu);
    assert_eq!(c.workers.threads, 0);
    assert!(c.worker_threads() >= 1);
    assert_eq!(c.server.io_threads, 0);
    assert!((1..=4).contains(&c.io_threads()));
    assert_eq!(c.gpu.profile, GpuProfile::Default);
    assert_eq!(load(&Overrides::default(), &[]).expect("loads"), c);
}

#[test]
fn gpu_defaults_are_the_librarys() {
    let library = umbrald_gpu::GpuOptions::default();
    let gpu = GpuSection::default();
    assert_eq!(gpu.device, library.device);
    assert_eq!(gpu.ptx_file, library.ptx_file);
    assert_eq!(gpu.audit_samples, library.audit_samples);
    assert_eq!(gpu.tuning.table_in_shared, library.table_in_shared);
    assert_eq!(gpu.tuning.host_wait, library.host_wait);
    // The server re-encrypts in one device call unless told otherwise.
    assert!(gpu.tuning.one_call);
    assert_eq!(
        ServerSection::default().listen.port(),
        umbrald_proto::DEFAULT_PORT
    );
}

#[test]
fn io_threads_follow_the_core_count_unless_set() {
    let cores = [1, 2, 8, 15, 16, 24, 32, 128];
    assert_eq!(
        cores.map(|n| auto_io_threads(n, BackendKind::Cpu)),
        [1, 1, 1, 1, 2, 3, 4, 4]
    );
    for backend in [BackendKind::Gpu, BackendKind::Auto] {
        assert_eq!(
            cores.map(|n| auto_io_threads(n, backend)),
            [1, 1, 3, 5, 6, 8, 8, 8]
        );
    }
    let c = Config::from_toml("[workers]\nbackend = \"gpu\"\n").expect("parses");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.io_threads(), auto_io_threads(cores, BackendKind::Gpu));
    let c = Config::from_toml("[server]\nio_threads = 3\n").expect("parses");
    assert_eq!(c.io_threads(), 3);
}

#[test]
fn quic_send_fairness_is_on_unless_turned_off() {
    assert!(Config::default().server.quic_send_fairness);
    let c = Config::from_toml("[server]\nquic_send_fairness = false\n").expect("parses");
    assert!(!c.server.quic_send_fairness);
    let vars = [("UMBRALD_QUIC_SEND_FAIRNESS", "false")];
    let c = load(&Overrides::default(), &vars).expect("loads");
    assert!(!c.server.quic_send_fairness);
}

#[test]
fn partial_toml_keeps_other_defaults() {
    let c = Config::from_toml("[batcher]\nmax_batch_items = 32\n").expect("parses");
    assert_eq!(c.batcher.max_batch_items, 32);
    assert_eq!(
        c.batcher.max_queue_items,
        BatcherSection::default().max_queue_items
    );
    assert_eq!(c.server, ServerSection::default());
}

#[test]
fn gpu_host_wait_reads_from_the_file_and_the_environment() {
    use umbrald_gpu::HostWait;
    assert_eq!(Config::default().gpu.tuning.host_wait, HostWait::Block);
    let c = Config::from_toml("[gpu.tuning]\nhost_wait = \"spin\"\n").expect("parses");
    assert_eq!(c.gpu.tuning.host_wait, HostWait::Spin);
    assert!(Config::from_toml("[gpu.tuning]\nhost_wait = \"busy\"\n").is_err());
    let c = load(&Overrides::default(), &[("UMBRALD_GPU_HOST_WAIT", "yield")]).expect("loads");
    assert_eq!(c.gpu.tuning.host_wait, HostWait::Yield);
    let c = Config::from_toml(&c.to_toml()).expect("own output parses");
    assert_eq!(c.gpu.tuning.host_wait, HostWait::Yield);
}

#[test]
fn unknown_fields_are_rejected() {
    let err = Config::from_toml("[batcher]\nmax_batch = 32\n").expect_err("typo");
    assert!(err.to_string().contains("batcher.max_batch"), "{err}");
    assert!(Config::from_toml("[nope]\n").is_err());
    assert!(
        Config::from_toml("gpu = 3\n").is_err(),
        "a section is a table"
    );
    // The deleted options are unknown keys like any other.
    for removed in ["cfrag_parts", "overlap_calls"] {
        let text = format!("[gpu.tuning]\n{removed} = true\n");
        assert!(Config::from_toml(&text).is_err(), "{removed}");
    }
}

#[test]
fn a_key_of_the_wrong_section_names_the_right_one() {
    let err = Config::from_toml("[gpu]\nhost_threads = 8\n").expect_err("moved key");
    let text = err.to_string();
    assert!(text.contains("unknown key gpu.host_threads"), "{text}");
    assert!(
        text.contains("did you mean gpu.tuning.host_threads"),
        "{text}"
    );
}

#[test]
fn flags_override_the_file() {
    let path = temp_file(
        "flags",
        "[workers]\nthreads = 32\n[batcher]\nmax_queue_delay_us = 7\n",
    );
    let path_text = path.to_str().expect("utf-8 tmp path");
    let o = flags(&[
        "--config",
        path_text,
        "--workers",
        "16",
        "--listen",
        "0.0.0.0:5000",
        "--backend",
        "auto",
    ]);
    let c = load(&o, &[]).expect("loads");
    assert_eq!(c.workers.threads, 16, "flag beats file");
    assert_eq!(c.batcher.max_queue_delay_us, 7, "file beats default");
    assert_eq!(c.server.listen.port(), 5000);
    assert_eq!(c.workers.backend, BackendKind::Auto);
    assert!(
        Cli::try_parse_from(["x", "--backend", "fpga"]).is_err(),
        "a name outside the choices is refused by the parser"
    );
}

/// `server.io_threads` and where it came from, with these layers.
fn io_threads_from(toml: Toml<'_>, vars: &[(&str, &str)], flags: &Overrides) -> (usize, Origin) {
    let env = env(vars);
    let inputs = Inputs {
        toml,
        env: &env,
        flags: &flags.flags,
    };
    let layers = Layers::new(&inputs);
    let mut problems = Vec::new();
    let server: ServerSection = Section::extract(&layers, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    (server.io_threads, layers.origin("server.io_threads"))
}

#[test]
fn each_layer_beats_the_one_below() {
    let file = temp_file(
        "layers",
        "[gpu]\nprofile = \"throughput\"\n[server]\nio_threads = 3\n",
    );
    let text = std::fs::read_to_string(&file).expect("read");
    let none = Overrides::default();
    let flag = flags(&["--io-threads", "5"]);
    let env_var = [("UMBRALD_SERVER_IO_THREADS", "4")];

    assert_eq!(
        io_threads_from(Toml::None, &[], &none),
        (0, Origin::Default)
    );
    let profile_only = "[gpu]\nprofile = \"throughput\"\n";
    assert_eq!(
        io_threads_from(Toml::Text(profile_only), &[], &none),
        (6, Origin::Profile("throughput".into())),
        "profile beats default"
    );
    assert_eq!(
        io_threads_from(Toml::File(&file, &text), &[], &none),
        (3, Origin::File(file.clone())),
        "file beats profile"
    );
    assert_eq!(
        io_threads_from(Toml::File(&file, &text), &env_var, &none),
        (4, Origin::Env("UMBRALD_SERVER_IO_THREADS".into())),
        "environment beats file"
    );
    assert_eq!(
        io_threads_from(Toml::File(&file, &text), &env_var, &flag),
        (5, Origin::Flag("--io-threads".into())),
        "flag beats environment"
    );
}

#[test]
fn every_setting_has_an_environment_variable_that_sets_it() {
    let defaults = toml::Value::try_from(Config::default()).expect("defaults serialize");
    let mut names = BTreeSet::new();
    for setting in settings() {
        let canonical = setting.env_var();
        assert_eq!(
            canonical,
            format!("UMBRALD_{}", setting.path.replace('.', "_")).to_uppercase()
        );
        let sample = setting
            .path
            .split('.')
            .try_fold(&defaults, |v, key| v.get(key))
            .map_or_else(
                // A setting without a default value: a value of its syntax.
                || match setting.syntax.placeholder {
                    "ADDR" => "127.0.0.1:1".to_owned(),
                    _ => "sample".to_owned(),
                },
                |v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            );
        for var in setting.env_vars() {
            assert!(names.insert(var.clone()), "{var} names two settings");
            let env = env(&[(&var, &sample)]);
            let inputs = Inputs {
                toml: Toml::None,
                env: &env,
                flags: &[],
            };
            let layers = Layers::new(&inputs);
            let mut problems = Vec::new();
            let _: Config = Config {
                server: Section::extract(&layers, &mut problems),
                tls: Section::extract(&layers, &mut problems),
                limits: Section::extract(&layers, &mut problems),
                access: Section::extract(&layers, &mut problems),
                nucypher: Section::extract(&layers, &mut problems),
                batcher: Section::extract(&layers, &mut problems),
                workers: Section::extract(&layers, &mut problems),
                gpu: Section::extract(&layers, &mut problems),
                metrics: Section::extract(&layers, &mut problems),
                audit: Section::extract(&layers, &mut problems),
                log: Section::extract(&layers, &mut problems),
            };
            assert!(problems.is_empty(), "{var}={sample}: {problems:?}");
            assert_eq!(layers.origin(setting.path), Origin::Env(var.clone()));
        }
    }
    // The names from before the sections were in them still work.
    for old in [
        "UMBRALD_LISTEN",
        "UMBRALD_WORKERS",
        "UMBRALD_BACKEND",
        "UMBRALD_MAX_QUEUE_ITEMS",
        "UMBRALD_GPU_HOST_THREADS",
        "UMBRALD_GPU_ONE_CALL",
        "UMBRALD_LOG",
    ] {
        assert!(names.contains(old), "{old}");
    }
}

#[test]
fn the_section_variable_beats_the_older_name_and_log_beats_rust_log() {
    let vars = [
        ("UMBRALD_MAX_BATCH_ITEMS", "48"),
        ("UMBRALD_BATCHER_MAX_BATCH_ITEMS", "64"),
        ("RUST_LOG", "debug"),
    ];
    let c = load(&Overrides::default(), &vars).expect("loads");
    assert_eq!(c.batcher.max_batch_items, 64);
    assert_eq!(c.log.filter, "debug", "RUST_LOG beats the file and default");
    let c = load(
        &Overrides::default(),
        &[("RUST_LOG", "debug"), ("UMBRALD_LOG", "warn")],
    )
    .expect("loads");
    assert_eq!(c.log.filter, "warn", "UMBRALD_LOG beats RUST_LOG");
    let c = load(&flags(&["--log", "error"]), &[("RUST_LOG", "debug")]).expect("loads");
    assert_eq!(c.log.filter, "error", "--log beats RUST_LOG");
    let c = load(&Overrides::default(), &[("RUST_LOG", "")]).expect("loads");
    assert_eq!(c.log.filter, "info", "an empty variable is unset");
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let vars = [("UMBRALD_MAX_BATCH_ITEMS", "many")];
    let found = problems(load(&Overrides::default(), &vars));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].sources,
        vec![(
            "batcher.max_batch_items".to_owned(),
            Origin::Env("UMBRALD_MAX_BATCH_ITEMS".into())
        )]
    );
    let text = found[0].to_string();
    assert!(
        text.contains("environment variable UMBRALD_MAX_BATCH_ITEMS"),
        "{text}"
    );
    assert!(!text.contains("--"), "{text}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_source() {
    let path = temp_file(
        "problems",
        "[batcher]\nmax_batch_items = \"many\"\nmax_batch_itemz = 3\n\
         [limits]\nmax_request_bytes = 10\n",
    );
    let o = with_file(&path)
        .with_flag("workers", "lots")
        .expect("a flag");
    let vars = [
        ("UMBRALD_WORKERS_NICE", "40"),
        ("UMBRALD_LISTEN", "nowhere"),
    ];
    let found = problems(load(&o, &vars));
    let sources: Vec<(String, Origin)> = found.iter().flat_map(|p| p.sources.clone()).collect();
    let file = Origin::File(path.clone());
    for expected in [
        ("batcher.max_batch_items", file.clone()),
        ("batcher.max_batch_itemz", file.clone()),
        ("limits.max_request_bytes", file.clone()),
        ("workers.threads", Origin::Flag("--workers".into())),
        ("workers.nice", Origin::Env("UMBRALD_WORKERS_NICE".into())),
        ("server.listen", Origin::Env("UMBRALD_LISTEN".into())),
    ] {
        let expected = (expected.0.to_owned(), expected.1);
        assert!(sources.contains(&expected), "{expected:?} in {found:#?}");
    }
    assert_eq!(found.len(), 6, "{found:#?}");
    let text = ConfigError::Invalid(Problems(found)).to_string();
    assert_eq!(text.lines().count(), 7, "{text}");
}

#[test]
fn a_toml_syntax_error_names_the_file() {
    let path = temp_file("syntax", "[batcher\nmax_batch_items = 3\n");
    let found = problems(load(&with_file(&path), &[]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].sources[0].1, Origin::File(path));
}

#[test]
fn the_throughput_profile_and_its_overrides() {
    let c = Config::from_toml("[gpu]\nprofile = \"throughput\"\n").expect("parses");
    c.validate().expect("valid");
    assert_eq!(c.gpu.profile, GpuProfile::Throughput);
    assert_eq!(c.server.io_threads, 6);
    assert_eq!(c.batcher.max_queue_items, 262_144);
    assert_eq!(
        (
            c.gpu.tuning.batches_in_flight,
            c.gpu.tuning.host_threads,
            c.gpu.tuning.pipelines
        ),
        (3, 8, 32)
    );
    let mut expected = Config::default();
    GpuProfile::Throughput.apply(&mut expected);
    expected.gpu.profile = GpuProfile::Throughput;
    assert_eq!(c, expected, "nothing else changes");

    let c = Config::from_toml("[gpu]\nprofile = \"throughput\"\n[gpu.tuning]\nhost_threads = 4\n")
        .expect("parses");
    assert_eq!(c.gpu.tuning.host_threads, 4, "an explicit key wins");
    assert_eq!(c.gpu.tuning.batches_in_flight, 3);

    let vars = [
        ("UMBRALD_GPU_PROFILE", "throughput"),
        ("UMBRALD_GPU_PIPELINES", "16"),
    ];
    let c = load(&Overrides::default(), &vars).expect("loads");
    assert_eq!((c.gpu.tuning.pipelines, c.server.io_threads), (16, 6));

    assert!(Config::from_toml("[gpu]\nprofile = \"fastest\"\n").is_err());
    let back = Config::from_toml(&c.to_toml()).expect("own output parses");
    assert_eq!(back, c);
}

#[test]
fn only_operational_settings_have_flags() {
    let flagged: BTreeSet<&str> = settings().filter_map(|s| s.flag).collect();
    let operational = BTreeSet::from([
        "listen",
        "data-dir",
        "io-threads",
        "cert",
        "key",
        "client-ca",
        "backend",
        "workers",
        "gpu-device",
        "gpu-ptx-file",
        "metrics-listen",
        "metrics-enabled",
        "https-listen",
        "log",
    ]);
    assert_eq!(flagged, operational);
    assert!(Cli::try_parse_from(["x", "--max-batch-items", "3"]).is_err());
    assert!(Cli::try_parse_from(["x", "--gpu-host-threads", "3"]).is_err());
}

#[test]
fn inconsistent_values_are_rejected() {
    let mut c = Config::default();
    c.batcher.max_queue_items = 10;
    c.limits.max_items_per_request = 11;
    assert!(matches!(c.validate(), Err(ConfigError::Invalid(_))));
    let mut c = Config::default();
    c.tls.cert = Some("cert.pem".into());
    assert!(c.validate().is_err());
    let mut c = Config::default();
    c.limits.max_request_bytes = 10;
    c.workers.nice = -1;
    let found = problems(c.validate().map(|()| Config::default()));
    assert_eq!(found.len(), 2, "both at once: {found:?}");
}

#[test]
fn toml_round_trips() {
    let mut c = Config::default();
    c.tls.client_ca = Some("ca.pem".into());
    c.workers.cores = vec![2, 3];
    let back = Config::from_toml(&c.to_toml()).expect("own output parses");
    assert_eq!(back, c);
}

#[test]
fn missing_file_is_a_read_error() {
    let o = with_file(Path::new("/nonexistent/umbrald.toml"));
    assert!(matches!(load(&o, &[]), Err(ConfigError::Read { .. })));
}

#[test]
fn lists_and_paths_read_from_the_environment() {
    let vars = [
        ("UMBRALD_WORKERS_CORES", "[2, 3]"),
        ("UMBRALD_DATA_DIR", "123"),
        ("UMBRALD_TLS_CLIENT_CA", "/etc/ca.pem"),
    ];
    let c = load(&Overrides::default(), &vars).expect("loads");
    assert_eq!(c.workers.cores, vec![2, 3]);
    assert_eq!(c.server.data_dir, PathBuf::from("123"), "a path is text");
    assert_eq!(c.tls.client_ca, Some(PathBuf::from("/etc/ca.pem")));
}

#[test]
fn access_reads_key_fingerprints_and_refuses_anything_else() {
    let key = "ab".repeat(32);
    let c = Config::from_toml(&format!(
        "[access]\nallowed_clients = [\"{key}\", \"sha256:{}\"]\nrequests_per_s = 5\n",
        key.to_uppercase()
    ))
    .expect("parses");
    c.validate().expect("fingerprints in either case");
    assert_eq!(c.access.allowed_clients.len(), 2);
    assert_eq!(c.access.requests_per_s, 5);
    assert_eq!(super::parse_sha256_hex(&key), Some([0xab; 32]));

    let c = Config::from_toml("[access]\nallowed_clients = [\"abcd\"]\n").expect("parses");
    let found = problems(c.validate().map(|()| Config::default()));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("access.allowed_clients"));
    let mut c = Config::default();
    c.access.max_clients = 0;
    assert!(c.validate().is_err());
    let env = load(
        &Overrides::default(),
        &[("UMBRALD_ACCESS_ALLOWED_CLIENTS", &format!("[\"{key}\"]"))],
    )
    .expect("a list from the environment");
    assert_eq!(env.access.allowed_clients, vec![key]);
}
