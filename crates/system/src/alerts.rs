//! What went wrong on its own and changed what Veil does: the system proxy
//! turned off because no listener could start, a bypass list the OS did not
//! take. Veil never changes the route or the system proxy behind the user's
//! back without saying so; each such event is kept here (the last few) and
//! shown by `veil status`, the window and the tray.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// How many alerts are kept; older ones drop off.
const KEPT: usize = 20;

/// One event the user must hear about.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// When it happened (Unix milliseconds).
    pub at_unix_ms: u64,
    /// What changed, in the user's words ("The system proxy is off").
    pub what: String,
    /// Why, with the error that caused it.
    pub why: String,
}

/// The last [`KEPT`] alerts, newest last.
#[derive(Debug, Default)]
pub struct Alerts(Mutex<VecDeque<Alert>>);

impl Alerts {
    /// Records an alert and logs it as an error.
    pub fn raise(&self, what: impl Into<String>, why: impl Into<String>) {
        let alert = Alert {
            at_unix_ms: veil_engine::stats::unix_ms(std::time::SystemTime::now()),
            what: what.into(),
            why: why.into(),
        };
        tracing::error!("{}: {}", alert.what, alert.why);
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if all.len() == KEPT {
            all.pop_front();
        }
        all.push_back(alert);
    }

    pub fn all(&self) -> Vec<Alert> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Forgets them (the user has seen them).
    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_ones_in_order() {
        let alerts = Alerts::default();
        for i in 0..25 {
            alerts.raise(format!("event {i}"), "because");
        }
        let all = alerts.all();
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].what, "event 5");
        assert_eq!(all[KEPT - 1].what, "event 24");
        alerts.clear();
        assert!(alerts.all().is_empty());
    }
}
