//! The fees plot, an inline SVG drawn on the server: the cumulative fees settled payouts paid and
//! the cumulative cost of one transaction per payout, against the time they settled — one point
//! per payout on each line. Sums are integer sats; floats only place the points.

use std::fmt::Write;

use super::page::{esc, sep};
use crate::payment::costs::CostPoint;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 44.0;

/// The two lines' totals: (fees paid, one transaction each), sats.
pub(super) fn totals(points: &[CostPoint]) -> (u64, u64) {
    points.iter().fold((0, 0), |(paid, alone), p| (paid + p.paid_sat, alone + p.one_by_one_sat))
}

/// `HH:MM:SS` UTC of `unix`.
fn clock(unix: u64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0).map(|t| t.format("%H:%M:%S").to_string()).unwrap_or_default()
}

/// The plot of `points` (in the order they settled).
pub(super) fn svg(points: &[CostPoint]) -> String {
    let mut out = format!(
        "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"fees paid against one transaction per payout\">"
    );
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\"/><line class=\"axis\" x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\"/>"
    );
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no payout settled in the period</text></svg>",
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        return out;
    };
    let (t0, t1) = (first.at, last.at.max(first.at + 1));
    let (paid_total, alone_total) = totals(points);
    let top = paid_total.max(alone_total).max(1);
    let x = |t: u64| x0 + (x1 - x0) * (t.saturating_sub(t0)) as f64 / (t1 - t0) as f64;
    let y = |sat: u64| y0 - (y0 - y1) * sat as f64 / top as f64;
    let mut lines = [String::new(), String::new()];
    let (mut paid, mut alone) = (0u64, 0u64);
    for p in points {
        paid += p.paid_sat;
        alone += p.one_by_one_sat;
        let _ = write!(lines[0], "{:.1},{:.1} ", x(p.at), y(paid));
        let _ = write!(lines[1], "{:.1},{:.1} ", x(p.at), y(alone));
    }
    for (class, label, line) in
        [("paid", "fees paid", &lines[0]), ("one-by-one", "one transaction per payout", &lines[1])]
    {
        let _ = write!(
            out,
            "<polyline class=\"{class}\" fill=\"none\" points=\"{}\"><title>{label}</title></polyline>",
            line.trim_end()
        );
    }
    let labels = [
        (x0 - 6.0, y0 + 4.0, "end", "0 sat".to_owned()),
        (x0 - 6.0, y1 + 4.0, "end", format!("{} sat", sep(top))),
        (x0, y0 + 18.0, "start", clock(t0)),
        (x1, y0 + 18.0, "end", clock(t1)),
        ((x0 + x1) / 2.0, y0 + 36.0, "middle", "settled at (UTC)".to_owned()),
    ];
    for (lx, ly, anchor, text) in labels {
        let _ = write!(out, "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"{anchor}\">{}</text>", esc(&text));
    }
    let _ = write!(
        out,
        "<text class=\"paid\" x=\"{:.1}\" y=\"{:.1}\">— fees paid</text><text class=\"one-by-one\" x=\"{:.1}\" y=\"{:.1}\">— one transaction per payout</text></svg>",
        x0 + 10.0,
        y1 + 4.0,
        x0 + 140.0,
        y1 + 4.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: u64, paid_sat: u64, one_by_one_sat: u64) -> CostPoint {
        CostPoint { at, rail: "onchain".into(), paid_sat, one_by_one_sat }
    }

    fn line<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
        let start = format!("<polyline class=\"{class}\" fill=\"none\" points=\"");
        let rest = &svg[svg.find(&start).unwrap() + start.len()..];
        rest[..rest.find('"').unwrap()].split(' ').collect()
    }

    #[test]
    fn each_payout_is_a_point_on_both_lines() {
        let points = [point(1_000, 100, 141), point(1_030, 50, 141), point(1_060, 70, 70)];
        assert_eq!(totals(&points), (220, 352));
        let svg = svg(&points);
        let (paid, alone) = (line(&svg, "paid"), line(&svg, "one-by-one"));
        assert_eq!((paid.len(), alone.len()), (3, 3));
        // The first point is at the left edge, the last at the right; the one-by-one line ends at
        // the top (the larger total), the paid line below it.
        assert_eq!(alone[0].split(',').next(), Some("80.0"));
        assert_eq!(alone[2], "740.0,20.0");
        let paid_end: f64 = paid[2].split(',').nth(1).unwrap().parse().unwrap();
        assert!(paid_end > 20.0 && paid_end < 216.0, "{paid_end}");
        assert!(svg.contains(">352 sat<"), "{svg}");
    }

    #[test]
    fn one_payout_or_none_still_draws() {
        let one = svg(&[point(5, 3, 3)]);
        assert_eq!(line(&one, "paid"), vec!["80.0,20.0"]);
        let none = svg(&[]);
        assert!(!none.contains("<polyline") && none.contains("no payout settled"));
    }
}
