//! The town's geography: named places around 39.90 N 116.75 E and the roads
//! between them as polylines.
//!
//! Coordinates are WGS-84 and made up for the model (close to, not surveyed
//! from, the real villages of 潞城镇). Distances use an equirectangular
//! projection, exact enough over a few kilometres.

/// A WGS-84 point, degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

const EARTH_RADIUS_M: f64 = 6_371_000.0;
/// Latitude the projection is centred on.
const REF_LAT: f64 = 39.90;

impl Point {
    pub const fn new(lat: f64, lon: f64) -> Self {
        Self { lat, lon }
    }

    /// Local planar coordinates in metres (east, north).
    fn xy(self) -> (f64, f64) {
        let k = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        (self.lon * k * REF_LAT.to_radians().cos(), self.lat * k)
    }

    fn from_xy(x: f64, y: f64) -> Self {
        let k = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        Self {
            lat: y / k,
            lon: x / (k * REF_LAT.to_radians().cos()),
        }
    }

    pub fn distance_m(self, other: Point) -> f64 {
        let (x1, y1) = self.xy();
        let (x2, y2) = other.xy();
        (x2 - x1).hypot(y2 - y1)
    }

    /// Degrees clockwise from true north, 0..<360.
    pub fn bearing_to(self, other: Point) -> f64 {
        let (x1, y1) = self.xy();
        let (x2, y2) = other.xy();
        let deg = (x2 - x1).atan2(y2 - y1).to_degrees();
        let deg = deg.rem_euclid(360.0);
        if deg >= 360.0 { 0.0 } else { deg }
    }

    /// The point `east_m` metres east and `north_m` metres north of this one.
    pub fn offset(self, east_m: f64, north_m: f64) -> Point {
        let (x, y) = self.xy();
        Point::from_xy(x + east_m, y + north_m)
    }
}

/// A named place of the town.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    /// Short ASCII code used in device ids, e.g. `WT`.
    pub code: &'static str,
    /// The name as residents write it, e.g. `武疃村`.
    pub name: &'static str,
    pub at: Point,
    /// A village (has residents, bins, a collection point), rather than a
    /// facility.
    pub village: bool,
}

const fn place(code: &'static str, name: &'static str, lat: f64, lon: f64, village: bool) -> Place {
    Place {
        code,
        name,
        at: Point::new(lat, lon),
        village,
    }
}

/// Every place of the model town.
pub const PLACES: &[Place] = &[
    place("WT", "武疃村", 39.9300, 116.7700, true),
    place("BLF", "卜落垡村", 39.9150, 116.7950, true),
    place("TZF", "太子府村", 39.8800, 116.7900, true),
    place("QJ", "七级村", 39.8720, 116.7520, true),
    place("DLZ", "东刘庄村", 39.8900, 116.7200, true),
    place("XB", "西堡村", 39.9180, 116.7220, true),
    place("YT", "杨坨村", 39.9420, 116.7450, true),
    place("XGZ", "兴各庄村", 39.8620, 116.7750, true),
    place("HBY", "后北营家园", 39.8970, 116.7350, true),
    place("GT", "甘棠卫生院", 39.9050, 116.7520, false),
    place("TH", "潞城镇政府", 39.9000, 116.7450, false),
    place("DEPOT", "环卫车队", 39.8850, 116.7420, false),
    place("TS", "垃圾转运站", 39.8750, 116.7300, false),
];

/// Looks a place up by code. Panics on an unknown code: codes are constants.
pub fn place_by_code(code: &str) -> &'static Place {
    PLACES
        .iter()
        .find(|p| p.code == code)
        .unwrap_or_else(|| panic!("unknown place code {code}"))
}

/// The villages (places with residents).
pub fn villages() -> impl Iterator<Item = &'static Place> {
    PLACES.iter().filter(|p| p.village)
}

/// A path made of straight segments, with cumulative lengths for lookups by
/// distance travelled.
#[derive(Debug, Clone)]
pub struct Polyline {
    points: Vec<Point>,
    /// `cumulative[i]`: distance from the start to `points[i]`, metres.
    cumulative: Vec<f64>,
}

impl Polyline {
    pub fn new(points: Vec<Point>) -> Self {
        assert!(!points.is_empty(), "a polyline needs a point");
        let mut cumulative = Vec::with_capacity(points.len());
        let mut total = 0.0;
        for (i, point) in points.iter().enumerate() {
            if i > 0 {
                total += points[i - 1].distance_m(*point);
            }
            cumulative.push(total);
        }
        Self { points, cumulative }
    }

    /// A road between two places shaped like the rural grid: along one axis,
    /// across, then along again, with the turn placed by a stable hash of the
    /// pair so that every vehicle takes the same road.
    pub fn road(from: Point, to: Point, shape: u64) -> Vec<Point> {
        let turn = 0.3 + 0.4 * ((shape % 1000) as f64 / 1000.0);
        if shape & 1 == 0 {
            let lon = from.lon + (to.lon - from.lon) * turn;
            vec![from, Point::new(from.lat, lon), Point::new(to.lat, lon), to]
        } else {
            let lat = from.lat + (to.lat - from.lat) * turn;
            vec![from, Point::new(lat, from.lon), Point::new(lat, to.lon), to]
        }
    }

    pub fn length_m(&self) -> f64 {
        *self.cumulative.last().expect("non-empty")
    }

    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// The point `distance` metres along the path and the heading there.
    pub fn at(&self, distance: f64) -> (Point, f64) {
        let d = distance.clamp(0.0, self.length_m());
        let i = match self
            .cumulative
            .binary_search_by(|c| c.partial_cmp(&d).expect("finite"))
        {
            Ok(i) => i.min(self.points.len().saturating_sub(2)),
            Err(i) => i.saturating_sub(1).min(self.points.len().saturating_sub(2)),
        };
        if self.points.len() == 1 {
            return (self.points[0], 0.0);
        }
        let (a, b) = (self.points[i], self.points[i + 1]);
        let span = self.cumulative[i + 1] - self.cumulative[i];
        let t = if span > 0.0 {
            ((d - self.cumulative[i]) / span).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let point = Point::new(a.lat + (b.lat - a.lat) * t, a.lon + (b.lon - a.lon) * t);
        (point, a.bearing_to(b))
    }

    /// Shortest distance from `p` to the path, metres.
    pub fn distance_to(&self, p: Point) -> f64 {
        let (px, py) = p.xy();
        if self.points.len() == 1 {
            return self.points[0].distance_m(p);
        }
        self.points
            .windows(2)
            .map(|w| {
                let (ax, ay) = w[0].xy();
                let (bx, by) = w[1].xy();
                let (dx, dy) = (bx - ax, by - ay);
                let len2 = dx * dx + dy * dy;
                let t = if len2 > 0.0 {
                    (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                (px - (ax + t * dx)).hypot(py - (ay + t * dy))
            })
            .fold(f64::INFINITY, f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_near_the_town_and_distinct() {
        let centre = Point::new(39.90, 116.75);
        for place in PLACES {
            assert!(place.at.distance_m(centre) < 8_000.0, "{}", place.code);
        }
        let mut codes: Vec<_> = PLACES.iter().map(|p| p.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), PLACES.len());
    }

    #[test]
    fn walking_a_polyline_stays_on_it() {
        let a = place_by_code("GT").at;
        let b = place_by_code("WT").at;
        let line = Polyline::new(Polyline::road(a, b, 12_345));
        assert!(line.length_m() >= a.distance_m(b));
        let mut d = 0.0;
        while d <= line.length_m() {
            let (p, heading) = line.at(d);
            assert!(line.distance_to(p) < 0.01);
            assert!((0.0..360.0).contains(&heading));
            d += 97.0;
        }
        assert!(line.at(line.length_m()).0.distance_m(b) < 0.01);
        assert!(
            line.distance_to(a.offset(0.0, 500.0)) > 100.0
                || line.distance_to(a.offset(500.0, 0.0)) > 100.0
        );
    }

    #[test]
    fn bearings_point_the_right_way() {
        let p = Point::new(39.9, 116.75);
        assert!((p.bearing_to(p.offset(0.0, 100.0)) - 0.0).abs() < 0.01);
        assert!((p.bearing_to(p.offset(100.0, 0.0)) - 90.0).abs() < 0.01);
        assert!((p.bearing_to(p.offset(0.0, -100.0)) - 180.0).abs() < 0.01);
        assert!((p.bearing_to(p.offset(-100.0, 0.0)) - 270.0).abs() < 0.01);
    }
}
