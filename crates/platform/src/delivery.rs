//! Delivering the outbox: one pass ([`deliver_pending`]) and the retrying task
//! ([`spawn_delivery`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::{HttpPlatform, Outbox, PlatformError, Submitted};

/// What one delivery pass did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Delivered {
    /// Wrap-ups the platform stored (201).
    pub created: usize,
    /// Wrap-ups the platform already had (200); acknowledged too.
    pub duplicates: usize,
    /// Wrap-ups refused for good (4xx), moved to the outbox's `rejected` table.
    pub rejected: usize,
    /// Wrap-ups still pending after the pass.
    pub remaining: usize,
    /// The temporary error that stopped the pass early (platform unavailable, token refused),
    /// if any; the wrap-ups from the failed one on stay pending.
    pub stopped_by: Option<PlatformError>,
}

/// Retry delays of [`spawn_delivery_with`]: `initial`, doubling up to `max`, back to `initial`
/// after any wrap-up is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// First retry delay.
    pub initial: Duration,
    /// Longest retry delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 0.5 s doubling to 30 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// Tries every pending wrap-up once, oldest first: acknowledges those the platform stored
/// (created or duplicate), moves those it refused for good to the `rejected` table (with a
/// warning), and stops at the first temporary error ([`Delivered::stopped_by`]).
///
/// `Err` only when the outbox itself fails. Outbox calls run in `spawn_blocking`.
pub async fn deliver_pending(
    outbox: &Outbox,
    platform: &HttpPlatform,
) -> Result<Delivered, PlatformError> {
    let pending = blocking(outbox, |outbox| outbox.pending()).await?;
    let mut delivered = Delivered::default();
    for wrapup in pending {
        let key = wrapup.key.clone();
        match platform.submit(&wrapup).await {
            Ok(submitted) => {
                blocking(outbox, move |outbox| outbox.acknowledge(&key)).await?;
                match submitted {
                    Submitted::Created => delivered.created += 1,
                    Submitted::Duplicate => delivered.duplicates += 1,
                }
            }
            Err(PlatformError::Rejected { status }) => {
                tracing::warn!(
                    key = %wrapup.key,
                    call_id = %wrapup.call_id,
                    status,
                    "the platform refused a wrap-up for good; kept in the outbox's rejected table"
                );
                blocking(outbox, move |outbox| outbox.reject(&key, status)).await?;
                delivered.rejected += 1;
            }
            Err(error) => {
                let message = error.to_string();
                blocking(outbox, move |outbox| outbox.record_attempt(&key, &message)).await?;
                delivered.stopped_by = Some(error);
                break;
            }
        }
    }
    delivered.remaining = blocking(outbox, |outbox| outbox.pending_count()).await?;
    Ok(delivered)
}

/// [`spawn_delivery_with`] the default [`Backoff`] (0.5 s doubling to 30 s).
pub fn spawn_delivery(outbox: Arc<Outbox>, platform: Arc<HttpPlatform>) -> DeliveryHandle {
    spawn_delivery_with(outbox, platform, Backoff::default())
}

/// Starts a tokio task (call from within a runtime) that delivers the outbox now, then retries
/// with `backoff` while wrap-ups remain, and waits for [`DeliveryHandle::kick`] once it is
/// empty. Dropping the handle stops it; a wrap-up in flight then stays pending (and may be
/// posted again later: the platform answers duplicate).
pub fn spawn_delivery_with(
    outbox: Arc<Outbox>,
    platform: Arc<HttpPlatform>,
    backoff: Backoff,
) -> DeliveryHandle {
    let kick = Arc::new(Notify::new());
    let (remaining_sender, remaining) = watch::channel(0);
    let task = tokio::spawn(run(
        outbox,
        platform,
        backoff,
        kick.clone(),
        remaining_sender,
    ));
    DeliveryHandle {
        kick,
        remaining,
        task,
    }
}

/// The delivery task of [`spawn_delivery`]; stops it when dropped.
#[derive(Debug)]
pub struct DeliveryHandle {
    kick: Arc<Notify>,
    remaining: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl DeliveryHandle {
    /// Try now (call after [`Outbox::enqueue`]), even while waiting out a backoff delay.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// How many wrap-ups were still pending after the last pass (for a "3 wrap-ups waiting"
    /// indicator); changes after each pass.
    pub fn remaining(&self) -> watch::Receiver<usize> {
        self.remaining.clone()
    }
}

impl Drop for DeliveryHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    outbox: Arc<Outbox>,
    platform: Arc<HttpPlatform>,
    backoff: Backoff,
    kick: Arc<Notify>,
    remaining: watch::Sender<usize>,
) {
    let mut delay = backoff.initial;
    loop {
        let retry = match deliver_pending(&outbox, &platform).await {
            Ok(delivered) => {
                remaining.send_replace(delivered.remaining);
                if delivered.created + delivered.duplicates > 0 {
                    delay = backoff.initial;
                }
                match delivered.stopped_by {
                    None if delivered.remaining == 0 => false,
                    // Enqueued during the pass: go again at once.
                    None => continue,
                    Some(error) => {
                        tracing::warn!(%error, remaining = delivered.remaining, retry_in = ?delay,
                            "wrap-up delivery interrupted");
                        true
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?delay, "wrap-up outbox failed");
                true
            }
        };
        if retry {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = kick.notified() => {}
            }
            delay = (delay * 2).min(backoff.max);
        } else {
            kick.notified().await;
        }
    }
}

/// Runs an outbox call on the blocking pool.
async fn blocking<T, F>(outbox: &Outbox, call: F) -> Result<T, PlatformError>
where
    T: Send + 'static,
    F: FnOnce(&Outbox) -> Result<T, PlatformError> + Send + 'static,
{
    let outbox = outbox.clone();
    tokio::task::spawn_blocking(move || call(&outbox))
        .await
        .map_err(|e| PlatformError::OutboxData(format!("outbox task failed: {e}")))?
}
