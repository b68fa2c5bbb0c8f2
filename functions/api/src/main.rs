//! Lambda entry point for the HTTP API.

use api::Api;
use lambda_http::{run, service_fn, Error, Request};
use leads_aws::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let api = Api::from_env().await?;
    let api = &api;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(api.handle(request).await)
    }))
    .await
}
