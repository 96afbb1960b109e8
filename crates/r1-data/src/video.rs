//! Frames of video files (LeRobot `video` camera features), decoded by FFmpeg.
//!
//! # Why FFmpeg's programs, not a binding to its libraries
//! r1 runs Debian's `ffmpeg` and `ffprobe` as child processes (`std::process`) and reads raw
//! RGB frames from a pipe. The alternative, `ffmpeg-next` over `libavcodec`/`libavformat`/
//! `libswscale`, would make every build of the workspace need FFmpeg's development headers
//! of a matching version (Debian 12 ships 5.1) plus libclang for bindgen, although only video
//! import uses them: a fresh machine would no longer build with cargo alone. With the
//! programs, the build stays pure Rust and only importing a video dataset needs FFmpeg
//! installed, which the error says when it is missing. The cost is one process per decoding
//! run (tens of milliseconds), so frames are decoded in batches: one run per video file and
//! episode, not one per frame ([`decode`]). Decoding itself is FFmpeg's: AV1 through dav1d,
//! H.264, HEVC, whatever the installed build supports.
//!
//! # Seeking
//! A frame is addressed by its presentation time in the file, in seconds (LeRobot v3.0: the
//! episode's `from_timestamp` plus the frame's `timestamp`; v2.1: the frame's `timestamp`).
//! One run seeks to just before the earliest requested time (`-ss`, which decodes from the
//! preceding keyframe and drops what comes before), keeps the file's own timestamps
//! (`-copyts`), and selects the frames whose time lies within half a frame period
//! (`0.5 / fps`) of a requested one (`select` filter over time ranges, one range per run of
//! consecutive requested frames; frames passed through unduplicated). That window is wide
//! enough for the float32 timestamps LeRobot stores and narrow enough that a missing frame
//! cannot be replaced by its neighbour: a run that yields fewer frames than requested is an
//! error. Like LeRobot's own encoder, this assumes one frame per period (constant frame rate). Frames are scaled to the dataset's declared size (a no-op when
//! the stream already has it) and converted to 8-bit RGB by FFmpeg's swscale, as LeRobot's
//! own decoders (PyAV, torchcodec) do.
//!
//! Requires FFmpeg 5.1 or newer (`-fps_mode`).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use serde_json::Value as Json;

use crate::error::{DataError, Result};

const FFMPEG: &str = "ffmpeg";
const FFPROBE: &str = "ffprobe";
/// Time ranges one run selects at most: FFmpeg's expression parser refuses a sum of about 90
/// terms, so sparse requests (every 10th frame of a long episode) take several runs.
const MAX_RANGES_PER_RUN: usize = 64;
/// Lines of FFmpeg's error output quoted in an error, and characters kept of each.
const STDERR_LINES: usize = 4;
const STDERR_LINE_CHARS: usize = 200;

/// One video stream as a dataset declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct Video {
    pub path: PathBuf,
    /// The stream's codec as `ffprobe` names it (`av1`, `h264`, ...).
    pub codec: String,
    /// The declared frame size; frames are returned at this size.
    pub width: u32,
    pub height: u32,
    /// Frames per second (the dataset's `fps`): sets the selection window.
    pub fps: f64,
}

/// One frame of a video, by presentation time in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoFrame {
    pub video: Arc<Video>,
    pub timestamp: f64,
}

impl VideoFrame {
    /// Decodes this frame alone (one FFmpeg run; use [`decode`] for many frames of a file).
    pub fn decode(&self) -> Result<image::RgbImage> {
        let mut frame = None;
        decode(&self.video, &[self.timestamp], |_, image| {
            frame = Some(image);
            Ok(())
        })?;
        frame.ok_or_else(|| self.video.error("FFmpeg returned no frame"))
    }
}

impl Video {
    /// Checks that `path` holds a video stream FFmpeg can decode and describes it with the
    /// declared size and frame rate. Fails when FFmpeg is missing, the file is not a readable
    /// video, or no decoder for its codec is installed; the error names the file and codec.
    pub fn open(path: &Path, width: u32, height: u32, fps: f64) -> Result<Self> {
        open_with(FFPROBE, FFMPEG, path, width, height, fps)
    }

    fn error(&self, message: impl Into<String>) -> DataError {
        DataError::Video { path: self.path.clone(), codec: Some(self.codec.clone()), message: message.into() }
    }
}

fn open_with(ffprobe: &str, ffmpeg: &str, path: &Path, width: u32, height: u32, fps: f64) -> Result<Video> {
    if !(fps.is_finite() && fps > 0.0) || width == 0 || height == 0 {
        return Err(DataError::invalid(path, format!("invalid video size {width}x{height} or fps {fps}")));
    }
    let output = run(
        Command::new(ffprobe)
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name"])
            .args(["-of".as_ref(), "json".as_ref(), path.as_os_str()]),
        ffprobe,
        path,
    )?;
    let unreadable = |message: String| DataError::Video { path: path.to_path_buf(), codec: None, message };
    if !output.status.success() {
        return Err(unreadable(format!("not a readable video file: {}", stderr_tail(&output.stderr))));
    }
    let json: Json =
        serde_json::from_slice(&output.stdout).map_err(|e| unreadable(format!("unexpected ffprobe output: {e}")))?;
    let codec = json["streams"][0]["codec_name"]
        .as_str()
        .ok_or_else(|| unreadable("the file holds no video stream".into()))?
        .to_owned();
    if !decoders(ffmpeg, path)?.contains(&codec) {
        return Err(DataError::Video {
            path: path.to_path_buf(),
            codec: Some(codec),
            message: "the installed FFmpeg has no decoder for this codec (see `ffmpeg -decoders`; Debian's \
                      ffmpeg package decodes AV1, H.264 and HEVC)"
                .into(),
        });
    }
    Ok(Video { path: path.to_path_buf(), codec, width, height, fps })
}

/// Runs a command to completion, turning a missing program into [`DataError::FfmpegMissing`].
fn run(command: &mut Command, program: &str, path: &Path) -> Result<std::process::Output> {
    command.stdin(Stdio::null()).output().map_err(|e| spawn_error(e, program, path))
}

fn spawn_error(e: std::io::Error, program: &str, path: &Path) -> DataError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DataError::FfmpegMissing { program: program.to_owned(), path: path.to_path_buf() }
    } else {
        DataError::io(program, e)
    }
}

/// The codecs the installed FFmpeg can decode, asked once per process.
fn decoders(ffmpeg: &str, path: &Path) -> Result<&'static BTreeSet<String>> {
    static DECODERS: OnceLock<BTreeSet<String>> = OnceLock::new();
    if let Some(known) = DECODERS.get() {
        return Ok(known);
    }
    let output = run(Command::new(ffmpeg).args(["-hide_banner", "-decoders"]), ffmpeg, path)?;
    if !output.status.success() {
        return Err(DataError::Video {
            path: path.to_path_buf(),
            codec: None,
            message: format!("`{ffmpeg} -decoders` failed: {}", stderr_tail(&output.stderr)),
        });
    }
    Ok(DECODERS.get_or_init(|| parse_decoders(&String::from_utf8_lossy(&output.stdout))))
}

/// The codec names of the video decoders in `ffmpeg -decoders` output: lines
/// ` V....D name  description`, where a description ending in `(codec X)` names the codec of
/// a decoder whose name differs from it (`libdav1d ... (codec av1)`).
fn parse_decoders(text: &str) -> BTreeSet<String> {
    let list = text.split_once("------").map_or("", |(_, rest)| rest);
    list.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (flags, name) = (fields.next()?, fields.next()?);
            if !flags.starts_with('V') {
                return None;
            }
            let codec = line
                .trim_end()
                .strip_suffix(')')
                .and_then(|l| l.rsplit_once("(codec "))
                .map_or(name, |(_, codec)| codec);
            Some(codec.to_owned())
        })
        .collect()
}

/// Decodes the frames of `video` at `timestamps` (seconds, any order, repeats allowed) and
/// hands each to `each` with its index in `timestamps`, in time order, as RGB at the
/// declared size. Only one frame is held at a time. See the module docs for how frames are
/// found; a frame that is not in the file is an error naming the file and codec.
pub fn decode(
    video: &Video,
    timestamps: &[f64],
    mut each: impl FnMut(usize, image::RgbImage) -> Result<()>,
) -> Result<()> {
    decode_with(FFMPEG, video, timestamps, &mut each)
}

fn decode_with(
    ffmpeg: &str,
    video: &Video,
    timestamps: &[f64],
    each: &mut dyn FnMut(usize, image::RgbImage) -> Result<()>,
) -> Result<()> {
    if let Some(t) = timestamps.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
        return Err(video.error(format!("invalid frame timestamp {t}")));
    }
    let half = 0.5 / video.fps;
    let mut order: Vec<usize> = (0..timestamps.len()).collect();
    order.sort_by(|&a, &b| timestamps[a].total_cmp(&timestamps[b]));
    // Requests less than half a period apart ask for the same frame.
    let mut frames: Vec<(f64, Vec<usize>)> = Vec::new();
    for i in order {
        match frames.last_mut() {
            Some((t, requests)) if timestamps[i] - *t < half => requests.push(i),
            _ => frames.push((timestamps[i], vec![i])),
        }
    }
    let mut start = 0;
    let mut ranges = 0;
    for i in 0..frames.len() {
        if starts_range(&frames, i, half) {
            if ranges == MAX_RANGES_PER_RUN {
                decode_run(ffmpeg, video, &frames[start..i], half, each)?;
                (start, ranges) = (i, 0);
            }
            ranges += 1;
        }
    }
    decode_run(ffmpeg, video, &frames[start..], half, each)
}

/// True when `frames[i]` (sorted by time) is not the frame right after `frames[i - 1]`.
fn starts_range(frames: &[(f64, Vec<usize>)], i: usize, half: f64) -> bool {
    i == 0 || frames[i].0 - frames[i - 1].0 > 3.0 * half
}

/// One FFmpeg run over `frames` (sorted by time, each with the requests it answers).
fn decode_run(
    ffmpeg: &str,
    video: &Video,
    frames: &[(f64, Vec<usize>)],
    half: f64,
    each: &mut dyn FnMut(usize, image::RgbImage) -> Result<()>,
) -> Result<()> {
    let (Some((first, _)), Some((last, _))) = (frames.first(), frames.last()) else {
        return Ok(());
    };
    let mut ranges: Vec<(f64, f64)> = Vec::new();
    for (i, (t, _)) in frames.iter().enumerate() {
        match ranges.last_mut() {
            Some((_, end)) if !starts_range(frames, i, half) => *end = *t,
            _ => ranges.push((*t, *t)),
        }
    }
    let select: Vec<String> =
        ranges.iter().map(|(a, b)| format!("between(t,{:.6},{:.6})", a - half, b + half)).collect();
    let filter = format!("select='{}',scale={}:{},format=rgb24", select.join("+"), video.width, video.height);
    let mut child = Command::new(ffmpeg)
        .args(["-nostdin", "-v", "error", "-ss", &format!("{:.6}", (first - half).max(0.0)), "-copyts", "-i"])
        .arg(&video.path)
        .args(["-map", "0:v:0", "-an", "-sn", "-dn", "-vf", &filter, "-fps_mode", "passthrough"])
        .args(["-frames:v", &frames.len().to_string(), "-f", "rawvideo", "pipe:1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(e, ffmpeg, &video.path))?;
    let stderr = child.stderr.take().map(|mut pipe| {
        // Drained on its own thread so that a chatty FFmpeg cannot block on a full pipe.
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            text
        })
    });
    let result = read_frames(&mut child, video, frames, each);
    if result.is_err() {
        // Best effort: the process may have exited already.
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| DataError::io(ffmpeg, e))?;
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let decoded = result?;
    if decoded < frames.len() || !status.success() {
        return Err(video.error(format!(
            "decoded {decoded} of the {} frames requested between {first:.3} s and {last:.3} s{}",
            frames.len(),
            match stderr_tail(&stderr) {
                s if s.is_empty() => String::from(" (the file ends early or lacks those times)"),
                s => format!(": {s}"),
            }
        )));
    }
    Ok(())
}

/// Reads frames from the run's output until it ends; returns how many were read.
fn read_frames(
    child: &mut Child,
    video: &Video,
    frames: &[(f64, Vec<usize>)],
    each: &mut dyn FnMut(usize, image::RgbImage) -> Result<()>,
) -> Result<usize> {
    let Some(mut out) = child.stdout.take() else {
        return Ok(0);
    };
    let size = video.width as usize * video.height as usize * 3;
    for (n, (_, requests)) in frames.iter().enumerate() {
        let mut buffer = vec![0u8; size];
        match out.read_exact(&mut buffer) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(n),
            Err(e) => return Err(DataError::io(&video.path, e)),
        }
        let image = image::RgbImage::from_raw(video.width, video.height, buffer)
            .ok_or_else(|| video.error("frame buffer of the wrong size"))?;
        if let Some((&last, rest)) = requests.split_last() {
            for &i in rest {
                each(i, image.clone())?;
            }
            each(last, image)?;
        }
    }
    Ok(frames.len())
}

/// The last few lines of a program's error output, on one line.
fn stderr_tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.char_indices().nth(STDERR_LINE_CHARS) {
            Some((cut, _)) => format!("{}...", &l[..cut]),
            None => l.to_owned(),
        })
        .collect();
    lines[lines.len().saturating_sub(STDERR_LINES)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(codec: &str) -> Video {
        Video { path: "clip.mp4".into(), codec: codec.into(), width: 4, height: 2, fps: 10.0 }
    }

    #[test]
    fn decoder_list_names_codecs() {
        let text = "Decoders:\n V..... = Video\n ------\n V....D libdav1d             dav1d AV1 decoder by \
                    VideoLAN (codec av1)\n VFS..D h264                 H.264 / AVC / MPEG-4 AVC\n A....D aac  \
                    AAC (Advanced Audio Coding)\n";
        assert_eq!(parse_decoders(text), BTreeSet::from(["av1".to_string(), "h264".to_string()]));
    }

    #[test]
    fn missing_programs_say_what_to_install() {
        let path = Path::new("clip.mp4");
        let error = open_with("r1-no-such-ffprobe", "ffmpeg", path, 4, 2, 10.0).unwrap_err();
        assert!(matches!(error, DataError::FfmpegMissing { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains("clip.mp4") && text.contains("apt-get install ffmpeg"), "{text}");
        let error = decode_with("r1-no-such-ffmpeg", &video("av1"), &[0.0], &mut |_, _| Ok(())).unwrap_err();
        assert!(matches!(error, DataError::FfmpegMissing { ref program, .. } if program == "r1-no-such-ffmpeg"));
    }

    #[test]
    fn bad_timestamps_are_errors_naming_file_and_codec() {
        let error = decode_with("ffmpeg", &video("h264"), &[0.1, f64::NAN], &mut |_, _| Ok(())).unwrap_err();
        assert_eq!(error.to_string(), "clip.mp4: cannot decode the video (codec h264): invalid frame timestamp NaN");
        assert!(open_with("ffprobe", "ffmpeg", Path::new("clip.mp4"), 0, 2, 10.0).is_err());
    }

    #[test]
    fn stderr_tail_keeps_the_last_lines() {
        assert_eq!(stderr_tail(b"a\n\nb\nc\nd\ne\n"), "b | c | d | e");
        assert_eq!(stderr_tail(b""), "");
        let long = "x".repeat(500);
        assert_eq!(stderr_tail(long.as_bytes()), format!("{}...", &long[..STDERR_LINE_CHARS]));
    }
}
