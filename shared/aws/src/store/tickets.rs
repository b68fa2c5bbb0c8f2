//! Round-robin turns held per lead. A lead draws the dealer's next ticket once
//! and keeps it while its write is retried (a transaction conflict, a stale
//! read, a consultant who reached their cap in the meantime): drawing again
//! would burn a ticket, and a burned ticket silently skips a consultant's turn.
//! The router and the SLA sweeper both place leads this way.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

/// Held tickets kept at most; past it the map starts over (a lead whose
/// retries all failed would otherwise keep its entry for the life of the
/// function instance).
const MAX_HELD: usize = 1_000;

#[derive(Debug, Default)]
pub struct HeldTickets {
    /// Lead id -> (dealer id, ticket).
    held: Mutex<HashMap<String, (String, u64)>>,
}

impl HeldTickets {
    /// The ticket `lead_id` holds at `dealer_id`, else one from `draw` (held
    /// until [`Self::release`]). A lead moved to another dealer draws anew.
    pub async fn ticket_for<F, Fut, E>(
        &self,
        lead_id: &str,
        dealer_id: &str,
        draw: F,
    ) -> Result<u64, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<u64, E>>,
    {
        if let Some((dealer, ticket)) = self.lock().get(lead_id) {
            if dealer == dealer_id {
                return Ok(*ticket);
            }
        }
        let ticket = draw().await?;
        let mut held = self.lock();
        if held.len() >= MAX_HELD {
            held.clear();
        }
        held.insert(lead_id.to_string(), (dealer_id.to_string(), ticket));
        Ok(ticket)
    }

    /// The lead's write is done (or it needs no ticket any more): its turn is used.
    pub fn release(&self, lead_id: &str) {
        self.lock().remove(lead_id);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (String, u64)>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    async fn ticket(t: &HeldTickets, lead: &str, dealer: &str, next: &Cell<u64>) -> u64 {
        t.ticket_for(lead, dealer, || async {
            let n = next.get();
            next.set(n + 1);
            Ok::<_, ()>(n)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_lead_keeps_its_turn_until_released_and_draws_anew_at_another_dealer() {
        let t = HeldTickets::default();
        let next = Cell::new(0);
        assert_eq!(ticket(&t, "L1", "D1", &next).await, 0);
        assert_eq!(ticket(&t, "L2", "D1", &next).await, 1);
        // Retries of L1 and L2 keep their turns: nothing new is drawn.
        assert_eq!(ticket(&t, "L1", "D1", &next).await, 0);
        assert_eq!(ticket(&t, "L2", "D1", &next).await, 1);
        assert_eq!(next.get(), 2);
        // Written: the next placement of L1 is a new turn.
        t.release("L1");
        assert_eq!(ticket(&t, "L1", "D1", &next).await, 2);
        // Moved to another dealer: that dealer's counter is drawn.
        assert_eq!(ticket(&t, "L2", "D2", &next).await, 3);
        assert_eq!(next.get(), 4);
    }

    #[tokio::test]
    async fn a_failed_draw_holds_nothing() {
        let t = HeldTickets::default();
        let failed: Result<u64, &str> = t
            .ticket_for("L1", "D1", || async { Err("throttled") })
            .await;
        assert_eq!(failed, Err("throttled"));
        let next = Cell::new(7);
        assert_eq!(ticket(&t, "L1", "D1", &next).await, 7);
    }
}
