//! With the `host-harness` feature, builds the kernel headers as host C++
//! (kernels/host_harness.cpp) into a static library, so that tests run the kernel arithmetic on
//! machines without CUDA. Needs only a C++14 compiler. Without the feature it does nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "host-harness")]
    build_host_harness();
}

#[cfg(feature = "host-harness")]
fn build_host_harness() {
    let kernels = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../kernels");
    for file in [
        "umb_types.cuh",
        "carry.cuh",
        "field.cuh",
        "point.cuh",
        "scalar.cuh",
        "scalar_mul.cuh",
        "finish.cuh",
        "reenc.cuh",
        "scalar_mul.cu",
        "host_harness.cpp",
    ] {
        println!("cargo:rerun-if-changed={}", kernels.join(file).display());
    }
    cc::Build::new()
        .cpp(true)
        .std("c++14")
        .file(kernels.join("host_harness.cpp"))
        .include(&kernels)
        .warnings(true)
        .extra_warnings(true)
        .compile("umbrald_kernels_host");
}
