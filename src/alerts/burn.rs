//! Multi-window, multi-burn-rate alerts (Google SRE workbook, ch. 5) on the write SLOs' budgets.

use super::rules::Severity::{Critical, Warning};
use super::rules::{Alerts, budget, num, pct};
use crate::config::Config;
use crate::measure::slo::Slo;

/// A fast (pages) and a slow (ticket) burn-rate alert for each write SLO's 30-day error budget,
/// and the canary's delivery success.
pub(super) fn alerts(cfg: &Config, model: &[Slo], a: &mut Alerts) {
    let s = &cfg.slo;
    for (sli, slo, what, slug, target) in [
        (
            "write_errors",
            "write_success",
            "write success",
            "WriteErrorBudget",
            format!("{} of writes succeed", pct(s.write_success)),
        ),
        (
            "write_slow",
            "write_p99",
            "write latency",
            "WriteLatencyBudget",
            format!("99 % of writes within {}", s.write_p99),
        ),
        (
            "e2e_delivery_lost",
            "e2e_delivery_success",
            "message delivery",
            "E2EDeliveryBudget",
            format!(
                "{} of expected deliveries arrive",
                pct(s.e2e_delivery_success)
            ),
        ),
    ] {
        let b = num(budget(model, slo));
        let burn = |long: &str, short: &str, factor: f64| {
            format!(
                "chatload:{sli}:ratio_rate{long} > ({factor} * {b}) and chatload:{sli}:ratio_rate{short} > ({factor} * {b})"
            )
        };
        a.add(
            (format!("Chatload{slug}BurnFast"), "2m", Critical),
            format!("({}) or ({})", burn("1h", "5m", 14.4), burn("6h", "30m", 6.0)),
            format!("The {what} error budget burns fast"),
            format!("At the current rate the 30-day budget of the SLO \"{target}\" is gone in under 5 days (burn rate 14.4 over 1 h or 6 over 6 h). {slug}: act now."),
        );
        a.add(
            (format!("Chatload{slug}BurnSlow"), "15m", Warning),
            format!("({}) or ({})", burn("1d", "2h", 3.0), burn("3d", "6h", 1.0)),
            format!("The {what} error budget burns steadily"),
            format!("The SLO \"{target}\" is consuming its 30-day budget faster than it renews (burn rate 3 over 1 d or 1 over 3 d). {slug}: look at it this week."),
        );
    }
}
