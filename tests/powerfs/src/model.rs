//! What a power cut leaves of one file: which of the pages written since
//! its last fsync land, and how large the file comes back. Pure functions,
//! unit-tested; the file system applies their result to the backing file.

/// The page the model writes back as a unit.
pub const PAGE: usize = 4096;

/// How a power cut treats the writes a file had not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing unsynced lands.
    Drop,
    /// Pages are written back in order and the cut falls between two of them.
    Prefix,
    /// Pages are written back in a random order; the cut falls anywhere in it.
    /// The size reaches the end of the last page that landed.
    Reorder,
    /// Any subset of the pages lands and the size is extended to the written
    /// length: the pages that did not land read as NUL bytes (XFS, ext4
    /// `data=writeback`).
    Holes,
    /// One of the above, picked per file.
    Random,
}

impl Mode {
    pub fn parse(word: &str) -> Option<Mode> {
        Some(match word {
            "drop" => Mode::Drop,
            "prefix" => Mode::Prefix,
            "reorder" => Mode::Reorder,
            "holes" => Mode::Holes,
            "random" => Mode::Random,
            _ => return None,
        })
    }
}

/// A small seeded generator (xorshift64*): a cut is reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..=max`.
    pub fn upto(&mut self, max: usize) -> usize {
        (self.next() % (max as u64 + 1)) as usize
    }

    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// The pages of `current` that differ from `durable` (or lie past its end).
pub fn dirty_pages(durable: &[u8], current: &[u8]) -> Vec<usize> {
    (0..current.len().div_ceil(PAGE))
        .filter(|&page| {
            let range = page * PAGE..((page + 1) * PAGE).min(current.len());
            durable.get(range.clone()) != Some(&current[range])
        })
        .collect()
}

/// What lands: the file's content after the cut, and how many dirty pages landed.
pub fn after_cut(durable: &[u8], current: &[u8], mode: Mode, rng: &mut Rng) -> (Vec<u8>, usize) {
    let mode = match mode {
        Mode::Random => [Mode::Drop, Mode::Prefix, Mode::Reorder, Mode::Holes][rng.upto(3)],
        mode => mode,
    };
    let dirty = dirty_pages(durable, current);
    let landed: Vec<usize> = match mode {
        Mode::Drop | Mode::Random => Vec::new(),
        Mode::Prefix => {
            let k = rng.upto(dirty.len());
            dirty[..k].to_vec()
        }
        Mode::Reorder => {
            let mut order = dirty.clone();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.upto(i));
            }
            order.truncate(rng.upto(order.len()));
            order
        }
        Mode::Holes => dirty.iter().copied().filter(|_| rng.coin()).collect(),
    };
    let size = match mode {
        Mode::Drop | Mode::Random => durable.len(),
        // The size is metadata: extended over pages that did not land, or not.
        Mode::Holes if rng.upto(3) > 0 => current.len(),
        _ => {
            let landed_end = landed
                .iter()
                .map(|&page| ((page + 1) * PAGE).min(current.len()))
                .max()
                .unwrap_or(0);
            // A truncate since the sync (a rolled-back write) lands or not.
            let truncated = current.len() < durable.len() && rng.coin();
            let base = if truncated {
                current.len()
            } else {
                durable.len()
            };
            base.max(landed_end)
        }
    };
    let mut image = durable.to_vec();
    image.resize(size, 0);
    for &page in &landed {
        let start = page * PAGE;
        let end = ((page + 1) * PAGE).min(current.len()).min(size);
        if start < end {
            image[start..end].copy_from_slice(&current[start..end]);
        }
    }
    (image, landed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(n: usize, fill: u8) -> Vec<u8> {
        vec![fill; n * PAGE]
    }

    #[test]
    fn dirty_pages_are_the_changed_and_the_new_ones() {
        let durable = pages(2, b'a');
        let mut current = durable.clone();
        current[PAGE + 5] = b'b';
        current.extend(pages(2, b'c'));
        current.push(b'd');
        assert_eq!(dirty_pages(&durable, &current), [1, 2, 3, 4]);
        assert_eq!(dirty_pages(&durable, &durable), Vec::<usize>::new());
    }

    #[test]
    fn drop_keeps_the_durable_bytes() {
        let durable = pages(1, b'a');
        let current = [durable.clone(), pages(3, b'b')].concat();
        let (image, landed) = after_cut(&durable, &current, Mode::Drop, &mut Rng::new(1));
        assert_eq!((image, landed), (durable, 0));
    }

    #[test]
    fn every_image_is_durable_bytes_then_current_pages_or_nuls() {
        let durable = pages(1, b'a');
        let current = [durable.clone(), pages(6, b'b'), b"tail".to_vec()].concat();
        let mut saw_hole_then_data = false;
        for mode in [Mode::Prefix, Mode::Reorder, Mode::Holes, Mode::Random] {
            for seed in 0..200 {
                let (image, _) = after_cut(&durable, &current, mode, &mut Rng::new(seed));
                assert!(image.starts_with(&durable) && image.len() <= current.len());
                for (i, &b) in image.iter().enumerate() {
                    assert!(b == current[i] || b == 0, "{mode:?} seed {seed} byte {i}");
                }
                let first_nul = image[PAGE..].iter().position(|&b| b == 0);
                if let Some(at) = first_nul {
                    saw_hole_then_data |= image[PAGE + at..].iter().any(|&b| b != 0);
                }
                if mode == Mode::Prefix {
                    assert!(first_nul.is_none(), "a prefix has no hole");
                }
            }
        }
        assert!(saw_hole_then_data, "later pages landing after a hole");
    }

    #[test]
    fn a_cut_is_reproducible_from_its_seed() {
        let current = pages(9, b'x');
        let run = |seed| after_cut(b"", &current, Mode::Random, &mut Rng::new(seed));
        assert_eq!(run(7), run(7));
    }
}
