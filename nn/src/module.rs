//! The `Module` trait: a forward pass plus a listing of named parameters, buffers and child
//! modules. Everything that walks a model (PyTorch state_dict names, freezing, counting,
//! train/eval mode, checkpoints) is written once here on top of that listing.
//!
//! A custom block is a plain struct with its layers as fields:
//!
//! ```
//! use autograd::Var;
//! use nn::{BatchNorm2d, Conv2d, Conv2dConfig, Init, Module, Result};
//!
//! struct Block { conv: Conv2d, bn: BatchNorm2d }
//!
//! impl Module for Block {
//!     fn forward(&self, x: &Var) -> Result<Var> {
//!         Ok(self.bn.forward(&self.conv.forward(x)?)?.relu()?)
//!     }
//!     fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
//!         visit("conv", &self.conv);
//!         visit("bn", &self.bn);
//!     }
//! }
//!
//! let mut init = Init::new(0);
//! let block = Block {
//!     conv: Conv2d::new(Conv2dConfig::new(3, 8, 3).padding(1), &mut init)?,
//!     bn: BatchNorm2d::new(8, &init)?,
//! };
//! let names: Vec<String> = block.state_dict().into_iter().map(|(name, _)| name).collect();
//! assert_eq!(names, ["conv.weight", "conv.bias", "bn.weight", "bn.bias",
//!                    "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]);
//! # Ok::<(), nn::Error>(())
//! ```
//!
//! Inside a bigger model the same names are prefixed by the names of the modules that
//! contain the block (`encoder.layer1.0.bn.running_mean`), exactly as PyTorch names them.

use std::sync::{Arc, RwLock};

use autograd::Var;
use tensor::{DType, Device, Tensor};

use crate::error::Result;
use crate::layers::batch_norm::ChannelAffine;

/// How a buffer is stored in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferKind {
    /// Float statistics (running mean and variance): the model's float type.
    Float,
    /// An integer count (num_batches_tracked): held as an f64 scalar, exact up to 2⁵³, and
    /// written as I64 like PyTorch.
    Count,
}

struct BufferInner {
    value: RwLock<Tensor>,
    kind: BufferKind,
}

/// A named tensor of module state that is not trained by gradients (BatchNorm's running
/// statistics). Cloning gives another handle to the same value; `forward(&self)` updates it
/// through interior mutability.
#[derive(Clone)]
pub struct Buffer(Arc<BufferInner>);

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({:?}, shape {:?})", self.0.kind, self.value().shape())
    }
}

impl Buffer {
    /// A buffer holding `value`, stored in checkpoints as `kind` says.
    pub fn new(value: Tensor, kind: BufferKind) -> Buffer {
        Buffer(Arc::new(BufferInner { value: RwLock::new(value), kind }))
    }

    /// A float statistic.
    pub fn float(value: Tensor) -> Buffer {
        Buffer::new(value, BufferKind::Float)
    }

    /// An integer counter starting at `n`: a [] f64 tensor.
    pub fn count(n: u64) -> Buffer {
        Buffer::new(Tensor::full(&[], n as f64, DType::F64), BufferKind::Count)
    }

    /// Float statistic or integer counter.
    pub fn kind(&self) -> BufferKind {
        self.0.kind
    }

    /// The current value (a cheap shared handle).
    pub fn value(&self) -> Tensor {
        self.0.value.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the value (seen by every clone of this handle).
    pub fn set_value(&self, value: Tensor) {
        *self.0.value.write().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// Shape of the current value.
    pub fn shape(&self) -> Vec<usize> {
        self.value().shape().to_vec()
    }
}

/// One named tensor of a module's state, as a `state_dict` lists it: a handle to the
/// parameter or buffer itself, so setting its value updates the model.
#[derive(Clone, Debug)]
pub enum StateItem {
    /// A trainable (or frozen) parameter.
    Parameter(Var),
    /// A buffer such as a running statistic.
    Buffer(Buffer),
}

impl StateItem {
    /// The current value.
    pub fn value(&self) -> Tensor {
        match self {
            StateItem::Parameter(p) => p.value(),
            StateItem::Buffer(b) => b.value(),
        }
    }

    /// Replaces the value, keeping the parameter's identity (and so its place in optimizers).
    pub fn set_value(&self, value: Tensor) {
        match self {
            StateItem::Parameter(p) => p.set_value(value),
            StateItem::Buffer(b) => b.set_value(value),
        }
    }

    /// How it is stored in a checkpoint: parameters are floats, buffers say.
    pub fn kind(&self) -> BufferKind {
        match self {
            StateItem::Parameter(_) => BufferKind::Float,
            StateItem::Buffer(b) => b.kind(),
        }
    }
}

/// Parameter counts of a model, in scalars (not tensors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParameterCounts {
    /// All parameters.
    pub total: usize,
    /// Parameters with `requires_grad` (not frozen).
    pub trainable: usize,
}

/// `prefix.name`, or `name` at the root.
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A layer or a model: a forward pass and a listing of what it holds.
///
/// Implement `forward` and whichever `visit_*` lists apply; every other method is provided.
/// `Send + Sync` so a model can be shared by threads (evaluation, data loading).
pub trait Module: Send + Sync {
    /// Runs the module on a batch (shapes are given by each layer's docs).
    fn forward(&self, x: &Var) -> Result<Var>;

    /// relu(forward(x)). `Sequential` calls it for a layer followed by a [`ReLU`](crate::ReLU)
    /// layer; a layer whose op can apply the ReLU itself (the epilogue of Linear's product, of
    /// a convolution's) overrides it, and the two layers run as one op: one GPU launch fewer
    /// forward, the same values.
    fn forward_then_relu(&self, x: &Var) -> Result<Var> {
        Ok(self.forward(x)?.relu()?)
    }

    /// True only for the ReLU layer: what `Sequential` asks of the layer after each one.
    fn is_relu(&self) -> bool {
        false
    }

    /// forward(x upsampled ×`scale` by nearest neighbours). `Sequential` calls it for the layer
    /// after a nearest [`Upsample`](crate::Upsample); a layer that can read the small image
    /// directly overrides it (`Conv2d` with a 3×3 kernel at stride 1 and padding 1: 4/9 of the
    /// multiply-adds, no upsampled copy, the same values up to rounding).
    fn forward_nearest_upsampled(&self, x: &Var, scale: usize) -> Result<Var> {
        self.forward(&autograd::ops::interpolate::upsample_nearest2d(x, scale)?)
    }

    /// The factor of a nearest upsampling layer; what `Sequential` asks of each layer.
    fn nearest_upsampling_scale(&self) -> Option<usize> {
        None
    }

    /// For inference only: folds each batch norm in evaluation mode that directly follows a
    /// convolution into the convolution's weight and bias (PyTorch's `fuse_conv_bn_eval`), in
    /// place, and returns how many it folded. In evaluation mode the module then computes the
    /// same function up to rounding, with one pass over the activations fewer per fold; its
    /// parameters and state names are no longer the trained model's, so do not train or save
    /// it. Batch norms in training mode are left alone. Containers override it: `Sequential`
    /// folds its children and its own (convolution, batch norm) pairs.
    fn fold_batch_norms(&mut self) -> Result<usize> {
        Ok(0)
    }

    /// The per-channel map y = scale·x + shift this layer computes in evaluation mode, for
    /// [`fold_batch_norms`](Module::fold_batch_norms): batch norms override it.
    fn eval_channel_affine(&self) -> Result<Option<ChannelAffine>> {
        Ok(None)
    }

    /// This layer with `affine` applied to its output channels, as one layer, where it can
    /// absorb it (`Conv2d`), for [`fold_batch_norms`](Module::fold_batch_norms).
    fn absorb_channel_affine(&self, _affine: &ChannelAffine) -> Result<Option<Box<dyn Module>>> {
        Ok(None)
    }

    /// Calls `visit(name, child)` for each direct sub-module, in order.
    fn visit_children(&self, _visit: &mut dyn FnMut(&str, &dyn Module)) {}

    /// Calls `visit(name, parameter)` for each parameter this module holds itself (not its
    /// children's): "weight", "bias".
    fn visit_parameters(&self, _visit: &mut dyn FnMut(&str, &Var)) {}

    /// Calls `visit(name, buffer)` for each buffer this module holds itself.
    fn visit_buffers(&self, _visit: &mut dyn FnMut(&str, &Buffer)) {}

    /// Sets this module's own training flag; `set_training` calls it on every module of the
    /// tree. Layers whose forward depends on the mode (BatchNorm, Dropout) override it.
    fn set_own_training(&self, _training: bool) {}

    // ------------------------------------------------------------ provided

    /// Training mode (true: batch statistics, dropout on) or evaluation mode (false), for
    /// this module and all its descendants.
    fn set_training(&self, training: bool) {
        self.set_own_training(training);
        self.visit_children(&mut |_, child| child.set_training(training));
    }

    /// Walks the whole tree in PyTorch state_dict order (a module's own parameters, its own
    /// buffers, then each child's), calling `visit(full_name, item)`.
    fn visit_state(&self, prefix: &str, visit: &mut dyn FnMut(String, StateItem)) {
        self.visit_parameters(&mut |name, p| visit(join_name(prefix, name), StateItem::Parameter(p.clone())));
        self.visit_buffers(&mut |name, b| visit(join_name(prefix, name), StateItem::Buffer(b.clone())));
        self.visit_children(&mut |name, child| child.visit_state(&join_name(prefix, name), visit));
    }

    /// Moves every parameter and float buffer to `device`, in place (parameters keep their
    /// identity, so optimizers built before or after see the moved values). Counters
    /// (`num_batches_tracked`) stay on the CPU: they are f64, which the GPU does not hold.
    fn to_device(&self, device: &Device) -> Result<()> {
        let mut items = vec![];
        self.visit_state("", &mut |_, item| items.push(item));
        for item in items {
            if item.kind() == BufferKind::Float {
                item.set_value(item.value().to_device(device)?);
            }
        }
        Ok(())
    }

    /// Every parameter under its full dotted name (`encoder.layer1.0.conv1.weight`).
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut out = vec![];
        self.visit_state("", &mut |name, item| {
            if let StateItem::Parameter(p) = item {
                out.push((name, p));
            }
        });
        out
    }

    /// Every parameter, in `named_parameters` order.
    fn parameters(&self) -> Vec<Var> {
        self.named_parameters().into_iter().map(|(_, p)| p).collect()
    }

    /// Every buffer under its full dotted name (`bn1.running_mean`, `bn1.num_batches_tracked`).
    fn named_buffers(&self) -> Vec<(String, Buffer)> {
        let mut out = vec![];
        self.visit_state("", &mut |name, item| {
            if let StateItem::Buffer(b) = item {
                out.push((name, b));
            }
        });
        out
    }

    /// Handles to every parameter and buffer under its state_dict name, in state_dict order.
    fn named_state(&self) -> Vec<(String, StateItem)> {
        let mut out = vec![];
        self.visit_state("", &mut |name, item| out.push((name, item)));
        out
    }

    /// Parameters and buffers by PyTorch state_dict name, in state_dict order.
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![];
        self.visit_state("", &mut |name, item| out.push((name, item.value())));
        out
    }

    /// Total and trainable parameter counts, in scalars.
    fn parameter_counts(&self) -> ParameterCounts {
        let mut counts = ParameterCounts { total: 0, trainable: 0 };
        for (_, p) in self.named_parameters() {
            let n = p.value().numel();
            counts.total += n;
            if p.requires_grad() {
                counts.trainable += n;
            }
        }
        counts
    }

    /// Freezes (false) or unfreezes (true) every parameter of this module and its children.
    fn set_requires_grad(&self, on: bool) {
        for (_, p) in self.named_parameters() {
            p.set_requires_grad(on);
        }
    }

    /// Freezes or unfreezes the parameters whose full name starts with `prefix`
    /// (`"encoder."`); returns how many parameter tensors matched.
    fn set_requires_grad_by_prefix(&self, prefix: &str, on: bool) -> usize {
        let matched: Vec<Var> =
            self.named_parameters().into_iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, p)| p).collect();
        for p in &matched {
            p.set_requires_grad(on);
        }
        matched.len()
    }

    /// Clears the gradient of every parameter.
    fn zero_grad(&self) {
        for (_, p) in self.named_parameters() {
            p.zero_grad();
        }
    }
}
