//! The names of the enums that files and the command line spell (splits, question types,
//! distractor styles, prompt templates, and the enums of the crates above). Each name is
//! written once, as its variant: the enum derives `clap::ValueEnum` (the command line) and
//! serde (configs, data files) with the same `snake_case` rule, prints that name through
//! [`fmt_name`] (its `Display`) and reads it through [`parse_name`] where neither clap nor
//! serde does.

use clap::ValueEnum;

/// Writes `value`'s name: the body of the name enums' `Display`.
pub fn fmt_name<T: ValueEnum>(value: &T, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str(value.to_possible_value().expect("a name enum skips no variant").get_name())
}

/// The names `T` accepts, for messages: `a, b or c`.
pub fn expected<T: ValueEnum>() -> String {
    let names: Vec<String> =
        T::value_variants().iter().filter_map(ValueEnum::to_possible_value).map(|v| v.get_name().to_string()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// Reads a name of `T`; the error names `what` and lists the accepted names.
pub fn parse_name<T: ValueEnum>(name: &str, what: &str) -> Result<T, String> {
    T::from_str(name, false).map_err(|_| format!("unknown {what} {name:?} (expected {})", expected::<T>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blind::Baseline;
    use crate::dataset::Split;
    use crate::distractors::DistractorStyle;
    use crate::prompts::Template;
    use crate::qa::QaType;

    /// Serde writes every variant as the name clap reads and `Display` prints.
    fn serde_spells_the_names<T: ValueEnum + serde::Serialize + std::fmt::Display>() {
        for v in T::value_variants() {
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::Value::String(v.to_string()));
        }
    }

    #[test]
    fn clap_serde_and_display_agree() {
        serde_spells_the_names::<Split>();
        serde_spells_the_names::<QaType>();
        serde_spells_the_names::<DistractorStyle>();
        serde_spells_the_names::<Template>();
        serde_spells_the_names::<Baseline>();
        for t in QaType::ALL {
            assert_eq!(t.as_str(), t.to_string());
        }
    }

    #[test]
    fn names_read_back_and_unknown_ones_list_the_accepted() {
        assert_eq!(parse_name::<QaType>("current_state", "question type"), Ok(QaType::CurrentState));
        assert_eq!(
            parse_name::<Split>("dev", "split"),
            Err("unknown split \"dev\" (expected train, val or test)".to_string())
        );
        assert_eq!(expected::<QaType>(), "waypoint, current_state, movement or waypoint_open");
        assert_eq!(Template::Compact.to_string(), "compact");
    }
}
