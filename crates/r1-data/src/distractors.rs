//! Distractors: the three wrong options of a multiple-choice question.
//!
//! Two styles ([`DistractorStyle`]), chosen in [`crate::qa_build::QaConfig`]:
//!
//! * [`DistractorStyle::Paper`], the paper's: positions "randomly sampled from the valid state
//!   space" ([`position_distractors`]: uniform in the workspace box), movements three adjacent
//!   labels ([`movement_distractors`]). Such options can be told apart without the image: the
//!   answer is the option nearest to the current position (waypoint), nearest to the middle
//!   of the workspace (current state), or the medoid of the options (movement).
//! * [`DistractorStyle::Balanced`], the default: distractors that share the answer's
//!   distribution, so that neither those blind rules (`crate::blind`) nor a model trained on
//!   the prompts' text (`r1_bench::text_only`) beats chance by much:
//!   - waypoint ([`keypoint_distractors`]): the same keypoint (by index) of the task's other
//!     episodes, where their objects put it: the answer's height and its place in the plan,
//!     somewhere else on the table. (The style also asks waypoint questions only where the
//!     text cannot give the answer away: see `crate::qa_build::NEW_PLACE_MAX_PROGRESS`.)
//!     Fewer than three such keypoints obey the position rules (a task with few episodes):
//!     [`waypoint_distractors`], the demonstration's own moves (from every frame to
//!     its next keypoint: what a waypoint question asked there answers) made from the current
//!     position, so the options share the answer's shape (axis-aligned, typical lengths,
//!     mostly downward), kept inside the box the gripper visits. Their distance to the
//!     current position is within [`MATCH_REL`] x d + [`MATCH_ABS`] of the answer's distance
//!     d, and how many of the three are nearer than the answer is drawn uniformly from 0 to
//!     3, so the answer's rank by distance is uniform. Too few such moves: points at a
//!     matching distance along the direction of a move; still too few: the band widens (up to
//!     8 times), then any direction is allowed, then fewer distractors go on the near side (a
//!     target within half the minimum distance of the current position leaves no room there);
//!   - current state ([`state_distractors`]): gripper positions at the episode's other
//!     question frames, drawn uniformly, so that the options share the answer's distribution;
//!     too few distinct ones: points drawn uniformly in the box the gripper visits;
//!   - movement ([`balanced_movement_distractors`]): the labels of the episode's other moves,
//!     drawn without replacement in proportion to how many frames make them (so the answer
//!     is neither the most common label among the options nor their medoid more often than
//!     the demonstration's own label frequencies imply; the options mix one, two and more
//!     edits from the answer); fewer than three other labels: a star of
//!     [`Movement::adjacent`] labels (a centre and three of its neighbours) with the answer at
//!     a uniformly drawn place: the centre (all distractors one edit away) with probability
//!     1/4, otherwise a leaf (the centre one edit away, the other two leaves usually two).
//!
//! Position rules shared by both styles ([`PositionRules`]): inside the workspace, at least
//! `min_distance` from the answer and from each other, at most `max_distance` from the answer
//! when set, and rounded to the 3 printed decimals first so that the rules hold for what the
//! model reads. When no balanced set satisfies them, the paper's uniform draw is the last
//! resort (it fails with a configuration error only when the rules admit no set at all).
//!
//! Everything is drawn from the caller's generator (seeded per sample), so a sample's options
//! depend only on the seed, the sample id and its own episode.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, UnitSphere};
use serde::{Deserialize, Serialize};

use crate::episode::{Bounds, Episode};
use crate::error::{DataError, Result};
use crate::movement::Movement;
use crate::prompts::format_position;

/// How the distractors of a question are drawn (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum DistractorStyle {
    /// The paper's: positions "randomly sampled from the valid state space" (uniform in the
    /// workspace), movements adjacent to the answer. Answerable without the image.
    Paper,
    /// Matched to the answer so that blind rules stay near chance (the default).
    #[default]
    Balanced,
}

impl DistractorStyle {
    pub const ALL: [DistractorStyle; 2] = [Self::Paper, Self::Balanced];
}

impl std::fmt::Display for DistractorStyle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::names::fmt_name(self, f)
    }
}

/// Relative tolerance of the distance match of waypoint distractors (see the module docs).
pub const MATCH_REL: f64 = 0.2;
/// Absolute tolerance (m) of the distance match, so that short moves still have room.
pub const MATCH_ABS: f64 = 0.01;
/// Random points tried per missing distractor before a rule gives up on sampling.
const SAMPLE_TRIES: usize = 200;
/// Successive widenings of the distance band of waypoint distractors.
const WIDENINGS: [f64; 4] = [1.0, 2.0, 4.0, 8.0];

/// The hard rules every position distractor obeys (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionRules {
    pub workspace: Bounds,
    /// Minimum distance (m) from the answer and between distractors.
    pub min_distance: f64,
    /// Maximum distance (m) from the answer, if any.
    pub max_distance: Option<f64>,
}

impl PositionRules {
    /// True when `p` may join `chosen` as a distractor of `answer` (all already rounded).
    fn admits(&self, p: [f64; 3], answer: [f64; 3], chosen: &[[f64; 3]]) -> bool {
        let d = distance(p, answer);
        self.workspace.contains(p)
            && d >= self.min_distance
            && p != answer
            && self.max_distance.is_none_or(|m| d <= m)
            && chosen.iter().all(|&c| c != p && distance(c, p) >= self.min_distance)
    }

    fn unplaceable(&self, answer: [f64; 3]) -> DataError {
        DataError::Config(format!(
            "cannot place 3 distractors {} m apart{} around {} inside the workspace {:?}..{:?}",
            self.min_distance,
            self.max_distance.map(|m| format!(" and within {m} m")).unwrap_or_default(),
            format_position(answer),
            self.workspace.min,
            self.workspace.max
        ))
    }
}

/// A position rounded to the 3 decimals the prompts print.
pub fn round3(p: [f64; 3]) -> [f64; 3] {
    p.map(|v| (v * 1000.0).round() / 1000.0)
}

/// Euclidean distance.
pub fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt()
}

/// Moves admissible points of `candidates`, in order, into `chosen` until it holds `want`.
/// Stops pulling as soon as it does: candidates may be drawn lazily from the generator, and
/// an extra draw would change every later draw of the sample.
fn take(
    chosen: &mut Vec<[f64; 3]>,
    want: usize,
    candidates: impl IntoIterator<Item = [f64; 3]>,
    answer: [f64; 3],
    rules: &PositionRules,
) {
    if chosen.len() >= want {
        return;
    }
    for p in candidates {
        if rules.admits(p, answer, chosen) {
            chosen.push(p);
            if chosen.len() >= want {
                return;
            }
        }
    }
}

/// A uniform point of `region`, rounded (a flat side gives its one value).
fn uniform_in(region: &Bounds, rng: &mut impl Rng) -> [f64; 3] {
    round3(std::array::from_fn(|a| {
        if region.min[a] < region.max[a] { rng.random_range(region.min[a]..=region.max[a]) } else { region.min[a] }
    }))
}

/// Three position distractors for `answer` in the paper's style (see the module docs):
/// uniform in the workspace box (clipped to the box of half-side `max_distance` around the
/// answer), by rejection. Fails with a configuration error when 50 rounds of 200 draws do
/// not suffice.
pub fn position_distractors(
    answer: [f64; 3],
    workspace: &Bounds,
    min_distance: f64,
    max_distance: Option<f64>,
    rng: &mut impl Rng,
) -> Result<[[f64; 3]; 3]> {
    let rules = PositionRules { workspace: *workspace, min_distance, max_distance };
    uniform_distractors(round3(answer), &rules, rng)
}

fn uniform_distractors(answer: [f64; 3], rules: &PositionRules, rng: &mut impl Rng) -> Result<[[f64; 3]; 3]> {
    let reach = rules.max_distance.unwrap_or(f64::INFINITY);
    let ws = &rules.workspace;
    let clipped = Bounds {
        min: std::array::from_fn(|a| ws.min[a].max(answer[a] - reach)),
        max: std::array::from_fn(|a| ws.max[a].min(answer[a] + reach)),
    };
    if (0..3).any(|a| clipped.min[a] > clipped.max[a]) {
        return Err(rules.unplaceable(answer));
    }
    let mut chosen: Vec<[f64; 3]> = Vec::with_capacity(3);
    // Greedy placement can paint itself into a corner (two early picks leaving no room for a
    // third), so start over a few times rather than drawing forever.
    for _round in 0..50 {
        chosen.clear();
        take(&mut chosen, 3, (0..200).map(|_| uniform_in(&clipped, rng)), answer, rules);
        if let [a, b, c] = chosen[..] {
            return Ok([a, b, c]);
        }
    }
    Err(rules.unplaceable(answer))
}

/// What an episode offers for drawing balanced distractors (built once per episode).
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodePool {
    /// The gripper position of every frame a question is asked at, rounded (repeated
    /// positions stay: drawing uniformly from the list is drawing uniformly over those frames).
    /// Only those frames: the answer of a current-state question is one of them, and the
    /// episode's last frames, where no question is asked, would make distractors a text-only
    /// model tells apart.
    pub states: Vec<[f64; 3]>,
    /// The moves the demonstration makes: from every frame that has a later keypoint to that
    /// keypoint (the answer of a waypoint question asked there), between rounded positions.
    pub moves: Vec<[f64; 3]>,
    /// The movement labels of the same moves (from the unrounded positions, as the
    /// movement question labels them).
    pub movements: Vec<Movement>,
    /// The box of the gripper positions, grown by `margin` sideways and upward but not
    /// downward (below the lowest position is the table), clipped to the workspace: no
    /// waypoint distractor and no sampled fallback leaves it.
    pub region: Bounds,
}

impl EpisodePool {
    /// The pool of `episode`, whose keypoints (increasing frames) are `keypoints` and whose
    /// questions are asked at `asked` frames; `negligible` is the movement labels' threshold,
    /// `margin` grows the region.
    pub fn new(episode: &Episode, keypoints: &[usize], asked: &[usize], negligible: f64, margin: f64) -> Self {
        let raw: Vec<[f64; 3]> = episode.steps.iter().map(|s| s.pose.position).collect();
        let rounded: Vec<[f64; 3]> = raw.iter().map(|&p| round3(p)).collect();
        let states = asked.iter().filter_map(|&f| rounded.get(f).copied()).collect();
        let pairs: Vec<(usize, usize)> = (0..raw.len())
            .filter_map(|f| {
                let k = *keypoints.get(keypoints.partition_point(|&k| k <= f))?;
                (k < raw.len()).then_some((f, k))
            })
            .collect();
        let delta = |p: &[[f64; 3]], (f, k): (usize, usize)| -> [f64; 3] { std::array::from_fn(|a| p[k][a] - p[f][a]) };
        let moves = pairs.iter().map(|&fk| round3(delta(&rounded, fk))).collect();
        let movements = pairs.iter().map(|&fk| Movement::from_delta(delta(&raw, fk), negligible)).collect();
        let ws = &episode.metadata.workspace;
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for p in &rounded {
            for a in 0..3 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
        let region = if rounded.is_empty() {
            *ws
        } else {
            let grown_lo = [lo[0] - margin, lo[1] - margin, lo[2]];
            let grown_hi = hi.map(|h| h + margin);
            Bounds {
                min: std::array::from_fn(|a| grown_lo[a].clamp(ws.min[a], ws.max[a])),
                max: std::array::from_fn(|a| grown_hi[a].clamp(ws.min[a], ws.max[a])),
            }
        };
        Self { states, moves, movements, region }
    }
}

/// Which side of the answer's distance to the current position a distractor lies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Nearer,
    Farther,
}

/// Distances to `current` within `tol` of the answer's distance `r`, split by [`Side`].
#[derive(Clone, Copy, Debug)]
struct Band {
    current: [f64; 3],
    r: f64,
    tol: f64,
}

impl Band {
    /// `[r - tol, r)` (never below 0) or `(r, r + tol]`.
    fn interval(&self, side: Side) -> (f64, f64) {
        match side {
            Side::Nearer => ((self.r - self.tol).max(0.0), self.r),
            Side::Farther => (self.r, self.r + self.tol),
        }
    }

    fn holds(&self, side: Side, p: [f64; 3]) -> bool {
        let d = distance(p, self.current);
        let (lo, hi) = self.interval(side);
        match side {
            Side::Nearer => d >= lo && d < hi,
            Side::Farther => d > lo && d <= hi,
        }
    }

    /// A point at a distance drawn uniformly from `side`'s interval along `direction` (a
    /// non-zero vector), rounded.
    fn sample(&self, side: Side, direction: [f64; 3], rng: &mut impl Rng) -> [f64; 3] {
        let (lo, hi) = self.interval(side);
        let d = if lo < hi { rng.random_range(lo..hi) } else { lo };
        let norm = distance(direction, [0.0; 3]);
        round3(std::array::from_fn(|a| self.current[a] + d * direction[a] / norm))
    }
}

/// Where waypoint distractors may go: the hard rules, around `answer`, inside `region`.
#[derive(Clone, Copy, Debug)]
struct Placement<'a> {
    answer: [f64; 3],
    region: &'a Bounds,
    rules: &'a PositionRules,
}

/// Fills `chosen` with `want` points on `side` of `band`: from `candidates` (already
/// shuffled) first, then points sampled along `directions` (non-zero; uniformly drawn
/// directions when empty).
fn fill_side(
    chosen: &mut Vec<[f64; 3]>,
    want: usize,
    (side, band): (Side, &Band),
    candidates: &[[f64; 3]],
    directions: &[[f64; 3]],
    at: &Placement,
    rng: &mut impl Rng,
) {
    let fits = |p: &[f64; 3]| at.region.contains(*p) && band.holds(side, *p);
    take(chosen, want, candidates.iter().copied().filter(fits), at.answer, at.rules);
    for _ in 0..SAMPLE_TRIES * want.saturating_sub(chosen.len()) {
        let direction = match directions.choose(rng) {
            Some(&v) => v,
            None => UnitSphere.sample(rng),
        };
        let p = band.sample(side, direction, rng);
        // The rounding can move a point across the answer's distance: check it again.
        if fits(&p) {
            take(chosen, want, [p], at.answer, at.rules);
        }
        if chosen.len() >= want {
            return;
        }
    }
}

/// Three balanced waypoint distractors for `answer` (the next keypoint) seen from `current`
/// (see the module docs). `moves` are the demonstration's moves ([`EpisodePool::moves`]):
/// made from `current` they give the candidates, and their directions the sampled
/// fallbacks; `region` bounds every distractor.
pub fn waypoint_distractors(
    (answer, current): ([f64; 3], [f64; 3]),
    moves: &[[f64; 3]],
    region: &Bounds,
    rules: &PositionRules,
    rng: &mut impl Rng,
) -> Result<[[f64; 3]; 3]> {
    let (answer, current) = (round3(answer), round3(current));
    let r = distance(answer, current);
    let mut candidates: Vec<[f64; 3]> =
        moves.iter().map(|v| round3(std::array::from_fn(|a| current[a] + v[a]))).collect();
    candidates.shuffle(rng);
    let directions: Vec<[f64; 3]> = moves.iter().copied().filter(|v| *v != [0.0; 3]).collect();
    let at = Placement { answer, region, rules };
    let nearer = rng.random_range(0..=3usize);
    // Directions of the demonstration's moves keep the answer's shape: any direction only
    // when no band works with those (none, or all leave the region from here).
    let passes: &[&[[f64; 3]]] = if directions.is_empty() { &[&[]] } else { &[&directions, &[]] };
    // Keep the drawn rank whenever some band allows it; give up nearer places only when the
    // target is too close to the current position for any point to fit on the near side.
    for n_near in (0..=nearer).rev() {
        for &directions in passes {
            for widen in WIDENINGS {
                let band = Band { current, r, tol: widen * (MATCH_REL * r + MATCH_ABS) };
                let mut chosen = Vec::with_capacity(3);
                let near = (Side::Nearer, &band);
                fill_side(&mut chosen, n_near, near, &candidates, directions, &at, rng);
                if chosen.len() < n_near {
                    continue;
                }
                let far = (Side::Farther, &band);
                fill_side(&mut chosen, 3, far, &candidates, directions, &at, rng);
                if let [a, b, c] = chosen[..] {
                    return Ok([a, b, c]);
                }
            }
        }
    }
    uniform_distractors(answer, rules, rng)
}

/// Three balanced waypoint distractors for `answer` (the next keypoint) from `others`: the
/// same keypoint (by index) of the task's other episodes, where their objects put it. They
/// share the answer's height and its place in the task's plan, so only the image says which
/// one this scene's objects call for. `None` when fewer than three of them obey the rules.
pub fn keypoint_distractors(
    answer: [f64; 3],
    others: &[[f64; 3]],
    rules: &PositionRules,
    rng: &mut impl Rng,
) -> Option<[[f64; 3]; 3]> {
    let answer = round3(answer);
    let mut candidates: Vec<[f64; 3]> = others.iter().map(|&p| round3(p)).collect();
    candidates.shuffle(rng);
    let mut chosen = Vec::with_capacity(3);
    take(&mut chosen, 3, candidates, answer, rules);
    match chosen[..] {
        [a, b, c] => Some([a, b, c]),
        _ => None,
    }
}

/// Three balanced current-state distractors for `answer` (the current position): positions
/// of other frames, drawn uniformly over `states` (see the module docs), then points sampled
/// in `region`.
pub fn state_distractors(
    answer: [f64; 3],
    states: &[[f64; 3]],
    region: &Bounds,
    rules: &PositionRules,
    rng: &mut impl Rng,
) -> Result<[[f64; 3]; 3]> {
    let answer = round3(answer);
    let mut candidates = states.to_vec();
    candidates.shuffle(rng);
    let mut chosen = Vec::with_capacity(3);
    take(&mut chosen, 3, candidates, answer, rules);
    take(&mut chosen, 3, (0..SAMPLE_TRIES * 3).map(|_| uniform_in(region, rng)), answer, rules);
    match chosen[..] {
        [a, b, c] => Ok([a, b, c]),
        _ => uniform_distractors(answer, rules, rng),
    }
}

/// Three distinct movements adjacent to `answer`, drawn uniformly (the paper's style).
pub fn movement_distractors(answer: Movement, rng: &mut impl Rng) -> [Movement; 3] {
    answer.adjacent().sample_array(rng).expect("every movement has at least six neighbours (see `movement`)")
}

/// Three balanced movement distractors for `answer` (see the module docs): labels of the
/// episode's other moves (`observed`, one per frame), drawn without replacement with
/// probability proportional to their frame counts, then star labels when the episode offers
/// fewer than three other labels.
pub fn balanced_movement_distractors(answer: Movement, observed: &[Movement], rng: &mut impl Rng) -> [Movement; 3] {
    let mut pool: Vec<Movement> = observed.iter().copied().filter(|&m| m != answer).collect();
    // The first occurrences in a shuffled list with repeats are a draw without replacement
    // weighted by the repeats.
    pool.shuffle(rng);
    let mut out: Vec<Movement> = Vec::with_capacity(3);
    for m in pool.into_iter().chain(star_distractors(answer, rng)) {
        if out.len() < 3 && !out.contains(&m) {
            out.push(m);
        }
    }
    out.try_into().expect("the star alone holds three distinct labels other than the answer")
}

/// Three distractors that make a star of the four options with the answer at a uniformly
/// drawn place (see the module docs).
pub fn star_distractors(answer: Movement, rng: &mut impl Rng) -> [Movement; 3] {
    if rng.random_range(0..4) == 0 {
        return movement_distractors(answer, rng);
    }
    let centre = *answer.adjacent().choose(rng).expect("every movement has at least six neighbours (see `movement`)");
    let leaves: Vec<Movement> = centre.adjacent().into_iter().filter(|&m| m != answer).collect();
    let [a, b] = leaves.sample_array(rng).expect("the centre keeps at least five neighbours besides the answer");
    [centre, a, b]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa_build::keyed_rng;
    use proptest::prelude::*;

    const WS: Bounds = Bounds { min: [-0.3, -0.5, 0.6], max: [0.7, 0.5, 1.6] };

    fn in_ws(u: [f64; 3]) -> [f64; 3] {
        [u[0] - 0.3, u[1] - 0.5, u[2] + 0.6]
    }

    fn rules(min: f64, max: Option<f64>) -> PositionRules {
        PositionRules { workspace: WS, min_distance: min, max_distance: max }
    }

    /// The hard rules, checked on a result.
    fn obeys(d: &[[f64; 3]; 3], answer: [f64; 3], rules: &PositionRules) -> bool {
        let a = round3(answer);
        d.iter()
            .enumerate()
            .all(|(i, &p)| round3(p) == p && rules.admits(p, a, &d[..i]) && rules.admits(p, a, &d[i + 1..]))
    }

    /// A gripper path: a line from `start` to `end` in `n` steps.
    fn path(start: [f64; 3], end: [f64; 3], n: usize) -> Vec<[f64; 3]> {
        (0..n)
            .map(|i| {
                let t = i as f64 / (n - 1) as f64;
                round3(std::array::from_fn(|a| start[a] + t * (end[a] - start[a])))
            })
            .collect()
    }

    #[test]
    fn styles_parse_and_print() {
        assert_eq!(DistractorStyle::ALL.map(|s| s.to_string()), ["paper", "balanced"]);
        for s in DistractorStyle::ALL {
            assert_eq!(crate::names::parse_name(&s.to_string(), "distractor style"), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(DistractorStyle::default(), DistractorStyle::Balanced);
        assert!(crate::names::parse_name::<DistractorStyle>("hard", "distractor style").is_err());
    }

    /// Moves of many lengths (0.02 to 0.5 m) and directions, mostly axis-aligned.
    fn varied_moves() -> Vec<[f64; 3]> {
        (0..400)
            .map(|i| {
                let len = 0.02 + 0.48 * (i as f64 / 400.0);
                let t = i as f64 * 0.7;
                let v = match i % 4 {
                    0 => [0.0, 0.0, -len],
                    1 => [0.0, 0.0, len],
                    2 => [len * t.cos(), len * t.sin(), 0.0],
                    _ => [len * t.cos() * 0.6, len * t.sin() * 0.6, -len * 0.8],
                };
                round3(v)
            })
            .collect()
    }

    #[test]
    fn the_answer_rank_by_distance_to_the_current_position_is_uniform() {
        // Plenty of moves at every length: the drawn rank is always kept, with moves of the
        // demonstration made from the current position.
        let current = [0.2, 0.0, 1.0];
        let answer = [0.2, 0.0, 0.8];
        let moves = varied_moves();
        let r = distance(answer, current);
        let mut ranks = [0usize; 4];
        for k in 0..400 {
            let rules = rules(0.05, None);
            let d = waypoint_distractors((answer, current), &moves, &WS, &rules, &mut keyed_rng(k, "w")).unwrap();
            assert!(obeys(&d, answer, &rules));
            ranks[d.iter().filter(|&&p| distance(p, current) < r).count()] += 1;
            for p in d {
                let dp = distance(p, current);
                assert!((dp - r).abs() <= MATCH_REL * r + MATCH_ABS + 1e-9, "{dp} vs {r}");
                let v = round3(std::array::from_fn(|a| p[a] - current[a]));
                assert!(moves.contains(&v), "{p:?} is no move from {current:?}");
            }
        }
        assert!(ranks.iter().all(|&n| (70..=130).contains(&n)), "{ranks:?}");
    }

    #[test]
    fn distractors_stay_in_the_region() {
        let current = [0.2, 0.0, 0.8];
        let answer = [0.2, 0.0, 1.0];
        let region = Bounds { min: [0.0, -0.2, 0.78], max: [0.4, 0.2, 1.2] };
        for k in 0..100 {
            let d = waypoint_distractors(
                (answer, current),
                &varied_moves(),
                &region,
                &rules(0.05, None),
                &mut keyed_rng(k, "r"),
            )
            .unwrap();
            assert!(d.iter().all(|&p| region.contains(p)), "{d:?}");
        }
    }

    #[test]
    fn a_target_at_the_current_position_still_gets_distractors() {
        let p = [0.25, 0.0, 0.9];
        let region = Bounds { min: [0.1, -0.2, 0.8], max: [0.4, 0.2, 1.1] };
        let rules = rules(0.05, None);
        for moves in [varied_moves(), vec![], vec![[0.0; 3]; 3]] {
            let d = waypoint_distractors((p, p), &moves, &region, &rules, &mut keyed_rng(1, "x")).unwrap();
            assert!(obeys(&d, p, &rules));
            // Nothing is nearer than a distance of zero: all three are just farther, within
            // the widest band.
            assert!(d.iter().all(|&q| distance(q, p) <= 8.0 * MATCH_ABS), "{d:?}");
        }
    }

    #[test]
    fn state_distractors_come_from_the_episode_when_it_offers_them() {
        let states = path([0.0, -0.3, 0.8], [0.4, 0.3, 1.2], 60);
        let region = Bounds { min: [0.0, -0.3, 0.8], max: [0.4, 0.3, 1.2] };
        for k in 0..50 {
            let answer = states[(k * 7) % 60];
            let d =
                state_distractors(answer, &states, &region, &rules(0.05, None), &mut keyed_rng(k as u64, "s")).unwrap();
            assert!(obeys(&d, answer, &rules(0.05, None)));
            assert!(d.iter().all(|p| states.contains(p)), "{d:?}");
        }
        // An episode that barely moves: points sampled in its (tiny) region, then the
        // workspace.
        let still = vec![[0.2, 0.0, 1.0]; 30];
        let tiny = Bounds { min: [0.19, -0.01, 1.0], max: [0.21, 0.01, 1.01] };
        let d = state_distractors(still[0], &still, &tiny, &rules(0.05, None), &mut keyed_rng(0, "s")).unwrap();
        assert!(obeys(&d, still[0], &rules(0.05, None)));
    }

    #[test]
    fn the_pool_holds_the_asked_frames_and_every_move() {
        let ep = crate::qa_build::tests::episode();
        let keypoints = crate::keypoints::episode_keypoints(&ep, &Default::default());
        let asked = [0, 10, 20];
        let pool = EpisodePool::new(&ep, &keypoints, &asked, crate::movement::NEGLIGIBLE_M, 0.05);
        assert_eq!(pool.states, asked.map(|f| round3(ep.steps[f].pose.position)));
        let states: Vec<[f64; 3]> = ep.steps.iter().map(|s| round3(s.pose.position)).collect();
        let last = *keypoints.last().unwrap();
        assert_eq!(pool.moves.len(), last);
        assert_eq!(pool.movements.len(), last);
        for f in 0..last {
            let k = keypoints[keypoints.partition_point(|&k| k <= f)];
            let (a, b) = (ep.steps[f].pose.position, ep.steps[k].pose.position);
            assert_eq!(pool.movements[f], Movement::between(a, b));
            let v = round3(std::array::from_fn(|i| states[k][i] - states[f][i]));
            assert_eq!(pool.moves[f], v);
        }
        let lowest = states.iter().map(|p| p[2]).fold(f64::INFINITY, f64::min);
        assert_eq!(pool.region.min[2], lowest);
        let west = states.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
        assert!((pool.region.min[0] - (west - 0.05)).abs() < 1e-9);
        assert!(states.iter().all(|&p| pool.region.contains(p)));
    }

    #[test]
    fn impossible_rules_are_configuration_errors() {
        let p = [0.2, 0.0, 1.0];
        let err = waypoint_distractors((p, p), &varied_moves(), &WS, &rules(5.0, None), &mut keyed_rng(0, "e"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot place 3 distractors"), "{err}");
        assert!(state_distractors(p, &[p; 5], &WS, &rules(5.0, None), &mut keyed_rng(0, "e")).is_err());
    }

    /// The medoid credit of option 0 (ties share it).
    fn answer_medoid_credit(options: &[Movement; 4]) -> f64 {
        let sums: Vec<u32> = options.iter().map(|a| options.iter().map(|b| a.edit_distance(*b)).sum()).collect();
        let best = *sums.iter().min().unwrap();
        let tied = sums.iter().filter(|&&s| s == best).count();
        if sums[0] == best { 1.0 / tied as f64 } else { 0.0 }
    }

    #[test]
    fn the_answer_is_the_star_medoid_about_a_quarter_of_the_time() {
        let answer = Movement::new([0, 1, -2]).unwrap();
        let n = 2000;
        let credit: f64 = (0..n)
            .map(|k| {
                let d = star_distractors(answer, &mut keyed_rng(k, "m"));
                answer_medoid_credit(&[answer, d[0], d[1], d[2]])
            })
            .sum();
        let rate = credit / n as f64;
        assert!((0.18..=0.32).contains(&rate), "{rate}");
        // The paper's adjacent distractors make it the medoid almost always.
        let paper: f64 = (0..n)
            .map(|k| {
                let d = movement_distractors(answer, &mut keyed_rng(k, "m"));
                answer_medoid_credit(&[answer, d[0], d[1], d[2]])
            })
            .sum();
        assert!(paper / n as f64 > 0.7, "{}", paper / n as f64);
    }

    #[test]
    fn balanced_movement_distractors_follow_the_episode_frequencies() {
        let m = |l| Movement::new(l).unwrap();
        let (down, up, still) = (m([0, 0, -2]), m([0, 0, 2]), Movement::STILL);
        let (right, front) = (m([0, 2, 0]), m([2, 0, 0]));
        // Frame counts: down 40, up 30, still 10, right 10, front 10.
        let observed: Vec<Movement> = [(down, 40), (up, 30), (still, 10), (right, 10), (front, 10)]
            .iter()
            .flat_map(|&(l, n)| std::iter::repeat_n(l, n))
            .collect();
        let mut picked = std::collections::BTreeMap::<Movement, usize>::new();
        for k in 0..1000 {
            let d = balanced_movement_distractors(down, &observed, &mut keyed_rng(k, "f"));
            assert!(d.iter().all(|x| *x != down && observed.contains(x)), "{d:?}");
            assert!(d[0] != d[1] && d[1] != d[2] && d[0] != d[2]);
            for x in d {
                *picked.entry(x).or_default() += 1;
            }
        }
        // The frequent "move up" is nearly always among the options; the rarer ones share
        // the other two places.
        assert!(picked[&up] > 900, "{picked:?}");
        assert!([still, right, front].iter().all(|l| (500..=800).contains(&picked[l])), "{picked:?}");
        // Too few other labels in the episode: the star fills the rest.
        let d = balanced_movement_distractors(down, &[down, down, up], &mut keyed_rng(0, "f"));
        assert!(d.contains(&up) && !d.contains(&down), "{d:?}");
    }

    proptest! {
        #[test]
        fn paper_position_distractors_respect_the_rules(
            answer in proptest::array::uniform3(0.0f64..1.0),
            min in 0.0f64..0.2,
            max in proptest::option::of(0.3f64..0.8),
            seed: u64,
        ) {
            let answer = in_ws(answer);
            let d = position_distractors(answer, &WS, min, max, &mut keyed_rng(seed, "p")).unwrap();
            prop_assert!(obeys(&d, answer, &rules(min, max)));
            let again = position_distractors(answer, &WS, min, max, &mut keyed_rng(seed, "p")).unwrap();
            prop_assert_eq!(again, d);
        }

        #[test]
        fn waypoint_distractors_respect_the_rules_and_match_the_distance(
            answer in proptest::array::uniform3(0.0f64..1.0),
            step in proptest::array::uniform3(-0.3f64..0.3),
            min in 0.0f64..0.1,
            max in proptest::option::of(0.3f64..0.8),
            n_moves in 0usize..40,
            seed: u64,
        ) {
            let answer = in_ws(answer);
            let current: [f64; 3] = std::array::from_fn(|a| {
                (answer[a] + step[a]).clamp(WS.min[a], WS.max[a])
            });
            let moves: Vec<[f64; 3]> = varied_moves().into_iter().step_by(10).take(n_moves).collect();
            let rules = rules(min, max);
            let d = waypoint_distractors((answer, current), &moves, &WS, &rules, &mut keyed_rng(seed, "w")).unwrap();
            prop_assert!(obeys(&d, answer, &rules));
            let again = waypoint_distractors((answer, current), &moves, &WS, &rules, &mut keyed_rng(seed, "w")).unwrap();
            prop_assert_eq!(again, d);
            // When there is room on both sides (the answer is far from the current position
            // compared with the spacing), every distractor matches the answer's distance.
            let r = distance(round3(answer), round3(current));
            if r > 4.0 * min + 0.05 && max.is_none() {
                let tol = 8.0 * (MATCH_REL * r + MATCH_ABS);
                for p in d {
                    let dp = distance(p, round3(current));
                    prop_assert!((dp - r).abs() <= tol + 1e-9, "{} vs {}", dp, r);
                }
            }
        }

        #[test]
        fn state_distractors_respect_the_rules(
            start in proptest::array::uniform3(0.0f64..1.0),
            end in proptest::array::uniform3(0.0f64..1.0),
            at in 0usize..40,
            min in 0.0f64..0.1,
            max in proptest::option::of(0.3f64..0.8),
            seed: u64,
        ) {
            let states = path(in_ws(start), in_ws(end), 40);
            let region = Bounds { min: [-0.1, -0.3, 0.8], max: [0.5, 0.3, 1.3] };
            let rules = rules(min, max);
            let answer = states[at];
            let d = state_distractors(answer, &states, &region, &rules, &mut keyed_rng(seed, "s")).unwrap();
            prop_assert!(obeys(&d, answer, &rules));
            let again = state_distractors(answer, &states, &region, &rules, &mut keyed_rng(seed, "s")).unwrap();
            prop_assert_eq!(again, d);
        }

        #[test]
        fn movement_distractors_are_adjacent_and_distinct(levels in proptest::array::uniform3(-2i8..=2), seed: u64) {
            prop_assume!(Movement::new(levels).is_some());
            let m = Movement::new(levels).unwrap();
            let d = movement_distractors(m, &mut keyed_rng(seed, "m"));
            let adj = m.adjacent();
            prop_assert!(d.iter().all(|x| adj.contains(x) && *x != m));
            prop_assert!(d[0] != d[1] && d[1] != d[2] && d[0] != d[2]);
        }

        #[test]
        fn star_distractors_form_a_star_around_one_option(levels in proptest::array::uniform3(-2i8..=2), seed: u64) {
            prop_assume!(Movement::new(levels).is_some());
            let m = Movement::new(levels).unwrap();
            let d = star_distractors(m, &mut keyed_rng(seed, "m"));
            let options = [m, d[0], d[1], d[2]];
            for i in 0..4 {
                for j in i + 1..4 {
                    prop_assert_ne!(options[i], options[j]);
                }
            }
            // Some option (the centre) is one edit from each of the other three, and every
            // distractor is one or two edits from the answer.
            prop_assert!(options.iter().any(|c| options.iter().filter(|o| c.edit_distance(**o) == 1).count() == 3));
            prop_assert!(d.iter().all(|x| (1..=2).contains(&m.edit_distance(*x))));
        }

        #[test]
        fn balanced_movement_distractors_are_distinct_and_never_the_answer(
            levels in proptest::array::uniform3(-2i8..=2),
            observed in proptest::collection::vec(proptest::array::uniform3(-2i8..=2), 0..30),
            seed: u64,
        ) {
            prop_assume!(Movement::new(levels).is_some());
            let m = Movement::new(levels).unwrap();
            let observed: Vec<Movement> = observed.into_iter().filter_map(Movement::new).collect();
            let d = balanced_movement_distractors(m, &observed, &mut keyed_rng(seed, "b"));
            prop_assert!(d.iter().all(|x| *x != m));
            prop_assert!(d[0] != d[1] && d[1] != d[2] && d[0] != d[2]);
            let again = balanced_movement_distractors(m, &observed, &mut keyed_rng(seed, "b"));
            prop_assert_eq!(again, d);
            // From the episode whenever it offers three other labels.
            let others: std::collections::BTreeSet<_> = observed.iter().filter(|&&x| x != m).collect();
            if others.len() >= 3 {
                prop_assert!(d.iter().all(|x| others.contains(x)));
            }
        }
    }
}
