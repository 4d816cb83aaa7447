//! `HELIOS PAUSE` and shutdown as a session lives them.
//!
//! While paused or draining, the session's next request (a Query, or the
//! first message of an extended-protocol batch, outside a transaction) is
//! handed to [`Gate::hold`] instead of going on: it waits for `HELIOS
//! RESUME`, or ends the session with FATAL 57P01 when Helios shuts down.
//! Requests and transactions already under way are never interrupted,
//! except by the shutdown deadline. A session that sits idle when a
//! shutdown begins is ended at once ([`Gate::check`]).

use std::time::Duration;

use helios_wire::{Frame, PgError, SqlState};
use tokio::sync::watch;

use super::relay::{Relay, RelayEnd};
use crate::ops::{ClientEntry, ClientState, Phase};

pub struct Gate {
    rx: watch::Receiver<Phase>,
}

/// What PostgreSQL says to sessions a fast shutdown ends.
pub fn shutdown_error() -> PgError {
    PgError::fatal(
        SqlState::ADMIN_SHUTDOWN,
        "terminating connection due to administrator command",
    )
}

impl Gate {
    pub fn new(rx: watch::Receiver<Phase>) -> Self {
        Gate { rx }
    }

    pub fn phase(&self) -> Phase {
        *self.rx.borrow()
    }

    /// Resolves when the session should look at the phase again: when it
    /// changes, and every 100 ms while draining (a transaction under way may
    /// have ended, or the deadline passed).
    pub async fn wake(&mut self) {
        if self.rx.borrow_and_update().draining.is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// While draining: end the session if it is idle or its time is up.
    pub async fn check(&self, relay: &mut Relay<'_>) -> Option<RelayEnd> {
        let deadline = self.phase().draining?;
        if relay.is_idle() || std::time::Instant::now() >= deadline {
            if relay.drain_to_client().await.is_ok() && relay.at_message_boundary() {
                let _ = relay.write_to_client(&shutdown_error().to_bytes()).await;
            }
            return Some(RelayEnd::Shutdown);
        }
        None
    }

    /// A request that arrived while paused or draining: wait for `HELIOS
    /// RESUME` (then give it back to the relay), or end the session.
    pub async fn hold(
        &mut self,
        relay: &mut Relay<'_>,
        frame: Frame,
        entry: &ClientEntry,
    ) -> Option<RelayEnd> {
        entry.set_state(ClientState::Waiting);
        loop {
            let phase = *self.rx.borrow_and_update();
            if phase.draining.is_some() {
                let _ = relay.write_to_client(&shutdown_error().to_bytes()).await;
                return Some(RelayEnd::Shutdown);
            }
            if !phase.paused {
                entry.set_state(ClientState::Idle);
                relay.unread_client_frame(&frame);
                return None;
            }
            if self.rx.changed().await.is_err() {
                entry.set_state(ClientState::Idle);
                relay.unread_client_frame(&frame);
                return None;
            }
        }
    }

    /// Before the session takes an upstream connection: wait while paused;
    /// `Err` when Helios is shutting down.
    pub async fn admit(&mut self) -> Result<(), PgError> {
        loop {
            let phase = *self.rx.borrow_and_update();
            if phase.draining.is_some() {
                return Err(shutdown_error());
            }
            if !phase.paused || self.rx.changed().await.is_err() {
                return Ok(());
            }
        }
    }
}
