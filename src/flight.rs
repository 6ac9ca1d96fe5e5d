//! Single flight: the callers of one process that miss on one key share one
//! `OnceCell`, so one of them computes and the others await its result.

use crate::error::Result;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

type Flight = OnceCell<Result<Bytes>>;

/// The computations in progress in this process, by value key.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Arc<Flight>>>,
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Flight>>> {
        // Nothing panics while the map is locked; if it did, the map is still valid.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the flight of `key`, starting one if there is none.
    pub(crate) fn join(&self, key: &str) -> FlightGuard<'_> {
        let cell = self.lock().entry(key.to_string()).or_default().clone();
        FlightGuard {
            flights: self,
            key: key.to_string(),
            cell,
        }
    }
}

/// One caller's place in a flight; the last one out removes the flight, so
/// that a finished flight (an error above all) is not reused.
pub(crate) struct FlightGuard<'a> {
    flights: &'a Flights,
    key: String,
    pub(crate) cell: Arc<Flight>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.lock();
        // Clones are made and dropped under the lock: 2 means the map and us.
        let last = map
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.cell) && Arc::strong_count(c) == 2);
        if last {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flight_is_removed_by_its_last_member_only() {
        let flights = Flights::default();
        let a = flights.join("k");
        let b = flights.join("k");
        assert!(Arc::ptr_eq(&a.cell, &b.cell));
        drop(a);
        assert!(flights.lock().contains_key("k"));
        drop(b);
        assert!(flights.lock().is_empty());
    }
}
