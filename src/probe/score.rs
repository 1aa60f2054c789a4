//! The health score, 0 to 100: the weighted share of healthy targets. Documented in docs/health-score.md.

use std::time::Duration;

use crate::records::Outcome;

/// What a slow-but-up target contributes, as a share of its weight.
pub const SLOW_CREDIT: f64 = 0.5;
/// The most the score can be while any critical target is not up.
pub const CRITICAL_CAP: f64 = 50.0;

/// One target's latest result as the score sees it.
#[derive(Debug, Clone, Copy)]
pub struct ScoreInput {
    pub weight: f64,
    pub critical: bool,
    pub outcome: Outcome,
    pub latency: Option<Duration>,
}

/// `100 × Σ(weight × credit) / Σ weight`, where credit is 1 for an up target, `SLOW_CREDIT` for an up target
/// slower than `slow_threshold`, and 0 otherwise; capped at `CRITICAL_CAP` when a critical target is not up.
/// With no targets there is nothing unhealthy: 100.
pub fn health_score(inputs: &[ScoreInput], slow_threshold: Duration) -> f64 {
    let total_weight: f64 = inputs.iter().map(|i| i.weight).sum();
    if inputs.is_empty() || total_weight <= 0.0 {
        return 100.0;
    }
    let earned: f64 = inputs
        .iter()
        .map(|i| {
            let credit = match (i.outcome, i.latency) {
                (Outcome::Up, Some(latency)) if latency > slow_threshold => SLOW_CREDIT,
                (Outcome::Up, _) => 1.0,
                _ => 0.0,
            };
            i.weight * credit
        })
        .sum();
    let score = 100.0 * earned / total_weight;
    let critical_down = inputs.iter().any(|i| i.critical && !i.outcome.is_up());
    let score = if critical_down {
        score.min(CRITICAL_CAP)
    } else {
        score
    };
    (score * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOW: Duration = Duration::from_millis(1000);

    fn input(weight: f64, critical: bool, outcome: Outcome, latency_ms: u64) -> ScoreInput {
        ScoreInput {
            weight,
            critical,
            outcome,
            latency: Some(Duration::from_millis(latency_ms)),
        }
    }

    #[test]
    fn all_up_and_fast_is_100() {
        let inputs = [
            input(1.0, false, Outcome::Up, 10),
            input(2.0, true, Outcome::Up, 20),
        ];
        assert_eq!(health_score(&inputs, SLOW), 100.0);
    }

    #[test]
    fn mixed_states_weigh_by_weight_and_slowness() {
        // weights 2 (up, fast) + 1 (up, slow: half) + 1 (down) = 2.5 of 4
        let inputs = [
            input(2.0, false, Outcome::Up, 50),
            input(1.0, false, Outcome::Up, 1500),
            input(1.0, false, Outcome::Down, 5),
        ];
        assert_eq!(health_score(&inputs, SLOW), 62.5);
    }

    #[test]
    fn timeouts_errors_and_open_circuits_earn_nothing() {
        let inputs = [
            input(1.0, false, Outcome::Up, 5),
            input(1.0, false, Outcome::Timeout, 2000),
            input(1.0, false, Outcome::Error, 5),
            ScoreInput {
                weight: 1.0,
                critical: false,
                outcome: Outcome::CircuitOpen,
                latency: None,
            },
        ];
        assert_eq!(health_score(&inputs, SLOW), 25.0);
    }

    #[test]
    fn a_down_critical_target_caps_the_score() {
        // 9 of 10 weight is up (90), but the critical one is down: capped at 50.
        let inputs = [
            input(9.0, false, Outcome::Up, 5),
            input(1.0, true, Outcome::Down, 5),
        ];
        assert_eq!(health_score(&inputs, SLOW), CRITICAL_CAP);
        // The same target not critical: no cap.
        let inputs = [
            input(9.0, false, Outcome::Up, 5),
            input(1.0, false, Outcome::Down, 5),
        ];
        assert_eq!(health_score(&inputs, SLOW), 90.0);
    }

    #[test]
    fn no_targets_is_100() {
        assert_eq!(health_score(&[], SLOW), 100.0);
    }
}
