//! Reassembly of split messages (header bit 13: packet count and index).
//!
//! Packets are keyed by (message id, packet count) and placed by index, not
//! by serial: real terminals do not number the packets of one message
//! consecutively (SmallChi/JT808's 0x0801 sample skips serials). A packet
//! that arrives again replaces the earlier copy. Memory is bounded per
//! connection: at most [`Limits::max_pending`] messages in progress (the
//! oldest is dropped for a new one) of at most [`Limits::max_packets`]
//! packets each.

use bytes::{Bytes, BytesMut};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_packets: u16,
    pub max_pending: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // 64 packets of at most 1023 bytes: a 0x0704 batch of ~1,800
        // positions, far beyond what terminals send after a coverage gap.
        Self {
            max_packets: 64,
            max_pending: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("a message of {count} packets is more than the {limit} this gateway reassembles")]
    TooManyPackets { count: u16, limit: u16 },
}

/// A whole message put back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    pub id: u16,
    pub count: u16,
    parts: Vec<Bytes>,
    /// Serial of the packet that completed it (the one to answer last).
    pub last_serial: u16,
}

impl Assembled {
    pub fn body(&self) -> Bytes {
        let mut body = BytesMut::with_capacity(self.parts.iter().map(Bytes::len).sum());
        for part in &self.parts {
            body.extend_from_slice(part);
        }
        body.freeze()
    }
}

#[derive(Debug)]
struct Partial {
    id: u16,
    count: u16,
    parts: Vec<Option<Bytes>>,
    received: u16,
    /// Order of first arrival, for dropping the oldest.
    started: u64,
}

#[derive(Debug, Default)]
pub struct Reassembler {
    limits: Limits,
    pending: Vec<Partial>,
    clock: u64,
}

impl Reassembler {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            pending: Vec::new(),
            clock: 0,
        }
    }

    /// Adds packet `index` of `count` of message `id`; returns the message
    /// once every packet is there.
    pub fn push(
        &mut self,
        id: u16,
        count: u16,
        index: u16,
        serial: u16,
        fragment: Bytes,
    ) -> Result<Option<Assembled>, SplitError> {
        if count > self.limits.max_packets {
            return Err(SplitError::TooManyPackets {
                count,
                limit: self.limits.max_packets,
            });
        }
        debug_assert!(
            (1..=count).contains(&index),
            "the header parser checks this"
        );
        let at = match self
            .pending
            .iter()
            .position(|p| p.id == id && p.count == count)
        {
            Some(at) => at,
            None => self.start(id, count),
        };
        let partial = &mut self.pending[at];
        let slot = &mut partial.parts[usize::from(index - 1)];
        if slot.is_none() {
            partial.received += 1;
        }
        *slot = Some(fragment);
        if partial.received < count {
            return Ok(None);
        }
        let done = self.pending.swap_remove(at);
        Ok(Some(Assembled {
            id,
            count,
            parts: done.parts.into_iter().flatten().collect(),
            last_serial: serial,
        }))
    }

    /// Puts a message back, minus the packet that completed it, after its
    /// answer was "fail": a terminal that resends only that packet completes
    /// it again, one that resends all of them too.
    pub fn restore(&mut self, assembled: Assembled, last_index: u16) {
        let at = self.start(assembled.id, assembled.count);
        let partial = &mut self.pending[at];
        for (i, part) in assembled.parts.into_iter().enumerate() {
            if i + 1 != usize::from(last_index) {
                partial.parts[i] = Some(part);
                partial.received += 1;
            }
        }
    }

    /// Messages in progress.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn start(&mut self, id: u16, count: u16) -> usize {
        self.pending.retain(|p| !(p.id == id && p.count == count));
        if self.pending.len() >= self.limits.max_pending
            && let Some(oldest) = (0..self.pending.len()).min_by_key(|&i| self.pending[i].started)
        {
            self.pending.swap_remove(oldest);
        }
        self.clock += 1;
        self.pending.push(Partial {
            id,
            count,
            parts: vec![None; usize::from(count)],
            received: 0,
            started: self.clock,
        });
        self.pending.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(n: u8) -> Bytes {
        Bytes::from(vec![n; 3])
    }

    #[test]
    fn packets_in_any_order_make_one_message() {
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.push(0x0704, 3, 2, 11, packet(2)).unwrap(), None);
        assert_eq!(r.push(0x0704, 3, 3, 12, packet(3)).unwrap(), None);
        // A resent packet replaces the first copy and is not counted twice.
        assert_eq!(r.push(0x0704, 3, 2, 13, packet(2)).unwrap(), None);
        let done = r.push(0x0704, 3, 1, 14, packet(1)).unwrap().unwrap();
        assert_eq!(&done.body()[..], &[1, 1, 1, 2, 2, 2, 3, 3, 3]);
        assert_eq!((done.id, done.last_serial), (0x0704, 14));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = Reassembler::new(Limits {
            max_packets: 4,
            max_pending: 2,
        });
        assert_eq!(
            r.push(0x0704, 5, 1, 1, packet(1)).unwrap_err(),
            SplitError::TooManyPackets { count: 5, limit: 4 }
        );
        r.push(0x0704, 2, 1, 1, packet(1)).unwrap();
        r.push(0x0200, 2, 1, 2, packet(1)).unwrap();
        // A third message drops the oldest (the 0x0704): its second packet
        // then starts a new, incomplete one.
        r.push(0x0704, 3, 1, 3, packet(1)).unwrap();
        assert_eq!(r.pending(), 2);
        assert_eq!(r.push(0x0704, 2, 2, 4, packet(2)).unwrap(), None);
        assert!(r.push(0x0200, 2, 2, 5, packet(2)).unwrap().is_none());
    }

    #[test]
    fn a_failed_message_completes_again_with_its_last_packet() {
        let mut r = Reassembler::new(Limits::default());
        r.push(0x0704, 2, 1, 1, packet(1)).unwrap();
        let done = r.push(0x0704, 2, 2, 2, packet(2)).unwrap().unwrap();
        r.restore(done.clone(), 2);
        let again = r.push(0x0704, 2, 2, 3, packet(2)).unwrap().unwrap();
        assert_eq!(again.body(), done.body());
    }
}
