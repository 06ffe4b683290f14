//! Compiled compute pipelines, built once per (shader, entry point, pipeline constant) and
//! kept for the life of the context.
//!
//! Every kernel has the same binding shape, so its layout follows from two numbers:
//! binding 0 is the `Params` uniform, bindings 1..=inputs are read-only storage buffers and
//! the next `outputs` bindings are read-write storage buffers (an in-place operand, like
//! Adam's parameters, is an output). Kernels of one binding shape share one bind group layout,
//! so one bind group serves all of them (see [`crate::bind_groups`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{GpuError, Result};

/// One WGSL file: `name` is its file name (for errors and the cache key), `source` its text.
#[derive(Debug)]
pub struct Shader {
    /// File name, e.g. `elementwise.wgsl`.
    pub name: &'static str,
    /// The WGSL source text, without the launch grid's definitions ([`GRID`]).
    pub source: &'static str,
}

/// `shaders/grid.wgsl`: the launch grid's constant and functions (`WG`, `workgroup_index`,
/// `linear_id`), defined once and compiled in front of every shader.
pub const GRID: &str = include_str!("../../shaders/grid.wgsl");

impl Shader {
    /// The text the GPU compiles: [`GRID`], then the shader's own source.
    pub fn compiled_source(&self) -> String {
        with_grid(self.source)
    }
}

/// [`GRID`] followed by `source`: what a shader's text is compiled as.
pub fn with_grid(source: &str) -> String {
    format!("{GRID}\n{source}")
}

/// One entry point of a shader and its binding shape.
#[derive(Debug)]
pub struct KernelDef {
    /// The shader holding the entry point.
    pub shader: &'static Shader,
    /// The entry point's name in the WGSL.
    pub entry: &'static str,
    /// Read-only storage buffers, bound at 1..=inputs.
    pub inputs: u32,
    /// Read-write storage buffers, bound after the inputs.
    pub outputs: u32,
    /// A pipeline-overridable constant (`override NAME: u32;` in the WGSL) fixed when the
    /// pipeline is compiled: one pipeline per value, cached separately. The element-wise
    /// kernels take their op this way, so that the compiler drops every other op's code.
    pub constant: Option<PipelineConstant>,
}

/// The value of one `override` constant of a kernel's WGSL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PipelineConstant {
    /// The constant's name in the WGSL.
    pub name: &'static str,
    /// Its value for this pipeline.
    pub value: u32,
}

impl KernelDef {
    /// The kernel `entry` of `shader`, reading `inputs` buffers and writing `outputs`, with no
    /// pipeline constant.
    pub const fn new(shader: &'static Shader, entry: &'static str, inputs: u32, outputs: u32) -> Self {
        KernelDef { shader, entry, inputs, outputs, constant: None }
    }

    pub(crate) fn bindings(&self) -> u32 {
        1 + self.inputs + self.outputs
    }
}

pub(crate) struct Pipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// What a pipeline is cached under: its shader's name, its entry point and its constant.
type PipelineKey = (&'static str, &'static str, Option<PipelineConstant>);

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    /// One bind group layout per binding shape (inputs, outputs).
    layouts: Mutex<HashMap<(u32, u32), wgpu::BindGroupLayout>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
}

impl PipelineCache {
    /// The pipeline for `k`, compiling it (and its shader module) on first use. Compile errors
    /// are caught in an error scope and returned, never panicked.
    pub(crate) fn get(&self, device: &wgpu::Device, k: &KernelDef) -> Result<Arc<Pipeline>> {
        let key = (k.shader.name, k.entry, k.constant);
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(Arc::clone(p));
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = {
            let mut modules = self.modules.lock().unwrap();
            modules
                .entry(k.shader.name)
                .or_insert_with(|| {
                    device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(k.shader.name),
                        source: wgpu::ShaderSource::Wgsl(k.shader.compiled_source().into()),
                    })
                })
                .clone()
        };
        let label = match k.constant {
            Some(c) => format!("{}:{} ({} = {})", k.shader.name, k.entry, c.name, c.value),
            None => format!("{}:{}", k.shader.name, k.entry),
        };
        let constants: Vec<(&str, f64)> = k.constant.iter().map(|c| (c.name, f64::from(c.value))).collect();
        let layout = self.layout(device, k);
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(k.entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
            cache: None,
        });
        if let Some(err) = pollster::block_on(scope.pop()) {
            // Forget the module too: it may be the part that failed.
            self.modules.lock().unwrap().remove(k.shader.name);
            return Err(GpuError::Device(format!("compiling {label}: {err}")));
        }
        let p = Arc::new(Pipeline { pipeline, layout });
        self.pipelines.lock().unwrap().insert(key, Arc::clone(&p));
        Ok(p)
    }

    /// The bind group layout of `k`'s binding shape (created on first use).
    fn layout(&self, device: &wgpu::Device, k: &KernelDef) -> wgpu::BindGroupLayout {
        let mut layouts = self.layouts.lock().unwrap();
        let layout = layouts.entry((k.inputs, k.outputs)).or_insert_with(|| {
            let entries: Vec<wgpu::BindGroupLayoutEntry> = (0..k.bindings())
                .map(|b| wgpu::BindGroupLayoutEntry {
                    binding: b,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: if b == 0 {
                            wgpu::BufferBindingType::Uniform
                        } else {
                            wgpu::BufferBindingType::Storage { read_only: b <= k.inputs }
                        },
                        has_dynamic_offset: b == 0, // the launch's slot of the parameter ring
                        min_binding_size: None,
                    },
                    count: None,
                })
                .collect();
            let label = format!("{} inputs, {} outputs", k.inputs, k.outputs);
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(&label), entries: &entries })
        });
        layout.clone()
    }

    /// Number of compiled pipelines (for tests: a second launch must not compile again).
    pub(crate) fn len(&self) -> usize {
        self.pipelines.lock().unwrap().len()
    }
}
