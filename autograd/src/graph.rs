//! The computation graph: each non-leaf `Var` remembers the op that made it (its inputs and
//! a backward closure). `backward()` orders the graph topologically with an explicit stack
//! (no recursion, so deep graphs cannot overflow), walks it in reverse, and frees it. A second
//! backward through a freed graph is an error (there is no retain-graph option: recompute the
//! forward instead, which is what a training loop does anyway).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use tensor::{Result, Tensor, TensorError};

use crate::var::{Node, Var};

/// Maps the gradient of an op's output to the gradients of its inputs (None: no gradient).
pub type BackwardFn = Box<dyn FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// How a non-leaf variable was made.
pub(crate) struct Op {
    /// The op's name, used in error messages ("conv2d").
    pub(crate) name: &'static str,
    /// The graph nodes of the vars the op read, in the order `backward` returns their
    /// gradients (their nodes, not their values: see [`Node`]).
    pub(crate) inputs: Vec<Arc<Node>>,
    /// The inputs' shapes when the op read them: each gradient must have its input's.
    pub(crate) input_shapes: Vec<Vec<usize>>,
    /// Maps the output's gradient to one gradient per input, each shaped like that input.
    pub(crate) backward: BackwardFn,
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
fn topological_order(root: &Arc<Node>) -> Vec<Arc<Node>> {
    let mut order = vec![];
    let mut visited = std::collections::HashSet::new();
    // (node, children already pushed?)
    let mut stack = vec![(Arc::clone(root), false)];
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
    let order = topological_order(root.node());
    // A freed node would act as a leaf: the gradient would stop there and everything before it
    // would silently get nothing. Refused before any gradient moves, as PyTorch refuses it.
    if let Some(name) = order.iter().find_map(|v| v.freed_op()) {
        return Err(TensorError::Invalid {
            op: "backward",
            msg: format!(
                "trying to backward through the graph a second time: the graph behind a `{name}` result was \
                 freed by an earlier backward(); compute the output again to back-propagate again"
            ),
        });
    }
    let mut grads: HashMap<usize, Tensor> = HashMap::new();
    grads.insert(root.node().id(), grad);
    // Consumed in reverse: each node is dropped right after its backward has run, and with it
    // its op's closure and the values it saved, so activations are freed one by one as
    // backward passes them, as PyTorch frees saved tensors, not all at the end.
    for v in order.into_iter().rev() {
        let Some(g) = grads.remove(&v.id()) else { continue };
        match v.take_op() {
            None => v.accumulate_grad(&g)?,
            Some(op) => {
                let input_grads = (op.backward)(&g)?;
                for ((input, shape), ig) in op.inputs.iter().zip(&op.input_shapes).zip(input_grads) {
                    let Some(ig) = ig else { continue };
                    if !input.requires_grad() {
                        continue;
                    }
                    if ig.shape() != shape.as_slice() {
                        return Err(TensorError::Shape {
                            op: op.name,
                            msg: format!(
                                "backward produced a gradient {:?} for an input of shape {:?}",
                                ig.shape(),
                                shape
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, Weak};

    use tensor::Tensor;

    use crate::var::{Node, Var};

    #[test]
    fn backward_frees_an_intermediate_node_and_its_saved_values_before_reaching_the_ops_that_made_its_inputs() {
        let x = Var::new(Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap(), true);
        // `probe` is x's first consumer; its backward runs after every later node's, and checks
        // whether `later` (two ops further on, not held by anyone) is gone by then.
        let later: Arc<Mutex<Weak<Node>>> = Arc::new(Mutex::new(Weak::new()));
        let freed = Arc::new(AtomicBool::new(false));
        let (later_in_probe, freed_in_probe) = (later.clone(), freed.clone());
        let probe = Var::from_op("probe", x.value(), &[&x], move |g| {
            let gone = later_in_probe.lock().unwrap().upgrade().is_none();
            freed_in_probe.store(gone, Ordering::SeqCst);
            Ok(vec![Some(g.clone())])
        });
        let middle = probe.mul_scalar(3.0).unwrap();
        *later.lock().unwrap() = middle.downgrade();
        let loss = middle.sum(&[0], false).unwrap();
        drop((probe, middle));
        loss.backward().unwrap();
        assert!(freed.load(Ordering::SeqCst), "the node after `probe` was still alive during probe's backward");
        assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![3.0, 3.0]);
    }
}
