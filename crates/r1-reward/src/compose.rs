//! Composition: named components, their weights, and the reward function the trainer calls.

use std::collections::BTreeMap;

use r1_data::{Answer, QaSample, QaType};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::choice::{check_options, choice_reward};
use crate::error::{RewardError, SampleError};
use crate::extract::extract_answer;
use crate::format::{FormatMode, format_reward};
use crate::movement::{movement_reward, parse_movement};
use crate::position::{PositionMetric, position_answer_reward};

/// A named reward component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Component {
    /// The format reward (0 or 1).
    Format,
    /// The answer reward: multiple choice (0 or 1), position or movement (in [0, 1]).
    Answer,
}

impl Component {
    pub const ALL: [Component; 2] = [Component::Format, Component::Answer];

    /// The name as a `&'static str`, for the trainer's code that still needs one; everything
    /// else prints the component ([`Display`](std::fmt::Display)), which a test keeps equal to this.
    pub fn name(self) -> &'static str {
        match self {
            Component::Format => "format",
            Component::Answer => "answer",
        }
    }
}

/// The name of the component's key in weights and rewards (`format`, `answer`).
impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        r1_data::names::fmt_name(self, f)
    }
}

/// One finite, non-negative weight per component. Default: format 1, answer 1, as in the paper.
/// Negative weights are refused: with rewards in [0, 1] they would teach the model to fail.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, f64>", into = "BTreeMap<String, f64>")]
pub struct Weights([f64; Component::ALL.len()]);

impl Default for Weights {
    fn default() -> Self {
        Self([1.0; Component::ALL.len()])
    }
}

impl Weights {
    pub fn get(&self, component: Component) -> f64 {
        self.0[component as usize]
    }

    /// These weights with `component` set to `weight`; `Err` unless it is finite and >= 0.
    pub fn with(mut self, component: Component, weight: f64) -> Result<Self, String> {
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(format!("the weight of {component} must be a finite number >= 0, not {weight}"));
        }
        self.0[component as usize] = weight;
        Ok(self)
    }

    /// Defaults overridden by `name -> weight` pairs; each name at most once.
    fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, f64)>) -> Result<Self, String> {
        let mut weights = Self::default();
        let mut seen = [false; Component::ALL.len()];
        for (name, weight) in pairs {
            let component: Component = r1_data::names::parse_name(name.trim(), "reward component")?;
            if std::mem::replace(&mut seen[component as usize], true) {
                return Err(format!("{component} is given twice"));
            }
            weights = weights.with(component, weight)?;
        }
        Ok(weights)
    }
}

/// `format=1,answer=0.5`: comma-separated `name=weight` pairs; components not listed keep their
/// default weight.
impl std::str::FromStr for Weights {
    type Err = RewardError;
    fn from_str(spec: &str) -> Result<Self, RewardError> {
        let error = |reason: String| RewardError::Weights { spec: spec.into(), reason };
        let pairs = spec
            .split(',')
            .map(|pair| {
                let (name, value) =
                    pair.split_once('=').ok_or_else(|| error(format!("{pair:?} is not name=weight")))?;
                let weight = value.trim().parse::<f64>().map_err(|_| error(format!("{value:?} is not a number")))?;
                Ok((name, weight))
            })
            .collect::<Result<Vec<_>, RewardError>>()?;
        Self::from_pairs(pairs).map_err(error)
    }
}

impl TryFrom<BTreeMap<String, f64>> for Weights {
    type Error = String;
    fn try_from(map: BTreeMap<String, f64>) -> Result<Self, String> {
        Self::from_pairs(map.iter().map(|(k, &v)| (k.as_str(), v)))
    }
}

impl From<Weights> for BTreeMap<String, f64> {
    fn from(weights: Weights) -> Self {
        Component::ALL.into_iter().map(|c| (c.to_string(), weights.get(c))).collect()
    }
}

/// The reward components of one completion and their weighted sum. Serialises as
/// `{"format": f, "answer": a, "total": t}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rewards {
    values: [f64; Component::ALL.len()],
    total: f64,
}

impl Rewards {
    fn new(values: [f64; Component::ALL.len()], weights: &Weights) -> Self {
        let total = Component::ALL.into_iter().map(|c| weights.get(c) * values[c as usize]).sum();
        Self { values, total }
    }

    pub fn get(&self, component: Component) -> f64 {
        self.values[component as usize]
    }

    pub fn format(&self) -> f64 {
        self.get(Component::Format)
    }

    pub fn answer(&self) -> f64 {
        self.get(Component::Answer)
    }

    /// `Σ weight(c) · value(c)` over the components.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// `(component, value)` for every component, in [`Component::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Component, f64)> + '_ {
        Component::ALL.into_iter().map(|c| (c, self.get(c)))
    }
}

impl Serialize for Rewards {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Component::ALL.len() + 1))?;
        for (component, value) in self.iter() {
            map.serialize_entry(&component.to_string(), &value)?;
        }
        map.serialize_entry("total", &self.total)?;
        map.end()
    }
}

/// Settings of a [`RewardFn`]; embeddable in a training config (`[reward]` with `format =
/// "strict"`, `position = "l1"`, `weights = { format = 1.0, answer = 1.0 }`, all optional).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    pub format: FormatMode,
    pub position: PositionMetric,
    pub weights: Weights,
}

/// Scores completions against QA samples. Cheap to copy and free of interior state, so one
/// instance serves any number of threads.
#[derive(Clone, Copy, Debug, Default)]
pub struct RewardFn {
    config: RewardConfig,
}

impl RewardFn {
    pub fn new(config: RewardConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &RewardConfig {
        &self.config
    }

    /// The rewards of `completion` as an answer to `sample`. Errors only when the sample itself
    /// cannot be scored (see [`RewardFn::score_parts`]); never because of the completion.
    pub fn score(&self, completion: &str, sample: &QaSample) -> Result<Rewards, RewardError> {
        self.score_parts(completion, sample.qa_type, sample.options.as_ref(), &sample.answer)
            .map_err(|source| RewardError::Sample { id: sample.id.clone(), source })
    }

    /// [`RewardFn::score`] from a question's parts. The answer decides the rule, and must suit
    /// the question type:
    /// * `Answer::Label` (multiple-choice types, with `options` that contain the label):
    ///   [`choice_reward`];
    /// * `Answer::Position` (`waypoint_open`, finite target): [`position_answer_reward`] with
    ///   the configured metric;
    /// * `Answer::Movement` (`movement`, the text must parse): [`movement_reward`].
    ///
    /// The answer component is 0 when the completion has no answer ([`extract_answer`]).
    pub fn score_parts(
        &self,
        completion: &str,
        qa_type: QaType,
        options: Option<&BTreeMap<String, String>>,
        answer: &Answer,
    ) -> Result<Rewards, SampleError> {
        let given = extract_answer(completion);
        let answer_reward = match answer {
            Answer::Label(label) => {
                if !qa_type.is_multiple_choice() {
                    return Err(SampleError::AnswerKind { qa_type, found: "label" });
                }
                let options = options.ok_or(SampleError::NoOptions)?;
                check_options(options, label)?;
                given.map_or(0.0, |g| choice_reward(g, options, label))
            }
            Answer::Position(target) => {
                if qa_type != QaType::WaypointOpen {
                    return Err(SampleError::AnswerKind { qa_type, found: "position" });
                }
                if !target.iter().all(|v| v.is_finite()) {
                    return Err(SampleError::NonFiniteTarget(*target));
                }
                given.map_or(0.0, |g| position_answer_reward(g, *target, self.config.position))
            }
            Answer::Movement(text) => {
                if qa_type != QaType::Movement {
                    return Err(SampleError::AnswerKind { qa_type, found: "movement" });
                }
                let reference =
                    parse_movement(text).map_err(|source| SampleError::Movement { text: text.clone(), source })?;
                given.map_or(0.0, |g| movement_reward(g, &reference))
            }
        };
        let format = format_reward(completion, self.config.format);
        Ok(Rewards::new([format, answer_reward], &self.config.weights))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> BTreeMap<String, String> {
        [("A", "move up"), ("B", "move down")].into_iter().map(|(l, t)| (l.to_string(), t.to_string())).collect()
    }

    #[test]
    fn component_names() {
        assert_eq!(Component::ALL.map(|c| c.to_string()), ["format", "answer"]);
        for c in Component::ALL {
            assert_eq!(c.name(), c.to_string());
        }
    }

    #[test]
    fn parses_weights() {
        assert_eq!("format=0.5".parse::<Weights>().unwrap(), Weights([0.5, 1.0]));
        assert_eq!(" answer = 2 , format=0".parse::<Weights>().unwrap(), Weights([0.0, 2.0]));
        for (spec, needle) in [
            ("format=1,format=2", "twice"),
            ("format", "not name=weight"),
            ("answer=x", "not a number"),
            ("answer=-1", ">= 0"),
            ("answer=inf", ">= 0"),
            ("length=1", "unknown reward component"),
            ("", "not name=weight"),
        ] {
            let err = spec.parse::<Weights>().unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains(&format!("{spec:?}")), "{spec:?}: {err}");
        }
    }

    #[test]
    fn config_round_trips_and_refuses_bad_weights() {
        let config =
            RewardConfig { format: FormatMode::Paper, position: PositionMetric::L2, weights: Weights([0.0, 2.0]) };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<RewardConfig>(&json).unwrap(), config);
        assert_eq!(serde_json::from_str::<RewardConfig>("{}").unwrap(), RewardConfig::default());
        assert!(serde_json::from_str::<RewardConfig>(r#"{"weights": {"answer": -1}}"#).is_err());
        assert!(serde_json::from_str::<RewardConfig>(r#"{"weight": {}}"#).is_err());
    }

    #[test]
    fn weighted_total_and_serialisation() {
        let weights = "format=0.5,answer=2".parse().unwrap();
        let f = RewardFn::new(RewardConfig { weights, ..RewardConfig::default() });
        let r = f
            .score_parts(
                "<think>x</think><answer>[[B]]</answer>",
                QaType::Movement,
                Some(&options()),
                &Answer::Label("B".into()),
            )
            .unwrap();
        assert_eq!((r.format(), r.answer(), r.total()), (1.0, 1.0, 2.5));
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"format":1.0,"answer":1.0,"total":2.5}"#);
    }

    #[test]
    fn answer_needs_an_answer_not_the_format() {
        let f = RewardFn::default();
        let r = f.score_parts(
            "[[B]] <answer>move down</answer>",
            QaType::Movement,
            Some(&options()),
            &Answer::Label("B".into()),
        );
        assert_eq!(r.map(|r| (r.format(), r.answer(), r.total())), Ok((0.0, 1.0, 1.0)));
        let r = f.score_parts("<think>B</think>", QaType::Movement, Some(&options()), &Answer::Label("B".into()));
        assert_eq!(r.map(|r| r.total()), Ok(0.0));
    }

    #[test]
    fn dispatches_on_the_answer() {
        let f = RewardFn::new(RewardConfig { position: PositionMetric::L1, ..RewardConfig::default() });
        let open = f
            .score_parts(
                "<think>t</think><answer>[0.1, 0.2, 0.3]</answer>",
                QaType::WaypointOpen,
                None,
                &Answer::Position([0.1, 0.2, 0.5]),
            )
            .unwrap();
        assert!((open.answer() - 0.8).abs() < 1e-12);
        let movement = f
            .score_parts(
                "<think>t</think><answer>move down</answer>",
                QaType::Movement,
                None,
                &Answer::Movement("move down and slightly left".into()),
            )
            .unwrap();
        assert_eq!(movement.answer(), 0.5);
    }

    #[test]
    fn refuses_unscorable_samples() {
        let f = RewardFn::default();
        let c = "<think>t</think><answer>A</answer>";
        let label = Answer::Label("A".into());
        let opts = options();
        let err = |qa_type, options, answer: &Answer| f.score_parts(c, qa_type, options, answer).unwrap_err();
        assert!(matches!(err(QaType::WaypointOpen, Some(&opts), &label), SampleError::AnswerKind { .. }));
        assert_eq!(err(QaType::Waypoint, None, &label), SampleError::NoOptions);
        assert!(matches!(
            err(QaType::Waypoint, Some(&opts), &Answer::Label("C".into())),
            SampleError::UnknownLabel { .. }
        ));
        assert!(matches!(err(QaType::Waypoint, None, &Answer::Position([0.0; 3])), SampleError::AnswerKind { .. }));
        assert!(matches!(
            err(QaType::WaypointOpen, None, &Answer::Position([f64::NAN, 0.0, 0.0])),
            SampleError::NonFiniteTarget(_)
        ));
        assert!(matches!(err(QaType::Movement, None, &Answer::Movement("stay".into())), SampleError::Movement { .. }));
        assert!(matches!(
            err(QaType::CurrentState, None, &Answer::Movement("up".into())),
            SampleError::AnswerKind { .. }
        ));
    }
}
