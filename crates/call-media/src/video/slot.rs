//! The latest-frame slot: the media thread overwrites it, the app copies out what is new.

use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Instant;

use crate::wake::WakeHook;

/// A decoded picture in a [`FrameSlot`].
#[derive(Debug, Default)]
pub struct SlotFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGBA8 pixels, `width * height * 4` bytes.
    pub rgba: Vec<u8>,
    /// Counts published frames; a reader compares it with the last one it took.
    pub sequence: u64,
    /// When the picture was captured at its source, if known.
    pub captured_at: Option<Instant>,
}

/// One stream's latest decoded picture, shared between the media thread (writer) and the app
/// (reader). The writer fills a back buffer of its own and swaps it in; if the reader holds the
/// slot at that moment the writer drops the frame instead of waiting, so the media thread never
/// blocks and stale frames are simply skipped. Buffers are reused: no allocation per frame once
/// the size is stable.
#[derive(Clone, Debug, Default)]
pub struct FrameSlot {
    front: Arc<Mutex<SlotFrame>>,
    wake: WakeHook,
}

/// The writer's side of a [`FrameSlot`], owning its back buffer.
#[derive(Debug)]
pub struct SlotWriter {
    slot: FrameSlot,
    back: SlotFrame,
}

impl FrameSlot {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer for this slot. Use one writer per slot.
    pub fn writer(&self) -> SlotWriter {
        SlotWriter {
            slot: self.clone(),
            back: SlotFrame::default(),
        }
    }

    /// Runs `read` on the current picture if its sequence differs from `seen`; returns the
    /// picture's sequence when it ran.
    pub fn read_if_new(&self, seen: u64, read: impl FnOnce(&SlotFrame)) -> Option<u64> {
        let front = self.front.lock().unwrap_or_else(|p| p.into_inner());
        if front.sequence == seen || front.rgba.is_empty() {
            return None;
        }
        read(&front);
        Some(front.sequence)
    }

    /// The width and height of the latest published picture, once there is one.
    pub fn size(&self) -> Option<(u32, u32)> {
        let front = self.front.lock().unwrap_or_else(|p| p.into_inner());
        (front.sequence > 0).then_some((front.width, front.height))
    }

    /// Wakes `waker` after each picture published from now on: an app that sleeps until
    /// something changes redraws when the stream has a new picture.
    pub fn wake_on_publish(&self, waker: Waker) {
        self.wake.set(waker);
    }

    /// The sequence number of the latest published picture (0 before the first).
    pub fn sequence(&self) -> u64 {
        self.front
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sequence
    }
}

impl SlotWriter {
    /// Fills the back buffer through `fill(rgba, width, height)` and publishes it.
    pub fn publish(
        &mut self,
        width: u32,
        height: u32,
        captured_at: Option<Instant>,
        fill: impl FnOnce(&mut [u8]),
    ) {
        let len = (width * height * 4) as usize;
        self.back.rgba.resize(len, 0);
        fill(&mut self.back.rgba);
        self.back.width = width;
        self.back.height = height;
        self.back.captured_at = captured_at;
        let Ok(mut front) = self.slot.front.try_lock() else {
            // The app is copying the previous picture: drop this one rather than wait.
            return;
        };
        self.back.sequence = front.sequence + 1;
        std::mem::swap(&mut *front, &mut self.back);
        drop(front);
        self.slot.wake.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_each_new_frame_once() {
        let slot = FrameSlot::new();
        let mut writer = slot.writer();
        assert_eq!(slot.read_if_new(0, |_| {}), None);
        writer.publish(2, 1, None, |p| p.fill(7));
        let mut seen = 0;
        let got = slot.read_if_new(seen, |f| {
            assert_eq!(
                (f.width, f.height, f.rgba.as_slice()),
                (2, 1, &[7u8; 8][..])
            );
        });
        seen = got.unwrap();
        assert_eq!(slot.read_if_new(seen, |_| {}), None);
        writer.publish(2, 1, None, |p| p.fill(9));
        assert_eq!(
            slot.read_if_new(seen, |f| assert_eq!(f.rgba[0], 9)),
            Some(seen + 1)
        );
    }

    #[test]
    fn a_published_picture_wakes_the_reader() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.wake_by_ref();
            }
            fn wake_by_ref(self: &Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let slot = FrameSlot::new();
        let mut writer = slot.writer();
        writer.publish(1, 1, None, |p| p.fill(1));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        slot.wake_on_publish(Waker::from(count.clone()));
        writer.publish(1, 1, None, |p| p.fill(2));
        writer.publish(1, 1, None, |p| p.fill(3));
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_busy_reader_makes_the_writer_drop_not_wait() {
        let slot = FrameSlot::new();
        let mut writer = slot.writer();
        writer.publish(1, 1, None, |p| p.fill(1));
        slot.read_if_new(0, |_| {
            // While the reader holds the slot, a publish returns at once and is dropped.
            writer.publish(1, 1, None, |p| p.fill(2));
        });
        assert_eq!(slot.sequence(), 1);
    }
}
