//! The one way to build AWS clients. `aws-config` reads region, credentials and the
//! endpoints from the environment: `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_SQS`, which is how the local
//! stack's engines are reached; in Lambda none is set and the same code talks to
//! the real services.

use aws_config::BehaviorVersion;

use crate::request_counter::RequestCounter;

#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Secrets Manager: the functions read their keys at run time ([`crate::secrets`]).
    pub secrets: aws_sdk_secretsmanager::Client,
}

/// Endpoints that override the environment's, per service (tests and benchmarks).
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    pub dynamodb: Option<String>,
    pub sqs: Option<String>,
}

impl AwsClients {
    pub async fn from_env() -> Self {
        Self::build(None, Endpoints::default()).await
    }

    /// Clients whose every request is counted (tests and benchmarks).
    pub async fn counted(counter: &RequestCounter) -> Self {
        Self::build(Some(counter), Endpoints::default()).await
    }

    /// Clients for explicit endpoints (region and credentials still from the
    /// environment): tests point one function's clients at a fault proxy in
    /// front of the engines without touching anybody else's.
    pub async fn with_endpoints(endpoints: Endpoints) -> Self {
        Self::build(None, endpoints).await
    }

    /// Clients whose DynamoDB requests go to `url`, everything else as
    /// [`AwsClients::from_env`]: the local stack's contention proxy
    /// (`LOCAL_DDB_CONTENTION_URL`) is reached this way.
    pub async fn with_dynamodb_endpoint(url: &str) -> Self {
        Self::with_endpoints(Endpoints {
            dynamodb: Some(url.to_string()),
            sqs: None,
        })
        .await
    }

    /// The one builder. An override is set on the service's own config: there it
    /// wins over the per-service environment variables, which a loader-level
    /// endpoint would not.
    pub async fn build(counter: Option<&RequestCounter>, endpoints: Endpoints) -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&shared);
        let mut sqs = aws_sdk_sqs::config::Builder::from(&shared);
        let mut secrets = aws_sdk_secretsmanager::config::Builder::from(&shared);
        if let Some(counter) = counter {
            dynamodb = dynamodb.interceptor(counter.clone());
            sqs = sqs.interceptor(counter.clone());
            secrets = secrets.interceptor(counter.clone());
        }
        if let Some(url) = endpoints.dynamodb {
            dynamodb = dynamodb.endpoint_url(url);
        }
        if let Some(url) = endpoints.sqs {
            sqs = sqs.endpoint_url(url);
        }
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets.build()),
        }
    }
}
