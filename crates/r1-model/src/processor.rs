//! The Qwen2.5-VL image processor: smart resize, rescale, normalise, patchify.
//!
//! Reproduces transformers' `Qwen2VLImageProcessor`: an RGB image of `h x w` pixels becomes
//! `pixel_values [gh * gw, C * T * P * P]` (1176 values per patch for `C = 3`, `T = 2`,
//! `P = 14`) with `grid_thw = (1, gh, gw)`, `gh = H / P`, `gw = W / P` for the resized `H x W`.
//! Patches are ordered merge unit by merge unit (row-major over the `gh/m x gw/m` merged grid,
//! then row-major inside each `m x m` unit); the values of one patch are ordered
//! `[channel][time][row][col]`, a still image being repeated `T` times in time.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use image::imageops::FilterType;
use serde_json::{Map, Value, json};

use crate::error::ModelError;
use crate::vision::ImageInput;

/// transformers' defaults (`Qwen2VLImageProcessor`), used for fields a config leaves out.
const DEFAULT_MIN_PIXELS: usize = 56 * 56;
const DEFAULT_MAX_PIXELS: usize = 28 * 28 * 1280;
/// OpenAI CLIP mean and std, the defaults of the processor.
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];
/// Images with a longer-to-shorter side ratio above this are rejected (as transformers does).
const MAX_ASPECT_RATIO: f64 = 200.0;

/// The settings of `preprocessor_config.json` (or the `image_processor` part of
/// `processor_config.json`) that change the pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessorConfig {
    /// Lower bound on the resized area (`min_pixels`, alias `size.shortest_edge`).
    pub min_pixels: usize,
    /// Upper bound on the resized area (`max_pixels`, alias `size.longest_edge`).
    pub max_pixels: usize,
    /// Side of a patch in pixels.
    pub patch_size: usize,
    /// Frames per temporal patch (a still image is repeated this many times).
    pub temporal_patch_size: usize,
    /// Side of a merge unit in patches.
    pub merge_size: usize,
    /// Per-channel mean subtracted after rescaling.
    pub image_mean: [f32; 3],
    /// Per-channel std divided by after subtracting the mean.
    pub image_std: [f32; 3],
    /// Multiplier from `u8` to the unit range (1/255).
    pub rescale_factor: f32,
    /// Whether to resize with smart_resize (otherwise the image must already fit the grid).
    pub do_resize: bool,
    /// Whether to apply `rescale_factor`.
    pub do_rescale: bool,
    /// Whether to apply mean and std.
    pub do_normalize: bool,
}

impl Default for ImageProcessorConfig {
    fn default() -> Self {
        Self {
            min_pixels: DEFAULT_MIN_PIXELS,
            max_pixels: DEFAULT_MAX_PIXELS,
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
            rescale_factor: 1.0 / 255.0,
            do_resize: true,
            do_rescale: true,
            do_normalize: true,
        }
    }
}

impl ImageProcessorConfig {
    /// Reads the processor settings of a checkpoint directory: `preprocessor_config.json`
    /// if present, else `processor_config.json` (whose settings may sit under
    /// `image_processor`), else transformers' defaults.
    pub fn from_dir(dir: &Path) -> Result<Self, ModelError> {
        for name in ["preprocessor_config.json", "processor_config.json"] {
            let path = dir.join(name);
            if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
                return Self::parse(&text, &path);
            }
        }
        Ok(Self::default())
    }

    /// Parses the JSON text of either file; `path` is only used in error messages.
    ///
    /// Pixel bounds: top-level `min_pixels` / `max_pixels` take precedence over
    /// `size.shortest_edge` / `size.longest_edge`, as in transformers' constructor.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ModelError> {
        let value: Value =
            serde_json::from_str(text).map_err(|source| ModelError::Json { path: path.to_path_buf(), source })?;
        let err = |message: String| ModelError::Config { path: path.to_path_buf(), message };
        let top = value.as_object().ok_or_else(|| err("expected a JSON object".into()))?;
        let fields = match top.get("image_processor") {
            Some(Value::Object(inner)) => inner,
            _ => top,
        };
        let d = Self::default();
        let uint = |key: &str, default: usize| -> Result<usize, ModelError> {
            match fields.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| err(format!("`{key}` must be a non-negative integer, found {v}"))),
            }
        };
        let size = fields.get("size").and_then(Value::as_object);
        let size_field = |key: &str, default: usize| -> Result<usize, ModelError> {
            match size.and_then(|s| s.get(key)) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| err(format!("`size.{key}` must be a non-negative integer, found {v}"))),
            }
        };
        let config = Self {
            min_pixels: uint("min_pixels", size_field("shortest_edge", d.min_pixels)?)?,
            max_pixels: uint("max_pixels", size_field("longest_edge", d.max_pixels)?)?,
            patch_size: uint("patch_size", d.patch_size)?,
            temporal_patch_size: uint("temporal_patch_size", d.temporal_patch_size)?,
            merge_size: uint("merge_size", d.merge_size)?,
            image_mean: triple(fields, "image_mean", d.image_mean).map_err(err)?,
            image_std: triple(fields, "image_std", d.image_std).map_err(err)?,
            rescale_factor: match fields.get("rescale_factor") {
                None | Some(Value::Null) => d.rescale_factor,
                Some(v) => {
                    v.as_f64().ok_or_else(|| err(format!("`rescale_factor` must be a number, found {v}")))? as f32
                }
            },
            do_resize: flag(fields, "do_resize", true).map_err(err)?,
            do_rescale: flag(fields, "do_rescale", true).map_err(err)?,
            do_normalize: flag(fields, "do_normalize", true).map_err(err)?,
        };
        config.validate().map_err(err)?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.patch_size == 0 || self.merge_size == 0 || self.temporal_patch_size == 0 {
            return Err("patch_size, merge_size and temporal_patch_size must be positive".into());
        }
        if self.min_pixels > self.max_pixels {
            return Err(format!("min_pixels {} exceeds max_pixels {}", self.min_pixels, self.max_pixels));
        }
        if self.image_std.contains(&0.0) {
            return Err("image_std must not contain 0".into());
        }
        Ok(())
    }

    /// Resize granularity: sides are multiples of `patch_size * merge_size` (28).
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// Values per flattened patch, `3 * T * P * P`.
    pub fn patch_dim(&self) -> usize {
        3 * self.temporal_patch_size * self.patch_size * self.patch_size
    }

    /// `preprocessor_config.json` in the layout transformers 4.x and 5.x both read (pixel
    /// bounds under both names).
    pub fn to_hf_json(&self) -> Value {
        json!({
            "image_processor_type": "Qwen2VLImageProcessor",
            "processor_class": "Qwen2_5_VLProcessor",
            "do_resize": self.do_resize,
            "do_rescale": self.do_rescale,
            "do_normalize": self.do_normalize,
            "do_convert_rgb": true,
            "resample": 3,
            "rescale_factor": self.rescale_factor,
            "image_mean": self.image_mean,
            "image_std": self.image_std,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "size": {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels},
            "patch_size": self.patch_size,
            "temporal_patch_size": self.temporal_patch_size,
            "merge_size": self.merge_size,
        })
    }
}

fn triple(fields: &Map<String, Value>, key: &str, default: [f32; 3]) -> Result<[f32; 3], String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Array(items)) if items.len() == 3 => {
            let mut out = [0.0; 3];
            for (o, item) in out.iter_mut().zip(items) {
                *o = item.as_f64().ok_or_else(|| format!("`{key}` must hold numbers, found {item}"))? as f32;
            }
            Ok(out)
        }
        Some(other) => Err(format!("`{key}` must be an array of 3 numbers, found {other}")),
    }
}

fn flag(fields: &Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| format!("`{key}` must be true or false, found {v}")),
    }
}

/// The size an `height x width` image is resized to: both sides multiples of `factor`, the
/// area within `[min_pixels, max_pixels]`, the aspect ratio kept as closely as possible.
///
/// Sides are first rounded to the nearest multiple (ties to even, as Python's `round`); if
/// the area then exceeds `max_pixels`, both sides are divided by `β = sqrt(h·w / max_pixels)`
/// and floored to multiples (at least `factor`); if it is below `min_pixels`, multiplied by
/// `β = sqrt(min_pixels / (h·w))` and ceiled. Sides below `factor` and aspect ratios above
/// 200 are rejected.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize), ModelError> {
    let reject = |reason: String| ModelError::ImageSize { height, width, reason };
    if height < factor || width < factor {
        return Err(reject(format!("both sides must be at least {factor} pixels")));
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let ratio = h.max(w) / h.min(w);
    if ratio > MAX_ASPECT_RATIO {
        return Err(reject(format!("aspect ratio {ratio:.1} exceeds {MAX_ASPECT_RATIO}")));
    }
    let mut h_bar = (h / f).round_ties_even() as usize * factor;
    let mut w_bar = (w / f).round_ties_even() as usize * factor;
    if h_bar * w_bar > max_pixels {
        let beta = (h * w / max_pixels as f64).sqrt();
        h_bar = factor.max((h / beta / f).floor() as usize * factor);
        w_bar = factor.max((w / beta / f).floor() as usize * factor);
    } else if h_bar * w_bar < min_pixels {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() as usize * factor;
        w_bar = (w * beta / f).ceil() as usize * factor;
    }
    Ok((h_bar, w_bar))
}

/// One processed image: its patches and grid.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedImage {
    /// `[gt * gh * gw, patch_dim]` row-major.
    pub pixel_values: Vec<f32>,
    /// `(gt, gh, gw)` in patches.
    pub grid_thw: [usize; 3],
}

impl ProcessedImage {
    /// Number of `<|image_pad|>` tokens this image takes in a prompt: `gt * gh * gw / m²`.
    pub fn num_tokens(&self, merge_size: usize) -> usize {
        let [t, h, w] = self.grid_thw;
        t * h * w / (merge_size * merge_size)
    }
}

/// The image processor of a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct ImageProcessor {
    /// Its settings.
    pub config: ImageProcessorConfig,
}

impl ImageProcessor {
    /// A processor with the given settings.
    pub fn new(config: ImageProcessorConfig) -> Self {
        Self { config }
    }

    /// Opens an image file (PNG or JPEG), converts it to RGB and processes it; errors name the
    /// file.
    pub fn process_file(&self, path: &Path) -> Result<ProcessedImage, ModelError> {
        let image = image::open(path)
            .map_err(|e| ModelError::Image { path: path.to_path_buf(), message: e.to_string() })?
            .to_rgb8();
        self.process(&image).map_err(|e| ModelError::Image { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Decodes an image held in memory (PNG or JPEG, told apart by its bytes), converts it to
    /// RGB and processes it; errors name it by `name` (say, where in a request it came from).
    pub fn process_encoded(&self, bytes: &[u8], name: &str) -> Result<ProcessedImage, ModelError> {
        let error = |message: String| ModelError::Image { path: name.into(), message };
        let image = image::load_from_memory(bytes).map_err(|e| error(e.to_string()))?.to_rgb8();
        self.process(&image).map_err(|e| error(e.to_string()))
    }

    /// Resizes (bicubic), rescales, normalises and patchifies one RGB image.
    pub fn process(&self, image: &RgbImage) -> Result<ProcessedImage, ModelError> {
        let c = &self.config;
        let (width, height) = (image.width() as usize, image.height() as usize);
        let (h, w) = if c.do_resize {
            smart_resize(height, width, c.factor(), c.min_pixels, c.max_pixels)?
        } else if height % c.factor() == 0 && width % c.factor() == 0 {
            (height, width)
        } else {
            return Err(ModelError::ImageSize {
                height,
                width,
                reason: format!("do_resize is off and the sides are not multiples of {}", c.factor()),
            });
        };
        let resized;
        let image = if (h, w) == (height, width) {
            image
        } else {
            resized = image::imageops::resize(image, w as u32, h as u32, FilterType::CatmullRom);
            &resized
        };
        Ok(self.patchify(&self.normalise(image), h, w))
    }

    /// `u8` RGB pixels -> channel-first floats `[3, h, w]`, `(x · rescale - mean) / std`.
    fn normalise(&self, image: &RgbImage) -> Vec<f32> {
        let c = &self.config;
        let (w, h) = (image.width() as usize, image.height() as usize);
        let scale = if c.do_rescale { c.rescale_factor } else { 1.0 };
        let mut out = vec![0.0f32; 3 * h * w];
        for (x, y, pixel) in image.enumerate_pixels() {
            for ch in 0..3 {
                let mut v = f32::from(pixel.0[ch]) * scale;
                if c.do_normalize {
                    v = (v - c.image_mean[ch]) / c.image_std[ch];
                }
                out[(ch * h + y as usize) * w + x as usize] = v;
            }
        }
        out
    }

    /// Channel-first `[3, h, w]` -> patches `[gh * gw, 3 * T * P * P]` in merge-unit order.
    fn patchify(&self, chw: &[f32], h: usize, w: usize) -> ProcessedImage {
        let c = &self.config;
        let (p, m, t) = (c.patch_size, c.merge_size, c.temporal_patch_size);
        let (gh, gw) = (h / p, w / p);
        let dim = c.patch_dim();
        let mut out = Vec::with_capacity(gh * gw * dim);
        for bh in 0..gh / m {
            for bw in 0..gw / m {
                for mh in 0..m {
                    for mw in 0..m {
                        let (py, px) = ((bh * m + mh) * p, (bw * m + mw) * p);
                        for ch in 0..3 {
                            for _ in 0..t {
                                for dy in 0..p {
                                    let row = (ch * h + py + dy) * w + px;
                                    out.extend_from_slice(&chw[row..row + p]);
                                }
                            }
                        }
                    }
                }
            }
        }
        ProcessedImage { pixel_values: out, grid_thw: [1, gh, gw] }
    }

    /// Stacks processed images (in prompt order) into the model's input on `device`.
    pub fn to_input(&self, images: &[ProcessedImage], device: &Device) -> ImageInput {
        let dim = self.config.patch_dim();
        let values: Vec<f32> = images.iter().flat_map(|i| i.pixel_values.iter().copied()).collect();
        let rows = values.len() / dim;
        ImageInput {
            pixel_values: Tensor::from_data(TensorData::new(values, [rows, dim]), device),
            grid_thw: images.iter().map(|i| i.grid_thw).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Sides are positive multiples of the factor, and the area respects the bounds
        /// whenever the bounds leave room for at least one factor x factor cell.
        #[test]
        fn smart_resize_meets_its_contract(h in 28usize..4000, w in 28usize..4000) {
            prop_assume!(h.max(w) as f64 / h.min(w) as f64 <= 200.0);
            let (min_p, max_p) = (56 * 56, 28 * 28 * 64);
            let (rh, rw) = smart_resize(h, w, 28, min_p, max_p).unwrap();
            prop_assert!(rh >= 28 && rw >= 28 && rh % 28 == 0 && rw % 28 == 0);
            prop_assert!(rh * rw >= min_p, "{}x{} -> {}x{}", h, w, rh, rw);
            // Flooring to at least one cell may exceed the bound only for extreme aspects.
            if h.min(w) * 64 >= h.max(w) {
                prop_assert!(rh * rw <= max_p, "{}x{} -> {}x{}", h, w, rh, rw);
            }
        }

        /// An image already on the grid and within the bounds is kept as is.
        #[test]
        fn smart_resize_keeps_grid_sizes(a in 2usize..12, b in 2usize..12) {
            let (h, w) = (a * 28, b * 28);
            prop_assert_eq!(smart_resize(h, w, 28, 56 * 56, 28 * 28 * 200).unwrap(), (h, w));
        }

        /// Patchify is a permutation of the normalised pixels (each repeated T times).
        #[test]
        fn patchify_permutes_pixels(a in 1usize..4, b in 1usize..4) {
            let processor = ImageProcessor::default();
            let (h, w) = (a * 28, b * 28);
            let chw: Vec<f32> = (0..3 * h * w).map(|i| i as f32).collect();
            let out = processor.patchify(&chw, h, w);
            prop_assert_eq!(out.grid_thw, [1, h / 14, w / 14]);
            let mut values = out.pixel_values.clone();
            values.sort_by(f32::total_cmp);
            let mut expected: Vec<f32> = chw.iter().flat_map(|&v| [v, v]).collect();
            expected.sort_by(f32::total_cmp);
            prop_assert_eq!(values, expected);
        }
    }

    #[test]
    fn rejects_small_and_thin_images() {
        assert!(smart_resize(27, 100, 28, 3136, 1 << 20).unwrap_err().to_string().contains("at least 28"));
        assert!(smart_resize(28, 28 * 201, 28, 3136, 1 << 30).unwrap_err().to_string().contains("aspect ratio"));
    }

    #[test]
    fn rounding_ties_go_to_even_like_python() {
        // 42 / 28 = 1.5 -> 2, 70 / 28 = 2.5 -> 2 (Python's round); min_pixels 0 keeps them.
        assert_eq!(smart_resize(42, 70, 28, 0, 1 << 20).unwrap(), (56, 56));
    }

    /// Patch 0 of a 28x28 image is the top-left 14x14 block; patch 1 the top-right one (same
    /// merge unit, next column); values inside a patch run channel, time, row, column.
    #[test]
    fn patch_layout_matches_the_reference_order() {
        let processor = ImageProcessor::default();
        let (h, w) = (28, 28);
        let chw: Vec<f32> = (0..3 * h * w).map(|i| i as f32).collect();
        let out = processor.patchify(&chw, h, w);
        let at = |patch: usize, ch: usize, t: usize, y: usize, x: usize| {
            out.pixel_values[patch * 1176 + ((ch * 2 + t) * 14 + y) * 14 + x]
        };
        let pixel = |ch: usize, y: usize, x: usize| chw[(ch * h + y) * w + x];
        assert_eq!(at(0, 0, 0, 0, 0), pixel(0, 0, 0));
        assert_eq!(at(1, 0, 0, 0, 0), pixel(0, 0, 14));
        assert_eq!(at(2, 2, 1, 3, 5), pixel(2, 17, 5));
        assert_eq!(at(3, 1, 0, 13, 13), pixel(1, 27, 27));
    }

    #[test]
    fn normalises_with_clip_statistics() {
        // The default lower bound (56x56) would upscale the image; the 28x28 grid is kept.
        let mut processor = ImageProcessor::default();
        processor.config.min_pixels = 28 * 28;
        let image = RgbImage::from_pixel(28, 28, image::Rgb([255, 0, 128]));
        let out = processor.process(&image).unwrap();
        let expect = |ch: usize, v: f32| (v / 255.0 - CLIP_MEAN[ch]) / CLIP_STD[ch];
        assert!((out.pixel_values[0] - expect(0, 255.0)).abs() < 1e-6);
        assert!((out.pixel_values[2 * 196] - expect(1, 0.0)).abs() < 1e-6);
        assert!((out.pixel_values[4 * 196] - expect(2, 128.0)).abs() < 1e-6);
        assert_eq!(out.num_tokens(2), 1);
    }

    #[test]
    fn encoded_images_are_decoded_from_their_bytes() {
        let processor = ImageProcessor::default();
        let image = RgbImage::from_fn(56, 84, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut png = Vec::new();
        image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        assert_eq!(processor.process_encoded(&png, "upload").unwrap(), processor.process(&image).unwrap());
        let err = processor.process_encoded(b"not an image", "messages[0].content[1]").unwrap_err().to_string();
        assert!(err.starts_with("messages[0].content[1]: "), "{err}");
    }

    #[test]
    fn resize_reaches_the_smart_size() {
        let mut processor = ImageProcessor::default();
        processor.config.min_pixels = 56 * 56;
        let image = RgbImage::from_pixel(30, 90, image::Rgb([10, 20, 30]));
        let out = processor.process(&image).unwrap();
        // 90x30 (h x w) rounds to 84x28, under min_pixels, so it is scaled up.
        let (h, w) = smart_resize(90, 30, 28, 56 * 56, processor.config.max_pixels).unwrap();
        assert_eq!(out.grid_thw, [1, h / 14, w / 14]);
        // A constant image stays constant through bicubic resampling.
        let first = out.pixel_values[0];
        assert!(out.pixel_values.iter().step_by(196).take(2).all(|&v| (v - first).abs() < 1e-6));
    }

    #[test]
    fn parses_both_config_layouts() {
        let flat = r#"{"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "merge_size": 2,
            "temporal_patch_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}"#;
        let c = ImageProcessorConfig::parse(flat, Path::new("<memory>")).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels, c.image_mean), (3136, 12845056, [0.5; 3]));
        let nested = r#"{"image_processor": {"size": {"shortest_edge": 784, "longest_edge": 50176}}}"#;
        let c = ImageProcessorConfig::parse(nested, Path::new("<memory>")).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (784, 50176));
        let round = ImageProcessorConfig::parse(&c.to_hf_json().to_string(), Path::new("<memory>")).unwrap();
        assert_eq!(round, c);
        let bad = ImageProcessorConfig::parse(r#"{"image_std": [1, 0, 1]}"#, Path::new("p.json"));
        assert!(bad.unwrap_err().to_string().contains("p.json"));
    }
}
