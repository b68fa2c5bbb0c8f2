//! Lambda entry point: an SQS event source with `ReportBatchItemFailures`.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use leads_aws::telemetry;
use notifier::Notifier;

/// Kept free at the end of an invocation to report the batch's result.
const SAFETY_MARGIN: Duration = Duration::from_secs(2);
/// The template's `Timeout` for this function, used when the runtime gives no
/// usable deadline (cargo-lambda's local runtime sends one already past).
const TEMPLATE_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let notifier = Notifier::from_env().await?;
    let notifier = &notifier;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // The context's deadline is epoch milliseconds; retries stop before it.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let left = match event.context.deadline.saturating_sub(now_ms) {
            0 => TEMPLATE_TIMEOUT,
            ms => Duration::from_millis(ms),
        };
        let deadline = tokio::time::Instant::now() + left.saturating_sub(SAFETY_MARGIN);
        tracing::info!(
            jobs = event.payload.records.len(),
            budget_ms = left.as_millis() as u64,
            "batch received"
        );
        Ok::<_, Error>(notifier.handle_batch(event.payload, deadline).await)
    }))
    .await
}
