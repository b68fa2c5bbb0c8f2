//! Storage and queues behind small traits. Each trait has one DynamoDB/SQS
//! implementation here; tests run those against the emulator, never a fake.

pub mod audit;
pub mod directory;
pub mod erasure;
pub mod idempotency;
pub mod item;
pub mod job_ledger;
pub mod leads;
pub mod pool_notices;
pub mod queue;
pub mod rankings;
pub mod raw_payload;
pub mod redrive;
pub mod stats;
pub mod tickets;

pub use audit::DynamoAudit;
pub use directory::{DirectoryStore, DynamoDirectory};
pub use erasure::{DynamoErasure, ErasureReport, Subject};
pub use idempotency::{Begin, DynamoIdempotency, IdempotencyStore};
pub use job_ledger::{DynamoJobLedger, JobClaim, JobState};
pub use leads::{
    AssignResult, Contended, CreateResult, CustomerItem, Due, DueFollowUp, DueLead, DynamoLeads,
    IdentitySeen, MergeTarget, ReassignResult, Recorded, Returning, RouteResult, StatusResult,
};
pub use pool_notices::{DynamoPoolNotices, Fold};
pub use queue::{MessageQueue, SqsQueue};
pub use rankings::{DealerPosition, DynamoRankings, RankRow, Snapshot, SnapshotMeta};
pub use raw_payload::{
    new_claim_id, Claim, DynamoRawPayloads, RawPayload, RawPayloadStore, SendState,
};
pub use stats::DynamoStats;
pub use tickets::HeldTickets;
