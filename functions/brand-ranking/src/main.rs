//! Lambda entry point: the nightly schedule, direct re-runs and the per-brand
//! job queue all arrive here (see the library docs).

use brand_ranking::BrandRanking;
use chrono::Utc;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use leads_aws::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let ranking = BrandRanking::from_env().await?;
    let ranking = &ranking;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, Error>(ranking.handle(event.payload, Utc::now()).await?)
        },
    ))
    .await
}
