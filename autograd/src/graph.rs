//! The computation graph: each non-leaf `Var` remembers the op that made it (its inputs and
//! a backward closure). `backward()` orders the graph topologically with an explicit stack
//! (no recursion, so deep graphs cannot overflow), walks it in reverse, and frees it.

use std::cell::Cell;
use std::collections::HashMap;

use tensor::{Result, Tensor, TensorError};

use crate::var::Var;

/// Maps the gradient of an op's output to the gradients of its inputs (None: no gradient).
pub type BackwardFn = Box<dyn FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// How a non-leaf variable was made.
pub struct Op {
    /// The op's name, used in error messages ("conv2d").
    pub name: &'static str,
    /// The vars the op read, in the order `backward` returns their gradients.
    pub inputs: Vec<Var>,
    /// Maps the output's gradient to one gradient per input, each shaped like that input.
    pub backward: BackwardFn,
}

thread_local! {
    static NO_GRAD_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// True while inside `no_grad`: ops then build no graph.
pub fn is_grad_enabled() -> bool {
    NO_GRAD_DEPTH.with(|d| d.get() == 0)
}

/// Runs `f` without recording a graph (evaluation, target tensors, optimizer updates).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Disables graph recording until dropped.
pub struct NoGradGuard(());

impl NoGradGuard {
    /// Turns recording off until the guard is dropped (nesting is counted).
    pub fn new() -> Self {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
        NoGradGuard(())
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Non-leaf nodes reachable from `root`, inputs before the ops that use them.
fn topological_order(root: &Var) -> Vec<Var> {
    let mut order = vec![];
    let mut visited = std::collections::HashSet::new();
    // (node, children already pushed?)
    let mut stack = vec![(root.clone(), false)];
    while let Some((v, expanded)) = stack.pop() {
        if expanded {
            order.push(v);
            continue;
        }
        if !visited.insert(v.id()) {
            continue;
        }
        let inputs = v.op_inputs();
        stack.push((v, true));
        for input in inputs {
            if !visited.contains(&input.id()) {
                stack.push((input, false));
            }
        }
    }
    order
}

/// Back-propagates `grad` (shaped like `root`) through the graph, accumulating into the
/// `.grad()` of every leaf that requires it, then frees the graph.
pub fn backward(root: &Var, grad: Tensor) -> Result<()> {
    if grad.shape() != root.shape().as_slice() {
        return Err(TensorError::Shape {
            op: "backward",
            msg: format!("output gradient {:?} does not match the output's shape {:?}", grad.shape(), root.shape()),
        });
    }
    if !root.requires_grad() {
        return Err(TensorError::Invalid {
            op: "backward",
            msg: "the output does not require grad: no parameter took part in computing it (or it was computed under no_grad)".into(),
        });
    }
    let order = topological_order(root);
    let mut grads: HashMap<usize, Tensor> = HashMap::new();
    grads.insert(root.id(), grad);
    for v in order.iter().rev() {
        let Some(g) = grads.remove(&v.id()) else { continue };
        match v.take_op() {
            None => v.accumulate_grad(&g)?,
            Some(op) => {
                let input_grads = (op.backward)(&g)?;
                for (input, ig) in op.inputs.iter().zip(input_grads) {
                    let Some(ig) = ig else { continue };
                    if !input.requires_grad() {
                        continue;
                    }
                    if ig.shape() != input.shape().as_slice() {
                        return Err(TensorError::Shape {
                            op: op.name,
                            msg: format!(
                                "backward produced a gradient {:?} for an input of shape {:?}",
                                ig.shape(),
                                input.shape()
                            ),
                        });
                    }
                    let acc = match grads.remove(&input.id()) {
                        Some(prev) => prev.add(&ig)?,
                        None => ig,
                    };
                    grads.insert(input.id(), acc);
                }
            }
        }
    }
    Ok(())
}
