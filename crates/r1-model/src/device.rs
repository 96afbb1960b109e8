//! Device selection: the one place where a backend is chosen. The model code itself never names
//! a backend; the `Device` decides (flex on CPU, cuda, wgpu).

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::error::ModelError;

/// The backends r1 can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend (the default; what CI tests).
    #[default]
    Flex,
    /// NVIDIA GPU 0; needs the crate feature `cuda`.
    Cuda,
    /// The default wgpu adapter (Vulkan, Metal, or Mesa lavapipe on a CPU).
    Wgpu,
}

impl DeviceKind {
    /// The names accepted by [`FromStr`], for help texts.
    pub const NAMES: [&'static str; 3] = ["flex", "cuda", "wgpu"];

    /// The burn device for this kind. Fails for `cuda` when the crate was built without the
    /// `cuda` feature, rather than silently falling back to another backend.
    pub fn device(self) -> Result<Device, ModelError> {
        match self {
            Self::Flex => Ok(Device::flex()),
            Self::Wgpu => Ok(Device::wgpu(Default::default())),
            Self::Cuda => cuda_device(),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device, ModelError> {
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device, ModelError> {
    Err(ModelError::Device {
        name: "cuda".into(),
        message: "this build has no CUDA backend; rebuild with `--features cuda`".into(),
    })
}

impl FromStr for DeviceKind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "flex" | "cpu" => Ok(Self::Flex),
            "cuda" => Ok(Self::Cuda),
            "wgpu" => Ok(Self::Wgpu),
            other => Err(ModelError::Device {
                name: other.to_string(),
                message: format!("unknown device, expected one of {}", Self::NAMES.join(", ")),
            }),
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flex => "flex",
            Self::Cuda => "cuda",
            Self::Wgpu => "wgpu",
        })
    }
}

/// Parses a device name (`flex`, `cuda`, `wgpu`) straight to a burn device.
pub fn parse_device(name: &str) -> Result<Device, ModelError> {
    name.parse::<DeviceKind>()?.device()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in DeviceKind::NAMES {
            let kind: DeviceKind = name.parse().unwrap();
            assert_eq!(kind.to_string(), name);
        }
        assert_eq!("FLEX".parse::<DeviceKind>().unwrap(), DeviceKind::Flex);
    }

    #[test]
    fn unknown_device_is_an_error_naming_it() {
        let err = "tpu".parse::<DeviceKind>().unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("flex"), "{err}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = DeviceKind::Cuda.device().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
