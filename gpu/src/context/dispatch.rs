//! A launch: how one kernel call becomes a dispatch in the pending command encoder. The
//! launchers of `crate::kernels` check their arguments and call [`Context::dispatch`] with the
//! kernel, its parameters and its buffers; it writes the parameters into this launch's slot of
//! the parameter ring, takes the bind group from the cache (created on first use), records the
//! dispatch into the open compute pass, and submits every `DISPATCHES_PER_SUBMIT` launches.
//! [`Context::grid_1d`] and [`Context::grid_3d`] turn a launch's workgroup count into a grid
//! within the device's per-dimension limit.

use super::{Context, PARAMS_SLOT};
use crate::bind_groups::BindGroupKey;
use crate::buffer_pool::GpuBuffer;
use crate::counters::LiveCounters;
use crate::error::{invalid, GpuError, Result};
use crate::pipeline_cache::KernelDef;

impl Context {
    /// The bind group of a launch of `k` on these buffers: cached, since a training step binds
    /// the same pool buffers every iteration (see [`crate::bind_groups`]).
    fn bind_group(
        &self,
        k: &KernelDef,
        layout: &wgpu::BindGroupLayout,
        inputs: &[&GpuBuffer],
        outputs: &[&GpuBuffer],
    ) -> wgpu::BindGroup {
        let buffers = inputs.iter().chain(outputs);
        let key = BindGroupKey {
            inputs: k.inputs,
            outputs: k.outputs,
            buffers: buffers.clone().map(|b| (b.id(), b.offset(), b.len())).collect(),
        };
        let mut cache = self.bind_groups.lock().unwrap();
        cache.evict(&self.pool.take_released());
        let (group, created) = cache.get_or_create(key, || {
            let slot = wgpu::BufferBinding {
                buffer: &self.submitter.ring,
                offset: 0,
                size: wgpu::BufferSize::new(PARAMS_SLOT as u64),
            };
            let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::Buffer(slot) }];
            for (i, b) in buffers.enumerate() {
                entries.push(wgpu::BindGroupEntry { binding: 1 + i as u32, resource: b.binding() });
            }
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(k.entry),
                layout,
                entries: &entries,
            })
        });
        if created {
            LiveCounters::add(&self.counters.bind_groups_created, 1);
        }
        group
    }

    // ------------------------------------------------------------ launches

    /// A 1-D launch of `workgroups` workgroups as an x·y grid (y > 1 only when x would exceed
    /// max_compute_workgroups_per_dimension). Shaders recover the linear workgroup index as
    /// `wid.x + wid.y · num_workgroups.x` and bounds-check, since x·y may exceed the count.
    pub fn grid_1d(&self, kernel: &'static str, workgroups: u64) -> Result<[u32; 3]> {
        let max = self.info.limits.max_compute_workgroups_per_dimension as u64;
        if workgroups <= max {
            return Ok([workgroups as u32, 1, 1]);
        }
        let y = workgroups.div_ceil(max);
        if y > max {
            return Err(GpuError::LimitExceeded {
                what: format!("max_compute_workgroups_per_dimension² ({kernel}: a 1-D grid split over x and y)"),
                requested: workgroups,
                limit: max * max,
            });
        }
        Ok([workgroups.div_ceil(y) as u32, y as u32, 1])
    }

    /// Checks an explicit 3-D grid against max_compute_workgroups_per_dimension.
    pub fn grid_3d(&self, kernel: &'static str, grid: [u64; 3]) -> Result<[u32; 3]> {
        let max = self.info.limits.max_compute_workgroups_per_dimension as u64;
        for (axis, &g) in ["x", "y", "z"].iter().zip(&grid) {
            if g > max {
                return Err(GpuError::LimitExceeded {
                    what: format!("max_compute_workgroups_per_dimension ({kernel}, grid {axis})"),
                    requested: g,
                    limit: max,
                });
            }
        }
        Ok([grid[0] as u32, grid[1] as u32, grid[2] as u32])
    }

    /// Records one launch of `k`: `params` to binding 0, then `inputs`, then `outputs`.
    /// An empty grid records nothing. Refuses an output bound twice (wgpu would reject the
    /// read-only/read-write overlap) and buffers of the wrong count.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        k: &KernelDef,
        params: &P,
        inputs: &[&GpuBuffer],
        outputs: &[&GpuBuffer],
        grid: [u32; 3],
    ) -> Result<()> {
        let name = k.entry;
        if inputs.len() != k.inputs as usize || outputs.len() != k.outputs as usize {
            return Err(invalid(
                name,
                format!(
                    "{}:{} takes {} inputs and {} outputs, got {} and {}",
                    k.shader.name,
                    k.entry,
                    k.inputs,
                    k.outputs,
                    inputs.len(),
                    outputs.len()
                ),
            ));
        }
        for (i, o) in outputs.iter().enumerate() {
            let clash = inputs.iter().chain(&outputs[..i]).any(|b| b.id() == o.id());
            if clash {
                return Err(invalid(
                    name,
                    format!("output buffer {} is also bound as another operand of {}", o.id(), k.entry),
                ));
            }
        }
        let max_binding = self.info.limits.max_storage_buffer_binding_size;
        if let Some(big) = inputs.iter().chain(outputs).find(|b| b.bytes() > max_binding) {
            return Err(GpuError::LimitExceeded {
                what: format!(
                    "max_storage_buffer_binding_size ({}:{} binds a buffer of {} f32; the op must split its work)",
                    k.shader.name,
                    k.entry,
                    big.len()
                ),
                requested: big.bytes(),
                limit: max_binding,
            });
        }
        let params = bytemuck::bytes_of(params);
        if params.len() > PARAMS_SLOT {
            return Err(invalid(name, format!("{} bytes of parameters; a launch has {PARAMS_SLOT}", params.len())));
        }
        if grid.contains(&0) {
            return Ok(());
        }
        let pipeline = self.pipelines.get(&self.device, k)?;
        let bind_group = self.bind_group(k, &pipeline.layout, inputs, outputs);
        {
            let mut p = self.pending.lock().unwrap();
            let offset = p.params.len();
            p.params.extend_from_slice(params);
            p.params.resize(offset + PARAMS_SLOT, 0);
            p.launch(&self.device, k, &pipeline.pipeline, &bind_group, offset as u32, grid);
            p.dispatches += 1;
            LiveCounters::add(&self.counters.dispatches, 1);
            LiveCounters::add(&self.counters.workgroups, grid.iter().map(|&g| g as u64).product());
            // The ring is full: submit now, so the GPU starts on these launches. Under the
            // lock, so that launches from several threads cannot pass the ring's end.
            if p.dispatches == self.dispatches_per_submit {
                self.submit(&mut p);
            }
        }
        Ok(())
    }
}
