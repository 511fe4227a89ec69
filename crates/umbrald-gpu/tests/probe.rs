//! Probing never panics: without a driver (CI) it returns `GpuUnavailable`, with one it returns a
//! backend whose self-test passed.

use umbrald_gpu::{GpuBackend, GpuOptions, GpuUnavailable};

#[test]
fn probe_returns_instead_of_panicking() {
    match GpuBackend::probe(&GpuOptions::default()) {
        Ok(gpu) => {
            eprintln!("GPU found: {}", gpu.info());
            gpu.self_test().expect("self-test");
        }
        Err(why) => {
            let line = why.to_string();
            eprintln!("no GPU: {line}");
            assert!(
                !line.is_empty() && !line.contains('\n'),
                "one-line reason: {line:?}"
            );
        }
    }
}

#[test]
fn missing_device_ordinal_or_ptx_file_is_reported() {
    let opts = GpuOptions {
        device: 1_000,
        ..GpuOptions::default()
    };
    match GpuBackend::probe(&opts) {
        Err(
            GpuUnavailable::NoDevice {
                requested: 1_000, ..
            }
            | GpuUnavailable::NoDriver,
        ) => {}
        other => panic!("expected NoDevice or NoDriver, got {other:?}"),
    }
    let opts = GpuOptions {
        ptx_file: Some("/nonexistent/umbrald.ptx".into()),
        ..GpuOptions::default()
    };
    match GpuBackend::probe(&opts) {
        Err(
            GpuUnavailable::PtxFile { .. }
            | GpuUnavailable::NoDriver
            | GpuUnavailable::NoDevice { .. },
        ) => {}
        other => panic!("expected a PTX file error, got {other:?}"),
    }
}
