//! Storage and queues behind small traits. Each trait has one DynamoDB/SQS
//! implementation here; tests run those against the emulator, never a fake.

pub mod directory;
pub mod idempotency;
pub mod item;
pub mod queue;
pub mod raw_payload;

pub use directory::{DirectoryStore, DynamoDirectory};
pub use idempotency::{Begin, DynamoIdempotency, IdempotencyStore};
pub use queue::{MessageQueue, SqsQueue};
pub use raw_payload::{DynamoRawPayloads, RawPayload, RawPayloadStore};
