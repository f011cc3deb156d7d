//! The fees plot, an inline SVG drawn on the server: the cumulative fees settled payouts paid and
//! the cumulative cost of one transaction per payout, over the payouts in the order they settled
//! (the first's and the last's times on the axis) — each line starts at the origin and has one
//! point per payout. Sums are integer sats; floats only place the points.

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
    let (paid_total, alone_total) = totals(points);
    let top = paid_total.max(alone_total).max(1);
    let n = points.len() as f64;
    let x = |i: usize| x0 + (x1 - x0) * i as f64 / n;
    let y = |sat: u64| y0 - (y0 - y1) * sat as f64 / top as f64;
    let origin = format!("{x0:.1},{y0:.1} ");
    let mut lines = [origin.clone(), origin];
    let (mut paid, mut alone) = (0u64, 0u64);
    for (i, p) in points.iter().enumerate() {
        paid += p.paid_sat;
        alone += p.one_by_one_sat;
        let _ = write!(lines[0], "{:.1},{:.1} ", x(i + 1), y(paid));
        let _ = write!(lines[1], "{:.1},{:.1} ", x(i + 1), y(alone));
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
    let mut labels = vec![
        (x0 - 6.0, y0 + 4.0, "end", "0 sat".to_owned()),
        (x0 - 6.0, y1 + 4.0, "end", format!("{} sat", sep(top))),
        (x1, y0 + 18.0, "end", format!("#{} {}", points.len(), clock(last.at))),
        ((x0 + x1) / 2.0, y0 + 36.0, "middle", "settled payouts, in order (UTC)".to_owned()),
    ];
    if points.len() > 1 {
        labels.push((x(1), y0 + 18.0, "middle", format!("#1 {}", clock(first.at))));
    }
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
        assert_eq!((paid.len(), alone.len()), (4, 4), "the origin and a point per payout");
        // Both start at the origin and end at the right edge; the one-by-one line ends at the top
        // (the larger total), the paid line below it.
        assert_eq!((paid[0], alone[0]), ("80.0,216.0", "80.0,216.0"));
        assert_eq!(alone[1], "300.0,137.5");
        assert_eq!(alone[3], "740.0,20.0");
        let paid_end: f64 = paid[3].split(',').nth(1).unwrap().parse().unwrap();
        assert!(paid_end > 20.0 && paid_end < 216.0, "{paid_end}");
        assert!(svg.contains(">352 sat<"), "{svg}");
    }

    #[test]
    fn one_payout_or_none_still_draws() {
        let one = svg(&[point(5, 3, 3)]);
        assert_eq!(line(&one, "paid"), vec!["80.0,216.0", "740.0,20.0"]);
        assert!(one.contains(">#1 00:00:05<") && one.matches("#1").count() == 1, "{one}");
        let none = svg(&[]);
        assert!(!none.contains("<polyline") && none.contains("no payout settled"));
    }
}
