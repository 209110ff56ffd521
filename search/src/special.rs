//! Normal-distribution helpers that both TPE and GP-BO need.
//!
//! Written here instead of pulling in a statistics crate: four small functions do
//! not justify a dependency tree, and having them local lets the log-space variants
//! stay accurate in the far tails, where EI and truncated kernels live.

use std::f64::consts::FRAC_1_SQRT_2;

/// `ln(sqrt(2π))`.
pub(crate) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Complementary error function.
///
/// Chebyshev-fitted rational approximation (relative error below 1.2e-7 for all x);
/// precise enough for ranking candidates, and it keeps relative accuracy in the
/// tails, which a `1 - erf` formulation would not.
pub(crate) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Standard normal CDF Φ(z).
pub(crate) fn norm_cdf(z: f64) -> f64 {
    0.5 * erfc(-z * FRAC_1_SQRT_2)
}

/// Standard normal density φ(z).
pub(crate) fn norm_pdf(z: f64) -> f64 {
    (-0.5 * z * z - LN_SQRT_2PI).exp()
}

/// `ln Φ(z)`, accurate for very negative z where Φ underflows.
pub(crate) fn log_norm_cdf(z: f64) -> f64 {
    if z > -20.0 {
        norm_cdf(z).ln()
    } else {
        // Mills-ratio asymptote: Φ(z) ≈ φ(z)/|z| · (1 - 1/z² + 3/z⁴).
        let z2 = z * z;
        -0.5 * z2 - LN_SQRT_2PI - (-z).ln() + (1.0 - 1.0 / z2 + 3.0 / (z2 * z2)).ln()
    }
}

/// `ln(Φ(b) - Φ(a))` for `a < b`, computed on the side of the distribution where
/// the two tails do not cancel.
pub(crate) fn log_norm_mass(a: f64, b: f64) -> f64 {
    if a <= -9.0 && b >= 9.0 {
        // The mass outside is below 1e-18: ln(1 − that) is 0 in f64. Narrow
        // kernels well inside their interval hit this case all the time.
        0.0
    } else if a >= 0.0 {
        // Both in the upper tail: use symmetry so the subtraction is between small numbers.
        log_norm_mass(-b, -a)
    } else if b <= 0.0 {
        let lb = log_norm_cdf(b);
        let la = log_norm_cdf(a);
        // ln(e^lb - e^la) = lb + ln(1 - e^(la-lb))
        let d = la - lb;
        if d >= 0.0 {
            f64::NEG_INFINITY
        } else {
            lb + (-d.exp()).ln_1p()
        }
    } else {
        (norm_cdf(b) - norm_cdf(a)).max(f64::MIN_POSITIVE).ln()
    }
}

/// Inverse of Φ by bisection on [`norm_cdf`]; only used for the occasional
/// normal-distribution draw, where a few dozen iterations are irrelevant.
pub(crate) fn norm_ppf(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0_f64, 40.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if norm_cdf(mid) < p {
            lo = mid
        } else {
            hi = mid
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_reference_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_1),
            (2.0, 0.004_677_734_981_047_266),
            (-1.0, 1.842_700_792_949_715),
            (4.0, 1.541_725_790_028_002e-8),
        ] {
            let got = erfc(x);
            assert!(
                ((got - want) / want).abs() < 2e-7,
                "erfc({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn log_mass_is_stable_in_tails() {
        let m = log_norm_mass(30.0, 31.0);
        assert!(m.is_finite() && m < -400.0);
        let direct = (norm_cdf(0.5) - norm_cdf(-0.5)).ln();
        assert!((log_norm_mass(-0.5, 0.5) - direct).abs() < 1e-9);
        assert!((log_norm_cdf(-25.0) - log_norm_cdf(-25.0 + 1e-9)).abs() < 1e-6);
    }

    #[test]
    fn ppf_inverts_cdf() {
        for p in [0.001, 0.1, 0.5, 0.9, 0.999] {
            assert!((norm_cdf(norm_ppf(p)) - p).abs() < 1e-9);
        }
    }
}
