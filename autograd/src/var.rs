//! `Var`: a tensor that remembers how it was computed. Leaves are inputs and parameters;
//! every op on vars returns a new var holding its value and, unless gradients are off, a node
//! in the graph with the op's backward closure.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tensor::{DType, Result, Tensor};

use crate::graph::{self, BackwardFn, Op};

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A var's place in the graph: what backward needs of it, which is not its value. The graph
/// keeps a node alive until backward has passed it; were the value in it, every activation
/// of a forward pass would live until then, whether a backward needs it or not. The values a
/// backward needs are the ones its closure captured (PyTorch's saved tensors); the rest go
/// when the caller drops its var.
pub(crate) struct Node {
    id: usize,
    grad: Mutex<Option<Tensor>>,
    requires_grad: AtomicBool,
    op: Mutex<Option<Op>>,
    /// The name of the op that made this value, once a backward has freed its graph: a later
    /// backward through it would silently miss everything before it, so it is refused.
    freed_op: OnceLock<&'static str>,
}

/// What the handles of one var share: its value and its node.
struct Shared {
    value: RwLock<Tensor>,
    node: Arc<Node>,
}

/// A differentiable tensor. Cloning a `Var` clones a handle to the same value and node.
#[derive(Clone)]
pub struct Var(Arc<Shared>);

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var(#{}, shape {:?}, requires_grad {})", self.0.node.id, self.shape(), self.requires_grad())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these plain values half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Var {
    fn make(value: Tensor, requires_grad: bool, op: Option<Op>) -> Var {
        let node = Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            grad: Mutex::new(None),
            requires_grad: AtomicBool::new(requires_grad),
            op: Mutex::new(op),
            freed_op: OnceLock::new(),
        });
        Var(Arc::new(Shared { value: RwLock::new(value), node }))
    }

    /// A leaf. Parameters use `requires_grad = true`; data and targets `false`.
    pub fn new(value: Tensor, requires_grad: bool) -> Var {
        Var::make(value, requires_grad, None)
    }

    /// A leaf that takes gradients (a parameter).
    pub fn parameter(value: Tensor) -> Var {
        Var::new(value, true)
    }

    /// A leaf that never takes gradients (an input, a target, a constant).
    pub fn constant(value: Tensor) -> Var {
        Var::new(value, false)
    }

    /// The result of an op: records `backward` when gradients are enabled and some input
    /// requires them, otherwise returns a constant.
    pub fn from_op(
        name: &'static str,
        value: Tensor,
        inputs: &[&Var],
        backward: impl FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Var {
        if !graph::is_grad_enabled() || !inputs.iter().any(|v| v.requires_grad()) {
            return Var::constant(value);
        }
        let backward: BackwardFn = Box::new(backward);
        let op = Op {
            name,
            inputs: inputs.iter().map(|v| Arc::clone(&v.0.node)).collect(),
            input_shapes: inputs.iter().map(|v| v.shape()).collect(),
            backward,
        };
        Var::make(value, true, Some(op))
    }

    /// A weak handle on the node, to observe when the graph lets go of it (tests).
    #[cfg(test)]
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Node> {
        Arc::downgrade(&self.0.node)
    }

    /// The var's place in the graph.
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.0.node
    }

    /// The current value (a cheap shared handle).
    pub fn value(&self) -> Tensor {
        self.0.value.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the value (optimizers, checkpoint loading). Does not touch the graph.
    pub fn set_value(&self, value: Tensor) {
        *self.0.value.write().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// Runs `f` with mutable access to the value (in-place optimizer updates).
    pub fn update_value<R>(&self, f: impl FnOnce(&mut Tensor) -> R) -> R {
        f(&mut self.0.value.write().unwrap_or_else(|e| e.into_inner()))
    }

    /// The value's shape, e.g. `[batch, channels, height, width]` for an image batch.
    pub fn shape(&self) -> Vec<usize> {
        self.0.value.read().unwrap_or_else(|e| e.into_inner()).shape().to_vec()
    }

    /// The value's float type (f32 for training, f64 for gradient checks).
    pub fn dtype(&self) -> DType {
        self.value().dtype()
    }

    /// Whether backward computes a gradient for this var: true for parameters and for results
    /// of ops on them (outside `no_grad`), false for constants and frozen parameters.
    pub fn requires_grad(&self) -> bool {
        self.0.node.requires_grad()
    }

    /// Freezes (false) or unfreezes (true) a leaf.
    pub fn set_requires_grad(&self, on: bool) {
        self.0.node.requires_grad.store(on, Ordering::Relaxed);
    }

    /// True for parameters and constants, and for results whose graph backward has freed
    /// (those can no longer be back-propagated through: see [`crate::graph::backward`]).
    pub fn is_leaf(&self) -> bool {
        lock(&self.0.node.op).is_none()
    }

    /// The accumulated gradient of a leaf, if any backward reached it.
    pub fn grad(&self) -> Option<Tensor> {
        lock(&self.0.node.grad).clone()
    }

    /// Replaces the accumulated gradient (shaped like the value), or clears it with `None`.
    pub fn set_grad(&self, grad: Option<Tensor>) {
        *lock(&self.0.node.grad) = grad;
    }

    /// Clears the accumulated gradient; the next backward starts from nothing.
    pub fn zero_grad(&self) {
        self.set_grad(None);
    }

    /// The same value as a new constant leaf: gradients stop here.
    pub fn detach(&self) -> Var {
        Var::constant(self.value())
    }

    /// Back-propagates from this scalar (seed gradient 1).
    pub fn backward(&self) -> Result<()> {
        let v = self.value();
        if v.numel() != 1 {
            return Err(tensor::TensorError::Shape {
                op: "backward",
                msg: format!("backward() needs a scalar output, got shape {:?}; use backward_with(grad)", v.shape()),
            });
        }
        // The seed lives where the output does, so backward runs on the forward's device.
        self.backward_with(Tensor::ones_on(v.shape(), v.dtype(), &v.device())?)
    }

    /// Back-propagates a given output gradient (shaped like this var).
    pub fn backward_with(&self, grad: Tensor) -> Result<()> {
        graph::backward(self, grad)
    }
}

impl Node {
    pub(crate) fn id(&self) -> usize {
        self.id
    }

    pub(crate) fn requires_grad(&self) -> bool {
        self.requires_grad.load(Ordering::Relaxed)
    }

    /// Adds `g` to a leaf's gradient.
    pub(crate) fn accumulate_grad(&self, g: &Tensor) -> Result<()> {
        let mut slot = lock(&self.grad);
        *slot = Some(match slot.take() {
            Some(prev) => prev.add(g)?,
            None => g.clone(),
        });
        Ok(())
    }

    /// The nodes of the op's inputs (none for a leaf).
    pub(crate) fn op_inputs(&self) -> Vec<Arc<Node>> {
        lock(&self.op).as_ref().map(|op| op.inputs.clone()).unwrap_or_default()
    }

    /// Takes the op out of the node (backward runs it once) and marks the node freed.
    pub(crate) fn take_op(&self) -> Option<Op> {
        let op = lock(&self.op).take();
        if let Some(op) = &op {
            let _ = self.freed_op.set(op.name);
        }
        op
    }

    /// The op that made this value, if a backward has already freed its graph.
    pub(crate) fn freed_op(&self) -> Option<&'static str> {
        self.freed_op.get().copied()
    }
}

impl Drop for Node {
    /// Frees long chains iteratively: a recursive drop of a deep graph would overflow the stack.
    fn drop(&mut self) {
        let mut pending: Vec<Arc<Node>> = match self.op.get_mut() {
            Ok(op) => op.take().map(|op| op.inputs).unwrap_or_default(),
            Err(e) => e.into_inner().take().map(|op| op.inputs).unwrap_or_default(),
        };
        while let Some(v) = pending.pop() {
            if let Ok(node) = Arc::try_unwrap(v) {
                let mut node = node;
                if let Some(op) = node.op.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
                    pending.extend(op.inputs);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::no_grad;

    fn param() -> Var {
        Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]).unwrap())
    }

    #[test]
    fn backward_frees_the_graph() {
        let w = param();
        let loss = w.mul(&w).unwrap().exp().unwrap().sum_all().unwrap();
        assert!(Arc::strong_count(&w.0.node) > 1, "the graph holds the parameter");
        loss.backward().unwrap();
        assert_eq!(Arc::strong_count(&w.0.node), 1, "after backward only the caller's handle is left");
        assert!(loss.is_leaf());
    }

    #[test]
    fn a_value_no_backward_saved_is_freed_when_its_var_is_dropped_before_backward() {
        let w = param();
        // Neither op saves its input (scaling and shifting need only the output's gradient),
        // so once the caller drops `scaled`, nothing may keep its value: the graph still needs
        // the op that made it, not the tensor (PyTorch keeps only saved tensors, too).
        let scaled = w.mul_scalar(3.0).unwrap();
        let value = scaled.value();
        let loss = scaled.add_scalar(1.0).unwrap().sum_all().unwrap();
        drop(scaled);
        assert!(!value.storage_is_shared(), "the graph kept an intermediate value no backward needs");
        loss.backward().unwrap();
        assert_eq!(w.grad().unwrap().to_vec_f64().unwrap(), vec![3.0; 3]);
    }

    #[test]
    fn a_second_backward_through_a_freed_graph_is_an_error_and_changes_no_gradient() {
        let w = param();
        let loss = w.mul_scalar(3.0).unwrap().sum_all().unwrap();
        loss.backward().unwrap();
        let err = loss.backward().unwrap_err().to_string();
        assert!(err.contains("second time") && err.contains("sum"), "{err}");
        assert_eq!(w.grad().unwrap().to_vec_f64().unwrap(), vec![3.0; 3], "the parameter's gradient changed");
        assert!(loss.grad().is_none(), "the freed output took a gradient");
    }

    #[test]
    fn a_new_graph_built_on_a_freed_result_cannot_backward_through_it() {
        let w = param();
        let y = w.mul_scalar(3.0).unwrap();
        y.sum_all().unwrap().backward().unwrap();
        let err = y.mul_scalar(2.0).unwrap().sum_all().unwrap().backward().unwrap_err().to_string();
        assert!(err.contains("second time"), "{err}");
        assert_eq!(w.grad().unwrap().to_vec_f64().unwrap(), vec![3.0; 3]);
    }

    #[test]
    fn gradients_accumulate_across_backward_calls_until_zeroed() {
        let w = param();
        for _ in 0..2 {
            w.mul_scalar(3.0).unwrap().sum_all().unwrap().backward().unwrap();
        }
        assert_eq!(w.grad().unwrap().to_vec_f64().unwrap(), vec![6.0; 3]);
        w.zero_grad();
        assert!(w.grad().is_none());
    }

    #[test]
    fn no_grad_builds_no_graph() {
        let w = param();
        let y = no_grad(|| w.mul(&w).unwrap());
        assert!(!y.requires_grad() && y.is_leaf());
        assert!(y.backward().is_err());
    }

    #[test]
    fn a_very_deep_graph_is_freed_without_overflowing_the_stack() {
        let w = param();
        let mut x = w.clone();
        for _ in 0..200_000 {
            x = x.add_scalar(1.0).unwrap();
        }
        drop(x); // a recursive drop of 200k nested nodes would overflow the stack
        assert_eq!(Arc::strong_count(&w.0.node), 1);
    }

    #[test]
    fn frozen_parameters_get_no_gradient() {
        let (w, b) = (param(), param());
        b.set_requires_grad(false);
        w.mul(&b).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(w.grad().is_some() && b.grad().is_none());
    }
}
