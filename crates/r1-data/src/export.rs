//! Export of a QA dataset for other trainers. One target so far: EasyR1
//! (github.com/hiyouga/EasyR1), the trainer the Robot-R1 paper used.
//!
//! ```text
//! <out>/
//!   train.parquet, val.parquet, test.parquet   the non-empty splits, one row per question
//!   reward_function/r1.py                       r1's rewards as an EasyR1 reward function
//!   README.md                                   the EasyR1 settings that read these files
//! ```
//!
//! A row holds what EasyR1's `RLHFDataset` reads with its example settings (`prompt_key:
//! problem`, `answer_key: answer`, `image_key: images`):
//! * `problem`: the user turn's text with `<image>` where each image goes. EasyR1 splits the
//!   text at `<image>` and rebuilds the content list (image, text), which renders through the
//!   chat template exactly as r1 renders the sample's `messages`;
//! * `images`: the images in prompt order, each `{bytes, path}` (PNG bytes, the path relative
//!   to the source dataset) — the layout of a `datasets` `Image` feature, declared as such in
//!   the file's `huggingface` metadata so that `datasets` decodes them to PIL images;
//! * `answer`: EasyR1 hands this column, and only this one, to the reward function as
//!   `ground_truth`, so it carries everything r1's rules need, as JSON:
//!   `{"qa_type": ..., "options": {...}, "answer": {"label": "B"}}` (`options` absent for
//!   open-ended questions, whose answer is `{"position": [x, y, z]}`). It is a QA-dataset line
//!   cut down to the fields `r1_reward` reads, so with a `completion` added it is also a line
//!   `cargo xtask reward --input` scores;
//! * metadata: `id`, `task`, `variation`, `episode`, `frame`, `qa_type`, and `options` (JSON,
//!   null for open-ended questions) — all scalars, because EasyR1 carries every extra column
//!   through its batches as one numpy object per row.
//!
//! Files appear whole: the folder is built under a temporary name and renamed at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, Int64Array, ListArray, RecordBatch, StringArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::dataset::{Split, read_split};
use crate::error::DataError;
use crate::fsutil::{StagedDir, create_dir};
use crate::qa::{Answer, ContentPart, QaSample, QaType, prompt_turns};

/// What EasyR1 reads as an image slot in the prompt text.
pub const IMAGE_PLACEHOLDER: &str = "<image>";

/// The EasyR1 reward function written to `reward_function/r1.py`.
pub const EASYR1_REWARD_FUNCTION: &str = include_str!("../easyr1/r1.py");

/// Rows per parquet row group: what `datasets` uses for image datasets, so that a reader
/// streaming the file holds about a hundred images at a time, not the whole split.
const ROWS_PER_GROUP: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the source dataset (its splits or an image) failed.
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{path}: cannot write parquet: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: cannot build the rows: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// A sample EasyR1's loader cannot represent (it reads one user turn per row).
    #[error("sample {id}: {reason}")]
    Unsupported { id: String, reason: String },
    #[error("{0}: no questions in any split")]
    Empty(PathBuf),
}

/// Rows written per split (only non-empty splits have a file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub rows: Vec<(Split, usize)>,
}

/// One row's ground truth, the `answer` column (see the module docs).
#[derive(Serialize)]
struct GroundTruth<'a> {
    qa_type: QaType,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<&'a std::collections::BTreeMap<String, String>>,
    answer: &'a Answer,
}

/// The `answer` column's JSON for `sample`.
pub fn ground_truth(sample: &QaSample) -> String {
    let truth = GroundTruth { qa_type: sample.qa_type, options: sample.options.as_ref(), answer: &sample.answer };
    serde_json::to_string(&truth).expect("plain structs and maps serialise")
}

/// The prompt text of `sample` with [`IMAGE_PLACEHOLDER`] where each image goes, and the
/// images' paths in the same order. Parts are joined without separator, as the Qwen2.5-VL chat
/// template joins them.
pub fn easyr1_prompt(sample: &QaSample) -> Result<(String, Vec<&str>), ExportError> {
    let unsupported = |reason: String| ExportError::Unsupported { id: sample.id.clone(), reason };
    let turn = match prompt_turns(&sample.messages) {
        [turn] if turn.role == "user" => turn,
        turns => {
            let roles: Vec<&str> = turns.iter().map(|t| t.role.as_str()).collect();
            return Err(unsupported(format!(
                "EasyR1 reads one user turn per question; this prompt's turns are [{}]",
                roles.join(", ")
            )));
        }
    };
    let mut text = String::new();
    let mut images = Vec::new();
    for part in &turn.content {
        match part {
            ContentPart::Image { image } => {
                text.push_str(IMAGE_PLACEHOLDER);
                images.push(image.as_str());
            }
            ContentPart::Text { text: t } if t.contains(IMAGE_PLACEHOLDER) => {
                return Err(unsupported(
                    "the prompt text holds `<image>`, which EasyR1 would take for an image".into(),
                ));
            }
            ContentPart::Text { text: t } => text.push_str(t),
        }
    }
    Ok((text, images))
}

/// Writes the EasyR1 export of the QA dataset at `dataset` to the folder `out` (see the module
/// docs). An existing `out` is replaced only when `overwrite` is set, and only once the new
/// folder is complete.
pub fn export_easyr1(dataset: &Path, out: &Path, overwrite: bool) -> Result<ExportSummary, ExportError> {
    let staged = StagedDir::new(out)?;
    let mut summary = ExportSummary::default();
    for split in Split::ALL {
        let samples = read_split(dataset, split)?;
        if samples.is_empty() {
            continue;
        }
        let path = staged.path().join(format!("{split}.parquet"));
        write_split(dataset, &samples, &path)?;
        summary.rows.push((split, samples.len()));
    }
    if summary.rows.is_empty() {
        return Err(ExportError::Empty(dataset.to_path_buf()));
    }
    let reward_dir = staged.path().join("reward_function");
    create_dir(&reward_dir)?;
    let reward_path = reward_dir.join("r1.py");
    std::fs::write(&reward_path, EASYR1_REWARD_FUNCTION).map_err(|e| DataError::io(&reward_path, e))?;
    let readme = staged.path().join("README.md");
    std::fs::write(&readme, easyr1_readme(dataset, &summary)).map_err(|e| DataError::io(&readme, e))?;
    staged.commit(overwrite)?;
    Ok(summary)
}

/// The `{bytes, path}` struct of a `datasets` `Image` feature.
fn image_fields() -> Fields {
    Fields::from(vec![Field::new("bytes", DataType::Binary, true), Field::new("path", DataType::Utf8, true)])
}

/// The columns, with the `datasets` features in the `huggingface` metadata (`Sequence` of
/// `Image` rather than the newer `List`: both `datasets` 2-3 and 4+ read it). Every field is
/// nullable: `datasets` applies a feature only where the file's field equals the one the
/// feature stands for, and those are nullable.
fn schema() -> SchemaRef {
    let string = || serde_json::json!({"dtype": "string", "_type": "Value"});
    let int64 = || serde_json::json!({"dtype": "int64", "_type": "Value"});
    let features = serde_json::json!({"info": {"features": {
        "problem": string(),
        "answer": string(),
        "images": {"feature": {"_type": "Image"}, "_type": "Sequence"},
        "id": string(),
        "task": string(),
        "variation": int64(),
        "episode": int64(),
        "frame": int64(),
        "qa_type": string(),
        "options": string(),
    }}});
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, true);
    let int = |name: &str| Field::new(name, DataType::Int64, true);
    let image_list = DataType::List(Arc::new(Field::new_list_field(DataType::Struct(image_fields()), true)));
    let fields = vec![
        utf8("problem"),
        utf8("answer"),
        Field::new("images", image_list, true),
        utf8("id"),
        utf8("task"),
        int("variation"),
        int("episode"),
        int("frame"),
        utf8("qa_type"),
        utf8("options"),
    ];
    Arc::new(Schema::new(fields).with_metadata([("huggingface".to_string(), features.to_string())].into()))
}

/// Writes `samples` (of the dataset at `root`) to the parquet file `path`.
fn write_split(root: &Path, samples: &[QaSample], path: &Path) -> Result<(), ExportError> {
    let schema = schema();
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let props =
        WriterProperties::builder().set_compression(Compression::SNAPPY).set_max_row_group_size(ROWS_PER_GROUP).build();
    let parquet_error = |source| ExportError::Parquet { path: path.to_path_buf(), source };
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(parquet_error)?;
    for chunk in samples.chunks(ROWS_PER_GROUP) {
        writer.write(&rows(root, chunk, &schema, path)?).map_err(parquet_error)?;
    }
    writer.close().map_err(parquet_error)?;
    Ok(())
}

/// The record batch of `samples`, images read from `root`; errors name `out`, the file the
/// rows are for.
fn rows(root: &Path, samples: &[QaSample], schema: &SchemaRef, out: &Path) -> Result<RecordBatch, ExportError> {
    let mut problems = Vec::with_capacity(samples.len());
    let mut image_counts = Vec::with_capacity(samples.len());
    let mut image_bytes = Vec::new();
    let mut image_paths = Vec::new();
    for sample in samples {
        let (problem, images) = easyr1_prompt(sample)?;
        problems.push(problem);
        image_counts.push(images.len());
        for image in images {
            let file = root.join(image);
            image_bytes.push(std::fs::read(&file).map_err(|e| DataError::io(&file, e))?);
            image_paths.push(image);
        }
    }
    let image_structs = StructArray::new(
        image_fields(),
        vec![
            Arc::new(BinaryArray::from_iter_values(&image_bytes)) as ArrayRef,
            Arc::new(StringArray::from(image_paths)),
        ],
        None,
    );
    let images = ListArray::new(
        Arc::new(Field::new_list_field(DataType::Struct(image_fields()), true)),
        OffsetBuffer::from_lengths(image_counts),
        Arc::new(image_structs),
        None,
    );
    let strings = |f: fn(&QaSample) -> String| Arc::new(StringArray::from_iter_values(samples.iter().map(f)));
    let ints = |f: fn(&QaSample) -> i64| Arc::new(Int64Array::from_iter_values(samples.iter().map(f)));
    let options: StringArray = samples
        .iter()
        .map(|s| s.options.as_ref().map(|o| serde_json::to_string(o).expect("a map of strings serialises")))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(problems)),
        strings(ground_truth),
        Arc::new(images),
        strings(|s| s.id.clone()),
        strings(|s| s.task.clone()),
        ints(|s| i64::from(s.variation)),
        ints(|s| i64::from(s.episode)),
        // Frames index an episode's steps: far below i64::MAX.
        ints(|s| s.frame as i64),
        strings(|s| s.qa_type.to_string()),
        Arc::new(options),
    ];
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|source| ExportError::Arrow { path: out.to_path_buf(), source })
}

/// The export's README: files, columns and the EasyR1 settings.
fn easyr1_readme(dataset: &Path, summary: &ExportSummary) -> String {
    let rows: String = summary.rows.iter().map(|(split, n)| format!("| `{split}.parquet` | {n} |\n")).collect();
    let val = summary.rows.iter().map(|(s, _)| *s).find(|&s| s != Split::Train).unwrap_or(Split::Train);
    format!(include_str!("../easyr1/README.md.in"), dataset = dataset.display(), rows = rows, val = val,)
}
