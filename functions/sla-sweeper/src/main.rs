//! Lambda entry point: an EventBridge schedule (every 5 minutes).

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use chrono::Utc;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use leads_aws::telemetry;
use sla_sweeper::{SweepReport, Sweeper};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let sweeper = Sweeper::from_env().await?;
    let sweeper = &sweeper;
    run(service_fn(
        move |_event: LambdaEvent<CloudWatchEvent>| async move {
            let report: SweepReport = sweeper.sweep(Utc::now()).await?;
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
