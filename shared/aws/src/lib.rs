//! AWS adapters shared by every function.
//!
//! - [`config`]: the one configuration loader (environment variables set by
//!   `template.yaml`, or by the local stack for the emulator).
//! - [`clients`]: the one way to build AWS SDK clients.
//! - [`secrets`]: keys read at run time from Secrets Manager, cached with a TTL.
//! - [`store`]: DynamoDB and SQS behind small traits, so handlers and domain
//!   services can be tested against the emulator without knowing item layouts.
//! - [`telemetry`]: JSON tracing for Lambda.
//! - [`emf`]: business metrics as CloudWatch embedded metric format lines.

pub mod clients;
pub mod config;
pub mod emf;
pub mod error;
pub mod request_counter;
pub mod retry;
pub mod secrets;
pub mod store;
pub mod telemetry;

pub use clients::AwsClients;
pub use config::Settings;
pub use error::StoreError;
