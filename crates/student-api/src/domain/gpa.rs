//! Grade point average on a 0 to 10 scale, both ends inclusive.

/// Lowest and highest accepted GPA.
pub const GPA_RANGE: std::ops::RangeInclusive<f64> = 0.0..=10.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gpa(f64);

impl Gpa {
    /// Validates `value`; NaN and infinities are rejected with the range message.
    pub fn new(value: f64) -> Result<Self, String> {
        if GPA_RANGE.contains(&value) {
            // Normalise -0.0 so that it reads back as 0.
            Ok(Self(value + 0.0))
        } else {
            Err(format!(
                "must be a number from {} to {}",
                GPA_RANGE.start(),
                GPA_RANGE.end()
            ))
        }
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values go in and must come out
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive() {
        assert_eq!(Gpa::new(0.0).unwrap().value(), 0.0);
        assert_eq!(Gpa::new(10.0).unwrap().value(), 10.0);
        assert_eq!(Gpa::new(7.25).unwrap().value(), 7.25);
    }

    #[test]
    fn out_of_range_and_non_finite_values_are_rejected() {
        for bad in [
            -0.01,
            10.000_001,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert!(Gpa::new(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn negative_zero_reads_back_as_zero() {
        assert!(Gpa::new(-0.0).unwrap().value().is_sign_positive());
    }
}
