//! The EasyR1 export (`r1_data::export`), read back with the parquet reader: on the embedded
//! dataset (`datasets/default`) and on small datasets cut from it. Loading the files with
//! Python's `datasets` and comparing `reward_function/r1.py` with r1-reward is
//! `scripts/check_easyr1_export.py` (not run in CI, which runs no Python).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use r1_data::dataset::{Split, read_split, split_path};
use r1_data::export::{EASYR1_REWARD_FUNCTION, ExportError, export_easyr1};
use r1_data::{Answer, ContentPart, Message, QaSample, QaType};
use serde::Deserialize;

const COLUMNS: [&str; 10] =
    ["problem", "answer", "images", "id", "task", "variation", "episode", "frame", "qa_type", "options"];

fn default_dataset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/default")
}

/// The `answer` column as the reward function reads it.
#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Truth {
    qa_type: QaType,
    options: Option<BTreeMap<String, String>>,
    answer: Answer,
}

/// All rows of a parquet file, its `huggingface` metadata and its number of row groups.
fn read_parquet(path: &Path) -> (Vec<RecordBatch>, serde_json::Value, usize) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let metadata = builder.schema().metadata().get("huggingface").expect("huggingface metadata").clone();
    let row_groups = builder.metadata().num_row_groups();
    let batches = builder.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    (batches, serde_json::from_str(&metadata).unwrap(), row_groups)
}

fn string<'a>(batch: &'a RecordBatch, column: &str, row: usize) -> Option<&'a str> {
    let array = batch.column_by_name(column).unwrap().as_string::<i32>();
    array.is_valid(row).then(|| array.value(row))
}

fn int(batch: &RecordBatch, column: &str, row: usize) -> i64 {
    batch.column_by_name(column).unwrap().as_primitive::<Int64Type>().value(row)
}

/// `(PNG bytes, path)` of every image of one row.
fn images(batch: &RecordBatch, row: usize) -> Vec<(Vec<u8>, String)> {
    let list = batch.column_by_name("images").unwrap().as_list::<i32>().value(row);
    let structs = list.as_struct();
    let bytes = structs.column_by_name("bytes").unwrap().as_binary::<i32>();
    let paths = structs.column_by_name("path").unwrap().as_string::<i32>();
    (0..structs.len()).map(|i| (bytes.value(i).to_vec(), paths.value(i).to_string())).collect()
}

/// Checks `split` of the export at `out` row by row against the dataset at `root`; decodes
/// every `decode_every`-th image. Returns the row count.
fn check_split(root: &Path, out: &Path, split: Split, decode_every: usize) -> usize {
    let samples = read_split(root, split).unwrap();
    let (batches, features, row_groups) = read_parquet(&out.join(format!("{split}.parquet")));
    let names: Vec<String> = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, COLUMNS);
    let image_feature = serde_json::json!({"feature": {"_type": "Image"}, "_type": "Sequence"});
    assert_eq!(features["info"]["features"]["images"], image_feature);
    let rows: Vec<(&RecordBatch, usize)> =
        batches.iter().flat_map(|b| (0..b.num_rows()).map(move |r| (b, r))).collect();
    assert_eq!(rows.len(), samples.len(), "{split}");
    // Row groups of 100: a reader streams about 100 images at a time.
    assert_eq!(row_groups, samples.len().div_ceil(100));
    for (i, ((batch, row), sample)) in rows.into_iter().zip(&samples).enumerate() {
        assert_eq!(string(batch, "id", row), Some(sample.id.as_str()));
        assert_eq!(string(batch, "task", row), Some(sample.task.as_str()));
        assert_eq!(string(batch, "qa_type", row), Some(sample.qa_type.as_str()));
        assert_eq!(int(batch, "variation", row), i64::from(sample.variation));
        assert_eq!(int(batch, "episode", row), i64::from(sample.episode));
        assert_eq!(int(batch, "frame", row), sample.frame as i64);
        // r1's user turn is the image, then the text: EasyR1 rebuilds it from `<image>text`.
        let [Message { content, .. }] = sample.messages.as_slice() else { panic!("{}: one turn", sample.id) };
        let [ContentPart::Image { image }, ContentPart::Text { text }] = content.as_slice() else {
            panic!("{}: image then text", sample.id)
        };
        assert_eq!(string(batch, "problem", row).unwrap(), format!("<image>{text}"));
        let truth: Truth = serde_json::from_str(string(batch, "answer", row).unwrap()).unwrap();
        let (options, answer) = (sample.options.clone(), sample.answer.clone());
        let expected = Truth { qa_type: sample.qa_type, options, answer };
        assert_eq!(truth, expected);
        let options = string(batch, "options", row).map(|o| serde_json::from_str(o).unwrap());
        assert_eq!(options, sample.options);
        let [(bytes, path)] = images(batch, row).try_into().unwrap_or_else(|_| panic!("{}: one image", sample.id));
        assert_eq!(&path, image);
        let original = std::fs::read(root.join(image)).unwrap();
        assert!(bytes == original, "{}: the embedded image differs from {image}", sample.id);
        if i % decode_every == 0 {
            let decoded = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap().to_rgb8();
            assert_eq!(decoded, image::open(root.join(image)).unwrap().to_rgb8());
        }
    }
    samples.len()
}

#[test]
fn exports_the_embedded_dataset_and_reads_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("easyr1");
    let summary = export_easyr1(&default_dataset(), &out, false).unwrap();
    let card = r1_data::dataset::read_card(&default_dataset()).unwrap();
    for &(split, rows) in &summary.rows {
        assert_eq!(rows, card.splits[&split.to_string()].samples, "{split}");
        assert_eq!(check_split(&default_dataset(), &out, split, 97), rows);
    }
    assert_eq!(summary.rows.len(), 3);
    let reward = std::fs::read_to_string(out.join("reward_function/r1.py")).unwrap();
    assert_eq!(reward, EASYR1_REWARD_FUNCTION);
    assert!(reward.contains("def compute_score(") && reward.contains("REWARD_TYPE = \"batch\""));
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    let needles = [
        "| `test.parquet` | 2586 |",
        "val_files: <this folder>/val.parquet",
        "r1.py:compute_score",
        "format_prompt: null",
    ];
    for needle in needles {
        assert!(readme.contains(needle), "{needle:?} not in\n{readme}");
    }
    let mut files: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["README.md", "reward_function", "test.parquet", "train.parquet", "val.parquet"]);
    // The staging folder was renamed into place: nothing else is left.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

/// A dataset at `root` whose train split is `train` (images copied from the embedded dataset)
/// and whose other splits are empty.
fn small_dataset(root: &Path, train: &[QaSample]) {
    std::fs::create_dir_all(root.join("qa")).unwrap();
    for split in Split::ALL {
        let lines: String = match split {
            Split::Train => train.iter().map(|s| serde_json::to_string(s).unwrap() + "\n").collect(),
            Split::Val | Split::Test => String::new(),
        };
        std::fs::write(split_path(root, split), lines).unwrap();
    }
    for image in train.iter().flat_map(|s| s.messages.iter().flat_map(Message::images)) {
        let dest = root.join(image);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(default_dataset().join(image), dest).unwrap();
    }
}

#[test]
fn writes_non_empty_splits_and_refuses_what_easyr1_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, out) = (tmp.path().join("ds"), tmp.path().join("easyr1"));
    let samples: Vec<QaSample> = read_split(&default_dataset(), Split::Val).unwrap().into_iter().take(6).collect();
    assert!(samples.iter().any(|s| s.qa_type == QaType::WaypointOpen && s.options.is_none()));
    small_dataset(&root, &samples);
    let summary = export_easyr1(&root, &out, false).unwrap();
    assert_eq!(summary.rows, [(Split::Train, 6)]);
    assert_eq!(check_split(&root, &out, Split::Train, 1), 6);
    assert!(!out.join("val.parquet").exists() && !out.join("test.parquet").exists());
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("val_files: <this folder>/train.parquet"), "{readme}");

    let err = export_easyr1(&root, &out, false).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    let before = std::fs::read(out.join("train.parquet")).unwrap();

    // A literal `<image>` in the text would be read as a second image slot.
    let mut placeholder = samples.clone();
    placeholder[4].messages[0].content.push(ContentPart::Text { text: "see <image>".into() });
    small_dataset(&root, &placeholder);
    match export_easyr1(&root, &out, true) {
        Err(ExportError::Unsupported { id, reason }) => {
            assert_eq!(id, samples[4].id);
            assert!(reason.contains("<image>"), "{reason}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    // EasyR1 reads one user turn per row: a system turn is refused, not dropped.
    let mut system = samples.clone();
    system[0].messages.insert(0, Message::text("system", "be brief"));
    small_dataset(&root, &system);
    let err = export_easyr1(&root, &out, true).unwrap_err();
    assert!(matches!(&err, ExportError::Unsupported { id, .. } if *id == samples[0].id), "{err}");
    assert!(err.to_string().contains("[system, user]"), "{err}");
    // Failed exports left the previous one alone and nothing beside it.
    assert_eq!(std::fs::read(out.join("train.parquet")).unwrap(), before);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);

    small_dataset(&root, &[]);
    let err = export_easyr1(&root, &out, true).unwrap_err();
    assert!(matches!(err, ExportError::Empty(_)), "{err}");
    let err = export_easyr1(&tmp.path().join("nowhere"), &out, true).unwrap_err().to_string();
    assert!(err.contains("nowhere") && err.contains("train.jsonl"), "{err}");
}
