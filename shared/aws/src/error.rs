//! The adapters' one error type. SDK errors are flattened to a message plus a
//! retryability flag, so callers never match on SDK types.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the item already exists or changed.
    #[error("condition failed: {0}")]
    ConditionFailed(String),
    /// The service or network failed; the caller should retry (or let SQS retry).
    #[error("{service} request failed: {message}")]
    Service {
        service: &'static str,
        message: String,
    },
    /// A stored item could not be read back as the domain type.
    #[error("stored item is malformed: {0}")]
    Malformed(String),
}

impl StoreError {
    pub fn dynamodb<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        Self::from_sdk("dynamodb", err)
    }

    pub fn sqs<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        Self::from_sdk("sqs", err)
    }

    fn from_sdk<E, R>(service: &'static str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let message = match &err {
            SdkError::ServiceError(e) => {
                let e = e.err();
                format!(
                    "{}: {}",
                    e.code().unwrap_or("unknown"),
                    e.message().unwrap_or("")
                )
            }
            other => format!("{other}"),
        };
        StoreError::Service { service, message }
    }
}

impl From<serde_dynamo::Error> for StoreError {
    fn from(e: serde_dynamo::Error) -> Self {
        StoreError::Malformed(e.to_string())
    }
}
