//! Shared set-up for the integration tests.
//!
//! The test command (`infra/test.sh`) starts moto, creates the template's tables
//! and queues in it and exports the same environment variables the functions get
//! in AWS. Without them a test skips locally, but fails under `CI=true`, so CI
//! can never pass by silently testing nothing.

use leads_aws::{AwsClients, Settings};

pub struct Stack {
    pub settings: Settings,
    pub clients: AwsClients,
}

/// The emulator-backed stack, or `None` (skip) outside CI when it is not running.
pub async fn stack() -> Option<Stack> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    let settings = Settings::from_env();
    match (endpoint, settings) {
        (Some(endpoint), Ok(settings)) if endpoint.starts_with("http://127.0.0.1") => Some(Stack {
            settings,
            clients: AwsClients::from_env().await,
        }),
        (endpoint, settings) => {
            let why = format!(
                "the local stack is not configured (AWS_ENDPOINT_URL={endpoint:?}, settings: {:?}); run the tests with infra/test.sh",
                settings.err()
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}");
            }
            eprintln!("skipping: {why}");
            None
        }
    }
}

/// A short unique suffix so parallel tests never collide in the shared emulator.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Path of a file in the repository, from the tests crate.
pub fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}
