//! Devices a tensor can live on. Every op runs on the device of its operands; mixing devices
//! is an error that names the op.

use crate::error::{Result, TensorError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// CPU memory, rayon kernels.
    Cpu,
}

impl Device {
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
        }
    }
}

/// Checks that all operands of `op` live on the same device and returns it.
pub fn same_device(op: &'static str, devices: &[Device]) -> Result<Device> {
    let first = devices.first().cloned().unwrap_or(Device::Cpu);
    for d in devices {
        if *d != first {
            return Err(TensorError::Device {
                op,
                msg: format!(
                    "operands are on different devices ({} and {}); move them with to_device first",
                    first.name(),
                    d.name()
                ),
            });
        }
    }
    Ok(first)
}
