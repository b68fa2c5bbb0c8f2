//! Structured JSON logs (CloudWatch parses them; `LoggingConfig: JSON` in the template).

/// Installs the JSON subscriber once; `RUST_LOG` sets the level (default info).
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_ansi(false)
        .without_time() // Lambda stamps every line itself.
        .with_target(false)
        .try_init();
}
