//! Lambda entry point: load configuration once per cold start, then serve.

use lambda_http::{run, service_fn, Error, Request};
use leads_aws::telemetry;
use webhook_intake::Intake;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let intake = Intake::from_env().await?;
    let intake = &intake;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(intake.handle(request).await)
    }))
    .await
}
