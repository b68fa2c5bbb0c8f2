//! Lambda entry point: an EventBridge schedule (every 5 minutes).
//!
//! The sweep runs as of the event's `time` (the moment the schedule fired), so
//! a retried event judges the same deadlines, and the local demo can sweep "as
//! of this afternoon" without waiting for it.

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use leads_aws::telemetry;
use sla_sweeper::{SweepReport, Sweeper};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let sweeper = Sweeper::from_env().await?;
    let sweeper = &sweeper;
    run(service_fn(
        move |event: LambdaEvent<CloudWatchEvent>| async move {
            let report: SweepReport = sweeper.sweep(event.payload.time).await?;
            tracing::info!(?report, "sweep done");
            if report.failed > 0 {
                // Visible in the function's error metric; a retry is harmless
                // (every step is idempotent) and the next run comes anyway.
                return Err(Error::from(format!(
                    "{} leads or brands failed",
                    report.failed
                )));
            }
            Ok::<_, Error>(report)
        },
    ))
    .await
}
