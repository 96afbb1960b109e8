//! Device selection: the one place where a backend is chosen. The model code itself never names
//! a backend; the `Device` decides (flex on CPU, cuda, wgpu).

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use clap::ValueEnum;

use crate::error::ModelError;

/// The backends r1 can run on. Read from the command line (clap), configs (serde) and plain
/// text ([`FromStr`]) alike: case-insensitive, `cpu` standing for `flex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase", try_from = "String")]
#[value(rename_all = "lowercase")]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend (the default; what CI tests).
    #[default]
    #[value(alias = "cpu")]
    Flex,
    /// NVIDIA GPU 0; needs the crate feature `cuda`.
    Cuda,
    /// The default wgpu adapter (Vulkan, Metal, or Mesa lavapipe on a CPU).
    Wgpu,
}

impl DeviceKind {
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
        <Self as ValueEnum>::from_str(s.trim(), true).map_err(|_| ModelError::Device {
            name: s.trim().to_string(),
            message: format!("unknown device (expected {})", r1_data::names::expected::<Self>()),
        })
    }
}

impl TryFrom<String> for DeviceKind {
    type Error = ModelError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        r1_data::names::fmt_name(self, f)
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
        for (kind, name) in [(DeviceKind::Flex, "flex"), (DeviceKind::Cuda, "cuda"), (DeviceKind::Wgpu, "wgpu")] {
            assert_eq!(name.parse::<DeviceKind>().unwrap(), kind);
            assert_eq!(kind.to_string(), name);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<DeviceKind>(&format!("\"{name}\"")).unwrap(), kind);
        }
        for alias in ["FLEX", " cpu ", "Cpu"] {
            assert_eq!(alias.parse::<DeviceKind>().unwrap(), DeviceKind::Flex);
            assert_eq!(serde_json::from_str::<DeviceKind>(&format!("\"{alias}\"")).unwrap(), DeviceKind::Flex);
        }
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
