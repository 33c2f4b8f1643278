//! Log setup shared by the `ferry` command and the operator: tracing to standard error.

use std::io::IsTerminal as _;

/// Logs to standard error, filtered by FERRY_LOG, else the usual RUST_LOG, else `info`; as JSON
/// lines or as text, coloured only on a terminal so that redirected logs stay plain.
pub fn init(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
