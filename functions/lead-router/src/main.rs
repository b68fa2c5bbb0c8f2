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
        Ok::<_, Error>(router.handle_batch(event.payload).await)
    }))
    .await
}
