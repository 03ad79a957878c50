//! Waking an app that sleeps between frames. An app that renders on demand installs a
//! [`std::task::Waker`] on each agent ([`crate::Agent::wake_on_events`]) and each shown stream
//! ([`crate::video::FrameSlot::wake_on_publish`]); the media thread wakes it after queueing a
//! fact or publishing a picture, so the app neither polls nor misses anything.

use std::sync::{Arc, Mutex};
use std::task::Waker;

/// An optional waker shared between the app (which sets it) and the media thread (which wakes
/// it).
#[derive(Clone, Debug, Default)]
pub(crate) struct WakeHook(Arc<Mutex<Option<Waker>>>);

impl WakeHook {
    /// Wakes `waker` from now on, instead of any earlier one.
    pub(crate) fn set(&self, waker: Waker) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker);
    }

    /// Wakes the installed waker, if any.
    pub(crate) fn wake(&self) {
        if let Some(waker) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            waker.wake_by_ref();
        }
    }
}
