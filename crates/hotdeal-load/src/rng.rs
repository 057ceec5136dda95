//! A tiny deterministic PRNG (SplitMix64) for picking users, products and
//! quantities. Load generation needs speed and reproducibility (`--seed`),
//! not cryptographic quality, so this avoids a dependency.

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator for one VU: independent streams from one run seed.
    pub fn for_vu(seed: u64, vu: u32) -> Self {
        let mut r = Self(seed ^ (u64::from(vu) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (the tiny modulo bias is irrelevant here).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform index below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_their_bounds_deterministically() {
        let mut a = Rng::for_vu(7, 3);
        let mut b = Rng::for_vu(7, 3);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let x = a.range(1, 5);
            assert_eq!(x, b.range(1, 5));
            assert!((1..=5).contains(&x));
            seen[(x - 1) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_ne!(Rng::for_vu(7, 1).next_u64(), Rng::for_vu(7, 2).next_u64());
    }
}
