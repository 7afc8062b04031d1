//! Random inputs for the fuzz cases: a small xorshift generator (seeded,
//! so a failing case can be replayed) and mutations of valid inputs.

/// A xorshift64* generator.
pub(super) struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is replaced).
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// The next value.
    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value below `n` (`n` > 0).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `valid` changed in one to four random ways, or replaced by random bytes.
pub(super) fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut v = valid.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 if !v.is_empty() => {
                let (a, b) = (rng.below(v.len()), rng.below(v.len()));
                let (a, b) = (a.min(b), a.max(b));
                let piece = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, piece);
            }
            4 if v.len() >= 4 => {
                // A length or count field set to something huge.
                let i = rng.below(v.len() - 3);
                v[i..i + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
            }
            5 => {
                let n = rng.below(64);
                v = (0..n).map(|_| rng.next() as u8).collect();
            }
            _ => {
                let at = rng.below(v.len() + 1);
                v.insert(at, rng.next() as u8);
            }
        }
    }
    v
}

/// Runs `case` on `cases` mutations of each of `valid`, printing the seed
/// so a failure can be replayed.
pub(super) fn fuzz(name: &str, valid: &[Vec<u8>], cases: usize, case: impl Fn(&[u8])) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    println!("fuzz {name}: seed {seed}");
    let mut rng = Rng::new(seed);
    for input in valid {
        case(input);
        for _ in 0..cases {
            case(&mutate(&mut rng, input));
        }
    }
}
