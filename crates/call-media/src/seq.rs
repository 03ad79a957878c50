//! RTP sequence numbers are 16 bits and wrap; receive buffers order packets by an extended
//! 64-bit number instead.

/// Extends 16-bit sequence numbers to 64 bits, each to the value nearest the highest seen.
#[derive(Debug, Default)]
pub(crate) struct SeqUnwrapper {
    highest: Option<u64>,
}

impl SeqUnwrapper {
    /// The extended number of `seq`.
    pub(crate) fn unwrap(&mut self, seq: u16) -> u64 {
        let extended = match self.highest {
            // Start high enough that early reordering never goes below zero.
            None => (1 << 16) + seq as u64,
            Some(highest) => {
                let base = highest & !0xFFFF;
                [base.saturating_sub(1 << 16), base, base + (1 << 16)]
                    .into_iter()
                    .map(|b| b + seq as u64)
                    .min_by_key(|c| c.abs_diff(highest))
                    .unwrap_or(base + seq as u64)
            }
        };
        self.highest = Some(self.highest.map_or(extended, |h| h.max(extended)));
        extended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_forward_and_tolerates_reordering() {
        let mut s = SeqUnwrapper::default();
        let a = s.unwrap(65_534);
        assert_eq!(s.unwrap(65_535), a + 1);
        assert_eq!(s.unwrap(1), a + 3);
        assert_eq!(s.unwrap(0), a + 2, "a late packet from before the wrap");
    }
}
