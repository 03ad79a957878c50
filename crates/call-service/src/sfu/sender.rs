//! The media socket's sending side, on a thread of its own: the loop hands every datagram over
//! through a bounded queue and goes on, so the kernel's cost of each send (a quarter of the
//! loop's time, on loopback the receiver's delivery too) is spent on the other core.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

/// Datagrams that may wait for the sending thread: about 0.15 s of a 350-member call's audio.
pub const SEND_QUEUE: usize = 8192;
/// How many times a send that finds the socket's buffer full is tried again before the datagram
/// is dropped (as the network would drop it).
const FULL_RETRIES: usize = 64;

/// Where the loop puts datagrams to send.
#[derive(Clone)]
pub struct Outbox {
    queue: Sender<(SocketAddr, Vec<u8>)>,
    dropped: Arc<AtomicU64>,
}

impl Outbox {
    /// Starts the sending thread on `socket` (a clone of the loop's socket, so datagrams leave
    /// from the address clients know). It ends once every `Outbox` is dropped.
    pub fn start(socket: UdpSocket) -> std::io::Result<Self> {
        let (queue, datagrams) = bounded(SEND_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("call-service-tx".into())
            .spawn(move || send_all(&socket, &datagrams, &counter))?;
        Ok(Self { queue, dropped })
    }

    /// Queues a datagram; a full queue drops it (the loop never waits on the network).
    pub fn send(&self, to: SocketAddr, datagram: Vec<u8>) {
        if let Err(TrySendError::Full(_)) = self.queue.try_send((to, datagram)) {
            count_drop(&self.dropped, "the send queue was full");
        }
    }
}

/// Counts a dropped datagram, saying so at every power of two.
fn count_drop(dropped: &AtomicU64, why: &str) {
    let n = dropped.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!("{n} media datagrams dropped so far (this one: {why})");
    }
}

fn send_all(socket: &UdpSocket, datagrams: &Receiver<(SocketAddr, Vec<u8>)>, dropped: &AtomicU64) {
    for (to, datagram) in datagrams {
        // The socket is shared with the loop, which needs it non-blocking: a full buffer is
        // waited out by yielding a few times.
        let mut tries = 0;
        loop {
            match socket.send_to(&datagram, to) {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::WouldBlock && tries < FULL_RETRIES => {
                    tries += 1;
                    std::thread::yield_now();
                }
                Err(e) => {
                    count_drop(dropped, &format!("sending to {to} failed: {e}"));
                    break;
                }
            }
        }
    }
}
