//! The local demo as a library: the deterministic dataset and directory
//! generators and the report, shared by the `lead-demo` binary and the tests
//! (the reliability replay reuses the generator).

pub mod dataset;
pub mod directory;
pub mod report;

/// What the replay saw when posting webhooks and playing the SQS trigger.
#[derive(Default, Debug)]
pub struct Sent {
    pub posted: usize,
    pub accepted: usize,
    pub redeliveries: usize,
    pub rejected: std::collections::BTreeMap<u16, usize>,
    /// Answers that differ from what the generator expected.
    pub surprises: Vec<String>,
    pub router_invocations: usize,
    pub router_failures: usize,
}
