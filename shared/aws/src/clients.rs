//! The one way to build AWS clients. `aws-config` reads region, credentials and
//! `AWS_ENDPOINT_URL` from the environment, which is how the emulator is reached
//! locally and in tests; in Lambda the same code talks to the real services.

use aws_config::BehaviorVersion;

#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl AwsClients {
    pub async fn from_env() -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(&shared),
            sqs: aws_sdk_sqs::Client::new(&shared),
        }
    }

    /// Clients whose every request is counted (tests and benchmarks).
    pub async fn counted(counter: &crate::request_counter::RequestCounter) -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&shared)
                    .interceptor(counter.clone())
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&shared)
                    .interceptor(counter.clone())
                    .build(),
            ),
        }
    }

    /// Clients for an explicit endpoint (region and credentials still from the
    /// environment): tests point one function's clients at a fault proxy in
    /// front of the emulator without touching anybody else's.
    pub async fn with_endpoint(endpoint: &str) -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .load()
            .await;
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(&shared),
            sqs: aws_sdk_sqs::Client::new(&shared),
        }
    }
}
