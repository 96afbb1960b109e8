//! r1-data: demonstrations in, Robot-R1 question sets out.
//!
//! * [`episode`]: the episode model every reader produces and every writer consumes
//!   (end-effector poses, gripper flag, joint velocities, camera images and calibration,
//!   environment metadata).
//! * [`qa`]: one question-answer sample, the contract between r1-data and the trainers
//!   (Hugging Face chat `messages`, options, typed answer, ground-truth states).
//!
//! Further modules (native format, RLBench and LeRobot readers, keypoint discovery, QA
//! builders and their distractors, blind baselines, dataset writer, export for EasyR1) build on
//! these two.

pub mod blind;
pub mod dataset;
pub mod distractors;
pub mod episode;
pub mod error;
pub mod export;
pub mod fsutil;
pub mod keypoints;
pub mod lerobot;
pub mod movement;
pub mod names;
pub mod native;
pub mod prompts;
pub mod qa;
pub mod qa_build;
pub mod rlbench;
pub mod source;
pub mod video;

pub use episode::{Camera, EnvMetadata, Episode, ImageRef, Pose, SceneObject, Step};
pub use error::{DataError, Result};
pub use qa::{Answer, ContentPart, GroundTruth, Message, QaSample, QaType, SftTargets};
