//! Shared set-up for the integration tests.
//!
//! The test command (`infra/test.sh`) starts the local stack (DynamoDB Local or
//! moto for DynamoDB, moto for SQS), creates the template's tables and queues in it
//! and exports the same environment variables the functions get in AWS. Without
//! them an emulator test fails, in any environment (CI or not): a test that
//! returned early would count as passed while testing nothing.

use leads_aws::{AwsClients, Settings};

pub mod fault_proxy;
pub mod request_table;
pub mod world;

/// The local endpoint of one service (`DYNAMODB`, `SQS`): its own
/// `AWS_ENDPOINT_URL_<SERVICE>`, else the stack-wide `AWS_ENDPOINT_URL`.
pub fn endpoint_of(service: &str) -> String {
    std::env::var(format!("AWS_ENDPOINT_URL_{service}"))
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .expect("the local stack's endpoints are not set; run the tests with infra/test.sh")
}

/// The contention proxy in front of the local DynamoDB engine
/// (`infra/local/ddb_proxy.py`): clients pointed at it meet DynamoDB's
/// transaction conflicts.
pub fn contention_endpoint() -> String {
    std::env::var("LOCAL_DDB_CONTENTION_URL")
        .expect("LOCAL_DDB_CONTENTION_URL is not set; run the tests with infra/test.sh")
}

pub struct Stack {
    pub settings: Settings,
    pub clients: AwsClients,
}

/// The emulator-backed stack. Panics (the test fails) when it is not
/// configured; never `None`. The `Option` stays so callers' `let Some(..) =
/// stack().await else { return }` keeps compiling, but the `else` never runs.
pub async fn stack() -> Option<Stack> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    let settings = Settings::from_env();
    match (endpoint, settings) {
        (Some(endpoint), Ok(settings)) if endpoint.starts_with("http://127.0.0.1") => Some(Stack {
            settings,
            clients: AwsClients::from_env().await,
        }),
        (endpoint, settings) => panic!(
            "the local stack is not configured (AWS_ENDPOINT_URL={endpoint:?}, settings: {:?}): \
             run the tests with infra/test.sh, or eval \"$(infra/local/stack.sh up)\" first",
            settings.err()
        ),
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

/// A fresh queue with the same attributes as `like` (a queue the template
/// created), so a test can read everything sent to it without racing other
/// tests on the shared queue.
pub async fn scratch_queue_like(sqs: &aws_sdk_sqs::Client, like: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(like)
        .attribute_names(A::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let keep = [
        A::VisibilityTimeout,
        A::MessageRetentionPeriod,
        A::RedrivePolicy,
    ];
    let created = sqs
        .create_queue()
        .queue_name(unique("scratch"))
        .set_attributes(Some(
            attrs
                .into_iter()
                .filter(|(k, _)| keep.contains(k))
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    created.queue_url.unwrap()
}

/// Everything currently on a queue (bodies), received and deleted.
pub async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
            bodies.push(m.body.unwrap_or_default());
        }
    }
}

/// What the contention proxy counted so far (`GET /contention-stats`):
/// `transaction_conflicts`, `write_conflicts`, `held_items`, `engine_lock_retries`.
pub async fn contention_stats() -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = contention_endpoint()
        .trim_start_matches("http://")
        .to_string();
    let mut conn = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request =
        format!("GET /contention-stats HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap()
}

/// A fresh queue and its own DLQ (`maxReceiveCount` given), so a test can
/// watch dead letters without racing others: `(queue URL, DLQ URL)`.
pub async fn scratch_queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
    visibility_secs: Option<u32>,
    max_receive_count: u32,
) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName as QA;
    let dlq = sqs
        .create_queue()
        .queue_name(unique(&format!("{prefix}-dlq")))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QA::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QA::QueueArn]
        .clone();
    let mut create = sqs.create_queue().queue_name(unique(prefix)).attributes(
        QA::RedrivePolicy,
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
            .to_string(),
    );
    if let Some(secs) = visibility_secs {
        create = create.attributes(QA::VisibilityTimeout, secs.to_string());
    }
    (create.send().await.unwrap().queue_url.unwrap(), dlq)
}

/// Runs the real `leadctl` binary (built by cargo on first use) with `args`,
/// in the repo root, with this process's environment (the local stack's
/// variables) plus `env`: `(exit success, stdout, stderr)`.
pub fn leadctl(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "leadctl"])
            .current_dir(repo_path(""))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "leadctl builds");
    });
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_path("target"));
    let out = std::process::Command::new(target.join("debug").join("leadctl"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(repo_path(""))
        .output()
        .expect("leadctl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A Secrets Manager secret of one test's own, holding `value`: its ARN.
pub async fn scratch_secret(clients: &AwsClients, value: &str) -> String {
    clients
        .secrets
        .create_secret()
        .name(unique("test-secret"))
        .secret_string(value)
        .send()
        .await
        .expect("secret created")
        .arn
        .expect("a created secret has an ARN")
}

/// A new current value for secret `id` (what `put-secret-value` does).
pub async fn put_secret(clients: &AwsClients, id: &str, value: &str) {
    clients
        .secrets
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .expect("secret value put");
}
