//! Bounds on logging under attack. A flood of refused callers must not turn into a flood of log lines
//! (the writer would fall behind and, before, block the runtime): refusals are logged up to a budget
//! per second, and the count of the ones left out is logged once the next second begins. The log
//! writer itself is lossy under pressure (see `main.rs`), and what it drops is counted in
//! `livekit_sidecar_log_lines_dropped_total`.

use std::sync::Mutex;
use std::sync::OnceLock;

/// Refusal lines logged per second at most.
pub const REFUSALS_PER_SECOND: u32 = 10;

/// The budget of one second: which second, lines admitted, lines left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    second: u64,
    admitted: u32,
    suppressed: u64,
}

/// What to do with one line at `now_second`: whether to log it, and how many lines of an earlier
/// second were left out (to report once). Pure: the clock is passed in.
pub fn admit(budget: Budget, now_second: u64, limit: u32) -> (Budget, bool, u64) {
    let (mut budget, left_out) = if now_second == budget.second {
        (budget, 0)
    } else {
        (
            Budget {
                second: now_second,
                ..Budget::default()
            },
            budget.suppressed,
        )
    };
    let log = budget.admitted < limit;
    if log {
        budget.admitted += 1;
    } else {
        budget.suppressed += 1;
    }
    (budget, log, left_out)
}

static REFUSALS: Mutex<Budget> = Mutex::new(Budget {
    second: 0,
    admitted: 0,
    suppressed: 0,
});

/// Logs a refused caller at info, within [`REFUSALS_PER_SECOND`].
pub fn log_refusal(reason: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (log, left_out) = {
        let mut budget = REFUSALS.lock().unwrap_or_else(|p| p.into_inner());
        let (next, log, left_out) = admit(*budget, now, REFUSALS_PER_SECOND);
        *budget = next;
        (log, left_out)
    };
    if left_out > 0 {
        tracing::info!(
            count = left_out,
            "caller refusals not logged in the last second (rate limit)"
        );
    }
    if log {
        tracing::info!(reason, "caller refused");
    }
}

/// How many lines the log writer has dropped so far, once `main` installs its writer.
static DROPPED_LINES: OnceLock<Box<dyn Fn() -> u64 + Send + Sync>> = OnceLock::new();

/// Installs the source of the dropped-lines count (the lossy writer's error counter).
pub fn set_dropped_lines_source(source: impl Fn() -> u64 + Send + Sync + 'static) {
    let _ = DROPPED_LINES.set(Box::new(source));
}

pub fn dropped_lines() -> u64 {
    DROPPED_LINES.get().map_or(0, |source| source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_admits_up_to_the_limit_then_reports_what_it_left_out() {
        let mut budget = Budget::default();
        let mut logged = 0;
        for _ in 0..25 {
            let (next, log, left_out) = admit(budget, 100, 10);
            assert_eq!(left_out, 0);
            logged += u32::from(log);
            budget = next;
        }
        assert_eq!(logged, 10);
        let (budget, log, left_out) = admit(budget, 101, 10);
        assert!(log, "a new second has a new budget");
        assert_eq!(left_out, 15, "the 15 lines left out are reported once");
        let (_, _, left_out) = admit(budget, 101, 10);
        assert_eq!(left_out, 0);
    }
}
