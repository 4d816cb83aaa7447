//! Whether Helios is serving, paused (`HELIOS PAUSE`) or draining (SIGTERM),
//! as every session sees it.
//!
//! Sessions check at request boundaries only: a statement or transaction
//! under way always finishes (until the drain deadline); the *next* request
//! of a paused session waits, and a draining session ends with FATAL 57P01
//! as soon as it is idle.

use std::time::Instant;

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phase {
    pub paused: bool,
    /// Set on SIGTERM/SIGINT: sessions end when idle, and all of them at this instant.
    pub draining: Option<Instant>,
}

impl Phase {
    /// Whether a session at a request boundary must not go on now.
    pub fn holds(&self) -> bool {
        self.paused || self.draining.is_some()
    }
}

pub struct Lifecycle {
    tx: watch::Sender<Phase>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            tx: watch::Sender::new(Phase::default()),
        }
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }

    /// `HELIOS PAUSE` / `HELIOS RESUME`. Returns whether it changed anything.
    pub fn set_paused(&self, paused: bool) -> bool {
        self.tx.send_if_modified(|p| {
            let changed = p.paused != paused;
            p.paused = paused;
            changed
        })
    }

    /// Start draining: every session ends once idle, the rest at `deadline`.
    pub fn drain(&self, deadline: Instant) {
        self.tx.send_modify(|p| {
            p.draining.get_or_insert(deadline);
        });
    }

    pub fn is_draining(&self) -> bool {
        self.tx.borrow().draining.is_some()
    }
}
