//! Devices a tensor can live on, and how a user's choice (`auto`, `cpu`, `gpu`, `reference`)
//! becomes one. Every op runs on the device of its operands; mixing devices is an error that
//! names the op.
//!
//! Three devices, one API: `Reference` runs every op as its definition in `crate::reference`
//! (plain loops, one thread, f64 arithmetic: the oracle, and the place to step through an op in
//! a debugger); `Cpu` runs the fast CPU kernels of `crate::cpu`; `Gpu` the WGSL kernels.
//!
//! The GPU is one process-wide wgpu context, created on first use (a `OnceLock`), so every
//! tensor moved "to the GPU" lands on the same device and ops can combine them. Two
//! `Device::Gpu` values are the same device exactly when they hold the same context.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use gpu::{AdapterInfo, AdapterPreference, Context, GpuError};

use crate::error::{Result, TensorError};

/// Where a tensor's storage lives and its kernels run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// CPU memory, rayon kernels (f32 and f64).
    Cpu,
    /// CPU memory, the reference tier's plain loops: one thread, every value computed in f64
    /// and stored as the tensor's dtype. Slow and obviously right.
    Reference,
    /// A GPU buffer of one wgpu context, WGSL kernels (f32 only).
    Gpu(GpuDevice),
}

/// A handle to a GPU context; equality is identity of the context.
#[derive(Clone)]
pub struct GpuDevice {
    ctx: Arc<Context>,
}

impl GpuDevice {
    /// The wgpu context behind this device.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The adapter this device runs on (name, backend, kind, limits).
    pub fn info(&self) -> &AdapterInfo {
        self.ctx.info()
    }
}

impl PartialEq for GpuDevice {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.ctx, &other.ctx)
    }
}

impl Eq for GpuDevice {}

impl fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuDevice({})", self.ctx.info())
    }
}

/// What the user asked for (`--device auto|cpu|gpu|reference`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DevicePreference {
    /// A hardware GPU (discrete, integrated or virtual) if wgpu finds one with compute
    /// shaders, else the CPU kernels: a software rasteriser such as lavapipe is slower at
    /// compute than the rayon kernels, so `auto` never picks it.
    #[default]
    Auto,
    /// The CPU kernels, even if a GPU is present.
    Cpu,
    /// Any GPU adapter, software ones (lavapipe, WARP) included; none is an error.
    Gpu,
    /// The reference tier (plain loops, one thread): every op by its definition.
    Reference,
}

impl FromStr for DevicePreference {
    type Err = TensorError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(DevicePreference::Auto),
            "cpu" => Ok(DevicePreference::Cpu),
            "gpu" => Ok(DevicePreference::Gpu),
            "reference" => Ok(DevicePreference::Reference),
            _ => Err(TensorError::Invalid {
                op: "device",
                msg: format!("'{s}' is not a device choice (expected auto, cpu, gpu or reference)"),
            }),
        }
    }
}

impl DevicePreference {
    /// The value of a `--device NAME` (or `--device=NAME`) argument of this process, `cpu`
    /// without one: how the examples choose a device without a command-line parser.
    pub fn from_args() -> Result<DevicePreference> {
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if let Some(name) = arg.strip_prefix("--device=") {
                return name.parse();
            }
            if arg == "--device" {
                let missing = || TensorError::Invalid { op: "device", msg: "--device needs a value".into() };
                return args.next().ok_or_else(missing)?.parse();
            }
        }
        Ok(DevicePreference::Cpu)
    }
}

impl fmt::Display for DevicePreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DevicePreference::Auto => "auto",
            DevicePreference::Cpu => "cpu",
            DevicePreference::Gpu => "gpu",
            DevicePreference::Reference => "reference",
        })
    }
}

/// The process-wide context: the best adapter there is (hardware before software). Created
/// once; a failure is remembered too, so every later request reports the same reason.
fn shared_context() -> std::result::Result<Arc<Context>, GpuError> {
    static SHARED: OnceLock<std::result::Result<Arc<Context>, GpuError>> = OnceLock::new();
    SHARED.get_or_init(|| Context::new(AdapterPreference::AnyIncludingSoftware).map(Arc::new)).clone()
}

impl Device {
    /// The shared GPU device (any adapter, software included), or a `Device` error saying
    /// what was looked for and what was found.
    pub fn gpu() -> Result<Device> {
        shared_context().map(Device::from_context).map_err(|e| TensorError::Device {
            op: "Device::gpu",
            msg: format!(
                "a GPU was requested but none can be used: looked for any wgpu adapter \
                 (Vulkan, Metal or DX12; software ones such as lavapipe included) with compute \
                 shaders; {e}"
            ),
        })
    }

    /// Resolves a user's choice: `Cpu` → the CPU; `Gpu` → [`Device::gpu`] (an error when there
    /// is none); `Auto` → the shared GPU if a hardware adapter exists, else the CPU.
    pub fn from_preference(pref: DevicePreference) -> Result<Device> {
        match pref {
            DevicePreference::Cpu => Ok(Device::Cpu),
            DevicePreference::Reference => Ok(Device::Reference),
            DevicePreference::Gpu => Device::gpu(),
            DevicePreference::Auto => {
                // Enumerating is cheap; opening a device on a software adapter only to reject
                // it is not, so look before creating the context.
                let hardware = gpu::available_adapters().iter().any(|a| !a.is_software());
                match shared_context() {
                    Ok(ctx) if hardware && !ctx.is_software() => Ok(Device::from_context(ctx)),
                    _ => Ok(Device::Cpu),
                }
            }
        }
    }

    /// A device over a caller-made context (tests, several GPUs).
    pub fn from_context(ctx: Arc<Context>) -> Device {
        Device::Gpu(GpuDevice { ctx })
    }

    /// Short name for error messages: `cpu`, `reference` or `gpu:<adapter>`.
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
            Device::Reference => "reference".to_string(),
            Device::Gpu(g) => format!("gpu:{}", g.info().name),
        }
    }

    /// One line saying what was chosen, for the user: the adapter, its kind, backend and
    /// driver, or the CPU and its thread count.
    pub fn describe(&self) -> String {
        match self {
            Device::Cpu => format!("cpu (rayon, {} threads)", rayon::current_num_threads()),
            Device::Reference => "reference (plain loops, one thread, f64 arithmetic)".to_string(),
            Device::Gpu(g) => format!("gpu: {}", g.info()),
        }
    }

    /// True for [`Device::Cpu`].
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }

    /// True for [`Device::Gpu`].
    pub fn is_gpu(&self) -> bool {
        matches!(self, Device::Gpu(_))
    }

    /// True for [`Device::Reference`].
    pub fn is_reference(&self) -> bool {
        matches!(self, Device::Reference)
    }

    /// The GPU context of a GPU device.
    pub fn gpu_context(&self) -> Option<&Arc<Context>> {
        match self {
            Device::Cpu | Device::Reference => None,
            Device::Gpu(g) => Some(g.context()),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Checks that all operands of `op` live on the same device and returns it.
pub fn same_device(op: &'static str, devices: &[Device]) -> Result<Device> {
    let first = devices.first().cloned().unwrap_or(Device::Cpu);
    for d in devices {
        if *d != first {
            let (a, b) = (first.name(), d.name());
            let same_name = if a == b { " (two different GPU contexts)" } else { "" };
            return Err(TensorError::Device {
                op,
                msg: format!(
                    "operands are on different devices ({a} and {b}){same_name}; move them with to_device first"
                ),
            });
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_parse_and_unknown_ones_are_errors() {
        assert_eq!("AUTO".parse::<DevicePreference>().unwrap(), DevicePreference::Auto);
        assert_eq!("gpu".parse::<DevicePreference>().unwrap(), DevicePreference::Gpu);
        assert!("cuda".parse::<DevicePreference>().is_err());
        assert_eq!(Device::from_preference(DevicePreference::Cpu).unwrap(), Device::Cpu);
        assert_eq!(Device::from_preference("reference".parse().unwrap()).unwrap(), Device::Reference);
    }
}
