//! Counts the AWS requests a piece of work makes, per operation, through an SDK
//! interceptor (measured, not estimated). Used by tests and benchmarks.
//!
//! A counter made with [`RequestCounter::recording`] also keeps one
//! [`RequestRecord`] per request: its round-trip time (from just before the
//! request is sent until its response is read and parsed) and the request and
//! response bodies, so a benchmark can sum emulator time and estimate
//! DynamoDB capacity units from what was really sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// Shared counter; clones count into the same map.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// `Some` when made with [`RequestCounter::recording`].
    records: Option<Arc<Mutex<Vec<RequestRecord>>>>,
}

/// One request as a recording counter saw it (every HTTP attempt is one).
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// `service.Operation`, as in [`RequestCounter::snapshot`].
    pub operation: String,
    /// Just before transmit.
    pub started: Instant,
    /// From `started` until the response was read and parsed.
    pub elapsed: Duration,
    /// HTTP status; `None` when no response came (connection error).
    pub status: Option<u16>,
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
}

/// Per-attempt state kept in the config bag between transmit and completion.
#[derive(Debug, Clone)]
struct InFlight {
    operation: String,
    started: Instant,
    request_body: Vec<u8>,
}

impl Storable for InFlight {
    type Storer = StoreReplace<Self>;
}

impl RequestCounter {
    /// Requests so far, keyed `service.Operation` (every HTTP attempt counts).
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("counter lock").clone()
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    pub fn reset(&self) {
        self.counts.lock().expect("counter lock").clear();
        if let Some(records) = &self.records {
            records.lock().expect("records lock").clear();
        }
    }

    /// A counter that also keeps a [`RequestRecord`] per request.
    pub fn recording() -> Self {
        RequestCounter {
            records: Some(Arc::default()),
            ..Default::default()
        }
    }

    /// The records so far, oldest first (empty unless made with [`Self::recording`]).
    pub fn records(&self) -> Vec<RequestRecord> {
        self.records
            .as_ref()
            .map(|r| r.lock().expect("records lock").clone())
            .unwrap_or_default()
    }

    /// The records so far, removing them (counts stay).
    pub fn take_records(&self) -> Vec<RequestRecord> {
        self.records
            .as_ref()
            .map(|r| std::mem::take(&mut *r.lock().expect("records lock")))
            .unwrap_or_default()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let key = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".into());
        if self.records.is_some() {
            let request_body = context
                .request()
                .body()
                .bytes()
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            cfg.interceptor_state().store_put(InFlight {
                operation: key.clone(),
                started: Instant::now(),
                request_body,
            });
        }
        *self
            .counts
            .lock()
            .expect("counter lock")
            .entry(key)
            .or_default() += 1;
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(records) = &self.records else {
            return Ok(());
        };
        let Some(in_flight) = cfg.load::<InFlight>().cloned() else {
            return Ok(()); // the attempt failed before transmit
        };
        cfg.interceptor_state().unset::<InFlight>();
        let response = context.response();
        records.lock().expect("records lock").push(RequestRecord {
            operation: in_flight.operation,
            started: in_flight.started,
            elapsed: in_flight.started.elapsed(),
            status: response.map(|r| r.status().as_u16()),
            request_body: in_flight.request_body,
            response_body: response
                .and_then(|r| r.body().bytes())
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
        });
        Ok(())
    }
}
