//! Format detection and loading: turns any supported path into validated episodes.
//!
//! The path may be one episode folder, a task folder, a dataset root, or any folder above
//! them. Below it, [`load_episodes`] finds (in natural order: `episode2` before `episode10`)
//! * native episode folders (holding [`native::EPISODE_FILE`]),
//! * RLBench episode folders (holding [`rlbench::LOW_DIM_FILE`], stock or PerAct layout),
//! * LeRobot dataset roots (holding `meta/info.json`),
//!
//! and does not look inside them for more. A file path stands for its folder. A path inside
//! one of them (an episode's camera folder, a LeRobot data file or chunk folder) stands for
//! that episode, or for the LeRobot episodes stored under it.
//!
//! With [`LoadOptions::strict`] the first broken episode (or unreadable LeRobot dataset) is the
//! error; otherwise it is recorded in [`Loaded::skipped`] and loading goes on. Episodes whose
//! id (`task/variation/episode`) was already loaded are broken too: QA splits go by episode
//! id, so two demonstrations must not share one (PerAct's train and test splits of a task
//! do, so load them separately).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use crate::episode::Episode;
use crate::error::{DataError, Result};
use crate::lerobot::{self, StateMap};
use crate::{native, rlbench};

/// How deep below the given path demonstrations are looked for (PerAct's
/// `<split>/<task>/all_variations/episodes/episode<E>` is five levels).
const MAX_DEPTH: usize = 8;

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Stop at the first broken episode instead of skipping it.
    pub strict: bool,
    /// Cameras to import, by name (`front`, `wrist`; LeRobot also takes the full feature key).
    /// Empty: RLBench's `front`; every camera of native episodes and LeRobot datasets.
    pub cameras: Vec<String>,
    /// LeRobot state layout, when the feature names do not tell it (see [`StateMap`]).
    pub state_map: Option<StateMap>,
}

/// What [`load_episodes`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Validated episodes with where they came from: the episode folder (native, RLBench) or
    /// the parquet file (LeRobot).
    pub episodes: Vec<(PathBuf, Episode)>,
    /// Broken episodes (or LeRobot datasets / data files) that were skipped, with the reason.
    pub skipped: Vec<(PathBuf, DataError)>,
}

/// One unit of input found below the path.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    Native(PathBuf),
    RlBench(PathBuf),
    /// A dataset root, and the part of it to read when the path pointed inside it.
    LeRobot {
        root: PathBuf,
        only: Option<PathBuf>,
    },
}

/// Loads every demonstration at or below `path` (see the module docs). Fails when nothing is
/// found, when `strict` and anything is broken, and when every episode found is broken.
pub fn load_episodes(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let sources = find_sources(path)?;
    if sources.is_empty() {
        return Err(DataError::invalid(
            path,
            "no demonstrations found: expected native episode folders (episode.json), RLBench episode \
             folders (low_dim_obs.pkl) or LeRobot datasets (meta/info.json) at or below this path",
        ));
    }
    let mut loaded = Loaded::default();
    let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (origin, episode) in read_all(&sources, opts).into_iter().flatten() {
        let episode = episode.and_then(|e| match ids.get(&e.id()) {
            Some(first) => Err(DataError::invalid(
                &origin,
                format!("episode {} was already loaded from {}", e.id(), first.display()),
            )),
            None => Ok(e),
        });
        match episode {
            Ok(e) => {
                ids.insert(e.id(), origin.clone());
                loaded.episodes.push((origin, e));
            }
            Err(e) if opts.strict => return Err(e),
            Err(e) => loaded.skipped.push((origin, e)),
        }
    }
    if loaded.episodes.is_empty() {
        let (first, error) = &loaded.skipped[0];
        return Err(DataError::invalid(
            path,
            format!(
                "none of the {} episodes found could be read; the first ({}): {error}",
                loaded.skipped.len(),
                first.display()
            ),
        ));
    }
    Ok(loaded)
}

/// Reads every source on all cores (unpickling dominates an RLBench import); the results
/// keep the sources' order, so loading is deterministic.
fn read_all(sources: &[Source], opts: &LoadOptions) -> Vec<Vec<(PathBuf, Result<Episode>)>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(sources.len());
    let next = AtomicUsize::new(0);
    let mut results: Vec<Vec<(PathBuf, Result<Episode>)>> = sources.iter().map(|_| Vec::new()).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                        let Some(source) = sources.get(i) else {
                            return done;
                        };
                        done.push((i, read_source(source, opts)));
                    }
                })
            })
            .collect();
        for worker in workers {
            let done = worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (i, episodes) in done {
                results[i] = episodes;
            }
        }
    });
    results
}

/// The validated episodes of one source, each with its origin (see [`Loaded::episodes`]); a
/// LeRobot dataset that cannot be read at all is one error with the dataset root.
fn read_source(source: &Source, opts: &LoadOptions) -> Vec<(PathBuf, Result<Episode>)> {
    match source {
        Source::Native(dir) => {
            let episode = native::read_episode(dir).and_then(|e| select_cameras(e, &opts.cameras, dir));
            vec![(dir.clone(), episode)]
        }
        Source::RlBench(dir) => {
            let pkl = dir.join(rlbench::LOW_DIM_FILE);
            let episode = rlbench::read_episode(dir, &opts.cameras).and_then(|e| e.validate(&pkl).map(|()| e));
            vec![(dir.clone(), episode)]
        }
        Source::LeRobot { root, only } => {
            let state_map = opts.state_map.as_ref();
            match lerobot::read_dataset(root, only.as_deref(), &opts.cameras, state_map) {
                Ok(episodes) => episodes
                    .into_iter()
                    .map(|(file, episode)| {
                        let episode = episode.and_then(|e| e.validate(&file).map(|()| e));
                        (file, episode)
                    })
                    .collect(),
                Err(e) => vec![(root.clone(), Err(e))],
            }
        }
    }
}

/// Keeps only the named cameras of a native episode (all when `names` is empty).
fn select_cameras(mut episode: Episode, names: &[String], dir: &Path) -> Result<Episode> {
    if names.is_empty() {
        return Ok(episode);
    }
    if let Some(missing) = names.iter().find(|n| !episode.cameras.iter().any(|c| &c.name == *n)) {
        let found: Vec<&str> = episode.cameras.iter().map(|c| c.name.as_str()).collect();
        return Err(DataError::invalid(dir, format!("no camera {missing:?} (cameras: [{}])", found.join(", "))));
    }
    episode.cameras.retain(|c| names.contains(&c.name));
    for step in &mut episode.steps {
        step.images.retain(|camera, _| names.contains(camera));
    }
    Ok(episode)
}

/// The demonstrations at or below `path` in natural order, else the one `path` lies inside.
fn find_sources(path: &Path) -> Result<Vec<Source>> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    // A file stands for its folder (`.../episode3/low_dim_obs.pkl`, `.../episode.json`).
    let start = if meta.is_file() { path.parent().unwrap_or(Path::new(".")) } else { path };
    let mut sources = Vec::new();
    walk(start, 0, &mut sources)?;
    if sources.is_empty() {
        let path = std::path::absolute(path).map_err(|e| DataError::io(path, e))?;
        let enclosing = path.ancestors().skip(1).take(MAX_DEPTH).find_map(source_at);
        sources.extend(enclosing.map(|source| match source {
            Source::LeRobot { root, .. } => Source::LeRobot { root, only: Some(path.clone()) },
            other => other,
        }));
    }
    Ok(sources)
}

/// The demonstration whose folder `dir` is, if any.
fn source_at(dir: &Path) -> Option<Source> {
    let dir = dir.to_path_buf();
    if native::is_native_episode(&dir) {
        Some(Source::Native(dir))
    } else if rlbench::is_episode_dir(&dir) {
        Some(Source::RlBench(dir))
    } else if lerobot::is_dataset_root(&dir) {
        Some(Source::LeRobot { root: dir, only: None })
    } else {
        None
    }
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<Source>) -> Result<()> {
    if let Some(source) = source_at(dir) {
        out.push(source);
    } else if depth < MAX_DEPTH {
        let mut children: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .map_err(|e| DataError::io(dir, e))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| Some((entry.file_name().into_string().ok()?, entry.path())))
            .filter(|(name, _)| !name.starts_with('.'))
            .collect();
        children.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        for (_, child) in children {
            walk(&child, depth + 1, out)?;
        }
    }
    Ok(())
}

/// Orders names with their digit runs compared as numbers: `episode2 < episode10`. Runs of
/// equal value but different zero padding fall back to the text, so the order stays total.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        match (x.chars().next(), y.chars().next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let (p, q) = (digit_run(x), digit_run(y));
                let (pt, qt) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                // Without leading zeros, a longer run is a larger number.
                let by_value = pt.len().cmp(&qt.len()).then_with(|| pt.cmp(qt));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                (x, y) = (&x[p.len()..], &y[q.len()..]);
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(&d);
                }
                (x, y) = (&x[c.len_utf8()..], &y[d.len_utf8()..]);
            }
        }
    }
}

fn digit_run(s: &str) -> &str {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn natural_order_examples() {
        let mut names = vec!["episode10", "episode2", "episode1", "variation0", "episode02", "a"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["a", "episode1", "episode02", "episode2", "episode10", "variation0"]);
    }

    proptest! {
        /// Numbered names sort by number.
        #[test]
        fn numbers_sort_numerically(a in 0u64..1_000_000, b in 0u64..1_000_000) {
            let (x, y) = (format!("episode{a}"), format!("episode{b}"));
            prop_assert_eq!(natural_cmp(&x, &y), a.cmp(&b));
        }

        /// A total order: antisymmetric, equal only for equal strings, transitive.
        #[test]
        fn natural_order_is_total(a in "[a0-2]{0,6}", b in "[a0-2]{0,6}", c in "[a0-2]{0,6}") {
            prop_assert_eq!(natural_cmp(&a, &b), natural_cmp(&b, &a).reverse());
            prop_assert_eq!(natural_cmp(&a, &b) == Ordering::Equal, a == b);
            if natural_cmp(&a, &b) != Ordering::Greater && natural_cmp(&b, &c) != Ordering::Greater {
                prop_assert_ne!(natural_cmp(&a, &c), Ordering::Greater);
            }
        }
    }
}
