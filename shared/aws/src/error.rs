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
    /// The write touched an item another transaction held (DynamoDB's
    /// `TransactionConflict`): nothing was written, the same work a moment
    /// later usually succeeds (see [`crate::retry`]).
    #[error("{operation} conflicted with a concurrent transaction")]
    Conflict { operation: &'static str },
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

    pub fn secrets_manager<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        Self::from_sdk("secretsmanager", err)
    }

    fn from_sdk<E, R>(service: &'static str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        if is_conflict(&err) {
            let operation = match err.as_service_error().and_then(|e| e.code()) {
                Some("TransactionConflictException") => "write",
                _ => "TransactWriteItems",
            };
            return StoreError::Conflict { operation };
        }
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

/// A write refused because another transaction held one of its items: a
/// plain write's `TransactionConflictException`, or a transaction cancelled
/// with only `TransactionConflict` (and `None`) reasons. A cancellation that
/// also names a failed condition is the condition's outcome, not a conflict.
fn is_conflict<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let Some(service) = err.as_service_error() else {
        return false;
    };
    match service.code() {
        Some("TransactionConflictException") => true,
        Some("TransactionCanceledException") => {
            // The typed reasons are only on the operation's own error type;
            // DynamoDB lists the reason codes in the message too.
            let message = service.message().unwrap_or_default();
            message.contains("TransactionConflict") && !message.contains("ConditionalCheckFailed")
        }
        _ => false,
    }
}

/// The outcome of a conditional write: `Ok(true)` if it happened, `Ok(false)` if
/// its condition failed (someone else got there first), an error otherwise.
pub fn applied<O, E, R>(result: Result<O, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(err)
            if err.as_service_error().and_then(|e| e.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(err) => Err(StoreError::dynamodb(err)),
    }
}

impl From<serde_dynamo::Error> for StoreError {
    fn from(e: serde_dynamo::Error) -> Self {
        StoreError::Malformed(e.to_string())
    }
}
