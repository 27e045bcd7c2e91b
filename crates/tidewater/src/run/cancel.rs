//! Cancelling a run from another thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A token that cancels the runs it was given to. The reader checks it between blocks
/// and the driver between steps: a cancelled run stops reading, commits nothing
/// further and returns [`crate::Error::Cancelled`]. Clones share the token.
///
/// ```
/// let cancel = tidewater::Cancel::default();
/// let converter = tidewater::Converter::new("out").with_cancel(cancel.clone());
/// cancel.cancel();
/// assert!(cancel.is_cancelled());
/// # drop(converter);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks every run holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
