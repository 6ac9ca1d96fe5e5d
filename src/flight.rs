//! Single flight: the callers of one process that miss on one key share one
//! `OnceCell`, so one of them computes (or fetches) and the others await its
//! result. `get_or_compute` shares computations by value key; the near
//! cache shares fetches by local key and the state it was read in.

use crate::error::Result;
use bytes::Bytes;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

type Flight<T> = OnceCell<Result<T>>;

/// The computations in progress in this process, by key.
pub(crate) struct Flights<K = String, T = Bytes> {
    map: Mutex<HashMap<K, Arc<Flight<T>>>>,
}

impl<K, T> Default for Flights<K, T> {
    fn default() -> Self {
        Self {
            map: Mutex::default(),
        }
    }
}

impl<K: Hash + Eq + Clone, T> Flights<K, T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<Flight<T>>>> {
        // Nothing panics while the map is locked; if it did, the map is still valid.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the flight of `key`, starting one if there is none.
    pub(crate) fn join(&self, key: K) -> FlightGuard<'_, K, T> {
        let cell = self.lock().entry(key.clone()).or_default().clone();
        FlightGuard {
            flights: self,
            key,
            cell: Some(cell),
        }
    }
}

/// One caller's place in a flight; the last one out removes the flight, so
/// that a finished flight (an error above all) is not reused, and none is
/// left behind (the near cache's keys never come back once their stamp
/// has moved).
pub(crate) struct FlightGuard<'a, K: Hash + Eq + Clone = String, T = Bytes> {
    flights: &'a Flights<K, T>,
    key: K,
    /// Always `Some` until dropped, under the map's lock.
    cell: Option<Arc<Flight<T>>>,
}

impl<K: Hash + Eq + Clone, T> FlightGuard<'_, K, T> {
    pub(crate) fn cell(&self) -> &Flight<T> {
        self.cell.as_ref().expect("a flight until dropped")
    }
}

impl<K: Hash + Eq + Clone, T> Drop for FlightGuard<'_, K, T> {
    fn drop(&mut self) {
        let mut map = self.flights.lock();
        // Every clone is made and dropped under the lock, ours included
        // (taken out before the lock is released): 2 means the map and us.
        let Some(cell) = self.cell.take() else {
            return;
        };
        let last = map
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &cell) && Arc::strong_count(c) == 2);
        if last {
            map.remove(&self.key);
        }
        drop(cell);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flight_is_removed_by_its_last_member_only() {
        let flights: Flights = Flights::default();
        let a = flights.join("k".to_string());
        let b = flights.join("k".to_string());
        assert!(std::ptr::eq(a.cell(), b.cell()));
        drop(a);
        assert!(flights.lock().contains_key("k"));
        drop(b);
        assert!(flights.lock().is_empty());
    }
}
