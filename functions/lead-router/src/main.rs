//! Lambda entry point: an SQS event source with `ReportBatchItemFailures`.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use lead_router::Router;
use leads_aws::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let router = Router::from_env().await?;
    let router = &router;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // Conflicts are retried until shortly before the function's timeout.
        let now_ms = chrono::Utc::now().timestamp_millis();
        let left_ms = i64::try_from(event.context.deadline)
            .unwrap_or(i64::MAX)
            .saturating_sub(now_ms)
            .max(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(left_ms as u64);
        Ok::<_, Error>(router.handle_batch_until(event.payload, deadline).await)
    }))
    .await
}
