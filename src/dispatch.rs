//! Delivery out of the request path: a bounded in-memory queue and the worker that hands
//! queued events to the handler.
//!
//! The request path only enqueues (and answers 503 when the queue is full, so the platform
//! retries); the worker calls the handler. On shutdown the worker drains the queue.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::event::Event;
use crate::handler::BoxHandler;

/// The sending side of the queue, cloned into every request.
#[derive(Debug, Clone)]
pub struct Queue {
    tx: mpsc::Sender<Event>,
}

/// The queue is full (or its worker has stopped): the push must not be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the event queue is full or stopped")]
pub struct QueueFull;

impl Queue {
    /// Enqueues an event without waiting.
    ///
    /// # Errors
    /// [`QueueFull`] when there is no room: the caller must not acknowledge the push.
    pub fn try_enqueue(&self, event: Event) -> Result<(), QueueFull> {
        self.tx.try_send(event).map_err(|_| QueueFull)
    }
}

/// Starts the worker. It runs until every [`Queue`] clone is dropped and the queue is empty.
pub fn spawn(handler: BoxHandler, capacity: usize) -> (Queue, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Event>(capacity.max(1));
    let worker = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if let Err(error) = handler.handle(&event).await {
                tracing::error!(
                    app = %event.app,
                    event = event.name(),
                    create_time = event.create_time.unwrap_or_default(),
                    %error,
                    "handler failed"
                );
            }
        }
        tracing::debug!("event queue drained");
    });
    (Queue { tx }, worker)
}
