//! Lockstep affine arithmetic for many independent scalar multiplications.
//!
//! A batch of multiplications that all follow the same fixed schedule of doublings and
//! additions (as the constant-time ones of [`super::varmul`] and [`super::fixed`] do) can keep
//! every accumulator in affine form: each step needs one inversion per lane, and Montgomery's
//! trick turns the inversions of all lanes into one inversion plus three multiplications per
//! lane. An affine doubling then costs about 4M + 2S and an affine addition 5M + 1S, against
//! 3M + 4S and 8M + 3S in Jacobian coordinates, and the results come out affine.
//!
//! Constant time: every lane runs the same operations whatever its scalar; a zero denominator
//! (an exceptional addition, which depends on the scalar only and is negligibly rare) is
//! replaced by one with a conditional select so that it cannot poison the other lanes, and is
//! recorded in the lane's flag for the caller to recompute that product with complete formulas.

use subtle::{Choice, ConditionallySelectable};

use super::field::Fe;
use super::{Affine, Jacobian};

/// Variable-base products: below this many lanes the shared inversions (three per window)
/// cost more than affine additions save, and Jacobian coordinates are used instead.
pub const MIN_LANES_VARIABLE: usize = 128;
/// Fixed-base products (additions only, one inversion per step): the same threshold.
pub const MIN_LANES_FIXED: usize = 64;

/// The accumulators of a batch of multiplications, one affine point per lane.
pub struct Lanes {
    x: Vec<Fe>,
    y: Vec<Fe>,
    flags: Vec<Choice>,
    denominators: Vec<Fe>,
    prefix: Vec<Fe>,
    jacobian: Vec<Jacobian>,
}

impl Lanes {
    /// Starts every lane at the given point.
    pub fn new(start: &[Affine]) -> Self {
        Lanes {
            x: start.iter().map(|p| p.x).collect(),
            y: start.iter().map(|p| p.y).collect(),
            flags: vec![Choice::from(0); start.len()],
            denominators: vec![Fe::ZERO; start.len()],
            prefix: Vec::with_capacity(start.len()),
            jacobian: Vec::with_capacity(start.len()),
        }
    }

    /// Number of lanes.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Whether there are no lanes.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// Inverts `self.denominators` in place (Montgomery's trick). Zero entries are flagged in
    /// their lane (when `active`) and left as garbage.
    fn invert_denominators(&mut self, active: Option<&[Choice]>) {
        self.prefix.clear();
        let mut acc = Fe::ONE;
        for (i, d) in self.denominators.iter_mut().enumerate() {
            let zero = d.is_zero();
            let counts = active.map_or(Choice::from(1), |a| a[i]);
            self.flags[i] |= zero & counts;
            *d = Fe::conditional_select(d, &Fe::ONE, zero);
            self.prefix.push(acc);
            acc = acc.mul(d);
        }
        let mut inv = acc.invert();
        for (d, before) in self.denominators.iter_mut().zip(&self.prefix).rev() {
            let next = inv.mul(d);
            *d = inv.mul(before);
            inv = next;
        }
    }

    /// `acc ← 2·acc` in every lane.
    pub fn double_all(&mut self) {
        for (d, y) in self.denominators.iter_mut().zip(&self.y) {
            *d = y.double();
        }
        self.invert_denominators(None);
        for ((x, y), inv) in self
            .x
            .iter_mut()
            .zip(self.y.iter_mut())
            .zip(&self.denominators)
        {
            let lambda = x.square().mul_small(3).mul(inv); // 3x² / 2y
            let x3 = lambda.square().sub(&x.double());
            let y3 = lambda.mul(&x.sub(&x3)).sub(y);
            *x = x3;
            *y = y3;
        }
    }

    /// `acc ← 2ⁿ·acc` in every lane: `n` Jacobian doublings, then one shared inversion back
    /// to affine (cheaper than `n` affine doublings, each of which needs its own inversion).
    pub fn double_n(&mut self, n: usize) {
        let mut points = std::mem::take(&mut self.jacobian);
        points.clear();
        for ((x, y), d) in self.x.iter().zip(&self.y).zip(self.denominators.iter_mut()) {
            let mut p = Jacobian::from_affine(&Affine { x: *x, y: *y });
            for _ in 0..n {
                p = p.double();
            }
            *d = p.z;
            points.push(p);
        }
        self.invert_denominators(None);
        for (i, p) in points.iter().enumerate() {
            let zinv = self.denominators[i];
            let zinv2 = zinv.square();
            self.x[i] = p.x.mul(&zinv2);
            self.y[i] = p.y.mul(&zinv2.mul(&zinv));
        }
        self.jacobian = points;
    }

    /// `acc ← acc + q[i]` in every lane `i` (or only where `when[i]` is set; the other lanes
    /// keep their value, with the same operations performed).
    pub fn add_all(&mut self, q: &[Affine], when: Option<&[Choice]>) {
        debug_assert_eq!(q.len(), self.len());
        for ((d, x), q) in self.denominators.iter_mut().zip(&self.x).zip(q) {
            *d = q.x.sub(x);
        }
        self.invert_denominators(when);
        for (i, q) in q.iter().enumerate() {
            let (x, y) = (self.x[i], self.y[i]);
            let lambda = q.y.sub(&y).mul(&self.denominators[i]);
            let x3 = lambda.square().sub(&x).sub(&q.x);
            let y3 = lambda.mul(&x.sub(&x3)).sub(&y);
            let take = when.map_or(Choice::from(1), |w| w[i]);
            self.x[i] = Fe::conditional_select(&x, &x3, take);
            self.y[i] = Fe::conditional_select(&y, &y3, take);
        }
    }

    /// The current accumulators, normalized (flags are not consulted).
    pub fn points(&self) -> impl Iterator<Item = Affine> + '_ {
        self.x.iter().zip(&self.y).map(|(x, y)| Affine {
            x: x.normalize(),
            y: y.normalize(),
        })
    }

    /// The accumulators with their exceptional flags.
    pub fn finish(self) -> Vec<(Affine, Choice)> {
        self.x
            .into_iter()
            .zip(self.y)
            .zip(self.flags)
            .map(|((x, y), flag)| {
                (
                    Affine {
                        x: x.normalize(),
                        y: y.normalize(),
                    },
                    flag,
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::{ProjectivePoint, Scalar};

    fn point(k: u64) -> Affine {
        Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::from(k))).expect("finite")
    }

    #[test]
    fn double_and_add_match_k256() {
        let starts: Vec<Affine> = (1..=60).map(|k| point(3 * k)).collect();
        let mut lanes = Lanes::new(&starts);
        lanes.double_all();
        lanes.double_n(3);
        let adds: Vec<Affine> = (1..=60).map(|k| point(k + 1000)).collect();
        lanes.add_all(&adds, None);
        let when: Vec<Choice> = (0..60).map(|k| Choice::from((k % 2) as u8)).collect();
        let adds2: Vec<Affine> = (1..=60).map(|k| point(7 * k + 5000)).collect();
        lanes.add_all(&adds2, Some(&when));
        for (i, (got, flag)) in lanes.finish().into_iter().enumerate() {
            let k = i as u64 + 1;
            let mut want = 48 * k + k + 1000;
            if i % 2 == 1 {
                want += 7 * k + 5000;
            }
            assert!(!bool::from(flag));
            assert_eq!(got, point(want), "lane {i}");
        }
    }

    #[test]
    fn equal_x_flags_only_its_lane() {
        let starts: Vec<Affine> = (1..=50).map(point).collect();
        let mut lanes = Lanes::new(&starts);
        // Lane 7 adds its own negation (x equal), lane 9 adds itself; the rest are ordinary.
        let adds: Vec<Affine> = (1..=50u64)
            .map(|k| match k {
                8 => point(8).neg(),
                10 => point(10),
                _ => point(k + 100),
            })
            .collect();
        lanes.add_all(&adds, None);
        for (i, (got, flag)) in lanes.finish().into_iter().enumerate() {
            let k = i as u64 + 1;
            if k == 8 || k == 10 {
                assert!(bool::from(flag), "lane {i} must be flagged");
            } else {
                assert!(!bool::from(flag));
                assert_eq!(got, point(2 * k + 100), "lane {i}");
            }
        }
    }
}
