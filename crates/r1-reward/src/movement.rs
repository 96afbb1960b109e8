//! Open-ended movement answers such as "Move down and slightly right": parsed into one signed
//! step per axis and compared axis by axis.

pub use crate::error::MovementError;

/// A robot axis, in the Robot-R1 convention: x+ forward, y+ right, z+ up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    X,
    Y,
    Z,
}

impl Axis {
    pub const ALL: [Axis; 3] = [Axis::X, Axis::Y, Axis::Z];
}

impl std::fmt::Display for Axis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Axis::X => "x (forward/backward)",
            Axis::Y => "y (right/left)",
            Axis::Z => "z (up/down)",
        })
    }
}

/// The movement along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AxisMove {
    /// Toward the axis's positive end (forward, right, up).
    pub positive: bool,
    /// Qualified by "slightly".
    pub slight: bool,
}

/// What a movement phrase says: a step or nothing along each axis, indexed x, y, z (the label a
/// dataset stores is r1-data's [`Movement`](r1_data::movement::Movement)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ParsedMovement {
    pub steps: [Option<AxisMove>; 3],
}

impl ParsedMovement {
    pub fn step(&self, axis: Axis) -> Option<AxisMove> {
        self.steps[axis as usize]
    }
}

/// The axis and sign a direction word names, if it is one.
fn direction(word: &str) -> Option<(Axis, bool)> {
    const WORDS: [(&str, Axis, bool); 14] = [
        ("forward", Axis::X, true),
        ("forwards", Axis::X, true),
        ("front", Axis::X, true),
        ("backward", Axis::X, false),
        ("backwards", Axis::X, false),
        ("back", Axis::X, false),
        ("right", Axis::Y, true),
        ("left", Axis::Y, false),
        ("up", Axis::Z, true),
        ("upward", Axis::Z, true),
        ("upwards", Axis::Z, true),
        ("down", Axis::Z, false),
        ("downward", Axis::Z, false),
        ("downwards", Axis::Z, false),
    ];
    WORDS.iter().find(|(w, ..)| w.eq_ignore_ascii_case(word)).map(|&(_, axis, positive)| (axis, positive))
}

/// Parses a movement phrase. Words are the runs of ASCII letters, compared case-insensitively:
/// forward/forwards/front (x+), backward/backwards/back (x-), right (y+), left (y-),
/// up/upward/upwards (z+), down/downward/downwards (z-). "slightly" qualifies the next
/// direction word, wherever it comes ("slightly move left", "move slightly left"). Every other
/// word is ignored, so "Move down and slightly right." parses to z- and slight y+. A text with
/// no direction word but the word "still" (r1-data's "stay still" label) is the movement with
/// no step.
///
/// Errors: neither a direction word nor "still", or one axis given two different steps ("up
/// and down", "up and slightly up"); repeating the same step is fine. O(len), no allocation.
pub fn parse_movement(text: &str) -> Result<ParsedMovement, MovementError> {
    let mut movement = ParsedMovement::default();
    let mut slight = false;
    let mut still = false;
    for word in text.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()) {
        if word.eq_ignore_ascii_case("slightly") {
            slight = true;
        } else if word.eq_ignore_ascii_case("still") {
            still = true;
        } else if let Some((axis, positive)) = direction(word) {
            let step = AxisMove { positive, slight };
            let slot = &mut movement.steps[axis as usize];
            match slot {
                Some(previous) if *previous != step => return Err(MovementError::Contradiction(axis)),
                _ => *slot = Some(step),
            }
            slight = false;
        }
    }
    if !still && movement.steps.iter().all(Option::is_none) {
        return Err(MovementError::NoDirection);
    }
    Ok(movement)
}

/// Partial credit of `prediction` against `reference`, in [0, 1]: the mean, over the axes along
/// which either of them moves, of
/// * 1 when both step the same way with the same "slightly",
/// * 0.5 when both step the same way but only one says "slightly",
/// * 0 when they step opposite ways or only one of them moves along the axis.
///
/// So "move down" against "move down and slightly right" earns 0.5 (z right, y missed), and
/// "move up" against "move down" earns 0. It is 1 exactly when the two are equal (two "stay
/// still" included).
pub fn movement_credit(prediction: &ParsedMovement, reference: &ParsedMovement) -> f64 {
    let (mut credit, mut axes) = (0.0, 0u32);
    for (p, r) in prediction.steps.iter().zip(&reference.steps) {
        let axis_credit = match (p, r) {
            (None, None) => continue,
            (Some(p), Some(r)) if p == r => 1.0,
            (Some(p), Some(r)) if p.positive == r.positive => 0.5,
            _ => 0.0,
        };
        credit += axis_credit;
        axes += 1;
    }
    if axes == 0 { 1.0 } else { credit / f64::from(axes) }
}

/// The reward for an open-ended movement answer: [`movement_credit`] of its parse, 0 when it
/// does not parse.
pub fn movement_reward(answer: &str, reference: &ParsedMovement) -> f64 {
    parse_movement(answer).map_or(0.0, |p| movement_credit(&p, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(positive: bool, slight: bool) -> Option<AxisMove> {
        Some(AxisMove { positive, slight })
    }

    #[test]
    fn parses_the_label_phrases() {
        let m = parse_movement("slightly move front, slightly move left, and move down").unwrap();
        assert_eq!(m.steps, [step(true, true), step(false, true), step(false, false)]);
        let m = parse_movement("Move DOWN and slightly right.").unwrap();
        assert_eq!(m.steps, [None, step(true, true), step(false, false)]);
        let m = parse_movement("move backwards, back again").unwrap();
        assert_eq!(m.steps, [step(false, false), None, None]);
        assert_eq!(parse_movement("Stay still."), Ok(ParsedMovement::default()));
        // Directions win over "still".
        assert_eq!(parse_movement("still, move up").unwrap().steps, [None, None, step(true, false)]);
    }

    #[test]
    fn rejects_no_direction_and_contradictions() {
        assert_eq!(parse_movement("stay where you are"), Err(MovementError::NoDirection));
        assert_eq!(parse_movement(""), Err(MovementError::NoDirection));
        // Words are whole words: "upper", "frontal" and "leftover" are not directions.
        assert_eq!(parse_movement("upper frontal leftover"), Err(MovementError::NoDirection));
        assert_eq!(parse_movement("up, down"), Err(MovementError::Contradiction(Axis::Z)));
        assert_eq!(parse_movement("left and slightly left"), Err(MovementError::Contradiction(Axis::Y)));
    }

    #[test]
    fn credit_per_axis() {
        let reference = parse_movement("move down and slightly right").unwrap();
        let credit = |answer: &str| movement_reward(answer, &reference);
        assert_eq!(credit("Move down and slightly right"), 1.0);
        assert_eq!(credit("move down and right"), 0.75);
        assert_eq!(credit("move down"), 0.5);
        assert_eq!(credit("move down, slightly right and forward"), 2.0 / 3.0);
        assert_eq!(credit("move up and slightly left"), 0.0);
        assert_eq!(credit("move up and down"), 0.0);
        assert_eq!(credit("I am not sure"), 0.0);
        assert_eq!(credit("stay still"), 0.0);
        assert_eq!(movement_reward("stay still", &ParsedMovement::default()), 1.0);
        assert_eq!(movement_reward("move up", &ParsedMovement::default()), 0.0);
    }
}
