//! A network card's receive interrupt coalescing (`[network] rx_coalesce`): the packets it holds
//! and when its open window ends. The card ([`crate::nic`]) holds arriving packets here and hands
//! them to the host's sockets when the window ends.

/// A card's receive coalescing: the packets it holds and when its open window ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RxCoalescer {
    held: Vec<Vec<u8>>,
    end: Option<u64>,
}

impl RxCoalescer {
    /// Hold `packet`, arrived at `now`; if no window is open, open one of `window` ns and return
    /// its end.
    pub fn hold(&mut self, now: u64, packet: Vec<u8>, window: u64) -> Option<u64> {
        self.held.push(packet);
        if self.end.is_some() {
            return None;
        }
        let end = now.saturating_add(window);
        self.end = Some(end);
        Some(end)
    }

    /// The window ends: what was held, in arrival order; the next packet opens a new window.
    pub fn flush(&mut self) -> Vec<Vec<u8>> {
        self.end = None;
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::RxCoalescer;

    #[test]
    fn a_window_opens_at_the_first_packet_and_hands_over_everything_at_its_end() {
        let mut rx = RxCoalescer::default();
        assert_eq!(rx.hold(1_000, vec![1], 50_000), Some(51_000), "the first packet opens a window");
        assert_eq!(rx.hold(1_240, vec![2], 50_000), None, "later ones join it");
        assert_eq!(rx.hold(51_000, vec![3], 50_000), None, "up to its end");
        assert_eq!(rx.flush(), vec![vec![1], vec![2], vec![3]], "in arrival order");
        assert_eq!(rx.flush(), Vec::<Vec<u8>>::new());
        assert_eq!(rx.hold(51_000, vec![4], 50_000), Some(101_000), "after the flush, a new window");
    }
}
