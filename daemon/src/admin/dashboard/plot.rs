//! The fees plot, an inline SVG drawn on the server: the cumulative fees settled payouts paid and
//! the cumulative cost of one transaction per payout, over time — each line starts at the origin
//! and has one point per payout, placed at its settle time. Payouts that all settled within
//! [`MIN_TIME_SPAN`] (a test's compressed day) are spread evenly in the order they settled
//! instead, so that they do not fall on one vertical line; the axis's title says which. Sums are
//! integer sats; floats only place the points.

use std::fmt::Write;

use super::text::{esc, sep};
use crate::payment::costs::CostPoint;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 44.0;
/// Below this span between the first and the last payout, seconds, the x axis is their order.
pub(super) const MIN_TIME_SPAN: u64 = 60;

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
        "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" role=\"img\" aria-label=\"fees paid against one transaction per payout\">\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{Y0}\" x2=\"{X1}\" y2=\"{Y0}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{Y0}\" x2=\"{LEFT}\" y2=\"{TOP}\"/>"
    );
    if points.is_empty() {
        let (x, y) = (WIDTH / 2.0, HEIGHT / 2.0);
        let _ = write!(out, "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\">no payout settled in the period</text>");
    } else {
        lines(&mut out, points);
        labels(&mut out, points);
    }
    out.push_str("</svg>");
    out
}

/// The bottom of the plot area.
const Y0: f64 = HEIGHT - BOTTOM;
/// The right edge of the plot area.
const X1: f64 = WIDTH - RIGHT;

/// The largest total, the y axis's top, sats.
fn top(points: &[CostPoint]) -> u64 {
    let (paid, alone) = totals(points);
    paid.max(alone).max(1)
}

/// Whether the x axis is time (else the payouts' order).
fn by_time(points: &[CostPoint]) -> bool {
    match (points.first(), points.last()) {
        (Some(first), Some(last)) => last.at.saturating_sub(first.at) >= MIN_TIME_SPAN,
        _ => false,
    }
}

/// Where payout `i` (from 0) goes across: at its time between the first's and the last's, or
/// the `i + 1`-th of `n` even steps.
fn x(points: &[CostPoint], i: usize) -> f64 {
    let n = points.len();
    if by_time(points) {
        let (first, span) = (points[0].at, points[n - 1].at - points[0].at);
        LEFT + (X1 - LEFT) * points[i].at.saturating_sub(first) as f64 / span as f64
    } else {
        LEFT + (X1 - LEFT) * (i + 1) as f64 / n.max(1) as f64
    }
}

/// Where `sat` of `top` goes up.
fn y(sat: u64, top: u64) -> f64 {
    Y0 - (Y0 - TOP) * sat as f64 / top as f64
}

/// Both lines, from the origin, one point per payout.
fn lines(out: &mut String, points: &[CostPoint]) {
    let top = top(points);
    let origin = format!("{LEFT:.1},{Y0:.1} ");
    let mut lines = [origin.clone(), origin];
    let (mut paid, mut alone) = (0u64, 0u64);
    for (i, p) in points.iter().enumerate() {
        paid += p.paid_sat;
        alone += p.one_by_one_sat;
        let _ = write!(lines[0], "{:.1},{:.1} ", x(points, i), y(paid, top));
        let _ = write!(lines[1], "{:.1},{:.1} ", x(points, i), y(alone, top));
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
}

/// The x axis's title.
fn axis_title(points: &[CostPoint]) -> &'static str {
    if by_time(points) {
        "settle time (UTC)"
    } else {
        "settled payouts, in order (UTC; all within a minute)"
    }
}

/// The axes' labels and the legend.
fn labels(out: &mut String, points: &[CostPoint]) {
    let (n, first, last) = (points.len(), &points[0], &points[points.len() - 1]);
    let mut labels = vec![
        (LEFT - 6.0, Y0 + 4.0, "end", "0 sat".to_owned()),
        (LEFT - 6.0, TOP + 4.0, "end", format!("{} sat", sep(top(points)))),
        (X1, Y0 + 18.0, "end", format!("#{n} {}", clock(last.at))),
        ((LEFT + X1) / 2.0, Y0 + 36.0, "middle", axis_title(points).to_owned()),
    ];
    if n > 1 {
        let anchor = if by_time(points) { "start" } else { "middle" };
        labels.push((x(points, 0), Y0 + 18.0, anchor, format!("#1 {}", clock(first.at))));
    }
    for (lx, ly, anchor, text) in labels {
        let _ = write!(out, "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"{anchor}\">{}</text>", esc(&text));
    }
    let _ = write!(
        out,
        "<text class=\"paid\" x=\"{:.1}\" y=\"{:.1}\">— fees paid</text>\
         <text class=\"one-by-one\" x=\"{:.1}\" y=\"{:.1}\">— one transaction per payout</text>",
        LEFT + 10.0,
        TOP + 4.0,
        LEFT + 140.0,
        TOP + 4.0
    );
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
        let points = [point(1_000, 100, 141), point(1_020, 50, 141), point(1_040, 70, 70)];
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
    fn over_a_minute_or_more_the_points_are_placed_at_their_times() {
        // Settled at 0 s, 900 s and 3,600 s: a quarter of the way, then the right edge.
        let points = [point(10_000, 100, 141), point(10_900, 50, 141), point(13_600, 70, 70)];
        let drawn = svg(&points);
        let xs: Vec<&str> = line(&drawn, "paid").iter().map(|p| p.split(',').next().unwrap()).collect();
        assert_eq!(xs, ["80.0", "80.0", "245.0", "740.0"]);
        assert!(drawn.contains(">settle time (UTC)<"), "{drawn}");
        let quick = svg(&[point(10_000, 1, 1), point(10_059, 1, 1)]);
        assert!(quick.contains("in order (UTC; all within a minute)"), "{quick}");
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
