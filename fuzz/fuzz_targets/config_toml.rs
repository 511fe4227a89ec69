//! The TOML configuration: layering over the defaults and the profile, every setting's
//! reader, unknown-key detection and validation.
//!
//! Checks: no panic; a configuration that loads re-renders as TOML that loads again to the
//! same rendering, and validating it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use umbrald_server::Config;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    let _ = config.validate();
    let rendered = config.to_toml();
    if rendered.starts_with("# not representable") {
        return;
    }
    let again = Config::from_toml(&rendered)
        .unwrap_or_else(|e| panic!("re-rendered configuration does not load: {e}\n{rendered}"));
    assert_eq!(again.to_toml(), rendered);
});
